"""The spot problems' score, metrics and feedback (trusted side; every figure from the simulator's log).

Per episode:  savings = 1 - cost / on_demand_cost
where on_demand_cost is the cost of running on on-demand from time 0 to the end (work plus one restart
overhead at the on-demand price). `score` is the mean savings over a workload's episodes.

Why this form: it is linear in cost, so the mean score is one minus the mean cost relative to on-demand,
every episode weighing the same (a ratio such as on_demand_cost / cost would let a few cheap episodes
dominate). It is bounded: at best everything runs on the cheapest spot (1 - spot/on-demand price, 0.68
at the paper's prices); at worst an instance is billed every tick to the deadline (1 - deadline / (work +
overhead), -0.92 for a 92 h deadline on 48 h of work). 0 is the cost of on-demand only, which is also
what a policy that never decides anything gets: the deadline guard runs the job on on-demand.
"""
from __future__ import annotations

import numpy as np

from evaluators.spot.simulator import APPLIED_CODES, FAILED_LAUNCH, ON_DEMAND, SPOT, WAIT, Episode

H = 3600.0


def episode_metrics(ep: Episode) -> dict[str, float]:
    j = ep.job
    od = j.on_demand_cost
    tick_h = j.tick_s / H
    forced = ep.forced
    return {
        "savings": 1.0 - ep.cost / od,
        "cost_usd": ep.cost,
        "on_demand_cost_usd": od,
        "finish_h": ep.finish_s / H,
        "deadline_met": float(ep.finish_s <= j.deadline_s),
        "spot_h": ep.billed_s[SPOT] / H,
        "on_demand_h": ep.billed_s[ON_DEMAND] / H,
        "idle_h": float(np.sum((ep.applied == APPLIED_CODES[WAIT]) | (ep.applied == FAILED_LAUNCH))) * tick_h,
        "forced_h": float(forced.sum()) * tick_h,
        "preemptions": float(ep.preemptions),
        "starts": float(ep.starts),
        "overhead_h": ep.overhead_paid_s / H,
        "failed_launches": float(ep.failed_launches),
        "region_moves": float(np.count_nonzero(np.diff(ep.region))),
        "spot_seen": float(ep.seen.mean()) if len(ep.seen) else 0.0,
    }


def workload_metrics(episodes: list[Episode]) -> dict[str, float]:
    """`score` (mean savings) and the mean of every episode metric."""
    per = [episode_metrics(ep) for ep in episodes]
    out = {k: float(np.mean([m[k] for m in per])) for k in per[0]}
    out["score"] = out["savings"]
    return out


def feedback(episodes: list[Episode], multi: bool) -> str:
    """The costliest episode (relative to on-demand) in words: where the money and the slack went."""
    per = [episode_metrics(ep) for ep in episodes]
    i = int(np.argmin([m["savings"] for m in per]))
    ep, m = episodes[i], per[i]
    j = ep.job
    text = (f"{'Worst of ' + str(len(episodes)) + ' episodes' if len(episodes) > 1 else 'Episode'} "
            f"(deadline {j.deadline_s / H:g} h, {j.work_s / H:g} h of work, restart overhead {j.overhead_s / H:g} h): "
            f"cost ${m['cost_usd']:.2f} = {1 - m['savings']:.0%} of on-demand only (${m['on_demand_cost_usd']:.2f}). "
            f"Billed {m['spot_h']:.1f} h spot and {m['on_demand_h']:.1f} h on-demand, idle {m['idle_h']:.1f} h; "
            f"{int(m['preemptions'])} preemptions, {int(m['starts'])} instance starts paying {m['overhead_h']:.1f} h "
            f"of restart overhead; finished at {m['finish_h']:.1f} h. Spot was available at {m['spot_seen']:.0%} of "
            f"the ticks observed.")
    if m["forced_h"] > 0:
        first = int(np.argmax(ep.forced)) * j.tick_s / H
        text += (f" The deadline guard overrode {m['forced_h']:.1f} h of decisions (first at {first:.1f} h): the "
                 f"slack had run out, so those hours ran on on-demand whatever the policy asked.")
    if multi:
        text += f" Moved region {int(m['region_moves'])} times; {int(m['failed_launches'])} spot launches found no capacity."
    return text
