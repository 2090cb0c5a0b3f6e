"""Arrival times: a Gamma renewal process (REFERENCE.md: shape 1/CV², Poisson at CV 1), optionally with an on/off
burst overlay.

The overlay is a time change, so it keeps the renewal process's shape inside each period: the process runs in
"operational time" at the mean rate, and the wall clock advances slower during ON periods (rate `factor` times
the OFF rate) and faster during OFF ones; operational time runs at 1 on average, so the long-run rate stays
`rate_per_s`. ON and OFF
period lengths are exponential. Bursty code traffic (Azure code, CV 13.2) needs this: a Gamma process alone
has its gaps' CV but not their clustering over minutes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CV_RANGE = (0.1, 4.0)   # 4 is already extreme (Gamma shape 1/16); burstier traffic comes from the overlay


@dataclass(frozen=True)
class Burst:
    """On/off modulation of the arrival rate."""

    factor: float          # ON rate / OFF rate (1: no modulation)
    on_s: float = 10.0     # mean ON period, seconds (exponential)
    off_s: float = 30.0    # mean OFF period, seconds (exponential)

    def __post_init__(self) -> None:
        if not (self.factor >= 1 and self.on_s > 0 and self.off_s > 0):
            raise ValueError(f"burst: factor must be >= 1 and on/off periods > 0, got {self}")

    def levels(self) -> tuple[float, float]:
        """(ON, OFF) rate multipliers whose time average is 1."""
        duty = self.on_s / (self.on_s + self.off_s)
        off = 1.0 / (duty * self.factor + 1.0 - duty)
        return self.factor * off, off


def renewal(rng: np.random.Generator, rate_per_s: float, cv: float, *, n: int | None = None,
            duration_s: float | None = None, burst: Burst | None = None) -> np.ndarray:
    """Sorted arrival times: the first `n`, or all in [0, duration_s)."""
    if not rate_per_s > 0 or not CV_RANGE[0] <= cv <= CV_RANGE[1]:
        raise ValueError(f"arrivals: rate must be > 0 and cv in {list(CV_RANGE)}, got {rate_per_s}, {cv}")
    if (n is None) == (duration_s is None):
        raise ValueError("arrivals: give exactly one of n and duration_s")
    if burst is None or burst.factor == 1:
        return _gamma_times(rng, rate_per_s, cv, n, duration_s)
    if n is not None:
        op = _gamma_times(rng, rate_per_s, cv, n, None)   # in operational time
        knots_t, knots_op = _periods(rng, burst, until_op=float(op[-1]) if len(op) else 0.0)
        return np.interp(op, knots_op, knots_t)
    knots_t, knots_op = _periods(rng, burst, until_t=duration_s)
    horizon = float(np.interp(duration_s, knots_t, knots_op))
    op = _gamma_times(rng, rate_per_s, cv, None, horizon)
    return np.interp(op, knots_op, knots_t)


def _gamma_times(rng: np.random.Generator, rate: float, cv: float, n: int | None,
                 duration_s: float | None) -> np.ndarray:
    shape = 1.0 / cv**2
    scale = cv**2 / rate   # mean gap shape * scale = 1 / rate
    if n is not None:
        return np.cumsum(rng.gamma(shape, scale, n))
    chunks, t, expect = [], 0.0, rate * duration_s
    while t < duration_s:
        # enough for the whole span in one draw almost always (mean + 6 sd of a Poisson-like count, + slack)
        k = int(expect + 6 * np.sqrt(expect) * max(cv, 1.0) + 64)
        times = t + np.cumsum(rng.gamma(shape, scale, k))
        chunks.append(times)
        t = float(times[-1])
    times = np.concatenate(chunks)
    return times[times < duration_s]


def _periods(rng: np.random.Generator, burst: Burst, until_t: float | None = None,
             until_op: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Knots (wall time, operational time) of the piecewise-linear time change, past the requested end."""
    on, off = burst.levels()
    state_on = rng.random() < burst.on_s / (burst.on_s + burst.off_s)   # start in the stationary phase
    ts, ops = [0.0], [0.0]
    while (until_t is not None and ts[-1] <= until_t) or (until_op is not None and ops[-1] <= until_op):
        length = rng.exponential(burst.on_s if state_on else burst.off_s)
        ts.append(ts[-1] + length)
        ops.append(ops[-1] + length * (on if state_on else off))
        state_on = not state_on
    return np.asarray(ts), np.asarray(ops)


def inter_arrival_cv(arrival_s: np.ndarray) -> float:
    """Coefficient of variation of the gaps between consecutive arrivals (REFERENCE.md's 'inter-arrival CV')."""
    gaps = np.diff(arrival_s)
    return float(gaps.std() / gaps.mean()) if len(gaps) > 1 and gaps.mean() > 0 else 0.0
