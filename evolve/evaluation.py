"""Scoring one program: start it in a sandbox, drive the trusted evaluator over workloads, stage by stage.

This is the worker's whole job. It gets source text and workload ids, never the database, so the same
function can later run on a remote worker. The cascade is just the first stage: a cheap workload whose
failure stops the program before the full train set.
"""
from __future__ import annotations

import math
import threading
import time
import traceback
from dataclasses import dataclass, field

from evaluators.base import InvalidOutput, WorkloadResult
from evolve.problem import ProblemSpec
from evolve.store import MetricRow
from sandbox.base import CandidateError

ARTIFACT_CAP = 8000  # characters of each artifact kept in the store


@dataclass
class EvalOutcome:
    status: str                                   # ok | failed
    stage: str                                    # the last stage reached
    reason: str = ""
    message: str = ""
    results: dict[str, list[WorkloadResult]] = field(default_factory=dict)  # split -> per workload
    artifacts: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def mean(self, split: str, metric: str) -> float | None:
        rs = self.results.get(split, [])
        vals = [r.metrics[metric] for r in rs if metric in r.metrics]
        return sum(vals) / len(vals) if vals and len(vals) == len(rs) else None

    def workload_scores(self, split: str, metric: str) -> dict[str, float]:
        return {r.workload: r.metrics[metric] for r in self.results.get(split, []) if metric in r.metrics}

    def metric_means(self, split: str) -> dict[str, float]:
        names = sorted({m for r in self.results.get(split, []) for m in r.metrics})
        return {m: v for m in names if (v := self.mean(split, m)) is not None}

    def metric_rows(self) -> list[MetricRow]:
        return [MetricRow(r.workload, split, m, float(v), r.samples.get(m))
                for split, rs in self.results.items() for r in rs for m, v in sorted(r.metrics.items())]


class ProgramEvaluator:
    """Thread-safe: each worker thread gets its own evaluator instance (evaluators may cache workloads)."""

    def __init__(self, spec: ProblemSpec, sandbox) -> None:
        self.spec = spec
        self.sandbox = sandbox
        self._local = threading.local()

    def _evaluator(self):
        ev = getattr(self._local, "evaluator", None)
        if ev is None:
            ev = self._local.evaluator = self.spec.make_evaluator()
        return ev

    def evaluate(self, source: str, stages: list[tuple[str, tuple[str, ...]]]) -> EvalOutcome:
        """Score a program; an infrastructure failure (the sandbox, not the program, failed) is retried
        once in a fresh sandbox, and the outcome says so."""
        out = self._evaluate_once(source, stages)
        if out.reason == "infrastructure":
            first = out.message
            out = self._evaluate_once(source, stages)
            if out.reason == "infrastructure":
                out.message = f"{out.message} (also on the retry)"
            out.artifacts["retried"] = f"infrastructure failure, retried once: {first}"
        return out

    def _evaluate_once(self, source: str, stages: list[tuple[str, tuple[str, ...]]]) -> EvalOutcome:
        """Run the stages in order in one fresh sandbox; stop at the first failure.
        A workload already scored in an earlier stage is not run again (quick is usually a train workload)."""
        t0 = time.perf_counter()
        out = EvalOutcome(status="ok", stage=stages[0][0] if stages else "")
        done: dict[str, WorkloadResult] = {}
        handle = None
        try:
            with self.sandbox.start(source, self.spec.limits) as handle:
                for split, ids in stages:
                    out.stage = split
                    out.results[split] = [done.get(w) or self._one(handle, w, done) for w in ids]
        except CandidateError as e:
            _fail(out, e.reason, e.message, e.detail)
            if handle is None:  # failed during start (import error): the error carries the output
                out.artifacts.update(_candidate_artifacts(e))
        except InvalidOutput as e:
            _fail(out, "invalid_output", str(e))
        except Exception as e:  # a bug on the trusted side: recorded, never blamed on silence
            _fail(out, "evaluator_error", f"{type(e).__name__}: {e}", traceback.format_exc())
        out.artifacts.update(_candidate_artifacts(handle))
        out.duration_s = time.perf_counter() - t0
        return out

    def _one(self, handle, workload: str, done: dict[str, WorkloadResult]) -> WorkloadResult:
        r = self._evaluator().evaluate(handle, workload)
        if self.spec.objective.score not in r.metrics:
            raise RuntimeError(f"evaluator returned no '{self.spec.objective.score}' metric for {workload}")
        bad = sorted(k for k, v in r.metrics.items() if not math.isfinite(v))
        if bad:  # NaN/inf would poison selection; the evaluator judged the answer unscoreable
            raise InvalidOutput(f"non-finite metrics on {workload}: {', '.join(bad)}")
        done[workload] = r
        return r


def _fail(out: EvalOutcome, reason: str, message: str, detail: str = "") -> None:
    out.status, out.reason, out.message = "failed", reason, message.strip().splitlines()[0] if message else reason
    out.results.pop(out.stage, None)  # a partly scored stage is not a score
    if detail:
        out.artifacts["traceback"] = detail[-ARTIFACT_CAP:]


def _candidate_artifacts(handle) -> dict[str, str]:
    art = getattr(handle, "artifacts", None)
    if art is None:
        return {}
    art = art() if callable(art) else art
    kept = {"stdout": art.stdout, "stderr": art.stderr, **art.extra}
    return {k: _cap(v) for k, v in kept.items() if v}


def _cap(text: str) -> str:
    if len(text) <= ARTIFACT_CAP:
        return text
    half = ARTIFACT_CAP // 2
    return f"{text[:half]}\n... [{len(text) - ARTIFACT_CAP} characters cut] ...\n{text[-half:]}"
