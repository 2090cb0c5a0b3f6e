"""The attack harness every problem's tests share: candidates that try to raise their score without solving
the problem, scored through the REAL local sandbox and the real ProgramScorer.

A test module opens one `Bench` for its problem (`bench = bench_fixture(...)`: tight limits, one LocalSandbox;
each scoring still runs in a freshly forked candidate) and checks each attack's Scorecard with
`recorded_with_reason` (it failed, and says why) or `gains_nothing` (it ran, and scored exactly as an honest
answer). `shared(...)` builds the attacks every problem gets; a module adds its own (lies about its results,
edits its input, ...).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from evolve import problem
from evolve.run.scoring import ProgramScorer, Scorecard
from sandbox.local import LocalSandbox
from tests.conftest import ROOT

SPLIT = "quick"
REFUSED = ("exception", "import_error")   # what the sandbox answers when it refuses what a candidate tried


class Bench:
    """One problem's attack bench: its spec with tight limits, one local sandbox, and the workload scored."""

    def __init__(self, problem_dir: Path, workload: str, call_timeout_s: float = 1.0,
                 workload_timeout_s: float = 5.0, params: Mapping | None = None) -> None:
        spec = problem.load(problem_dir)
        limits = dataclasses.replace(spec.limits, call_timeout_s=call_timeout_s,
                                     workload_timeout_s=workload_timeout_s)
        evaluator = spec.evaluator if params is None else dataclasses.replace(spec.evaluator, params=dict(params))
        self.spec = dataclasses.replace(spec, limits=limits, evaluator=evaluator)
        self.workload = workload
        self.box = LocalSandbox()
        self.scorer = ProgramScorer(self.spec, self.box)

    def score(self, source: str, workload: str | None = None) -> Scorecard:
        return self.scorer.score(source, [(SPLIT, (workload or self.workload,))])

    def metrics(self, source: str, workload: str | None = None) -> dict[str, float]:
        """The metrics of a source that must run (an honest reference)."""
        out = self.score(source, workload)
        assert out.ok, (out.reason, out.message)
        return out.results[SPLIT][0].metrics

    def close(self) -> None:
        self.box.close()

    def __enter__(self) -> "Bench":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def bench_fixture(problem_dir: Path, workload: str, **options):
    """A module-scoped fixture named `bench`: one Bench for the test module, closed after its last test."""
    @pytest.fixture(scope="module", name="bench")
    def _bench():
        with Bench(problem_dir, workload, **options) as b:
            yield b
    return _bench


def recorded_with_reason(out: Scorecard, reason: str | Sequence[str], *texts: str) -> None:
    """The attack failed and was recorded with `reason` (or one of them), its message holding every text."""
    reasons = (reason,) if isinstance(reason, str) else tuple(reason)
    assert out.status == "failed", (out.reason, out.message)
    assert out.reason in reasons, (out.reason, out.message)
    for text in texts:
        assert text in out.message, (text, out.message)


def gains_nothing(out: Scorecard, honest: Mapping[str, float], metrics: Sequence[str] = ("score",),
                  refused: Sequence[str] = REFUSED) -> None:
    """It ran and scored exactly as the honest answer on every named metric, or the sandbox refused what it
    tried with one of `refused` (none: it must run)."""
    if not out.ok:
        recorded_with_reason(out, refused)
        return
    got = out.results[SPLIT][0].metrics
    assert {m: got[m] for m in metrics} == {m: honest[m] for m in metrics}


@dataclass(frozen=True)
class Attack:
    """A candidate source and what must come of it: failed with `reason` and `texts` in the message, or,
    with no reason, nothing gained over the honest answer (refused by the sandbox with one of `refused`)."""

    source: str
    reason: str | tuple[str, ...] | None = None
    texts: tuple[str, ...] = ()
    refused: tuple[str, ...] = REFUSED

    def check(self, out: Scorecard, honest: Mapping[str, float], metrics: Sequence[str] = ("score",)) -> None:
        if self.reason is None:
            gains_nothing(out, honest, metrics, self.refused)
        else:
            recorded_with_reason(out, self.reason, *self.texts)


def fails(source: str, reason: str | tuple[str, ...], *texts: str) -> Attack:
    return Attack(source, reason, texts)


def no_gain(source: str, refused: tuple[str, ...] = REFUSED) -> Attack:
    return Attack(source, refused=refused)


# ---------------------------------------------------------------- the sources every problem shares
# `sig` is the entry's def line (with anything it needs above it), `answer` an honest body under it.

def spins(sig: str) -> str:
    return sig + "    while True:\n        pass\n"


def garbage(sig: str) -> str:
    return sig + "    return 'optimal, trust me'\n"


def _once(sig: str, body: str) -> str:
    """`body` on the first call of the process only (a stateful entry is called hundreds of times)."""
    return "_DONE = []\n" + sig + "    if not _DONE:\n        _DONE.append(1)\n" + body


def reads_files(sig: str, answer: str) -> str:
    """Reads the machine's files and the trusted evaluators' sources (where it can find them), then answers
    honestly: what it read must not change its score."""
    return "import glob\n" + _once(sig, (
        f"        for f in ['/etc/passwd', *glob.glob({str(ROOT)!r} + '/evaluators/**/*.py', recursive=True)]:\n"
        "            open(f).read()\n")) + answer


def floods_stdout(sig: str, answer: str) -> str:
    """Prints megabytes of claimed scores, then would answer honestly: the sandbox stops it at its output
    cap (and printing is never a score)."""
    return "import sys\n" + _once(sig, "        sys.stdout.write('score: 1.0\\n' * 400_000)\n") + answer


def shared(sig: str, answer: str, *garbage_texts: str) -> dict[str, Attack]:
    """The attacks every problem gets: spinning, returning garbage (failed with `garbage_texts` in the
    message), flooding stdout (stopped at the cap), reading files (nothing gained)."""
    return {
        "spins": fails(spins(sig), "timeout"),
        "garbage": fails(garbage(sig), "invalid_output", *garbage_texts),
        "floods_stdout": fails(floods_stdout(sig, answer), "output_limit", "bytes of output"),
        "reads_files": no_gain(reads_files(sig, answer)),
    }
