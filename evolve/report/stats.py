"""Confidence intervals over workload seeds and the generalisation gap, for the report's comparison table.

Each workload is one draw of the problem's workload distribution, so a program's mean score over workloads
gets a Student-t interval with n-1 degrees of freedom (evolve.run.intervals, shared with the end-of-run
line); the gap (held-out minus train) is a difference of two independent means and gets a Welch interval.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evolve.report.data import HELD_OUT, ProgramInfo, RunData
from evolve.run.intervals import Interval, mean_ci, t975

__all__ = ["Interval", "mean_ci", "t975", "gap_ci", "CompareRow", "compare_rows"]


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
