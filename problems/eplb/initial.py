"""Initial EPLB program: a crude replica rule and a greedy placement, with deliberately untuned knobs."""
import numpy as np


# EVOLVE-BLOCK-START
def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    w = np.asarray(weight, dtype=np.float64)
    num_layers, num_experts = w.shape
    per_gpu = num_replicas // num_gpus
    phy2log = np.zeros((num_layers, num_replicas), dtype=np.int64)
    logcnt = np.ones((num_layers, num_experts), dtype=np.int64)
    for layer in range(num_layers):
        load = w[layer]
        # predicted next-window load: a blend of this window's load and the layer mean
        pred = 0.2 * load + 0.8 * load.mean()
        # experts hotter than a threshold get extra replicas
        extra = np.floor(pred / (2.0 * pred.mean())).astype(np.int64)
        cnt = 1 + extra
        # too many replicas: take them back from the most replicated experts
        while cnt.sum() > num_replicas:
            cnt[np.argmax(cnt)] -= 1
        # spare slots: hand them out in expert order
        spare = num_replicas - cnt.sum()
        np.add.at(cnt, np.arange(spare) % num_experts, 1)
        logcnt[layer] = cnt
        # place replicas one by one on the GPU with the lowest cost that has a free slot
        reps = np.repeat(np.arange(num_experts), cnt)
        share = pred[reps] / cnt[reps]
        order = np.argsort(-share)
        gpu_load = np.zeros(num_gpus)
        gpu_used = np.zeros(num_gpus, dtype=np.int64)
        for r in order:
            cost = gpu_load + 2.0 * share.mean() * gpu_used
            cost[gpu_used >= per_gpu] = np.inf
            g = int(np.argmin(cost))
            phy2log[layer, g * per_gpu + gpu_used[g]] = reps[r]
            gpu_load[g] += share[r]
            gpu_used[g] += 1
    maxrep = int(logcnt.max())
    log2phy = -np.ones((num_layers, num_experts, maxrep), dtype=np.int64)
    for layer in range(num_layers):
        seen = np.zeros(num_experts, dtype=np.int64)
        for slot in range(num_replicas):
            e = phy2log[layer, slot]
            log2phy[layer, e, seen[e]] = slot
            seen[e] += 1
    return phy2log, log2phy, logcnt
# EVOLVE-BLOCK-END
