"""Load-oblivious placement: expert e in slot e, the spare slots round robin over the experts in order."""
import numpy as np


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    L, E = np.shape(weight)
    row = np.arange(num_replicas, dtype=np.int64) % E
    phy2log = np.tile(row, (L, 1))
    logcnt = np.tile(np.bincount(row, minlength=E).astype(np.int64), (L, 1))
    maxrep = int(logcnt.max())
    log2phy = np.full((L, E, maxrep), -1, dtype=np.int64)
    rank = np.arange(num_replicas) // E  # slot s is replica number s // E of expert s % E
    log2phy[:, row, rank] = np.arange(num_replicas)
    return phy2log, log2phy, logcnt
