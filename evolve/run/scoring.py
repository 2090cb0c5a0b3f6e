"""Scoring one program: drive the trusted evaluator over workloads, stage by stage, each workload in a
freshly started sandboxed candidate.

This is a worker process's whole job. It gets source text and workload ids, never the database, so the
same function runs in a local worker process or on a remote one. The cascade is just the first stage: a
cheap workload whose failure stops the program before the full train set.
"""
from __future__ import annotations

import math
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from evaluators.base import DECISION_METRIC, FEEDBACK_CHARS, InvalidOutput, WorkloadResult
from evolve.problem import ProblemSpec
from evolve.store import FeedbackRow, MetricRow
from evolve.terms import ScoringReason, Status
from sandbox.base import CandidateError, Reason as CandidateReason

ARTIFACT_CAP = 8000  # characters of each artifact kept in the store


@dataclass
class Scorecard:
    """What scoring one program gives: per-split workload results, or the failure that stopped it."""

    status: Status
    stage: str                                    # the last stage (split) reached
    reason: str = ""
    message: str = ""
    results: dict[str, list[WorkloadResult]] = field(default_factory=dict)  # split -> per workload
    artifacts: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0                       # how long measuring took (when it was measured)
    cached: str = ""                              # when served from evolve/run/reference_cache.py: measured then

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

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

    def feedback_rows(self) -> list[FeedbackRow]:
        return [FeedbackRow(r.workload, split, r.feedback)
                for split, rs in self.results.items() for r in rs if r.feedback]


class ProgramScorer:
    """Scores programs through the cascade. Each workload gets a freshly started candidate, so module state
    never carries from one workload to the next and workload order never changes a score.
    Thread-safe: each thread gets its own evaluator instance (evaluators may cache workloads)."""

    def __init__(self, spec: ProblemSpec, sandbox) -> None:
        self.spec = spec
        self.sandbox = sandbox
        self._local = threading.local()
        self._prepared: tuple[Any, threading.Thread] | None = None   # an evaluator being warmed, not yet taken
        self._lock = threading.Lock()

    def prepare(self, workloads: tuple[str, ...]) -> None:
        """Warm an evaluator for `workloads` (Evaluator.prepare) in a background thread; the first thread to
        score takes that evaluator, waiting for the warming to end. A workload that fails to prepare is left
        for scoring to report."""
        ev = self.spec.make_evaluator()
        thread = threading.Thread(target=_prepare, args=(ev, workloads), name="adrs-prepare", daemon=True)
        self._prepared = (ev, thread)
        thread.start()

    def _evaluator(self):
        ev = getattr(self._local, "evaluator", None)
        if ev is None:
            with self._lock:
                prepared, self._prepared = self._prepared, None
            if prepared is not None:
                prepared[1].join()
            ev = self._local.evaluator = prepared[0] if prepared is not None else self.spec.make_evaluator()
        return ev

    def score(self, source: str, stages: list[tuple[str, tuple[str, ...]]]) -> Scorecard:
        """Score a program; an infrastructure failure (the sandbox, not the program, failed) is retried
        once in a fresh sandbox, and the outcome says so."""
        out = self._score_once(source, stages)
        if out.reason == CandidateReason.INFRASTRUCTURE:
            first = out.message
            out = self._score_once(source, stages)
            if out.reason == CandidateReason.INFRASTRUCTURE:
                out.message = f"{out.message} (also on the retry)"
            out.artifacts["retried"] = f"infrastructure failure, retried once: {first}"
        return out

    def _score_once(self, source: str, stages: list[tuple[str, tuple[str, ...]]]) -> Scorecard:
        """Run the stages in order; stop at the first failure. A workload already scored in an earlier
        stage is not run again (quick is usually a train workload)."""
        t0 = time.perf_counter()
        out = Scorecard(status=Status.OK, stage=stages[0][0] if stages else "")
        done: dict[str, WorkloadResult] = {}
        output = _Output()
        try:
            for split, ids in stages:
                out.stage = split
                out.results[split] = [done.get(w) or self._one(source, w, done, output) for w in ids]
        except CandidateError as e:
            _fail(out, e.reason, e.message, e.detail)
        except InvalidOutput as e:
            _fail(out, ScoringReason.INVALID_OUTPUT, str(e))
        except Exception as e:  # a bug on the trusted side: recorded, never blamed on silence
            _fail(out, ScoringReason.EVALUATOR_ERROR, f"{type(e).__name__}: {e}", traceback.format_exc())
        out.artifacts.update(output.artifacts())
        out.duration_s = time.perf_counter() - t0
        return out

    def _one(self, source: str, workload: str, done: dict[str, WorkloadResult], output: "_Output") -> WorkloadResult:
        """One workload in a fresh candidate; its output is kept whatever happens."""
        handle = None
        try:
            program, entries = self._program(source)
            with self.sandbox.start(program, self.spec.limits, entries) as handle:
                r = self._evaluator().evaluate(handle, workload)
                decision_s = handle.decision_s
        except CandidateError as e:
            if handle is None:  # failed while starting (import error): the error carries the output
                output.add(getattr(e, "artifacts", None))
            raise
        finally:
            if handle is not None:
                output.add(handle.artifacts)
        self._check(r, workload)
        r.metrics.setdefault(DECISION_METRIC, float(decision_s))
        r.feedback = r.feedback[:FEEDBACK_CHARS]
        done[workload] = r
        return r

    def _program(self, source: str) -> tuple[str, tuple[str, ...]]:
        """What the sandbox starts: the candidate, or, for an evaluator that must run beside it (OpenEvolve
        format, evaluators/openevolve), the program its `sandbox_program` hook wraps it in."""
        hook = getattr(self._evaluator(), "sandbox_program", None)
        return hook(source) if hook is not None else (source, self.spec.entry.names)

    def _check(self, r: WorkloadResult, workload: str) -> None:
        if self.spec.objective.score not in r.metrics:
            raise RuntimeError(f"evaluator returned no '{self.spec.objective.score}' metric for {workload}")
        bad = sorted(k for k, v in r.metrics.items() if not math.isfinite(v))
        if bad:  # NaN/inf would poison selection; the evaluator judged the answer unscoreable
            raise InvalidOutput(f"non-finite metrics on {workload}: {', '.join(bad)}")


