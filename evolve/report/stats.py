"""Confidence intervals over workload seeds and the generalisation gap, for the report's comparison table.

Each workload is one draw of the problem's workload distribution, so a program's mean score over workloads
gets a Student-t interval with n-1 degrees of freedom; the gap (held-out minus train) is a difference of
two independent means and gets a Welch interval.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evolve.report.data import HELD_OUT, ProgramInfo, RunData

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


def gap_ci(train: list[float], held_out: list[float]) -> Interval | None:
    """held-out mean minus train mean, with a Welch 95% interval."""
    a, b = np.asarray(train, dtype=float), np.asarray(held_out, dtype=float)
    if a.size == 0 or b.size == 0:
        return None
    d = float(b.mean() - a.mean())
    if a.size < 2 or b.size < 2:
        return Interval(d, None, None, int(a.size + b.size))
    va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(d, d, d, int(a.size + b.size))
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    h = t975(df) * se
    return Interval(d, d - h, d + h, int(a.size + b.size))


@dataclass
class CompareRow:
    label: str
    program: ProgramInfo
    train: Interval | None
    held_out: Interval | None
    gap: Interval | None
    held_out_metrics: dict[str, float]   # means of every metric on held-out (train when no held-out)


def compare_rows(data: RunData) -> list[CompareRow]:
    """The initial program, the best program (and other finalists scored on held-out), every baseline."""
    picked: list[tuple[str, ProgramInfo]] = []
    init, best = data.initial(), data.best()
    if init:
        picked.append(("initial (still the best)" if best is init else "initial", init))
    if best and best is not init:
        picked.append((f"best (iteration {best.iteration})", best))
    for p in data.lineage():  # other finalists the final stage scored on held-out
        if p not in (init, best) and data.split_values(p.id, HELD_OUT):
            picked.append((f"finalist (iteration {p.iteration})", p))
    picked += [(f"baseline {p.name}", p) for p in data.baselines()]
    return [_row(data, label, p) for label, p in picked]


def _row(data: RunData, label: str, p: ProgramInfo) -> CompareRow:
    tr = list(data.split_values(p.id, "train").values())
    ho = list(data.split_values(p.id, HELD_OUT).values())
    split = HELD_OUT if ho else "train"
    sums: dict[str, list[float]] = {}
    for r in data.metrics.get(p.id, []):
        if r.split == split:
            sums.setdefault(r.metric, []).append(r.value)
    means = {k: sum(v) / len(v) for k, v in sums.items()}
    return CompareRow(label, p, mean_ci(tr), mean_ci(ho), gap_ci(tr, ho), means)
