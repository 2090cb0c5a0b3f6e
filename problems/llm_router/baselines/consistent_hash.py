"""Consistent hashing on the request's first prefix block (its session id where it has one), with bounded
loads (Mirrokni et al.): an instance already holding more than BOUND x the mean outstanding requests is
skipped for the next one on the ring. BOUND = None is pure prefix affinity."""
import numpy as np

# EVOLVE-BLOCK-START
BOUND = 1.25
VNODES = 64
RING = []   # sorted (point, instance)
SPEEDS = []


def _h(x):
    x = (int(x) * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & (2**64 - 1)
    x ^= x >> 31
    return (x * 0xBF58476D1CE4E5B9) & (2**64 - 1)


def init(config):
    SPEEDS[:] = config["speeds"]
    RING[:] = sorted((_h(k * 1000003 + v), k) for k in range(config["instances"]) for v in range(VNODES))


def route(state):
    req, inst = state["request"], state["instances"]
    key = req["session"] if req["session"] >= 0 else (int(req["blocks"][0]) if len(req["blocks"]) else req["id"])
    load = (inst["queued"] + inst["running"]) / np.asarray(SPEEDS)
    cap = None if BOUND is None else BOUND * (load.mean() + 1)
    point = _h(key)
    lo, hi = 0, len(RING)
    while lo < hi:
        mid = (lo + hi) // 2
        if RING[mid][0] < point:
            lo = mid + 1
        else:
            hi = mid
    for i in range(len(RING)):
        k = RING[(lo + i) % len(RING)][1]
        if cap is None or load[k] <= cap:
            return k
    return int(load.argmin())
# EVOLVE-BLOCK-END
