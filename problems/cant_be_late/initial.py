"""A simple spot policy: spot whenever the zone has capacity; otherwise wait while the slack (time left
minus the work left) is comfortable, and run on on-demand once it gets thin. Once on on-demand, stay
there until the slack has grown back (it cannot grow on on-demand, so this keeps the job there)."""

# EVOLVE-BLOCK-START
CFG = {}
RESERVE_OVERHEADS = 3.0   # slack kept in hand, in restart overheads
RESERVE_TICKS = 2.0       # ... plus this many ticks


def init(config):
    CFG.clear()
    CFG.update(config)


def decide(state):
    slack = state["time_left_h"] - state["remaining_h"]
    reserve = RESERVE_OVERHEADS * state["restart_overhead_h"] + RESERVE_TICKS * state["tick_h"]
    if state["running"] == "on_demand" and slack < 2 * reserve:
        return "on_demand"
    if state["has_spot"]:
        return "spot"
    return "on_demand" if slack < reserve else "wait"
# EVOLVE-BLOCK-END
