"""Starting a run's workers in the background (evolve/run/executor.py): the pool or the error that stopped
it comes back through the future; a pool whose caller gave up is closed, not leaked; and the workers never
import SQLAlchemy, which is what lets their start overlap the controller's imports."""
from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading

import pytest

from evolve import config as cfgmod
from evolve.run.executor import start_workers
from evolve.errors import AdrsError
from evolve.run.workers import WorkerPool
from tests.conftest import ROOT, TOY


def _cfg(problem) -> cfgmod.RunConfig:
    return cfgmod.build({"problem": str(problem), "eval_slots": 2}, "test")


def test_the_pool_comes_back_through_the_future_and_scores():
    starting = start_workers(_cfg(TOY))
    pool = starting.result(timeout=120)
    try:
        assert isinstance(pool, WorkerPool) and len(pool.pids()) == 2
        source = (TOY / "initial.py").read_text()
        assert pool.score(source, [("train", ("w0",))]).ok
    finally:
        pool.close()


def test_a_worker_that_cannot_start_raises_from_result(toy_copy):
    (toy_copy / "evaluator.py").write_text("def make_evaluator(params, problem_dir):\n"
                                           "    raise RuntimeError('bad params here')\n")
    before = set(multiprocessing.active_children())
    with pytest.raises(AdrsError, match="bad params here"):  # raised in the thread, handed over
        start_workers(_cfg(toy_copy)).result(timeout=120)
    assert set(multiprocessing.active_children()) <= before


def test_a_pool_started_after_its_caller_gave_up_is_closed():
    before = set(multiprocessing.active_children())  # other tests' pools may be alive
    starting = start_workers(_cfg(TOY))
    assert starting.cancel()  # as the CLI does on Ctrl-C while waiting
    (thread,) = [t for t in threading.enumerate() if t.name == "adrs-start-workers"]
    thread.join(120)   # it finishes starting the pool, finds nobody waiting, and closes it
    assert not thread.is_alive()
    assert set(multiprocessing.active_children()) <= before


def test_the_workers_modules_do_not_import_sqlalchemy():
    code = ("import sys, evolve.run.worker, evolve.run.workers, evolve.run.scoring, evolve.run.executor, "
            "sandbox.local; print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
