"""The evaluation worker pool: same scores as in-process scoring, concurrency, worker deaths, start errors,
clean shutdown (close, owner killed, Ctrl-C)."""
from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from evaluators.base import DECISION_METRIC
from evolve import problem as problem_mod
from evolve.run.scoring import ProgramScorer
from evolve.run.workers import WorkerPool, WorkerStartError
from sandbox.local import LocalSandbox

ROOT = Path(__file__).resolve().parent.parent
TOY = ROOT / "tests" / "fixtures" / "toy"
CPU_TOY = ROOT / "tests" / "fixtures" / "cpu_toy"

SPEC = problem_mod.load(TOY)
STAGES = [("quick", SPEC.workloads.quick), ("train", SPEC.workloads.train)]


def quadratic(a: float, b: float, c: float, sleep_s: float = 0.0) -> str:
    return textwrap.dedent(f"""
        import time
        def predict(xs):
            time.sleep({sleep_s})
            return [{a} * x * x + {b} * x + {c} for x in xs]
        """)


SOURCES = {
    "initial": SPEC.initial_source(),
    "exact": quadratic(3, -2, 1),
    "close": quadratic(2.9, -2, 1.1),
    "raises": "def predict(xs):\n    raise ValueError('no')\n",
    "wrong_shape": "def predict(xs):\n    return [1.0]\n",
    "no_entry": "def something_else(xs):\n    return xs\n",
}


def comparable(card) -> tuple:
    """What must not depend on where a program was scored (decision time is measured, so noisy)."""
    results = {split: [(r.workload, {m: v for m, v in r.metrics.items() if m != DECISION_METRIC}) for r in rs]
               for split, rs in card.results.items()}
    return card.status, card.stage, card.reason, card.message, results


@pytest.fixture(scope="module")
def in_process():
    sandbox = LocalSandbox()
    yield ProgramScorer(SPEC, sandbox)
    sandbox.close()


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(TOY, "local", workers=2) as p:
        yield p


