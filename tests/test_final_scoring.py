"""Final scoring spread over every worker (evolve/run/holdout.py, scoring.merge): a program's workloads scored
as separate requests and merged give exactly what one scoring gives, failures included, and a run's final
table keeps all evaluation slots busy even for a single finalist."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from evolve.run.holdout import _Job, _score_spread
from evolve.run.scoring import ProgramScorer, merge, one_per_workload
from sandbox.local import LocalSandbox
from tests.test_workers import SOURCES, SPEC, comparable, quadratic

STAGES = [("train", SPEC.workloads.train), ("held-out", SPEC.workloads.held_out)]


@pytest.fixture(scope="module")
def scorer():
    sandbox = LocalSandbox()
    yield ProgramScorer(SPEC, sandbox)
    sandbox.close()


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_merged_parts_equal_one_scoring(scorer, name):
    source = SOURCES[name]
    whole = scorer.score(source, STAGES)
    parts = [scorer.score(source, part) for part in one_per_workload(STAGES)]
    merged = merge(STAGES, parts)
    assert comparable(merged) == comparable(whole)
    assert set(merged.artifacts) == set(whole.artifacts)


def test_a_failure_after_good_workloads_drops_its_stage_and_what_follows(scorer):
    flaky = ("def predict(xs):\n    if xs[0] < 0:\n        raise ValueError('no')\n"   # w2 and w8 of w0-w2, w7-w8
             "    return [0.0] * len(xs)\n")
    parts = [scorer.score(flaky, part) for part in one_per_workload(STAGES)]
    merged = merge(STAGES, parts)
    first_bad = next(i for i, p in enumerate(parts) if not p.ok)
    assert 0 < first_bad < len(parts) - 1   # good workloads before it, and some after
    flat = [s for s, ids in STAGES for _ in ids]
    assert merged.status == "failed" and merged.stage == flat[first_bad] and merged.reason == parts[first_bad].reason
    assert flat[first_bad] not in merged.results
    assert merged.duration_s == pytest.approx(sum(p.duration_s for p in parts[:first_bad + 1]))


def test_one_finalist_keeps_every_slot_busy(scorer):
    """Two slots, one program of four 0.3 s workloads: spread, it takes about half the serial time."""
    slow = quadratic(3, -2, 1, sleep_s=0.3)
    stages = [("held-out", ("w7", "w8", "w9", "w10"))]
    busy, peak, lock = [0], [0], threading.Lock()

    def evaluate(source, part):
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        try:
            return scorer.score(source, part)
        finally:
            with lock:
                busy[0] -= 1

    t0 = time.monotonic()
    [card] = asyncio.run(_score_spread(evaluate, [_Job("program", 1, "", slow, stages)], slots=2))
    assert card.ok and [r.workload for r in card.results["held-out"]] == ["w7", "w8", "w9", "w10"]
    assert peak[0] == 2 and time.monotonic() - t0 < 4 * 0.3 + 1.0
