"""The bridge between the trusted spot simulator and a sandboxed policy: what it sees, what it may answer.

What a real scheduler can observe, and so all the policy gets at tick t:
- the job's own progress and clock: work done, time left, the restart overhead still unpaid, what is
  running (after a preemption at this tick: nothing, with `preempted` set), and the cost billed so far;
- whether spot capacity exists NOW in the region it is in (a launch attempt there would tell it), and the
  same observation for every earlier tick, in whichever region it was in then (`history`, and in the
  multi-region problem `history_region`). Never another region's current state, never the future.
The message is built afresh from the simulator's log each tick; nothing the policy does to its copy
reaches the simulator. Its answer is a string ("spot" | "on_demand" | "wait") or, with `allow_region`,
{"action": ..., "region": i}; anything else is InvalidOutput naming the tick and the rule.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from evaluators.base import InvalidOutput
from evaluators.spot.availability import Availability
from evaluators.spot.simulator import ACTIONS, SPOT, Decision, Job, State
from sandbox.base import Candidate

H = 3600.0


def init_config(job: Job, avail: Availability, start_region: int, multi: bool) -> dict:
    """The static facts of an episode, for the policy's init(config)."""
    cfg = {"work_h": job.work_s / H, "deadline_h": job.deadline_s / H, "restart_overhead_h": job.overhead_s / H,
           "tick_h": job.tick_s / H, "on_demand_price": job.on_demand_price}
    if multi:
        cfg.update(num_regions=avail.regions, start_region=start_region, spot_prices=list(avail.spot_prices))
    else:
        cfg["spot_price"] = avail.spot_prices[0]
    return cfg


def where(job: Job, tick: int) -> str:
    return f"tick {tick} (t={tick * job.tick_s / H:.2f} h)"


@dataclass
class SandboxPolicy:
    """A simulator Policy whose decisions come from `candidate.call("decide", state)`."""

    candidate: Candidate
    job: Job
    avail: Availability
    multi: bool
    function: str = "decide"
    calls: int = field(default=0, init=False)
    _seen: np.ndarray = field(init=False)      # has_spot observed at each tick so far
    _region: np.ndarray = field(init=False)    # ... and the region it was observed in
    _prices: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self._seen = np.zeros(self.job.max_ticks, np.int8)
        self._region = np.zeros(self.job.max_ticks, np.int16)
        self._prices = np.asarray(self.avail.spot_prices, np.float64)

    def __call__(self, st: State, has_spot: bool) -> Decision:
        self._seen[st.tick], self._region[st.tick] = has_spot, st.region
        self.calls += 1
        answer = self.candidate.call(self.function, self.message(st, has_spot))
        return parse_decision(answer, st, has_spot, self.avail.regions if self.multi else 1, self.job)

    def message(self, st: State, has_spot: bool) -> dict:
        j, t = self.job, st.tick
        msg = {"tick": t, "tick_h": j.tick_s / H, "elapsed_h": t * j.tick_s / H, "deadline_h": j.deadline_s / H,
               "work_h": j.work_s / H, "done_h": st.done_s / H, "remaining_h": (j.work_s - st.done_s) / H,
               "time_left_h": (j.deadline_s - t * j.tick_s) / H, "restart_overhead_h": j.overhead_s / H,
               "overhead_left_h": st.overhead_left_s / H, "running": st.running, "preempted": st.preempted,
               "forced": st.forced, "has_spot": has_spot, "spot_price": self.avail.spot_prices[st.region],
               "on_demand_price": j.on_demand_price, "cost_so_far": st.cost, "history": self._seen[:t + 1]}
        if self.multi:
            msg.update(region=st.region, num_regions=self.avail.regions, spot_prices=self._prices,
                       history_region=self._region[:t + 1], launch_failed=st.launch_failed)
        return msg


def parse_decision(answer, st: State, has_spot: bool, regions: int, job: Job) -> Decision:
    """Validate one answer; InvalidOutput names the tick and the rule."""
    at = where(job, st.tick)
    region = st.region
    if isinstance(answer, dict):
        allowed = {"action", "region"} if regions > 1 else {"action"}
        extra = sorted(str(k) for k in answer if k not in allowed)
        if extra or "action" not in answer:
            what = f"unknown key(s) {', '.join(extra)}" if extra else "no 'action'"
            raise InvalidOutput(f"{at}: rule 'format': {what}; answer a string or a dict with keys "
                                f"{', '.join(sorted(allowed))} (costs are computed by the simulator)")
        action = answer["action"]
        if "region" in answer:
            region = answer["region"]
            if isinstance(region, bool) or not isinstance(region, int) or not 0 <= region < regions:
                raise InvalidOutput(f"{at}: rule 'region': {region!r} is not a region index in 0..{regions - 1}")
    else:
        action = answer
    if not isinstance(action, str) or action not in ACTIONS:
        raise InvalidOutput(f"{at}: rule 'action': got {str(action)[:60]!r}, expected one of {', '.join(ACTIONS)}")
    if action == SPOT and region == st.region and not has_spot:
        raise InvalidOutput(f"{at}: rule 'spot-unavailable': spot requested in region {region}, which has no "
                            f"spot capacity now (has_spot is False)")
    return Decision(action, region)