class _Output:
    """The candidate's stdout/stderr over the workloads of one scoring, in workload order."""

    def __init__(self) -> None:
        self.parts: dict[str, list[str]] = {}

    def add(self, art) -> None:
        if art is None:
            return
        for k, v in {"stdout": art.stdout, "stderr": art.stderr, **art.extra}.items():
            if v:
                self.parts.setdefault(k, []).append(v)

    def artifacts(self) -> dict[str, str]:
        return {k: _cap("".join(v)) for k, v in self.parts.items()}


def one_per_workload(stages: list[tuple[str, tuple[str, ...]]]) -> list[list[tuple[str, tuple[str, ...]]]]:
    """The stages as single-workload requests, in order: to spread one program over several workers."""
    return [[(split, (w,))] for split, ids in stages for w in ids]


def merge(stages: list[tuple[str, tuple[str, ...]]], parts: list[Scorecard]) -> Scorecard:
    """The Scorecard of scoring `stages` at once, from the parts scored one workload each (one_per_workload
    order). The same as one scoring, since each workload runs in a fresh candidate anyway: the first failure
    in that order is the program's, and what came after it is dropped, as it would not have run."""
    flat = [(split, w) for split, ids in stages for w in ids]
    out = Scorecard(status=Status.OK, stage=stages[0][0] if stages else "")
    for (split, _), part in zip(flat, parts):
        out.stage = split
        out.duration_s += part.duration_s
        for k, v in part.artifacts.items():
            out.artifacts[k] = _cap(f"{out.artifacts[k]}; {v}" if k == "retried" and k in out.artifacts
                                    else out.artifacts.get(k, "") + v)
        if not part.ok:
            out.status, out.reason, out.message = part.status, part.reason, part.message
            out.results.pop(split, None)
            break
        out.results.setdefault(split, []).extend(part.results.get(split, []))
    return out


def _prepare(evaluator, workloads: tuple[str, ...]) -> None:
    for w in workloads:
        try:
            evaluator.prepare(w)
        except Exception:  # noqa: BLE001 - scoring this workload raises it again, and records it
            return


def _fail(out: Scorecard, reason: str, message: str, detail: str = "") -> None:
    out.status, out.reason, out.message = Status.FAILED, reason, message.strip().splitlines()[0] if message else reason
    out.results.pop(out.stage, None)  # a partly scored stage is not a score
    if detail:
        out.artifacts["traceback"] = detail[-ARTIFACT_CAP:]


def _cap(text: str) -> str:
    if len(text) <= ARTIFACT_CAP:
        return text
    half = ARTIFACT_CAP // 2
    return f"{text[:half]}\n... [{len(text) - ARTIFACT_CAP} characters cut] ...\n{text[-half:]}"
