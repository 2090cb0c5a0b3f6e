"""Power of two choices: two distinct random instances, the less loaded (waiting + running, per speed)."""
import random

import numpy as np

# EVOLVE-BLOCK-START
RNG = random.Random(0)
SPEEDS = []


def init(config):
    RNG.seed(0)
    SPEEDS[:] = config["speeds"]


def route(state):
    inst = state["instances"]
    load = (inst["queued"] + inst["running"]) / np.asarray(SPEEDS)
    a, b = RNG.sample(range(len(SPEEDS)), 2) if len(SPEEDS) > 1 else (0, 0)
    return a if load[a] <= load[b] else b
# EVOLVE-BLOCK-END
