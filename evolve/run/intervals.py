"""95% intervals over workloads: a program's mean, a paired difference of two programs, a ratio of two.

Each workload is one draw of the problem's workload distribution, so a mean over n workloads gets a
Student-t interval with n-1 degrees of freedom. Two programs scored on the same workloads are compared
workload by workload (a paired interval): what one workload makes easy for both cancels, so the interval
is that of the difference, not of two separate means. A ratio (runtimes) is compared on the log scale,
and reported as the geometric mean of per-workload ratios with its interval.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Two-sided 95% Student-t quantiles t(0.975, df), from standard tables; beyond 30 interpolated in 1/df.
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]
_T975_TAIL = [(30, 2.042), (40, 2.021), (60, 2.000), (120, 1.980), (math.inf, 1.960)]


def t975(df: float) -> float:
    if df < 1:
        return math.nan
    if df <= 30 and float(df).is_integer():
        return _T975[int(df) - 1]
    if df <= 30:  # Welch's fractional df: interpolate between neighbours
        lo = int(df)
        return _T975[lo - 1] + (df - lo) * (_T975[lo] - _T975[lo - 1])
    for (d0, t0), (d1, t1) in zip(_T975_TAIL, _T975_TAIL[1:]):
        if df <= d1:
            w = (1 / d0 - 1 / df) / (1 / d0 - (0 if d1 == math.inf else 1 / d1))
            return t0 + w * (t1 - t0)
    return 1.960


@dataclass(frozen=True)
class Interval:
    mean: float
    lo: float | None   # None: fewer than two workloads, no interval
    hi: float | None
    n: int

    @property
    def half(self) -> float | None:
        return None if self.lo is None else (self.hi - self.lo) / 2


def mean_ci(values: list[float]) -> Interval | None:
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return None
    m = float(x.mean())
    if x.size < 2:
        return Interval(m, None, None, 1)
    h = t975(x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return Interval(m, m - h, m + h, int(x.size))


def paired_ci(a: dict[str, float], b: dict[str, float]) -> Interval | None:
    """Mean of a - b over the workloads both have, with a paired Student-t interval."""
    common = sorted(set(a) & set(b))
    return mean_ci([a[w] - b[w] for w in common])


def ratio_ci(a: dict[str, float], b: dict[str, float]) -> Interval | None:
    """Geometric mean of a / b over the workloads where both are positive, with the t interval of the
    mean log ratio mapped back (so the interval is not symmetric around the ratio)."""
    common = sorted(w for w in set(a) & set(b) if a[w] > 0 and b[w] > 0)
    iv = mean_ci([math.log(a[w] / b[w]) for w in common])
    if iv is None:
        return None
    lo, hi = (None, None) if iv.lo is None else (math.exp(iv.lo), math.exp(iv.hi))
    return Interval(math.exp(iv.mean), lo, hi, iv.n)
