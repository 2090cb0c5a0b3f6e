"""The initial program and the baselines scored once per problem version (evolve/run/reference_cache.py): a
second run under the same runs folder takes their results from the cache instead of evaluating them, evolved
programs are always measured, a change to the problem or the sandbox kind is a different version,
--fresh-baselines and `adrs replay` measure everything again, and only sound entries are ever served."""
from __future__ import annotations

import json
import sqlite3

from evolve import problem as problem_mod
from evaluators.base import WorkloadResult
from evolve.run.reference_cache import ReferenceCache, problem_digest
from evolve.run.scoring import Scorecard
from evolve.terms import Status
from tests.conftest import adrs

COUNTING = '''

_evaluate = ToyEvaluator.evaluate


def _counted(self, candidate, workload_id):
    import os
    with open(os.environ["ADRS_TEST_EVAL_COUNT"], "a") as f:
        f.write("x")
    return _evaluate(self, candidate, workload_id)


ToyEvaluator.evaluate = _counted
'''
BASELINE_WORKLOADS = 5   # the toy's one baseline: 3 train and 2 held-out workloads
INITIAL_WORKLOADS = 5    # the initial program: quick (also train), 3 train and 2 held-out


def _counting_toy(toy_copy):
    ev = toy_copy / "evaluator.py"
    ev.write_text(ev.read_text() + COUNTING)
    return toy_copy


def _run(problem, runs, run_id, count_file, *flags):
    count_file.write_text("")
    r = adrs("run", str(problem), "--iterations", "2", "--runs-dir", str(runs), "--run-id", run_id, *flags,
             env={"ADRS_TEST_EVAL_COUNT": str(count_file)})
    assert r.returncode == 0, r.stderr
    return r.stdout, len(count_file.read_text())


def _reference_metrics(runs, run_id):
    con = sqlite3.connect(runs / run_id / "lineage.db")
    rows = con.execute("select p.kind, e.workload, e.split, e.metric, e.value from metrics e join programs p on "
                       "p.id = e.program_id where p.kind in ('baseline', 'initial') order by 1, 2, 3, 4").fetchall()
    con.close()
    return rows


def _origins(runs, run_id):
    con = sqlite3.connect(runs / run_id / "lineage.db")
    rows = dict(con.execute("select kind, origin from programs where kind != 'child'").fetchall())
    con.close()
    return rows


def test_a_second_run_takes_the_initial_program_and_baselines_from_the_cache(toy_copy, tmp_path):
    problem, runs, count = _counting_toy(toy_copy), tmp_path / "runs", tmp_path / "count"
    out1, n1 = _run(problem, runs, "a", count)
    out2, n2 = _run(problem, runs, "b", count)
    assert "cached by an earlier run" not in out1
    assert "cached by an earlier run of this problem version: initial program, exact" in out2
    assert n1 - n2 == BASELINE_WORKLOADS + INITIAL_WORKLOADS   # the children are measured again
    assert n2 > 0 and _reference_metrics(runs, "b") == _reference_metrics(runs, "a") != []
    assert all("(cached " in o for o in _origins(runs, "b").values())
    assert not any("(cached " in o for o in _origins(runs, "a").values())
    out3, n3 = _run(problem, runs, "c", count, "--fresh-baselines")
    assert n3 == n1 and "cached by an earlier run" not in out3
    # another version of the problem (a changed baseline file) is measured again
    (problem / "baselines" / "exact.py").write_text((problem / "baselines" / "exact.py").read_text() + "\n# v2\n")
    out4, n4 = _run(problem, runs, "d", count)
    assert n4 == n1 and "cached by an earlier run" not in out4


def test_replay_measures_the_initial_program_and_baselines_again(toy_copy, tmp_path):
    problem, runs, count = _counting_toy(toy_copy), tmp_path / "runs", tmp_path / "count"
    _, n1 = _run(problem, runs, "a", count)
    count.write_text("")
    r = adrs("replay", str(runs / "a"), "--check", env={"ADRS_TEST_EVAL_COUNT": str(count)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(count.read_text()) == n1 and "cached by an earlier run" not in r.stdout


def test_the_digest_follows_the_problem_and_the_sandbox_kind(toy_copy):
    spec = problem_mod.load(toy_copy)
    local = problem_digest(spec, "local")
    assert problem_digest(spec, "local") == local != problem_digest(spec, "docker")
    toml = toy_copy / "problem.toml"
    toml.write_text(toml.read_text() + "\n")
    assert problem_digest(problem_mod.load(toy_copy), "local") != local


def _card(status: Status = Status.OK) -> Scorecard:
    return Scorecard(status=status, stage="train", results={"train": [WorkloadResult("w0", {"score": 0.5},
                                                                                   {"score": [0.4, 0.6]}, "why")]},
                     artifacts={"stdout": "hi"}, duration_s=1.5)


def test_only_sound_entries_are_served(tmp_path):
    cache, stages = ReferenceCache(tmp_path, "digest"), [("train", ("w0",))]
    cache.put("x = 1", stages, _card())
    got = cache.get("b", "x = 1", stages)
    assert got.results == _card().results and got.artifacts == _card().artifacts and got.duration_s == 1.5
    assert got.cached and cache.hits == ["b"]
    cache.put("x = 1", stages, got)   # a served entry is not written back as if measured now
    assert cache.get("b", "x = 1", stages).cached == got.cached
    assert cache.get("b", "x = 2", stages) is None and cache.get("b", "x = 1", [("train", ("w1",))]) is None
    assert ReferenceCache(tmp_path, "digest", read=False).get("b", "x = 1", stages) is None   # --fresh-baselines
    assert ReferenceCache(tmp_path, "other").get("b", "x = 1", stages) is None               # another version
    (entry,) = tmp_path.glob("*.json")
    doc = json.loads(entry.read_text())
    entry.write_text("{not json")
    assert cache.get("b", "x = 1", stages) is None                      # unreadable: a miss, measured again
    entry.write_text(json.dumps({**doc, "scorecard": {**doc["scorecard"], "results": "garbage"}}))
    assert cache.get("b", "x = 1", stages) is None                      # malformed: a miss
    entry.write_text(json.dumps({**doc, "source": "x = 3"}))
    assert cache.get("b", "x = 1", stages) is None                      # not the program asked for
    entry.write_text(json.dumps(doc))
    assert cache.get("b", "x = 1", stages) is not None
    cache.put("y = 1", stages, _card(Status.FAILED))
    assert cache.get("f", "y = 1", stages) is None                      # failures are never cached
