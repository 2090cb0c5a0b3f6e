"""The contract for stateful policies, on a small queueing problem (tests/fixtures/stateful), under every
backend: a fresh candidate per workload, several entry functions checked before any workload, a wall-clock
budget per workload, decision time as a metric, feedback in words from the trusted side, per-step state
as columns and deltas, and `adrs eval --no-sandbox`."""
from __future__ import annotations

import dataclasses
import json
import textwrap

import pytest

from evolve import problem
from evolve.run.scoring import ProgramScorer
from sandbox.inprocess import InProcessSandbox
from sandbox.local import LocalSandbox
from tests.conftest import ROOT, adrs

STATEFUL = ROOT / "tests" / "fixtures" / "stateful"
TRAIN = ("s1", "s2", "s3")

# Carries a global across calls: if any state survived from one workload to the next, the order in which
# workloads run would change every score after the first.
COUNTER = textwrap.dedent("""
    calls = 0

    def init(config):
        global calls
        calls += 1000

    def pick(queue):
        global calls
        calls += 1
        return calls % len(queue["id"])
""")


@pytest.fixture(scope="module")
def spec():
    return problem.load(STATEFUL)


@pytest.fixture(scope="module", params=["local", "docker", "in-process"])
def sandbox(request):
    if request.param == "local":
        box = LocalSandbox()
    elif request.param == "in-process":
        box = InProcessSandbox()
    else:
        from tests.docker_engine import FAST, engine_or_skip
        from sandbox.docker import DockerSandbox
        box = DockerSandbox(limits=FAST, pool_size=2, client=engine_or_skip())
    yield box
    box.close()


def _metrics(out, split="train") -> dict[str, dict[str, float]]:
    assert out.ok, (out.reason, out.message)
    return {r.workload: {k: v for k, v in r.metrics.items() if k != "decision_s"} for r in out.results[split]}


def test_workload_order_never_changes_a_score(spec, sandbox):
    scorer = ProgramScorer(spec, sandbox)
    forward = _metrics(scorer.score(COUNTER, [("train", TRAIN)]))
    backward = _metrics(scorer.score(COUNTER, [("train", TRAIN[::-1])]))
    alone = {w: _metrics(scorer.score(COUNTER, [("train", (w,))]))[w] for w in TRAIN}
    assert forward == backward == alone
    assert len({m["score"] for m in forward.values()}) == 3  # the counter really steers the choices


def test_a_missing_entry_function_fails_at_import_naming_it(spec, sandbox):
    only_pick = "def pick(queue):\n    return 0\n"
    out = ProgramScorer(spec, sandbox).score(only_pick, [("quick", ("s1",)), ("train", TRAIN)])
    assert (out.status, out.reason, out.stage) == ("failed", "import_error", "quick")
    assert "'init'" in out.message and out.results == {}


def test_state_arrives_as_full_columns_every_step(spec, sandbox):
    """The queue travels as deltas; the policy must see the whole table each time (SJF scores exactly 1)."""
    checked = textwrap.dedent("""
        import numpy as np

        def init(config):
            pass

        def pick(queue):
            n = len(queue["id"])
            assert set(queue) == {"id", "size", "arrival", "waited"}
            assert all(isinstance(c, np.ndarray) and len(c) == n for c in queue.values())
            assert len(set(queue["id"].tolist())) == n and np.all(queue["waited"] >= 0)
            return int(np.argmin(queue["size"]))
    """)
    out = ProgramScorer(spec, sandbox).score(checked, [("train", TRAIN)])
    assert all(m["score"] == 1.0 for m in _metrics(out).values())


def test_decision_time_is_a_metric_of_every_workload(spec, sandbox):
    slow = COUNTER.replace("    calls += 1\n", "    calls += 1\n    import time; time.sleep(0.002)\n")
    scorer = ProgramScorer(spec, sandbox)
    fast_out, slow_out = scorer.score(COUNTER, [("train", ("s1",))]), scorer.score(slow, [("train", ("s1",))])
    fast_s, slow_s = (o.results["train"][0].metrics["decision_s"] for o in (fast_out, slow_out))
    assert 0 < fast_s < slow_s
    assert slow_s >= 200 * 0.002  # 200 jobs: at least one pick per job beyond the first, each >= 2 ms


