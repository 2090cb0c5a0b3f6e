"""Fewest outstanding requests (waiting + running) in the load snapshot, per unit of instance speed."""
import numpy as np

# EVOLVE-BLOCK-START
SPEEDS = []


def init(config):
    SPEEDS[:] = config["speeds"]


def route(state):
    inst = state["instances"]
    load = (inst["queued"] + inst["running"]) / np.asarray(SPEEDS)
    return int(load.argmin())
# EVOLVE-BLOCK-END
