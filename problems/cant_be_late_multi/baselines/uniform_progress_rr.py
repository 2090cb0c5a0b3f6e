"""Uniform Progress with round robin over regions (the UP-style multi-region baseline of the ADRS study).

Uniform Progress as in the single-region problem (spot whenever the current region has it; on-demand
when behind the line work * t / deadline, with hysteresis 2d; a safety net), and when there is no spot
and the job would wait, it moves to the next region (round robin) to look there at the next tick.
On-demand never moves: the price is the same everywhere and a move would pay a restart overhead."""

CFG = {}


def init(config):
    CFG.clear()
    CFG.update(config)


def _expected(t_h):
    return CFG["work_h"] * t_h / CFG["deadline_h"]


def decide(state):
    d, t, done = state["restart_overhead_h"], state["elapsed_h"], state["done_h"]
    if state["time_left_h"] < state["remaining_h"] + d + 2 * state["tick_h"]:
        return "on_demand"                                  # safety net
    if state["has_spot"]:
        return "spot"                                       # taking risks
    if state["running"] == "on_demand" and done < _expected(t + 2 * d):
        return "on_demand"                                  # hysteresis
    if done < _expected(t):
        return "on_demand"                                  # behind the line
    return {"action": "wait", "region": (state["region"] + 1) % state["num_regions"]}
