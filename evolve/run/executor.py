"""Where a run's evaluations happen (`--executor`): trusted worker processes here, or Ray actors.

    starting = start_workers(cfg)        # returns at once; the workers start in a background thread
    from evolve.run import session      # ... meanwhile the caller imports the store, the loop ...
    pool = starting.result()             # a WorkerPool or RayWorkerPool, or the error that stopped it

Starting in the background is what makes a short run start fast: the fork server's imports and the workers'
sandboxes (other processes, the other core) overlap the controller's own imports (SQLAlchemy, the loop). With
the workers no longer importing SQLAlchemy (evolve/store loads it lazily), a one-iteration offline run went
from 1.35 s to 0.99 s (bench/startup.py). The thread mostly waits on pipes, so it holds the GIL little.
"""
from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future, InvalidStateError
from typing import TYPE_CHECKING

from evolve import problem as problem_mod
from evolve.config import RunConfig

if TYPE_CHECKING:
    from evolve.run.ray_pool import RayWorkerPool
    from evolve.run.workers import WorkerPool


def make_workers(cfg: RunConfig, spec: problem_mod.ProblemSpec | None = None) -> "WorkerPool | RayWorkerPool":
    """The run's evaluation backend: `eval_slots` trusted workers, each with its own evaluator and sandbox
    (started once per run, reused for every program): processes here, or Ray actors (cfg.executor)."""
    if cfg.executor == "local":  # each worker loads and checks the problem itself, and reports what fails
        from evolve.run.workers import WorkerPool
        return WorkerPool(spec.directory if spec else problem_mod.resolve(cfg.problem), cfg.sandbox, cfg.eval_slots)
    spec = spec or problem_mod.load(cfg.problem)
    from evolve.run.ray_pool import RayWorkerPool  # imports ray only when a pool is made
    address = cfg.ray_address or (cfg.executor if cfg.executor.startswith("ray://") else "")
    return RayWorkerPool(spec.directory, cfg.sandbox, cfg.eval_slots, address=address, resources=spec.resources)


def start_workers(cfg: RunConfig, spec: problem_mod.ProblemSpec | None = None) -> Future:
    """make_workers in a background thread; `.result()` gives the pool or raises what stopped it. A caller
    that gives up waiting (Ctrl-C) cancels the future, and a pool that finishes starting after that is closed,
    not leaked. Ray pools start in the caller's thread: ray.init installs signal handlers, which only the main
    thread may do, and its seconds of start-up would dwarf what overlapping saves."""
    fut: Future = Future()
    if cfg.executor != "local":
        fut.set_result(make_workers(cfg, spec))
        return fut

    def start() -> None:
        try:
            pool = make_workers(cfg, spec)
        except BaseException as e:  # noqa: BLE001 - handed to the caller, who reports it
            with contextlib.suppress(InvalidStateError):  # cancelled: nobody is waiting
                fut.set_exception(e)
            return
        try:
            fut.set_result(pool)
        except InvalidStateError:  # cancelled while starting
            pool.close()

    threading.Thread(target=start, name="adrs-start-workers", daemon=True).start()
    return fut
