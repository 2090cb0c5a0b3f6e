"""SGLang's cache-aware router: the router keeps, per instance, the prefix blocks it has sent there (an
approximate tree, capped in size). While the load imbalance (max - min outstanding requests) is at most
BALANCE_ABS and max/min at most BALANCE_REL, the request goes where its prompt's longest recorded prefix
is (ties: the less loaded); otherwise to the least loaded instance."""
import numpy as np

# EVOLVE-BLOCK-START
BALANCE_ABS = 32
BALANCE_REL = 1.5
TREE_BLOCKS = 200_000   # per instance; the oldest half is forgotten when full
SENT = []
SPEEDS = []


def init(config):
    SPEEDS[:] = config["speeds"]
    SENT[:] = [dict() for _ in range(config["instances"])]


def _match(tree, blocks):
    m = 0
    for h in blocks:
        if h not in tree:
            break
        m += 1
    return m


def route(state):
    req, inst = state["request"], state["instances"]
    blocks = req["blocks"].tolist()
    load = (inst["queued"] + inst["running"]) / np.asarray(SPEEDS)
    balanced = load.max() - load.min() <= BALANCE_ABS and load.max() <= BALANCE_REL * max(load.min(), 1)
    if blocks and balanced:
        k = max(range(len(SENT)), key=lambda j: (_match(SENT[j], blocks), -load[j], -j))
    else:
        k = int(load.argmin())
    tree = SENT[k]
    for h in blocks:
        tree[h] = None
    if len(tree) > TREE_BLOCKS:
        for h in list(tree)[: len(tree) // 2]:
            del tree[h]
    return k
# EVOLVE-BLOCK-END
