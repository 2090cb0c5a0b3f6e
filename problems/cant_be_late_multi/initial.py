"""A simple multi-region spot policy: spot whenever the current region has capacity; otherwise, while
the slack (time left minus work left) is comfortable, wait and look at the next region; once the slack
gets thin, run on on-demand where it is and stay there."""

# EVOLVE-BLOCK-START
CFG = {}
RESERVE_OVERHEADS = 3.0   # slack kept in hand, in restart overheads
RESERVE_TICKS = 4.0       # ... plus this many ticks


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
    if slack < reserve:
        return "on_demand"
    return {"action": "wait", "region": (state["region"] + 1) % state["num_regions"]}
# EVOLVE-BLOCK-END
