"""One run, start to finish: create or reopen its store, wire sandbox, proposer and evaluator, run the loop,
then score the finalists on held-out workloads. The CLI is a thin layer over this module."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import platform
import re
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from evolve import problem as problem_mod
from evolve.config import RunConfig
from evolve.run.controller import Controller, LoopStats
from evolve.errors import AdrsError
from evolve.run.scoring import ProgramScorer
from evolve.run.worker import default_sandbox
from evolve.run.workers import ServingPool
from evolve.run.reference_cache import ReferenceCache
from evolve.run.holdout import score_final
from evolve.run.progress import Progress
from evolve.search.proposer import MutatorProposer, Proposer
from evolve.store import Run, Store, sqlite_url

DB_NAME = "lineage.db"
FINAL = ("finished", "interrupted", "failed")   # a run's status once it has ended
NOT_REPRODUCIBLE = ("not reproducible: commits in completion order, so which parent each iteration draws "
                    "depends on evaluation timing")


@dataclass
class RunHandle:
    run_id: str
    run_dir: Path
    store: Store
    cfg: RunConfig
    spec: problem_mod.ProblemSpec


def versions() -> dict[str, str]:
    import numpy

    from evolve import __version__
    from evolve.store import SQLALCHEMY_VERSION
    return {"adrs": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
            "sqlalchemy": SQLALCHEMY_VERSION}


def make_sandbox(cfg: RunConfig, spec: problem_mod.ProblemSpec | None = None):
    """One sandbox backend in this process (for `adrs eval` and `doctor`); runs use executor.make_workers."""
    spec = spec or problem_mod.load(cfg.problem, check_evaluator=False)
    return default_sandbox(spec, cfg.sandbox, pool_size=2 * cfg.eval_slots)


def new_run_id(spec_name: str, seed: int, runs_dir: Path) -> str:
    base = f"{spec_name}-{time.strftime('%Y%m%d-%H%M%S')}-s{seed}"
    rid, n = base, 1
    while (runs_dir / rid).exists():
        n += 1
        rid = f"{base}-{n}"
    return rid


def create(cfg: RunConfig, sandbox) -> RunHandle:
    spec = problem_mod.load(cfg.problem)
    runs_dir = Path(cfg.runs_dir)
    run_id = cfg.run_id or new_run_id(spec.name, cfg.seed, runs_dir)
    if not re.fullmatch(r"[A-Za-z0-9._-]+", run_id):
        raise AdrsError(f"run id '{run_id}': use letters, digits, '.', '_' and '-' only")
    run_dir = runs_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    store = Store(cfg.db or sqlite_url(run_dir / DB_NAME), create=True)
    cfg = dataclasses.replace(cfg, run_id=run_id)
    store.create_run(Run(id=run_id, problem=spec.name, problem_dir=str(spec.directory), seed=cfg.seed,
                         config=cfg.to_json(), sandbox=cfg.sandbox,
                         isolation=json.dumps({**sandbox.isolation(), **_trust(spec)}, sort_keys=True),
                         versions=json.dumps(versions(), sort_keys=True), created_at=time.time()),
                     detail=NOT_REPRODUCIBLE if cfg.order == "completion" else "")
    return RunHandle(run_id, run_dir, store, cfg, spec)


def _trust(spec: problem_mod.ProblemSpec) -> dict[str, str]:
    """Recorded with the isolation facts (the report shows them) when the evaluator runs beside the candidate."""
    if not spec.sandboxed_evaluator:
        return {}
    return {"scores": "trust = sandboxed-evaluator: the problem's evaluator runs inside the sandbox next to the "
                      "candidate, so its scores are only as honest as that evaluator (a candidate can reach it)"}


def open_run(target: str, db: str = "", run_id: str = "") -> RunHandle:
    """A run folder (runs/<id>), or a run id inside a database given with --db."""
    store, rid, run_dir = locate(target, db, run_id)
    run = store.run(rid)
    cfg = RunConfig.from_json(run.config)
    spec = problem_mod.load(run.problem_dir)
    return RunHandle(rid, run_dir, store, cfg, spec)


def locate(target: str, db: str = "", run_id: str = "") -> tuple[Store, str, Path]:
    """The store, run id and run folder of a run, without loading its problem (which may live elsewhere)."""
    path = Path(target)
    if db:
        store, rid, run_dir = Store(db), run_id or path.name, path
    else:
        dbfile = path / DB_NAME if path.is_dir() else path
        if not dbfile.is_file():
            raise AdrsError(f"{target}: no run here (expected {dbfile})")
        store = Store(sqlite_url(dbfile))
        runs = store.runs()
        if not runs:
            raise AdrsError(f"{dbfile}: holds no run")
        rid, run_dir = run_id or runs[-1].id, dbfile.parent
    store.run(rid)  # a clear error if the id is not there
    return store, rid, run_dir


class Stopped(KeyboardInterrupt):
    """A signal that ends a run (SIGTERM, SIGHUP), raised in the main thread as Ctrl-C raises KeyboardInterrupt
    (a kind of it, so asyncio and every cleanup path treat it the same), so `finally` blocks close the workers
    and the store records the run's final status."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _raise_stopped(signum: int, frame) -> None:
    for s in STOP_SIGNALS:   # once is enough: a second signal must not break the cleanup the first started
        signal.signal(s, signal.SIG_IGN)
    raise Stopped(signum)


