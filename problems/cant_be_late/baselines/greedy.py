"""Greedy (Can't Be Late, NSDI'24): run on spot whenever the zone has capacity, otherwise wait; never
choose on-demand. The simulator's deadline guard switches the job to on-demand when only the slack to
finish there is left; from then on stay on on-demand (leaving it would risk another restart overhead)."""


def init(config):
    pass


def decide(state):
    if state["running"] == "on_demand":
        return "on_demand"
    return "spot" if state["has_spot"] else "wait"
