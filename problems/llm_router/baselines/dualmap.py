"""DualMap-style two-choice mapping: each prefix (the session, or the first two prompt blocks) hashes to two
candidate instances; the request goes to the candidate that already served this prefix unless it is more
than SLACK requests busier than the other, else to the less loaded. Cache affinity from the first choice,
balance from the second: a hot prefix spreads over two instances instead of sinking one."""
import numpy as np

# EVOLVE-BLOCK-START
SLACK = 4
LAST = {}     # prefix key -> instance that last served it
SPEEDS = []


def _h(x, salt):
    x = (int(x) * 0x9E3779B97F4A7C15 + salt * 0xD6E8FEB86659FD93) & (2**64 - 1)
    x ^= x >> 29
    return (x * 0xBF58476D1CE4E5B9) & (2**64 - 1)


def init(config):
    SPEEDS[:] = config["speeds"]
    LAST.clear()


def route(state):
    req, inst = state["request"], state["instances"]
    blocks = req["blocks"]
    if req["session"] >= 0:
        key = req["session"]
    elif len(blocks) >= 2:
        key = int(blocks[0]) * 1000003 + int(blocks[1])
    elif len(blocks):
        key = int(blocks[0])
    else:
        key = req["id"]
    n = len(SPEEDS)
    a, b = _h(key, 1) % n, _h(key, 2) % n
    if a == b:
        b = (a + 1) % n
    load = (inst["queued"] + inst["running"]) / np.asarray(SPEEDS)
    last = LAST.get(key)
    if last in (a, b):
        other = b if last == a else a
        k = last if load[last] <= load[other] + SLACK else other
    else:
        k = a if load[a] <= load[b] else b
    LAST[key] = k
    return int(k)
# EVOLVE-BLOCK-END
