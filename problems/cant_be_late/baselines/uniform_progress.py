"""Uniform Progress (Can't Be Late, NSDI'24), in the form of the paper's simulator and the ADRS seed program.

Expected progress ep(t) = work * t / deadline is the straight line from the start to the deadline; cp(t)
is the progress made so far and d the restart overhead.
1. Uniform progress: when cp(t) < ep(t) and there is no spot, run on on-demand to catch up.
2. Taking risks: use spot whenever it is available, even when behind; stay on it until preempted.
3. Hysteresis: once on on-demand and without spot, stay on it while cp(t) < ep(t + 2d), so that small
   swings around the line do not pay a restart overhead each time.
4. Safety net: when the time left is under the remaining work plus d and two ticks, run on on-demand
   (the simulator's deadline guard would do it a tick later)."""

CFG = {}


def init(config):
    CFG.clear()
    CFG.update(config)


def _expected(t_h):
    return CFG["work_h"] * t_h / CFG["deadline_h"]


def decide(state):
    d, t, done = state["restart_overhead_h"], state["elapsed_h"], state["done_h"]
    if state["running"] == "on_demand" and done < _expected(t + 2 * d):
        choice = "on_demand"                    # hysteresis
    elif done < _expected(t):
        choice = "on_demand"                    # behind the line
    else:
        choice = "wait"
    if state["time_left_h"] < state["remaining_h"] + d + 2 * state["tick_h"]:
        return "on_demand"                      # safety net
    if state["has_spot"]:
        return "spot"                           # taking risks
    return choice
