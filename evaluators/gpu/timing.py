"""Timing one operation: warm-up, then the median of an adaptive number of repeats.

Repeats continue until the relative spread of the samples so far (interquartile range / median) is at most
`target_spread`, but never fewer than `min_repeats` nor more than `max_repeats`; a timing that hit the cap
says so (`converged` False) instead of hiding it. Before every repeat (outside the timed region) `flush`
evicts the caches, so each repeat starts cold, as a serving step does after the previous step's other work.

A `Timer` runs a callable once and returns the seconds it took; `timers.py` has the real ones (CUDA events,
perf_counter), and tests pass a fake one, so this logic needs no torch and no GPU.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class Timer(Protocol):
    def __call__(self, fn: Callable[[], object]) -> float:
        """Run fn once; return the seconds it took on the device (synchronised)."""


@dataclass(frozen=True)
class RepeatPolicy:
    warmup: int = 3
    min_repeats: int = 5
    max_repeats: int = 50
    target_spread: float = 0.02   # interquartile range / median

    def check(self) -> None:
        if self.warmup < 0 or not 1 <= self.min_repeats <= self.max_repeats or self.target_spread <= 0:
            raise ValueError(f"repeat policy {self}: need warmup >= 0, 1 <= min_repeats <= max_repeats, "
                             "target_spread > 0")


@dataclass(frozen=True)
class Timing:
    median_s: float
    spread: float          # interquartile range / median of the samples
    repeats: int
    converged: bool        # the spread reached the target before the repeat cap
    samples_s: tuple[float, ...]

    def as_dict(self) -> dict:
        return {"median_s": self.median_s, "spread": self.spread, "repeats": self.repeats,
                "converged": self.converged, "samples_s": list(self.samples_s)}


def relative_spread(samples: list[float]) -> float:
    a = np.asarray(samples, dtype=np.float64)
    med = float(np.median(a))
    if med <= 0:
        return float("inf")
    q1, q3 = np.percentile(a, [25, 75])
    return float(q3 - q1) / med


def measure(fn: Callable[[], object], timer: Timer, policy: RepeatPolicy = RepeatPolicy(),
            flush: Callable[[], object] | None = None) -> Timing:
    policy.check()
    for _ in range(policy.warmup):
        if flush is not None:
            flush()
        timer(fn)
    samples: list[float] = []
    spread = float("inf")
    while len(samples) < policy.max_repeats:
        if flush is not None:
            flush()
        samples.append(float(timer(fn)))
        if len(samples) >= policy.min_repeats:
            spread = relative_spread(samples)
            if spread <= policy.target_spread:
                break
    return Timing(float(np.median(samples)), spread, len(samples), spread <= policy.target_spread,
                  tuple(samples))
