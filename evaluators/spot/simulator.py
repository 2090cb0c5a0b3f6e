"""The spot-scheduling tick simulator (trusted side): restart overhead, preemption, cost, deadline guard.

Time is integer seconds, so every comparison with the deadline is exact. Each tick t (start t*tick_s):
1. Preemption: a spot instance whose region has no spot capacity at t is lost (progress is kept: the job
   checkpoints; only the instance goes).
2. The policy sees the state and whether its current region has spot capacity now, and decides: spot,
   on_demand or wait, in its current region or another one (multi-region).
3. The deadline guard replaces the decision by on-demand in the current region when the decision could
   leave the job unable to finish on on-demand by the deadline (see `guard`).
4. The tick runs: a new instance (another type or region than the one running) first pays the restart
   overhead, during which it is billed but makes no progress; then it works. Spot requested in another
   region is a launch attempt: if that region has no capacity now, the tick passes idle and unbilled.
   Billing is per second used; the last tick is billed only up to the moment the job finishes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from evaluators.base import ConfigError
from evaluators.spot.availability import Availability

SPOT, ON_DEMAND, WAIT, NONE = "spot", "on_demand", "wait", "none"
ACTIONS = (SPOT, ON_DEMAND, WAIT)
APPLIED_CODES = {WAIT: 0, SPOT: 1, ON_DEMAND: 2}   # per-tick log of what ran; 3 = failed spot launch
FAILED_LAUNCH = 3


@dataclass(frozen=True)
class Job:
    """The job and its prices: work and deadline from time 0, restart overhead, tick length (seconds)."""

    work_s: int
    deadline_s: int
    overhead_s: int
    tick_s: int
    on_demand_price: float   # $/h, the same in every region

    def __post_init__(self) -> None:
        if min(self.work_s, self.tick_s) <= 0 or self.overhead_s < 0:
            raise ConfigError("work and tick must be positive and the restart overhead not negative")
        if self.work_s + self.overhead_s > self.deadline_s:
            raise ConfigError(f"infeasible job: {self.work_s / 3600:g} h of work plus {self.overhead_s / 3600:g} h "
                              f"restart overhead do not fit a {self.deadline_s / 3600:g} h deadline even on on-demand")

    @property
    def max_ticks(self) -> int:
        return math.ceil(self.deadline_s / self.tick_s)

    @property
    def on_demand_cost(self) -> float:
        """The reference: on-demand from time 0 to the end (one start, so one restart overhead)."""
        return self.on_demand_price * (self.work_s + self.overhead_s) / 3600.0


@dataclass(frozen=True)
class Decision:
    action: str
    region: int


@dataclass
class State:
    """The simulator's state at the start of a tick (after preemption)."""

    tick: int = 0
    done_s: int = 0
    running: str = NONE          # what ran during the previous tick and still runs
    region: int = 0
    overhead_left_s: int = 0     # restart overhead the running instance has still to pay
    cost: float = 0.0
    preempted: bool = False      # the spot instance was lost at this tick's start
    launch_failed: bool = False  # the previous tick's spot launch in another region found no capacity
    forced: bool = False         # the previous tick's decision was replaced by the guard


@dataclass(frozen=True)
class Step:
    """The effect of one tick under one decision."""

    running: str
    region: int
    overhead_left_s: int
    overhead_paid_s: int
    work_s: int
    used_s: int
    cost: float
    started: bool
    failed_launch: bool


@dataclass
class Episode:
    """One simulated run: totals and the per-tick log (region observed, spot seen there, what ran, forced)."""

    job: Job
    ticks: int
    cost: float
    finish_s: int
    preemptions: int
    starts: int
    failed_launches: int
    overhead_paid_s: int
    region: np.ndarray
    seen: np.ndarray
    applied: np.ndarray
    forced: np.ndarray
    billed_s: dict[str, int] = field(default_factory=dict)


Policy = Callable[[State, bool], Decision]   # (state, spot available in the current region now) -> decision


