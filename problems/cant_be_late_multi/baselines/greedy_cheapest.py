"""Greedy over the cheapest regions: look for spot from the cheapest region up, run on it until it is
preempted, then search again from the cheapest; never choose on-demand (the simulator's deadline guard
moves the job to on-demand when only the slack to finish there is left, and it stays there)."""

ORDER = []
PROBE = [0]


def init(config):
    prices = config["spot_prices"]
    ORDER[:] = sorted(range(len(prices)), key=lambda r: (prices[r], r))
    PROBE[0] = 0


def decide(state):
    if state["running"] == "on_demand":
        return "on_demand"
    if state["running"] == "spot":
        return "spot"
    target = ORDER[PROBE[0]]
    if state["region"] == target:
        if state["has_spot"]:
            PROBE[0] = 0                      # next search starts from the cheapest again
            return "spot"
        PROBE[0] = (PROBE[0] + 1) % len(ORDER)
        target = ORDER[PROBE[0]]
    return {"action": "wait", "region": target}
