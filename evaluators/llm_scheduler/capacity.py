"""The capacity that load levels are fractions of, and the requests of one load level.

Capacity is the reference policy's *goodput* capacity (DistServe's definition): the highest request rate at
which the built-in FCFS meets both SLOs for GOODPUT_ATTAINMENT of the requests, on this workload, model and
GPU. So load 1.0 is where FCFS starts to miss, 0.3 is light and 1.2 is overload, for every workload class,
model and GPU. It is found by bisection on a log scale between bounds set from the saturated throughput
(FCFS's completion rate with every request waiting at t = 0): ten fast simulations of the built-in
policy, once per workload and process.

Why not the saturated throughput itself (what this module used to return): for sessions it is far off. With
every turn of every session at t = 0 no turn finds its history in the prefix cache, and closed-loop agent
sessions all start at once and thrash the cache, so the saturated rate understated what the same requests
sustain when they arrive over time (ShareGPT met every SLO at "1.2").

A generated workload is generated again at each rate: its lengths do not depend on the rate (one random
stream per purpose), while burst periods, think times and tool times stay in seconds, as they would in a
real system under more traffic. A trace keeps its own arrival process, sped up or slowed down to the rate.
"""
from __future__ import annotations

import functools
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from evaluators.base import ConfigError
from evaluators.serving.engine import simulate
from evaluators.serving.metrics import latencies, slo_met
from evaluators.serving.policies import Fcfs
from evaluators.serving.requests import Requests
from evaluators.serving.workload_id import TraceSpec, parse_workload_id
from evaluators.llm_scheduler.setup import Settings, Workload, base_requests, engine_config, slo_for

GOODPUT_ATTAINMENT = 0.9
SEARCH_STEPS = 8         # log-scale bisection over a 40x range: the capacity within 1.5%
LOWEST, HIGHEST = 0.2, 8.0   # the search range, as multiples of the saturated throughput


def level_requests(w: Workload, load: float) -> Requests:
    cap = capacity(w.base, w.settings)
    r = requests_at(w.base, w.settings, load * cap)
    return replace(r, name=f"{w.base} @ {load:g} x {cap:.3g} req/s")


def requests_at(base: str, settings: Settings, rate: float) -> Requests:
    """The workload offered at `rate` requests/s."""
    spec = parse_workload_id(base, Path(settings.problem_dir) if settings.problem_dir else None)
    if not isinstance(spec, TraceSpec):
        return spec.requests(rate)
    r, _ = base_requests(base, settings.problem_dir)
    span = float(r.arrival_s[-1] - r.arrival_s[0])
    if span <= 0:   # everything at once: nothing to scale
        return r
    return replace(r, arrival_s=(r.arrival_s - r.arrival_s[0]) * ((len(r) - 1) / span / rate))


@functools.lru_cache(maxsize=64)
def capacity(base: str, settings: Settings) -> float:
    """FCFS's goodput capacity on `base` in requests/s (see the module docstring)."""
    sat = saturated_throughput(base, settings)
    lo, hi = LOWEST * sat, HIGHEST * sat
    if _attainment(base, settings, lo) < GOODPUT_ATTAINMENT:   # small traces: their burst sets the pace
        lo, hi = LOWEST * lo, lo
    if _attainment(base, settings, lo) < GOODPUT_ATTAINMENT:
        raise ConfigError(f"workload '{base}': FCFS meets the SLOs for under {GOODPUT_ATTAINMENT:.0%} of requests "
                          f"even at {lo:.3g} req/s; no load level can be defined on it")
    if _attainment(base, settings, hi) >= GOODPUT_ATTAINMENT:
        return hi
    for _ in range(SEARCH_STEPS):
        mid = math.sqrt(lo * hi)
        if _attainment(base, settings, mid) >= GOODPUT_ATTAINMENT:
            lo = mid
        else:
            hi = mid
    return lo


def _attainment(base: str, settings: Settings, rate: float) -> float:
    _, seed = base_requests(base, settings.problem_dir)
    records = simulate(requests_at(base, settings, rate), settings.gpu, Fcfs(), engine_config(settings, seed)).records
    ttft, tpot, _ = latencies(records)
    return float(slo_met(ttft, tpot, slo_for(base.split(":", 1)[0], settings)).mean())


@functools.lru_cache(maxsize=64)
def saturated_throughput(base: str, settings: Settings) -> float:
    """Requests/s FCFS completes with every request of `base` waiting at t = 0 (between the 10% and 90%
    completion marks, leaving out the fill and the drain)."""
    r, seed = base_requests(base, settings.problem_dir)
    n = len(r)
    done = np.sort(simulate(replace(r, arrival_s=np.zeros(n)), settings.gpu, Fcfs(),
                            engine_config(settings, seed)).records.finish_s)
    lo, hi = int(0.1 * n), int(0.9 * n)
    if hi <= lo or done[hi] <= done[lo]:
        raise ConfigError(f"workload '{base}' is too small to measure a capacity ({n} requests)")
    return (hi - lo) / (done[hi] - done[lo])
