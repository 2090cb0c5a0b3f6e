"""The measuring harness: timings with noise control, a drift check and device readings in one record.

`Bench.measure(name, {key: fn, ...})` times each callable (warm-up, cache flush, adaptive repeats: timing.py)
between two timings of the reference GEMM (drift.py), with a device snapshot before and after
(device_info.py), and returns a `Record` that keeps all of it. The reference after one measurement is the
reference before the next, so a session of n measurements times the reference n + 1 times.

`Bench.on(backend)` builds the real one; tests build one from a fake timer and a fake reference.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from evaluators.gpu.device_info import DeviceInfo, DeviceProbe, Snapshot
from evaluators.gpu.drift import CPU_TOLERANCE, GPU_TOLERANCE, DriftCheck, check_drift, reference_gemm
from evaluators.gpu.timing import RepeatPolicy, Timer, Timing, measure

GPU_POLICY = RepeatPolicy(warmup=3, min_repeats=5, max_repeats=30, target_spread=0.02)
CPU_POLICY = RepeatPolicy(warmup=2, min_repeats=5, max_repeats=15, target_spread=0.10)
REFERENCE_POLICY = RepeatPolicy(warmup=2, min_repeats=5, max_repeats=10, target_spread=0.02)


@dataclass(frozen=True)
class Record:
    name: str
    timings: dict[str, Timing]
    drift: DriftCheck | None
    before: Snapshot | None
    after: Snapshot | None
    meta: dict = field(default_factory=dict)
    device: str | None = None     # the device's name and driver (the rest of DeviceInfo is the session's)

    @property
    def flagged(self) -> bool:
        return self.drift is not None and self.drift.flagged

    def median(self, key: str) -> float:
        return self.timings[key].median_s

    def as_dict(self) -> dict:
        return {"name": self.name, "timings": {k: t.as_dict() for k, t in self.timings.items()},
                "drift": self.drift.as_dict() if self.drift else None,
                "before": self.before.as_dict() if self.before else None,
                "after": self.after.as_dict() if self.after else None, "meta": self.meta, "device": self.device}


class Bench:
    def __init__(self, timer: Timer, policy: RepeatPolicy = CPU_POLICY, flush: Callable[[], object] | None = None,
                 reference: Callable[[], object] | None = None, reference_policy: RepeatPolicy = REFERENCE_POLICY,
                 drift_tolerance: float = CPU_TOLERANCE, probe: DeviceProbe | None = None) -> None:
        self.timer, self.policy, self.flush = timer, policy, flush
        self.reference, self.reference_policy = reference, reference_policy
        self.drift_tolerance = drift_tolerance
        self.probe = probe
        self.baseline_s: float | None = None
        self._last_reference_s: float | None = None
        self.records: list[Record] = []

    @classmethod
    def on(cls, backend, policy: RepeatPolicy | None = None, drift_tolerance: float | None = None,
           reference_n: int | None = None) -> "Bench":
        ref, _ = reference_gemm(backend, reference_n)
        return cls(backend.timer(), policy or (GPU_POLICY if backend.is_gpu else CPU_POLICY), backend.flusher(),
                   ref, REFERENCE_POLICY,
                   drift_tolerance if drift_tolerance is not None else
                   (GPU_TOLERANCE if backend.is_gpu else CPU_TOLERANCE), DeviceProbe(backend))

    @property
    def device(self) -> DeviceInfo | None:
        return self.probe.info if self.probe is not None else None

    def time_reference(self) -> float:
        t = measure(self.reference, self.timer, self.reference_policy, self.flush).median_s
        if self.baseline_s is None:
            self.baseline_s = t
        return t

    def measure(self, name: str, fns: Mapping[str, Callable[[], object]], policy: RepeatPolicy | None = None,
                **meta) -> Record:
        before_ref = None
        if self.reference is not None:
            before_ref = self._last_reference_s if self._last_reference_s is not None else self.time_reference()
        before = self.probe.snapshot() if self.probe else None
        timings = {key: measure(fn, self.timer, policy or self.policy, self.flush) for key, fn in fns.items()}
        after = self.probe.snapshot() if self.probe else None
        drift = None
        if self.reference is not None:
            after_ref = self.time_reference()
            self._last_reference_s = after_ref
            drift = check_drift(before_ref, after_ref, self.baseline_s, self.drift_tolerance)
        info = self.device
        record = Record(name, timings, drift, before, after, dict(meta),
                        f"{info.name} (driver {info.driver})" if info else None)
        self.records.append(record)
        return record

    def summary(self) -> dict:
        flagged = [r.name for r in self.records if r.flagged]
        unconverged = [f"{r.name}/{k}" for r in self.records for k, t in r.timings.items() if not t.converged]
        return {"measurements": len(self.records), "reference_baseline_s": self.baseline_s,
                "drift_flagged": flagged, "not_converged": unconverged,
                "policy": vars(self.policy), "drift_tolerance": self.drift_tolerance}