def descendants(pid: int) -> set[int]:
    """Every live process below pid (from /proc), so a test can check none survives."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphaned zombie waits for init, which may be slow to reap here)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while (left := {p for p in pids if running(p)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_pool_scores_equal_in_process_scores(pool, in_process):
    for name, src in SOURCES.items():
        assert comparable(pool.score(src, STAGES)) == comparable(in_process.score(src, STAGES)), name
    assert pool.score(SOURCES["exact"], STAGES).mean("train", "score") == 1.0


def test_concurrent_calls_from_threads_all_come_back_right(pool, in_process):
    sources = [quadratic(a / 4, -2, 1) for a in range(12)]
    expected = [comparable(in_process.score(s, STAGES)) for s in sources]
    with ThreadPoolExecutor(max_workers=6) as ex:  # more callers than workers: the rest wait their turn
        got = list(ex.map(lambda s: comparable(pool.score(s, STAGES)), sources))
    assert got == expected
    assert len({g[4]["train"][0][1]["mse"] for g in got}) == 12


def test_isolation_facts_come_from_a_worker_sandbox(pool):
    facts = pool.isolation()
    assert facts["backend"].startswith("local")
    assert facts == pool.isolation()


def test_killed_worker_is_retried_on_a_fresh_worker():
    with WorkerPool(TOY, workers=1) as p:
        [pid] = p.pids()
        box: list = []
        t = threading.Thread(target=lambda: box.append(p.score(quadratic(3, -2, 1, sleep_s=0.3), STAGES)))
        t.start()
        time.sleep(0.4)  # the first of three 0.3 s workloads is running
        os.kill(pid, signal.SIGKILL)
        t.join(30)
        [card] = box
        assert card.ok and card.mean("train", "score") == 1.0
        assert "SIGKILL" in card.artifacts["retried"] and str(pid) in card.artifacts["retried"]
        assert p.pids() != [pid] and not running(pid)
        assert p.score(SOURCES["exact"], STAGES).ok


KILLER_EVALUATOR = '''
import os, signal
from pathlib import Path
from evaluators.base import Evaluator, WorkloadResult

class Killer(Evaluator):
    """Dies (as an evaluator OOM would) when the candidate answers -1; scores anything else 1."""
    def check_workload(self, workload_id):
        pass
    def evaluate(self, candidate, workload_id):
        if candidate.call("predict", [0.0]) == [-1]:
            os.kill(os.getpid(), signal.SIGKILL)
        return WorkloadResult(workload_id, {"score": 1.0, "mse": 0.0})

def make_evaluator(params, problem_dir):
    return Killer()
'''


def test_worker_dying_on_every_try_is_an_infrastructure_failure(toy_copy):
    (toy_copy / "evaluator.py").write_text(KILLER_EVALUATOR)
    with WorkerPool(toy_copy, workers=1) as p:
        first = p.pids()
        card = p.score("def predict(xs):\n    return [-1]\n", STAGES)
        assert (card.status, card.reason, card.stage) == ("failed", "infrastructure", "quick")
        assert "SIGKILL" in card.message and "also on the retry" in card.message
        assert "retried once" in card.artifacts["retried"]
        assert p.score(SOURCES["exact"], STAGES).ok  # the run goes on, on a third worker
        assert p.pids() != first


@pytest.mark.parametrize("evaluator, expected", [
    ("import no_such_module_for_adrs_tests\n", "no_such_module_for_adrs_tests"),
    ("def make_evaluator(params, problem_dir):\n    raise RuntimeError('bad params here')\n", "bad params here"),
    ("def make_evaluator(params, problem_dir:\n", "SyntaxError"),
])
def test_broken_evaluator_is_a_clear_error_at_start(toy_copy, evaluator, expected):
    (toy_copy / "evaluator.py").write_text(evaluator)
    before = set(multiprocessing.active_children())  # the module's pool has workers too
    t0 = time.monotonic()
    with pytest.raises(WorkerStartError, match=expected) as e:
        WorkerPool(toy_copy, workers=2)
    assert "could not start" in str(e.value) and time.monotonic() - t0 < 30
    assert set(multiprocessing.active_children()) <= before


def test_unknown_sandbox_kind_is_a_clear_error_at_start():
    with pytest.raises(WorkerStartError, match="unknown sandbox 'vm'"):
        WorkerPool(TOY, "vm", workers=1)


def test_close_stops_every_worker_and_sandbox_process():
    p = WorkerPool(TOY, workers=2)
    with ThreadPoolExecutor(2) as ex:  # both workers start their zygotes
        assert all(c.ok for c in ex.map(lambda _: p.score(SOURCES["exact"], STAGES), range(4)))
    procs = {pid for w in p.pids() for pid in {w, *descendants(w)}}
    assert len(procs) >= 4  # two workers, and each one's sandbox zygote
    tmp_root = p._state.tmp_root
    p.close()
    p.close()  # idempotent
    assert wait_gone(procs) == set()
    assert not Path(tmp_root).exists()
    card = p.score(SOURCES["exact"], STAGES)
    assert (card.status, card.reason) == ("failed", "infrastructure") and "closed" in card.message


def test_close_during_an_evaluation_returns_promptly():
    p = WorkerPool(TOY, workers=1)
    box: list = []
    t = threading.Thread(target=lambda: box.append(p.score(quadratic(3, -2, 1, sleep_s=5), STAGES)))
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    p.close()
    t.join(10)
    assert time.monotonic() - t0 < 5 and box and box[0].reason == "infrastructure"


OWNER_SCRIPT = '''
import json, os, sys, time
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, {root!r})
from evolve.run.workers import WorkerPool

if __name__ == "__main__":
    pool = WorkerPool({toy!r}, workers=2)
    ex = ThreadPoolExecutor(2)
    slow = "import time\\ndef predict(xs):\\n    time.sleep(60)\\n    return xs\\n"
    future = ex.submit(pool.score, slow, [("train", ("w0",))])
    time.sleep(1.0)  # one worker is inside a 60 s evaluation, the other waits for work
    print(json.dumps(pool.pids()), flush=True)
    try:
        future.result()
    except KeyboardInterrupt:
        time.sleep(1.0)  # as the CLI records the interruption in the store, before it exits
        raise
'''


def start_owner(toy_copy: Path) -> tuple[subprocess.Popen, set[int]]:
    """A process that owns a pool of two workers, one inside a 60 s evaluation (limits raised to allow it)."""
    toml = toy_copy / "problem.toml"
    text, n = re.subn(r"(call|workload)_timeout_s = \d+", r"\1_timeout_s = 100", toml.read_text())
    assert n == 2, "the toy fixture's [limits] changed: update this test"
    toml.write_text(text)
    script = toy_copy.parent / "owner.py"
    script.write_text(OWNER_SCRIPT.format(root=str(ROOT), toy=str(toy_copy)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    workers = json.loads(proc.stdout.readline())
    procs = {pid for w in workers for pid in {w, *descendants(w)}}
    assert len(procs) >= 4  # two workers, the busy one's zygote and candidate
    return proc, procs


@pytest.mark.slow
def test_workers_exit_when_their_owner_is_killed(toy_copy):
    proc, procs = start_owner(toy_copy)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert wait_gone(procs) == set()


@pytest.mark.slow
def test_ctrl_c_stops_workers_quietly_and_does_not_wait_for_evaluations(toy_copy):
    proc, procs = start_owner(toy_copy)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends: the whole foreground group
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 20  # not the 60 s of the evaluations in flight
    assert err.count("Traceback") == 1 and err.count("KeyboardInterrupt") == 1, err  # the owner's only
    assert wait_gone(procs) == set()


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far (its own threads, not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_cpu_bound_evaluator_work_runs_in_every_worker_not_in_the_owner():
    """Load-independent evidence of parallelism (the wall-clock speedup is bench/eval_workers.py's job):
    the pure-Python evaluator's CPU is spent in the worker processes, shared between them, not under the
    owner's GIL."""
    spec = problem_mod.load(CPU_TOY)
    stages = [("quick", spec.workloads.quick), ("train", spec.workloads.train)]
    with WorkerPool(CPU_TOY, workers=2) as p, ThreadPoolExecutor(2) as ex:
        list(ex.map(lambda _: p.score(spec.initial_source(), stages), range(2)))  # warm up
        before = {pid: cpu_s(pid) for pid in p.pids()}
        owner_before = time.process_time()
        cards = list(ex.map(lambda _: p.score(spec.initial_source(), stages), range(6)))
        owner = time.process_time() - owner_before
        spent = [cpu_s(pid) - t for pid, t in before.items()]
    assert all(c.ok for c in cards) and len({c.mean("train", "score") for c in cards}) == 1
    assert sum(spent) > 0.5  # about 0.2 s of evaluator CPU per evaluation
    assert min(spent) > 0.2 * sum(spent), spent
    assert owner < 0.1 * sum(spent), (owner, spent)


PREPARING_EVALUATOR = '''
import os, threading
from evaluators.base import Evaluator, WorkloadResult

def _log(line):
    with open(LOG, "a") as f:
        f.write(line + "\\n")

class Preparing(Evaluator):
    """Logs what it prepares and which instance evaluates; preparing w1 fails when asked to."""
    def check_workload(self, workload_id):
        pass
    def prepare(self, workload_id):
        if workload_id == FAILS:
            raise RuntimeError("cannot prepare")
        _log(f"prepare {os.getpid()} {id(self)} {workload_id} {threading.current_thread().name}")
    def evaluate(self, candidate, workload_id):
        _log(f"evaluate {os.getpid()} {id(self)} {workload_id}")
        return WorkloadResult(workload_id, {"score": 1.0, "mse": 0.0})

def make_evaluator(params, problem_dir):
    return Preparing()
'''


@pytest.mark.parametrize("fails", ["", "w1"])
def test_workers_warm_the_first_workloads_and_score_with_that_evaluator(toy_copy, tmp_path, fails):
    """Each worker prepares quick then train workloads (once each, in a background thread) as it starts; the
    first program is scored by the evaluator that was warmed. A workload that fails to prepare is scored (and
    any error reported) as usual."""
    log = tmp_path / "log"   # named in the source: workers fork from a fork server started before this test
    (toy_copy / "evaluator.py").write_text(f"LOG, FAILS = {str(log)!r}, {fails!r}\n" + PREPARING_EVALUATOR)
    with WorkerPool(toy_copy, workers=2) as p:
        pids = p.pids()
        assert all(c.ok for c in [p.score(SOURCES["exact"], STAGES) for _ in range(2)])
    lines = [ln.split() for ln in log.read_text().splitlines()]
    for pid in pids:
        prepared = [ln for ln in lines if ln[0] == "prepare" and ln[1] == str(pid)]
        expected = ["w0"] if fails == "w1" else ["w0", "w1", "w2"]   # quick w0 is also train: once
        assert [ln[3] for ln in prepared] == expected and {ln[4] for ln in prepared} == {"adrs-prepare"}
        evaluators = {ln[2] for ln in lines if ln[0] == "evaluate" and ln[1] == str(pid)}
        assert evaluators <= {prepared[0][2]}   # the warmed instance, and no other
    assert sum(ln[0] == "evaluate" for ln in lines) == 2 * 3
