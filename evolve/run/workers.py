"""Trusted evaluation workers: evaluators run in a pool of processes, so pure-Python simulators use every core.

    with WorkerPool("problems/eplb", sandbox="local", workers=4) as pool:
        card = pool.score(source, [("quick", ("w0",)), ("train", ("w0", "w1"))])  # blocking, any thread
        facts = pool.isolation()

Each worker process builds once per run its own ProblemSpec, sandbox backend and ProgramScorer, then serves
one request at a time over its own Pipe; a caller takes an idle worker. A worker receives only source text
and workload ids, and answers with a Scorecard.

Not concurrent.futures.ProcessPoolExecutor: when one of its processes dies it marks itself broken, fails
every pending and in-flight future and refuses new work. Here an evaluation that kills its worker (an
evaluator OOM, a segfault in a native extension, kill -9) must cost only itself: retried once on a fresh
worker while the others go on. Owning the slot also tells which request a death belongs to.

forkserver (spawn where missing), never fork: the owner is multi-threaded (asyncio, executor threads, the
sandbox's reader threads, SQLAlchemy) and fork() copies other threads' held locks, still locked, into the
child. The fork server is single-threaded and preloads numpy and the evaluation modules once, so a worker
starts with a fork, not a fresh interpreter and its imports.

Lifetime: each worker has a thread blocked reading a "lifeline" pipe whose only writer is the owner. EOF
means the pool closed or the owner died (even by kill -9): the worker closes its sandbox (zygote,
candidates, containers) and exits. PR_SET_PDEATHSIG would not do: a forkserver worker's parent is the fork
server, under spawn it is the thread that started it. Workers ignore SIGINT: Ctrl-C reaches the whole
foreground process group, and the owner handles it by closing the pool.
"""
from __future__ import annotations

import contextlib
import glob
import itertools
import multiprocessing as mp
import multiprocessing.util
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable

from evolve import problem as problem_mod
from evolve.errors import AdrsError
from evolve.run.scoring import Scorecard
from evolve.run.worker import WorkerSetup, default_sandbox, worker_main
from evolve.terms import CandidateReason, ScoringReason, Status

Stages = list[tuple[str, tuple[str, ...]]]
START_TIMEOUT_S = 120.0  # load the spec, import the evaluator, open the sandbox (Docker: pre-start containers)
STOP_TIMEOUT_S = 20.0    # a stopping worker closes its sandbox (Docker: removes containers), then is killed
DEATH_JOIN_S = 5.0       # a worker whose pipe broke is exiting; give it this long before SIGKILL
ROOT_PREFIX = "adrs-workers-"
PRELOAD = ["__main__", "numpy", problem_mod.__name__, Scorecard.__module__, "evolve.run.worker", "sandbox.local", __name__]


class WorkerStartError(AdrsError):
    """A worker could not build its problem, evaluator or sandbox; the message is the worker's own."""


class WorkerError(AdrsError):
    """A request other than an evaluation failed in the worker (e.g. the sandbox's isolation probe)."""


@dataclass(eq=False)
class _Worker:
    slot: int
    process: Any  # multiprocessing.process.BaseProcess
    conn: Connection
    tmp_dir: str
    lock: threading.Lock = field(default_factory=threading.Lock)  # one thread reaps, others wait


@dataclass(eq=False)
class _State:
    """What close() and the exit-time finalizer share; it holds no reference to the pool itself."""

    lifeline_w: Connection  # closing it stops every worker
    lifeline_r: Connection  # handed to each worker started
    tmp_root: str
    workers: dict[int, _Worker] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False


class _WorkerGone(Exception):
    """The worker serving a request died, or could not be restarted; the message says how."""


class ServingPool:
    """score() and isolation() over a pool's `_serve(request) -> (kind, payload, losses)`, where a lost worker is
    replaced and its request served once more: shared by the process pool and the Ray pool."""

    fresh = "a fresh worker"   # where a retried request ran, for the `retried` note
    _isolation: dict[str, str] | None = None

    def _serve(self, request: tuple) -> tuple[str, Any, list[str]]:
        raise NotImplementedError

    def score(self, source: str, stages: Stages) -> Scorecard:
        """Score a program on an idle worker, like ProgramScorer.score. A worker that dies is replaced and
        the program retried once; a second death is a failed Scorecard (reason infrastructure), never an
        exception."""
        kind, payload, losses = self._serve(("score", source, [(s, tuple(ids)) for s, ids in stages]))
        return served_scorecard(stages, kind, payload, losses, self.fresh)

    def isolation(self) -> dict[str, str]:
        """The isolation facts of a worker's sandbox (all workers build the same kind), for the run record."""
        if self._isolation is None:
            kind, payload, _ = self._serve(("isolation",))
            if kind != "ok":
                raise WorkerError(f"sandbox isolation facts: {payload}")
            self._isolation = dict(payload)
        return dict(self._isolation)


