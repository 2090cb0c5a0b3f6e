"""Round robin: the i-th request goes to instance i mod N, whatever the load or the cache."""
# EVOLVE-BLOCK-START
STATE = {"next": 0, "n": 1}


def init(config):
    STATE["next"] = 0
    STATE["n"] = config["instances"]


def route(state):
    k = STATE["next"] % STATE["n"]
    STATE["next"] += 1
    return k
# EVOLVE-BLOCK-END
