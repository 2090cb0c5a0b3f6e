"""Fewest outstanding tokens: prompt tokens still to prefill plus the running decodes' next-step tokens
(weighted as a step's worth of prefill each), per unit of instance speed."""
import numpy as np

# EVOLVE-BLOCK-START
SPEEDS = []
DECODE_WEIGHT = 64   # a running decode keeps an instance about as busy as this many queued prompt tokens


def init(config):
    SPEEDS[:] = config["speeds"]


def route(state):
    inst = state["instances"]
    load = (inst["prefill_tokens"] + DECODE_WEIGHT * inst["decode_tokens"]) / np.asarray(SPEEDS)
    return int(load.argmin())
# EVOLVE-BLOCK-END