class WorkerPool(ServingPool):
    """Thread-safe; `workers` calls run at once, further callers wait for an idle worker."""

    def __init__(self, spec_dir: Path | str, sandbox: str = "local", workers: int = 2, *,
                 make_sandbox: Callable = default_sandbox, start_timeout_s: float = START_TIMEOUT_S) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._ctx = _context()
        reader, writer = self._ctx.Pipe(duplex=False)
        _remove_orphan_roots()
        tmp_root = tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-")
        os.chmod(tmp_root, 0o711)  # sandboxed candidates (another uid, as root) must reach their dirs below
        self._state = _State(writer, reader, tmp_root)
        self._spec_dir, self._sandbox, self._make_sandbox = str(Path(spec_dir).resolve()), sandbox, make_sandbox
        self._start_timeout_s = start_timeout_s
        self._idle: queue.Queue[int] = queue.Queue()
        self._generation = itertools.count()
        self._isolation: dict[str, str] | None = None
        # Runs on close(), on garbage collection, and at exit before multiprocessing joins its children.
        self._finalizer = mp.util.Finalize(self, _shutdown, args=(self._state,), exitpriority=10)
        _at_threading_exit(self._finalizer)
        try:
            started = [self._spawn(slot) for slot in range(workers)]  # they initialise in parallel
            for w in started:
                self._await_ready(w)
        except BaseException:
            self.close()
            raise
        for slot in range(workers):
            self._idle.put(slot)

    # ------------------------------------------------------------ public

    def pids(self) -> list[int]:
        """The worker processes' ids, by slot."""
        with self._state.lock:
            return [w.process.pid for _, w in sorted(self._state.workers.items())]

    def close(self) -> None:
        """Stop every worker (each closes its sandbox first); idempotent."""
        self._finalizer()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ requests

    def _serve(self, msg: tuple) -> tuple[str, Any, list[str]]:
        """Send msg to an idle worker and return (kind, payload, deaths); kind is ok, error (the worker raised)
        or gone (no worker could answer). A worker that dies is restarted and the request sent once more."""
        slot = self._take()
        if slot is None:
            return "gone", "the evaluation pool is closed", []
        deaths: list[str] = []
        try:
            while len(deaths) < 2:
                try:
                    kind, payload = self._request(slot, msg)
                    return kind, payload, deaths
                except _WorkerGone as e:
                    if self._state.closed:
                        return "gone", "the evaluation pool was closed during the request", deaths
                    deaths.append(str(e))
            return "gone", f"{deaths[1]} (also on the retry)", deaths
        finally:
            self._idle.put(slot)

    def _take(self) -> int | None:
        while not self._state.closed:
            try:
                return self._idle.get(timeout=0.2)
            except queue.Empty:
                pass
        return None

    def _request(self, slot: int, msg: tuple) -> tuple[str, Any]:
        w = self._live(slot)
        try:
            w.conn.send(msg)
            reply = w.conn.recv()
        except (EOFError, OSError):
            raise _WorkerGone(f"{_stop(w, DEATH_JOIN_S)} during the request") from None
        if self._state.closed:  # the stopping worker killed the candidate: its verdict must not count
            raise _WorkerGone("the evaluation pool was closed during the request")
        return reply

    def _live(self, slot: int) -> _Worker:
        """The slot's worker, restarted first if it has died (since its last job, or during it)."""
        w = self._state.workers[slot]
        if w.process.is_alive():
            return w
        _stop(w, DEATH_JOIN_S)
        try:
            w = self._spawn(slot)
            self._await_ready(w)
        except _WorkerGone:
            raise
        except Exception as e:  # noqa: BLE001 - e.g. the spec was removed: this request fails, the run goes on
            raise _WorkerGone(f"could not restart the evaluation worker: {e}") from None
        return w

    # ------------------------------------------------------------ worker start

    def _spawn(self, slot: int) -> _Worker:
        tmp = tempfile.mkdtemp(prefix=f"w{slot}-{next(self._generation)}-", dir=self._state.tmp_root)
        os.chmod(tmp, 0o711)
        ours, theirs = self._ctx.Pipe()
        setup = WorkerSetup(self._spec_dir, self._sandbox, self._make_sandbox, tmp)
        proc = self._ctx.Process(target=worker_main, args=(setup, theirs, self._state.lifeline_r),
                                 name=f"adrs-eval-worker-{slot}")
        with self._state.lock:  # so that close() cannot miss a worker started concurrently
            if self._state.closed:
                raise _WorkerGone("the evaluation pool is closed")
            proc.start()
            w = self._state.workers[slot] = _Worker(slot, proc, ours, tmp)
        theirs.close()  # the worker's end lives in the worker only, so its death reads as EOF here
        return w

    def _await_ready(self, w: _Worker) -> None:
        if not wait([w.conn, w.process.sentinel], self._start_timeout_s):
            _stop(w, 0)
            raise WorkerStartError(f"evaluation worker {w.process.pid} did not start in {self._start_timeout_s:g} s")
        try:
            kind, payload = w.conn.recv()
        except (EOFError, OSError):
            raise WorkerStartError(f"evaluation worker could not start: {_stop(w, DEATH_JOIN_S)}") from None
        if kind != "ready":
            _stop(w, STOP_TIMEOUT_S)
            raise WorkerStartError(f"evaluation worker could not start: {payload}")