def advance(job: Job, st: State, d: Decision, spot_up: bool, spot_price: float) -> Step:
    """What one tick does under decision `d`, given whether spot capacity exists in `d.region` now."""
    if d.action == WAIT:
        return Step(NONE, d.region, 0, 0, 0, 0, 0.0, False, False)
    new = d.action != st.running or d.region != st.region
    if d.action == SPOT and not spot_up:
        return Step(NONE, d.region, 0, 0, 0, 0, 0.0, False, True)
    left = job.overhead_s if new else st.overhead_left_s
    paid = min(left, job.tick_s)
    remaining = job.work_s - st.done_s
    work = min(job.tick_s - paid, remaining)
    used = paid + work if work == remaining else job.tick_s
    price = spot_price if d.action == SPOT else job.on_demand_price
    return Step(d.action, d.region, left - paid, paid, work, used, price * used / 3600.0, new, False)


def feasible_after(job: Job, st: State, step: Step) -> bool:
    """Whether, after `step`, the job can still finish by the deadline on on-demand in the worst case (a
    running spot instance lost at the next tick): continuing a running on-demand instance costs its unpaid
    overhead, anything else a new start."""
    remaining = job.work_s - st.done_s - step.work_s
    if remaining <= 0:
        return st.tick * job.tick_s + step.used_s <= job.deadline_s
    need = remaining + (step.overhead_left_s if step.running == ON_DEMAND else job.overhead_s)
    return need <= job.deadline_s - (st.tick + 1) * job.tick_s


def guard(job: Job, st: State, d: Decision, has_spot: bool, prices: tuple[float, ...]) -> Decision:
    """The decision, or on-demand in the current region if the decision could make the deadline unreachable.

    It judges the decision by its worst case without looking at anything the policy has not seen: spot in
    the current region runs (the policy saw capacity there), spot elsewhere is assumed to find none. The
    fallback keeps the job feasible whenever the state was (the first tick is, since work + overhead fit),
    so every run finishes by the deadline whatever the policy does."""
    known = has_spot if d.region == st.region else False
    if feasible_after(job, st, advance(job, st, d, known, prices[d.region])):
        return d
    return Decision(ON_DEMAND, st.region)


def simulate(job: Job, avail: Availability, policy: Policy, start_region: int = 0) -> Episode:
    """Run `policy` until the job is done. The availability must cover the deadline."""
    n = job.max_ticks
    if avail.ticks < n:
        raise ConfigError(f"{avail.source}: {avail.ticks} ticks of {job.tick_s} s cover "
                          f"{avail.ticks * job.tick_s / 3600:g} h; the {job.deadline_s / 3600:g} h deadline needs {n}")
    st = State(region=start_region)
    region, seen = np.zeros(n, np.int16), np.zeros(n, np.int8)
    applied, forced = np.zeros(n, np.int8), np.zeros(n, bool)
    totals = {"preemptions": 0, "starts": 0, "failed": 0, "overhead": 0}
    billed = {SPOT: 0, ON_DEMAND: 0}
    while st.done_s < job.work_s:
        t = st.tick
        if t >= n:   # the guard makes this unreachable; reaching it is a trusted-side bug
            raise RuntimeError(f"deadline guard failed: tick {t} with {job.work_s - st.done_s} s of work left")
        has_spot = bool(avail.up[st.region, t])
        st.preempted = st.running == SPOT and not has_spot
        if st.preempted:
            st.running, st.overhead_left_s = NONE, 0
            totals["preemptions"] += 1
        region[t], seen[t] = st.region, has_spot
        wanted = policy(st, has_spot)
        d = guard(job, st, wanted, has_spot, avail.spot_prices)
        step = advance(job, st, d, bool(avail.up[d.region, t]), avail.spot_prices[d.region])
        applied[t], forced[t] = (FAILED_LAUNCH if step.failed_launch else APPLIED_CODES[d.action]), d is not wanted
        totals["starts"] += step.started
        totals["failed"] += step.failed_launch
        totals["overhead"] += step.overhead_paid_s
        if step.running != NONE:
            billed[step.running] += step.used_s
        finish = t * job.tick_s + step.used_s
        st = State(t + 1, st.done_s + step.work_s, step.running, step.region, step.overhead_left_s,
                   st.cost + step.cost, False, step.failed_launch, d is not wanted)
    ticks = st.tick
    return Episode(job, ticks, st.cost, finish, totals["preemptions"], totals["starts"], totals["failed"],
                   totals["overhead"], region[:ticks], seen[:ticks], applied[:ticks], forced[:ticks], billed)
