"""One trusted evaluation worker process: builds its problem, sandbox backend and ProgramScorer once, then
scores the programs its pool sends, one at a time, until the pool closes or its owner dies.

Started by evolve/run/workers.py (see there for why processes, and why forkserver). Everything here runs
in the worker; nothing here touches the lineage store.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Callable

from evolve import problem as problem_mod
from evolve.errors import AdrsError
from evolve.run.scoring import ProgramScorer


def default_sandbox(spec: problem_mod.ProblemSpec, kind: str, pool_size: int = 2):
    """A sandbox backend: a LocalSandbox, or a DockerSandbox with `pool_size` containers pre-started (per
    worker: one in use, one starting, since every workload takes a fresh container)."""
    if kind == "docker":
        from sandbox.docker import DockerSandbox, SandboxUnavailable
        try:
            return DockerSandbox(packages=spec.sandbox_packages, limits=spec.limits, pool_size=pool_size,
                                 image_hint=image_hint(spec))
        except SandboxUnavailable as e:
            raise AdrsError(f"--sandbox docker: {e}") from None
    if kind != "local":
        raise AdrsError(f"unknown sandbox '{kind}' (local or docker)")
    from sandbox.local import LocalSandbox
    return LocalSandbox()


def image_hint(spec: problem_mod.ProblemSpec) -> str:
    """The command that builds the Docker sandbox image this problem needs (on each machine that runs it)."""
    return "adrs sandbox build" + (f" --problem {spec.directory}" if spec.sandbox_packages else "")


@dataclass(frozen=True)
class WorkerSetup:
    """All a worker is given (picklable); it builds everything else itself."""

    spec_dir: str
    sandbox: str
    make_sandbox: Callable[[problem_mod.ProblemSpec, str], Any]  # module-level, so pickled by reference
    tmp_dir: str                                                  # the worker's TMPDIR, removed by the pool


class _Resources:
    """The worker's sandbox, closed exactly once: by the main thread, or by the lifeline thread."""

    def __init__(self, tmp_dir: str) -> None:
        self.tmp_dir, self.sandbox, self._lock, self.closed = tmp_dir, None, threading.Lock(), False

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            with contextlib.suppress(Exception):  # best effort on the way out
                if self.sandbox is not None:
                    self.sandbox.close()
            shutil.rmtree(self.tmp_dir, ignore_errors=True)


def build_scorer(spec_dir: str, sandbox: str, make_sandbox: Callable = default_sandbox) -> ProgramScorer:
    """What every evaluation worker (a process of WorkerPool, an actor of RayWorkerPool) builds once: its
    problem (the evaluator imported and checked, so errors show at start), sandbox backend and scorer."""
    spec = problem_mod.load(spec_dir)
    sb = make_sandbox(spec, sandbox)
    try:
        return ProgramScorer(spec, sb)
    except BaseException:
        with contextlib.suppress(Exception):
            sb.close()
        raise


def first_workloads(spec: problem_mod.ProblemSpec) -> tuple[str, ...]:
    """What the first programs are scored on, in the order they meet it: warmed as a worker starts."""
    return tuple(dict.fromkeys((*spec.workloads.quick, *spec.workloads.train)))


def answer(pe: ProgramScorer, msg: tuple) -> tuple[str, Any]:
    """One request ("score", source, stages) or ("isolation",) -> ("ok", result) or ("error", text)."""
    try:
        if msg[0] == "score":
            return "ok", pe.score(msg[1], msg[2])
        if msg[0] == "isolation":
            return "ok", pe.sandbox.isolation()
        raise ValueError(f"unknown request {msg[0]!r}")
    except Exception as e:  # noqa: BLE001 - a trusted-side bug: answered, the worker lives on
        return "error", f"{explain(e)}\n{traceback.format_exc()}"


def worker_main(setup: WorkerSetup, conn: Connection, lifeline: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the owner's to handle: it closes the pool
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # terminate(): unwind, so the sandbox is closed
    os.environ["TMPDIR"] = tempfile.tempdir = setup.tmp_dir  # everything left behind is in one folder
    res = _Resources(setup.tmp_dir)
    threading.Thread(target=_watch_lifeline, args=(lifeline, res), name="adrs-lifeline", daemon=True).start()
    try:
        try:
            pe = build_scorer(setup.spec_dir, setup.sandbox, setup.make_sandbox)
            res.sandbox = pe.sandbox
        except BaseException as e:  # noqa: BLE001 - reported to the pool, which raises it
            conn.send(("error", explain(e)))
            return
        conn.send(("ready", os.getpid()))
        pe.prepare(first_workloads(pe.spec))
        _serve_requests(conn, pe, res)
    finally:
        res.close()


def _serve_requests(conn: Connection, pe: ProgramScorer, res: _Resources) -> None:
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        reply = answer(pe, msg)
        if res.closed:  # stopping: the sandbox was closed under this request, its result is not real
            return
        conn.send(reply)


def _watch_lifeline(lifeline: Connection, res: _Resources) -> None:
    try:
        lifeline.recv_bytes()  # nothing is ever sent: this returns only by EOF
    except (EOFError, OSError):
        pass
    res.close()
    os._exit(0)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def explain(e: BaseException) -> str:
    if isinstance(e, AdrsError):
        return str(e)
    where = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
    at = f" (at {where[0].filename}:{where[0].lineno})" if where else ""
    return f"{type(e).__name__}: {e}{at}"