# ---------------------------------------------------------------- owner side helpers

def _context():
    methods = mp.get_all_start_methods()
    if "forkserver" not in methods:
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # no effect if the fork server already runs: it preloaded before
    return ctx


def _at_threading_exit(fn: Callable[[], Any]) -> None:
    """Also stop the workers when the main thread ends (e.g. by Ctrl-C), before the interpreter joins the
    executor threads: those may be blocked in score() until the workers are gone, and plain atexit
    handlers run only after that join."""
    register = getattr(threading, "_register_atexit", None)
    with contextlib.suppress(RuntimeError):  # RuntimeError: already shutting down
        if register is not None:
            register(fn)


def _remove_orphan_roots() -> None:
    """Folders of pools whose owner was killed with -9 (its workers then empty them, but the folder stays)."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), f"{ROOT_PREFIX}*-*")):
        pid = os.path.basename(path)[len(ROOT_PREFIX):].split("-", 1)[0]
        try:
            if pid.isdigit() and os.stat(path).st_uid == os.getuid() and not os.path.exists(f"/proc/{pid}"):
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


def _stop(w: _Worker, timeout: float) -> str:
    """Reap a worker (SIGKILL after `timeout`) and what its sandbox left running, drop its pipe and folder;
    say how it ended."""
    with w.lock:
        w.process.join(timeout)
        if w.process.exitcode is None:
            w.process.kill()
            w.process.join()
        w.conn.close()
        _await_leftovers(w.tmp_dir, DEATH_JOIN_S)
        shutil.rmtree(w.tmp_dir, ignore_errors=True)
        return _describe_exit(w.process.pid, w.process.exitcode)


def _await_leftovers(folder: str, timeout: float) -> None:
    """Wait for a dead worker's zygote and candidates (they run in its folder) to finish their own cleanup,
    then SIGKILL any left. Why: that cleanup needs the folder, and it kills every process of the dead
    worker's candidate uids, whose leases (file locks) died with the worker: a fresh worker may get them."""
    deadline = time.monotonic() + timeout
    while (left := _processes_in(folder)) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _processes_in(folder: str) -> list[int]:
    def cwd(pid: str) -> str:
        with contextlib.suppress(OSError):
            return os.readlink(f"/proc/{pid}/cwd")
        return ""
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and (cwd(p) + "/").startswith(folder + "/")]


def _describe_exit(pid: int, code: int | None) -> str:
    if code is None or code >= 0:
        return f"evaluation worker {pid} exited with code {code}"
    name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
    hint = " (out of memory, or killed from outside)" if -code == signal.SIGKILL else ""
    return f"evaluation worker {pid} was killed by {name}{hint}"


def _shutdown(state: _State) -> None:
    with state.lock:
        state.closed = True
        workers = list(state.workers.values())
    state.lifeline_w.close()  # EOF in every worker: each closes its sandbox and exits
    state.lifeline_r.close()
    for w in workers:
        _stop(w, STOP_TIMEOUT_S)
    shutil.rmtree(state.tmp_root, ignore_errors=True)


def served_scorecard(stages: Stages, kind: str, payload: Any, losses: list[str], fresh: str) -> Scorecard:
    """What a pool's score() returns for one served request: the worker's Scorecard, or a failed one
    (evaluator_error, or infrastructure once the retry was lost too); a retry after a lost worker is noted as
    ProgramScorer notes a retried sandbox failure. Shared by the process pool and the Ray pool."""
    if kind == "ok":
        out = payload
    else:
        reason = ScoringReason.EVALUATOR_ERROR if kind == "error" else CandidateReason.INFRASTRUCTURE
        out = _failed(stages, reason, payload)
    if losses:
        note = f"infrastructure failure, retried once on {fresh}: {losses[0]}"
        prior = out.artifacts.get("retried")
        out.artifacts["retried"] = f"{prior}; {note}" if prior else note
    return out


def _failed(stages: Stages, reason: str, message: str) -> Scorecard:
    first = message.strip().splitlines()[0] if message.strip() else reason
    out = Scorecard(status=Status.FAILED, stage=stages[0][0] if stages else "", reason=reason, message=first)
    if message.strip() != first:
        out.artifacts["traceback"] = message
    return out
