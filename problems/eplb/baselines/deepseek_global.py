"""DeepSeek EPLB, global policy (numpy port written from the algorithm's description).

Replicate over the whole cluster (each spare slot to the expert with the highest load per replica), then
pack the replicas onto GPUs, heaviest first onto the least loaded GPU with room. Ignores groups and nodes.
"""
import numpy as np


def _replicate(weight, num_phy):
    n, num_log = weight.shape
    rows = np.arange(n)
    phy2log = np.tile(np.arange(num_phy, dtype=np.int64), (n, 1))
    logcnt = np.ones((n, num_log), dtype=np.int64)
    for i in range(num_log, num_phy):
        hot = np.argmax(weight / logcnt, axis=1)
        phy2log[:, i] = hot
        logcnt[rows, hot] += 1
    return phy2log, logcnt


def _balanced_packing(weight, num_packs):
    n, m = weight.shape
    cap = m // num_packs
    rows = np.arange(n)
    order = np.argsort(-weight, axis=1, kind="stable")
    pack_index = np.zeros((n, m), dtype=np.int64)
    rank_in_pack = np.zeros((n, m), dtype=np.int64)
    pack_load = np.zeros((n, num_packs))
    pack_cnt = np.zeros((n, num_packs), dtype=np.int64)
    for k in range(m):
        item = order[:, k]
        p = np.argmin(np.where(pack_cnt < cap, pack_load, np.inf), axis=1)
        pack_index[rows, item] = p
        rank_in_pack[rows, item] = pack_cnt[rows, p]
        pack_load[rows, p] += weight[rows, item]
        pack_cnt[rows, p] += 1
    return pack_index, rank_in_pack


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    weight = np.asarray(weight, dtype=np.float64)
    phy2log, logcnt = _replicate(weight, num_replicas)
    phy_load = np.take_along_axis(weight / logcnt, phy2log, axis=1)
    pack, pos = _balanced_packing(phy_load, num_gpus)
    slot = pack * (num_replicas // num_gpus) + pos          # where each replica lands
    out = np.empty_like(phy2log)
    np.put_along_axis(out, slot, phy2log, axis=1)
    return out, logcnt
