"""DeepSeek EPLB, hierarchical policy (numpy port written from the algorithm's description).

1. pack expert groups onto nodes so every node gets about the same load (balanced packing);
2. inside each node, give the spare slots one by one to the expert with the highest load per replica;
3. pack each node's replicas onto its GPUs, heaviest first onto the least loaded GPU with room.
Falls back to the global policy (one group, one node) when groups do not divide over nodes.
"""
import numpy as np


def _balanced_packing(weight, num_packs):
    """Each row's items, heaviest first, onto the least loaded pack that still has room (equal item counts)."""
    n, m = weight.shape
    cap = m // num_packs
    if cap == 1:  # one item per pack: item i to pack i, as DeepSeek's code does
        return np.tile(np.arange(m), (n, 1)), np.zeros((n, m), dtype=np.int64)
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


def _replicate(weight, num_phy):
    """Spare slots go, one at a time, to the expert with the highest load per replica."""
    n, num_log = weight.shape
    rows = np.arange(n)
    phy2log = np.tile(np.arange(num_phy, dtype=np.int64), (n, 1))
    logcnt = np.ones((n, num_log), dtype=np.int64)
    for i in range(num_log, num_phy):
        hot = np.argmax(weight / logcnt, axis=1)
        phy2log[:, i] = hot
        logcnt[rows, hot] += 1
    return phy2log, logcnt


def _inverse(perm):
    inv = np.empty_like(perm)
    np.put_along_axis(inv, perm, np.arange(perm.shape[1])[None, :].repeat(perm.shape[0], 0), axis=1)
    return inv


def _hierarchical(weight, num_phy, num_groups, num_nodes, num_gpus):
    L, E = weight.shape
    group_size = E // num_groups
    groups_per_node = num_groups // num_nodes
    per_gpu = num_phy // num_gpus
    # 1. groups -> nodes; renumber experts so node n owns the contiguous "mlog" range [n*E/N, (n+1)*E/N)
    group_load = weight.reshape(L, num_groups, group_size).sum(axis=2)
    gpack, grank = _balanced_packing(group_load, num_nodes)
    log2mlog = ((gpack * groups_per_node + grank) * group_size)[:, :, None] + np.arange(group_size)
    log2mlog = log2mlog.reshape(L, E)
    mlog2log = _inverse(log2mlog)
    # 2. replicate inside each node
    mlog_load = np.take_along_axis(weight, mlog2log, axis=1).reshape(L * num_nodes, E // num_nodes)
    phy2mlog, mlogcnt = _replicate(mlog_load, num_phy // num_nodes)
    # 3. replicas -> GPUs of the node
    phy_load = np.take_along_axis(mlog_load / mlogcnt, phy2mlog, axis=1)
    pack, rank = _balanced_packing(phy_load, num_gpus // num_nodes)
    pphy2phy = _inverse(pack * per_gpu + rank)
    pphy2mlog = np.take_along_axis(phy2mlog, pphy2phy, axis=1)
    offsets = np.arange(0, E, E // num_nodes)[None, :, None]
    pphy2mlog = (pphy2mlog.reshape(L, num_nodes, -1) + offsets).reshape(L, -1)
    pphy2log = np.take_along_axis(mlog2log, pphy2mlog, axis=1)
    logcnt = np.take_along_axis(mlogcnt.reshape(L, -1), log2mlog, axis=1)
    return pphy2log, logcnt


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    weight = np.asarray(weight, dtype=np.float64)
    E = weight.shape[1]
    if num_groups % num_nodes == 0 and E % num_groups == 0:
        return _hierarchical(weight, num_replicas, num_groups, num_nodes, num_gpus)
    return _hierarchical(weight, num_replicas, 1, 1, num_gpus)
