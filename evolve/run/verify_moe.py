"""The `moe_microbench` verifier: EPLB placements timed as real expert GEMMs (evaluators/gpu/moe_bench.py).

Each entrant's placements were made in the sandbox and validated by the EPLB evaluator (evolve/run/
decisions.py); here the trusted side times them. Placement j of a workload (made on window j's loads) is
timed on window j+1's loads, as the evaluator scores it. On a CUDA GPU: DeepSeek-V3 expert shapes, the
setting's step tokens. On the CPU: tiny expert shapes and a step's tokens / [verify] cpu_token_divisor,
so the harness runs in seconds; such figures check the harness and say nothing about a GPU.

One entrant's figures over all its timed layers: score = sum of ideals / sum of layer times (capped at 1,
as moe_bench scores one placement), median_s = the mean layer time (each layer: the slowest simulated
GPU's median over repeats), spread = the median relative spread (IQR / median) of its timings (the widest
is kept in the detail).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluators.eplb.cost_model import Coefficients
from evaluators.gpu import moe_bench as mb
from evaluators.gpu.bench import Bench, Record
from evolve.problem import ProblemSpec, VerifySpec

KIND = "moe_microbench"


@dataclass
class Measured:
    """One entrant's measurement: the figures a Measurement row stores."""

    score: float
    median_s: float
    spread: float
    repeats: int
    drift_flagged: bool
    drift: str
    sm_clock_mhz: float | None
    mem_clock_mhz: float | None
    temperature_c: float | None
    detail: dict = field(default_factory=dict)


class MoeMicrobench:
    """Times every entrant's placements on one backend, one workload at a time (one expert pool each)."""

    kind = KIND
    what = ("the MoE layer's expert compute: per sampled layer, the slowest simulated GPU's median time; "
            "score = ideal / measured")

    def __init__(self, spec: ProblemSpec, bench: Bench, backend: Any) -> None:
        self.spec, self.bench, self.backend = spec, bench, backend
        self.vspec: VerifySpec = spec.verify
        self.evaluator = spec.make_evaluator()
        self.shape = self.evaluator.shape if backend.is_gpu else mb.TINY_EXPERT
        self.coef = Coefficients.of(self.shape, self.evaluator.hardware)

    def measure_all(self, answers: dict[str, dict[str, list[tuple[str, Any]]]], log=lambda msg: None
                    ) -> dict[str, Measured]:
        """answers: entrant name -> workload -> [(function, answer)] in call order."""
        per: dict[str, list[tuple[mb.PlacementResult, list[Record]]]] = {name: [] for name in answers}
        for wid in self.vspec.workloads:
            w = self.evaluator.workload(wid)
            s = w.setting
            tokens = s.step_tokens if self.backend.is_gpu else max(1, s.step_tokens // self.vspec.cpu_token_divisor)
            dep = mb.Deployment(s.num_gpus, s.slots_per_gpu, tokens, self.shape.top_k)
            jobs = {name: self._placements(a.get(wid, []), len(w.loads)) for name, a in answers.items()}
            most = max((mb.max_gpu_tokens(w.loads[j + 1], [p], dep) for ps in jobs.values() for j, p in ps),
                       default=1)
            pool = mb.ExpertPool(self.backend, self.shape, s.slots_per_gpu, most)
            for name, placements in jobs.items():
                for j, (phy2log, logcnt) in placements:
                    first = len(self.bench.records)
                    r = mb.measure_placement(self.bench, pool, f"{name} {wid} w{j}", phy2log, logcnt,
                                             w.loads[j + 1], dep, self.coef, self.vspec.layers)
                    per[name].append((r, self.bench.records[first:]))
                    log(f"  {name:>28} {wid} window {j}: layer {r.layer_time_s * 1e6:9.1f} us, "
                        f"score {r.score:.3f}{'  (drift flagged)' if any(x.flagged for x in r.layers) else ''}")
            del pool
        return {name: _combine(results, dep_note(self.backend, self.vspec)) for name, results in per.items()}

    def _placements(self, calls: list[tuple[str, Any]], windows: int) -> list[tuple[int, tuple[Any, Any]]]:
        """(window, (phy2log, logcnt)) of the first [verify] windows answers; the next window must exist."""
        fn = self.evaluator.params.function
        answers = [out for name, out in calls if name == fn]
        return [(j, (np.asarray(a[0]), np.asarray(a[1]))) for j, a in enumerate(answers[:self.vspec.windows])
                if j + 1 < windows]


def dep_note(backend: Any, vspec: VerifySpec) -> str:
    if backend.is_gpu:
        return "DeepSeek-V3 expert shapes, the setting's step tokens"
    return (f"tiny expert shapes ({mb.TINY_EXPERT.hidden}x{mb.TINY_EXPERT.intermediate}), step tokens / "
            f"{vspec.cpu_token_divisor}")


def _combine(results: list[tuple[mb.PlacementResult, list[Record]]], shapes: str) -> Measured:
    layers = [x for r, _ in results for x in r.layers]
    if not layers:   # a workload of one window has no next window to time a placement on
        raise ValueError("no placement was timed: each [verify] workload needs at least two windows")
    records = [rec for _, recs in results for rec in recs]
    ideal, measured = sum(x.ideal_s for x in layers), sum(x.layer_s for x in layers)
    model = sum(x.model_layer_s for x in layers)
    timings = [t for rec in records for t in rec.timings.values()]
    snaps = [s for rec in records for s in (rec.before, rec.after) if s is not None]
    reasons = sorted({rec.drift.reason for rec in records if rec.flagged and rec.drift.reason})
    return Measured(
        score=min(1.0, ideal / measured), median_s=measured / len(layers),
        spread=float(np.median([t.spread for t in timings])), repeats=sum(t.repeats for t in timings),
        drift_flagged=any(rec.flagged for rec in records), drift="; ".join(reasons),
        sm_clock_mhz=_mean([s.sm_clock_mhz for s in snaps]), mem_clock_mhz=_mean([s.mem_clock_mhz for s in snaps]),
        temperature_c=max((s.temperature_c for s in snaps if s.temperature_c is not None), default=None),
        detail={"shapes": shapes, "raw_ratio": ideal / measured, "max_spread": max(t.spread for t in timings),
                "model_score": sum(x.model_ideal_s for x in layers) / model if model > 0 else None,
                "model_layer_error": float(np.mean([abs(x.model_layer_s - x.layer_s) / x.layer_s for x in layers])),
                "not_converged": sum(not t.converged for t in timings),
                "placements": [{"name": r.name, "score": r.score, "layer_time_s": r.layer_time_s,
                                "model_layer_time_s": r.model_layer_time_s,
                                "layers": [{"layer": x.layer, "layer_s": x.layer_s, "ideal_s": x.ideal_s,
                                            "model_layer_s": x.model_layer_s, "max_tokens": max(x.tokens),
                                            "flagged": x.flagged} for x in r.layers]}
                               for r, _ in results]})


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None