@contextmanager
def stop_signals():
    """While a run runs, SIGTERM and SIGHUP raise Stopped instead of ending the process on the spot (which would
    leave its status "started"). Only the main thread can install handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _raise_stopped) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def exit_code(exc: BaseException) -> int:
    """The shell's convention: 128 + the signal that ended the run (Ctrl-C 130, SIGTERM 143, SIGHUP 129, a closed
    pipe 141)."""
    if isinstance(exc, Stopped):
        return 128 + exc.signum
    if isinstance(exc, BrokenPipeError):
        return 128 + signal.SIGPIPE
    return 130 if isinstance(exc, KeyboardInterrupt) else 1


def _ending(exc: BaseException, at: str) -> tuple[str, str]:
    if isinstance(exc, Stopped):
        return "interrupted", f"{exc} {at}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", f"SIGINT (Ctrl-C) {at}"
    if isinstance(exc, BrokenPipeError):
        return "interrupted", f"output closed (broken pipe) {at}"
    if isinstance(exc, AdrsError):
        return "failed", str(exc)
    return "failed", f"{type(exc).__name__}: {exc} {at}"


def record_end(h: RunHandle, exc: BaseException) -> str:
    """Record how the run ended (a signal, a closed pipe, an error) unless a final status is already recorded
    since it last started or resumed; returns the status kind."""
    events = h.store.events(h.run_id)
    if events and events[-1].kind in FINAL:
        return events[-1].kind
    last = h.store.last_iteration(h.run_id)
    kind, detail = _ending(exc, f"at iteration {last}" if last >= 0 else "before the initial program was scored")
    h.store.add_event(h.run_id, kind, detail)
    return kind


def execute(h: RunHandle, backend, proposer: Proposer | None, console: Console, resumed: bool) -> LoopStats:
    """Run (or continue) the loop and the final held-out scoring. However it ends (Ctrl-C, a signal under
    stop_signals, a closed pipe, an error), the run's final status is recorded and the exception re-raised.
    `backend`: a WorkerPool or RayWorkerPool (executor.make_workers), or a sandbox to score in threads of this process."""
    scorer = backend if isinstance(backend, ServingPool) else ProgramScorer(h.spec, backend)
    cache = ReferenceCache.for_run(h.cfg.runs_dir, h.spec, h.cfg.sandbox, read=h.cfg.baseline_cache)
    ctl = Controller(h.spec, h.cfg, h.store, h.run_id, proposer or MutatorProposer(), scorer.score, cache=cache)
    ctl.stop_hooks.append(ctl.proposer.stop_reason)  # e.g. the LLM proposer's cost budget
    if resumed:
        h.store.add_event(h.run_id, "resumed", f"from iteration {h.store.last_iteration(h.run_id)}")
    try:
        with Progress(console, h.cfg.iterations, h.run_id) as prog:
            ctl.on_commit = prog.on_commit
            stats = asyncio.run(ctl.run())
        console.print(f"search stopped by {ctl.stopped_by}; scoring finalists and baselines on held-out workloads")
        asyncio.run(score_final(h.spec, h.store, h.run_id, scorer.score, h.cfg.eval_slots, h.cfg.final_top_k,
                                cache))
        if cache.hits:
            console.print(f"cached by an earlier run of this problem version: {', '.join(dict.fromkeys(cache.hits))}"
                          " (--fresh-baselines measures them again)")
    except BaseException as e:
        try:
            record_end(h, e)
        except Exception:  # the store itself failed: the original error is the one to see
            pass
        raise
    h.store.add_event(h.run_id, "finished", ctl.stopped_by)
    return stats
