"""Baselines scored once per problem version (evolve/run/baseline_cache.py): a second run under the same runs
folder takes their results from the cache instead of evaluating them, a change to the problem or the sandbox
kind is a different version, --fresh-baselines measures them again, and only sound entries are ever served."""
from __future__ import annotations

import json
import sqlite3

from evolve import problem as problem_mod
from evolve.run.baseline_cache import BaselineCache, problem_digest
from evolve.store import MetricRow, NewProgram
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


def _baseline_metrics(runs, run_id):
    con = sqlite3.connect(runs / run_id / "lineage.db")
    rows = con.execute("select e.workload, e.split, e.metric, e.value from metrics e join programs p on "
                       "p.id = e.program_id where p.kind = 'baseline' order by 1, 2, 3").fetchall()
    con.close()
    return rows


def test_a_second_run_takes_the_baselines_from_the_cache(toy_copy, tmp_path):
    problem, runs, count = _counting_toy(toy_copy), tmp_path / "runs", tmp_path / "count"
    out1, n1 = _run(problem, runs, "a", count)
    out2, n2 = _run(problem, runs, "b", count)
    assert "cached by an earlier run" not in out1 and "baselines exact: results cached by an earlier run" in out2
    assert n1 - n2 == BASELINE_WORKLOADS                       # the same lineage, minus the baseline's workloads
    assert _baseline_metrics(runs, "b") == _baseline_metrics(runs, "a") != []
    out3, n3 = _run(problem, runs, "c", count, "--fresh-baselines")
    assert n3 == n1 and "cached by an earlier run" not in out3
    # another version of the problem (a changed baseline file) is measured again
    (problem / "baselines" / "exact.py").write_text((problem / "baselines" / "exact.py").read_text() + "\n# v2\n")
    out4, n4 = _run(problem, runs, "d", count)
    assert n4 == n1 and "cached by an earlier run" not in out4


def test_the_digest_follows_the_problem_and_the_sandbox_kind(toy_copy):
    spec = problem_mod.load(toy_copy)
    local = problem_digest(spec, "local")
    assert problem_digest(spec, "local") == local != problem_digest(spec, "docker")
    toml = toy_copy / "problem.toml"
    toml.write_text(toml.read_text() + "\n")
    assert problem_digest(problem_mod.load(toy_copy), "local") != local


def _ok(name: str = "b", status: str = "ok") -> NewProgram:
    return NewProgram(kind="baseline", name=name, source="x = 1", status=status, score=0.5, origin="baseline b",
                      metrics=[MetricRow("w0", "train", "score", 0.5, [0.4, 0.6])])


def test_only_sound_entries_are_served(tmp_path):
    cache, stages = BaselineCache(tmp_path, "digest"), [("train", ("w0",))]
    cache.put("b", "x = 1", stages, _ok())
    got = cache.get("b", "x = 1", stages)
    assert got.metrics == _ok().metrics and got.origin.startswith("baseline b (cached ") and cache.hits == ["b"]
    assert cache.get("b", "x = 2", stages) is None and cache.get("b", "x = 1", [("train", ("w1",))]) is None
    assert BaselineCache(tmp_path, "digest", read=False).get("b", "x = 1", stages) is None   # --fresh-baselines
    (entry,) = tmp_path.glob("*.json")
    entry.write_text("{not json")
    assert cache.get("b", "x = 1", stages) is None                      # unreadable: a miss, measured again
    cache.put("f", "x = 1", stages, _ok("f", status="failed"))
    assert cache.get("f", "x = 1", stages) is None                      # failures are never cached
    doc = {"format": 1, "program": {**json.loads(json.dumps(_ok().__dict__, default=lambda o: o.__dict__)),
                                    "source": "x = 1"}}
    entry.write_text(json.dumps(doc))
    assert cache.get("b", "x = 1", stages) is not None
