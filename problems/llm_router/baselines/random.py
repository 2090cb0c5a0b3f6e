"""Uniformly random instance (a fixed seed per run, so a run is repeatable)."""
import random

# EVOLVE-BLOCK-START
RNG = random.Random(0)
STATE = {"n": 1}


def init(config):
    RNG.seed(0)
    STATE["n"] = config["instances"]


def route(state):
    return RNG.randrange(STATE["n"])
# EVOLVE-BLOCK-END