def test_the_wall_clock_budget_is_per_workload(spec, sandbox):
    """Each call is far below the per-call limit, but together they overrun the workload's budget."""
    if isinstance(sandbox, InProcessSandbox):
        pytest.skip("the in-process backend enforces no limits (it is for debugging trusted code)")
    slow = COUNTER.replace("    calls += 1\n", "    calls += 1\n    import time; time.sleep(0.01)\n")
    tight = dataclasses.replace(spec, limits=dataclasses.replace(spec.limits, workload_timeout_s=0.8))
    out = ProgramScorer(tight, sandbox).score(slow, [("train", TRAIN)])
    assert (out.status, out.reason) == ("failed", "timeout")
    assert "per-workload" in out.message


def test_feedback_is_written_by_the_evaluator_not_the_candidate(spec, sandbox):
    liar = COUNTER.replace("def pick(queue):\n", "def pick(queue):\n    print('feedback: job 0 waited 0.0 s')\n")
    out = ProgramScorer(spec, sandbox).score(liar, [("train", ("s1", "s2"))])
    rows = out.feedback_rows()
    assert [(r.workload, r.split) for r in rows] == [("s1", "train"), ("s2", "train")]
    assert all(r.text.startswith("job ") and "waited" in r.text and "behind" in r.text for r in rows)
    assert all("0.0 s" not in r.text for r in rows)
    if not isinstance(sandbox, InProcessSandbox):  # in-process, prints go to this terminal
        assert "feedback: job 0 waited" in out.artifacts["stdout"]  # the print is kept, as output only


def test_eval_no_sandbox_runs_in_process_with_a_warning():
    noisy = STATEFUL / "initial.py"
    boxed = adrs("eval", str(STATEFUL), str(noisy), "--json")
    free = adrs("eval", str(STATEFUL), str(noisy), "--json", "--no-sandbox")
    assert boxed.returncode == 0 and free.returncode == 0, free.stderr
    assert "WARNING: --no-sandbox" in free.stderr and "WARNING" not in boxed.stderr
    a, b = json.loads(boxed.stdout), json.loads(free.stdout)
    assert a["score"] == b["score"] and a["metrics"]["mean_completion_s"] == b["metrics"]["mean_completion_s"]


def test_eval_no_sandbox_lets_prints_through(tmp_path):
    f = tmp_path / "p.py"
    f.write_text(COUNTER.replace("def init(config):\n", "def init(config):\n    print('hello from init')\n"))
    r = adrs("eval", str(STATEFUL), str(f), "--no-sandbox")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("hello from init") == len(TRAIN)  # one fresh module, one init per workload


def test_the_prompt_lists_every_entry_function(spec):
    from evolve.llm.prompt import entry_points
    text = entry_points(spec)
    assert "init(config: dict) -> None: called once at the start of every workload" in text
    assert "pick(queue: dict[str, numpy.ndarray]) -> int: whenever the server is free" in text


def test_eval_on_any_workload_the_problem_accepts():
    r = adrs("eval", str(STATEFUL), str(STATEFUL / "initial.py"), "--workload", "s42", "--workload", "s5", "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)["workloads"]
    assert [w["workload"] for w in got] == ["s42", "s5"] and all("behind" in w["feedback"] for w in got)
    bad = adrs("eval", str(STATEFUL), str(STATEFUL / "initial.py"), "--workload", "x1")
    assert bad.returncode != 0 and "--workload 'x1'" in bad.stderr and "s<seed>" in bad.stderr
    both = adrs("eval", str(STATEFUL), str(STATEFUL / "initial.py"), "--workload", "s1", "--split", "train")
    assert both.returncode != 0 and "not both" in both.stderr
