"""Clock-drift detection: a reference GEMM timed before and after each measurement.

A GPU that heats up, hits its power limit or is shared changes speed under a measurement. The harness never
touches clocks or settings; it times a fixed reference GEMM around every measurement and flags the
measurement when the reference moved by more than the tolerance, either across that measurement (before ->
after) or against the session's first reference (slow drift). Flagged measurements are kept and reported,
so whoever reads the figures decides; nothing is silently retried or dropped.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

GPU_TOLERANCE = 0.05   # H100/H200 bf16 GEMM medians repeat within ~1-2% at fixed clocks
CPU_TOLERANCE = 0.25   # a shared CPU's timings wander much more
GPU_REFERENCE_N = 4096  # 137 GFLOP: ~0.2 ms on an H100/H200, well past launch overhead
CPU_REFERENCE_N = 192


@dataclass(frozen=True)
class DriftCheck:
    before_s: float
    after_s: float
    baseline_s: float          # the session's first reference
    change: float              # after / before - 1
    from_baseline: float       # after / baseline - 1
    tolerance: float
    flagged: bool
    reason: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def check_drift(before_s: float, after_s: float, baseline_s: float, tolerance: float) -> DriftCheck:
    change = after_s / before_s - 1
    from_baseline = after_s / baseline_s - 1
    reasons = []
    if abs(change) > tolerance:
        reasons.append(f"reference GEMM {'slowed' if change > 0 else 'sped up'} by {abs(change):.1%} across "
                       f"the measurement (tolerance {tolerance:.0%})")
    if abs(from_baseline) > tolerance:
        reasons.append(f"reference GEMM {abs(from_baseline):.1%} {'slower' if from_baseline > 0 else 'faster'} "
                       f"than at the session's start")
    return DriftCheck(before_s, after_s, baseline_s, change, from_baseline, tolerance, bool(reasons),
                      "; ".join(reasons) or None)


def reference_gemm(backend: Any, n: int | None = None) -> tuple[Callable[[], object], float]:
    """The reference operation (an n x n x n GEMM in the backend's dtype) and its FLOPs."""
    n = n or (GPU_REFERENCE_N if backend.is_gpu else CPU_REFERENCE_N)
    a, b = backend.randn(n, n), backend.randn(n, n)
    out = backend.torch.empty(n, n, device=backend.device, dtype=backend.dtype)
    return (lambda: backend.torch.matmul(a, b, out=out)), 2.0 * n ** 3
