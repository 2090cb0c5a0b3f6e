"""Greedy: replicate the hottest by load per replica, then longest-processing-time-first placement
(heaviest replica onto the least loaded GPU with a free slot). Vectorised over layers."""
import numpy as np


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    w = np.asarray(weight, dtype=np.float64)
    L, E = w.shape
    rows = np.arange(L)
    logcnt = np.ones((L, E), dtype=np.int64)
    for _ in range(num_replicas - E):
        hot = np.argmax(w / logcnt, axis=1)
        logcnt[rows, hot] += 1
    # replica list per layer: expert ids repeated by count, with each replica's share of the load
    reps = np.stack([np.repeat(np.arange(E), logcnt[l]) for l in range(L)])
    share = np.take_along_axis(w / logcnt, reps, axis=1)
    order = np.argsort(-share, axis=1, kind="stable")
    per_gpu = num_replicas // num_gpus
    gpu_load = np.zeros((L, num_gpus))
    gpu_used = np.zeros((L, num_gpus), dtype=np.int64)
    phy2log = np.empty((L, num_replicas), dtype=np.int64)
    for k in range(num_replicas):
        r = order[:, k]
        g = np.argmin(np.where(gpu_used < per_gpu, gpu_load, np.inf), axis=1)
        phy2log[rows, g * per_gpu + gpu_used[rows, g]] = reps[rows, r]
        gpu_load[rows, g] += share[rows, r]
        gpu_used[rows, g] += 1
    return phy2log, logcnt
