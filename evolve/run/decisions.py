"""A program's decisions, obtained the way scoring obtains them: the candidate runs in the sandbox, the
problem's own evaluator drives it and validates every answer, and the trusted side keeps what it answered.

`adrs verify` needs each program's decisions (an EPLB placement) to measure them on a real device. Rather
than a second way of calling candidates, `RecordingSandbox` wraps the run's sandbox backend: the candidate
it starts is the same sandboxed process, and each answer the evaluator receives is also appended to the
workload's record, in call order. `ProgramScorer` (evolve/run/scoring.py) does the rest: a fresh candidate
per workload, the evaluator's validation (an invalid answer fails the program before anything is timed),
the simulator's metrics on those workloads. The candidate never learns it is being verified.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from evolve.problem import ProblemSpec
from evolve.run.scoring import ProgramScorer, Scorecard

SPLIT = "verify"   # the Scorecard's stage name for the verification workloads


@dataclass
class Decisions:
    """What one program answered on each verification workload (call order), and how scoring went."""

    scorecard: Scorecard
    answers: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)   # workload -> [(function, answer)]

    @property
    def ok(self) -> bool:
        return self.scorecard.ok


class _Recorder:
    """A live candidate whose answers are also appended to `log`; every other attribute is the candidate's."""

    def __init__(self, inner, log: list[tuple[str, Any]]) -> None:
        self._inner, self._log = inner, log

    def call(self, function: str, *args: Any) -> Any:
        out = self._inner.call(function, *args)
        self._log.append((function, out))
        return out

    def timed_call(self, function: str, *args: Any, repeats: int = 1):
        out, spent = self._inner.timed_call(function, *args, repeats=repeats)
        self._log.append((function, out))
        return out, spent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class RecordingSandbox:
    """A sandbox backend whose candidates' answers are recorded; one workload at a time (ProgramScorer runs
    a program's workloads in order)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.logs: list[list[tuple[str, Any]]] = []   # one per candidate started, in start order
        self._lock = threading.Lock()

    @contextmanager
    def start(self, source: str, limits, entries: tuple[str, ...] = ()):
        log: list[tuple[str, Any]] = []
        with self._lock:
            self.logs.append(log)
        with self.inner.start(source, limits, entries) as cand:
            yield _Recorder(cand, log)

    def isolation(self) -> dict[str, str]:
        return self.inner.isolation()

    def close(self) -> None:   # the wrapped backend is its owner's to close
        pass


def obtain(spec: ProblemSpec, sandbox, source: str, workloads: tuple[str, ...]) -> Decisions:
    """Run one program on `workloads` through the evaluator in the sandbox; its validated answers per workload.
    A workload's answers are kept only when its result was accepted (no answer of a failed program is)."""
    rec = RecordingSandbox(sandbox)
    card = ProgramScorer(spec, rec).score(source, [(SPLIT, workloads)])
    out = Decisions(card)
    if card.ok:
        # each workload started exactly one candidate (infrastructure retries rescore all from the start)
        logs = rec.logs[-len(workloads):]
        out.answers = {w: log for w, log in zip(workloads, logs)}
    return out
