"""Load-oblivious placement: expert e in slot e, the spare slots round robin over the experts in order."""
import numpy as np


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    L, E = np.shape(weight)
    row = np.arange(num_replicas, dtype=np.int64) % E
    phy2log = np.tile(row, (L, 1))
    logcnt = np.tile(np.bincount(row, minlength=E).astype(np.int64), (L, 1))
    return phy2log, logcnt
