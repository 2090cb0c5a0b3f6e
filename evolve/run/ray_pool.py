"""Trusted evaluation workers as Ray actors, spread over a Ray cluster's nodes; the interface of WorkerPool.

    with RayWorkerPool("problems/eplb", sandbox="local", workers=8, address="ray://head:10001") as pool:
        card = pool.score(source, [("quick", ("w0",)), ("train", ("w0", "w1"))])  # blocking, any thread

One actor per slot (evolve/run/ray_actor.py), created once per run and reused; each reserves the problem's
[resources] (cpus, memory_mib, gpus), so Ray places it on a node that has them, and the SPREAD strategy
puts the actors on different nodes where it can. The controller stays the only writer of the store, and
the LLM calls stay in its process: an actor gets source text and workload ids, and returns a Scorecard.

address: "" starts a local Ray for the run (its CPUs = workers x cpus per actor; no dashboard; a small
object store, as only source text and scorecards travel), shut down by close(); otherwise an existing
cluster (auto, HOST:PORT, ray://HOST:PORT) that close() leaves running.

Faults: an actor or its node lost during an evaluation (its process killed, the raylet killed, the machine
gone: Ray's ActorDiedError, NodeDiedError, WorkerCrashedError, ObjectLostError...) costs only that
evaluation: the actor is recreated (Ray picks a node with room) and the evaluation retried once; if that
fails too, the Scorecard is an `infrastructure` failure and the run goes on. A slot whose actor cannot be
recreated within the start timeout is retired; the others go on. A candidate's own failure is an ordinary
Scorecard, never retried.

Ray is imported only here, only when a pool is made: `adrs --help` and local runs never load it.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import math
import queue
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from evolve import problem as problem_mod
from evolve.errors import AdrsError
from evolve.run.ray_actor import ActorSetup, EvalActor, NodeInfo, problem_digest
from evolve.run.worker import default_sandbox
from evolve.run.workers import START_TIMEOUT_S, STOP_TIMEOUT_S, ServingPool, WorkerStartError

OBJECT_STORE_BYTES = 128 * 2 ** 20  # only source text and scorecards go through it
INSTALL_HINT = "pip install 'adrs[ray]'"
CLIENT_ATTEMPTS = 3  # Ray Client connections: a failed start of the server's per-client process is retried


def import_ray():
    try:
        import ray
    except ImportError:
        raise AdrsError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


@dataclass(eq=False)
class _Slot:
    index: int
    actor: Any = None            # the Ray actor handle; None while retired
    node: NodeInfo | None = None
    alive: bool = False          # False: lost; recreated by the next request
    busy: bool = False


class _ActorLost(Exception):
    """The actor serving a request was lost, or could not be recreated; the message says how."""


class RayWorkerPool(ServingPool):
    """Thread-safe; `workers` calls run at once, further callers wait for an idle actor."""

    fresh = "a fresh Ray actor"

    def __init__(self, spec_dir: Path | str, sandbox: str = "local", workers: int = 2, *, address: str = "",
                 resources: problem_mod.Resources | None = None, make_sandbox: Callable = default_sandbox,
                 start_timeout_s: float = START_TIMEOUT_S) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        from evolve import __version__
        self._ray = import_ray()
        spec_dir = str(Path(spec_dir).resolve())
        self._setup = ActorSetup(spec_dir, sandbox, problem_digest(spec_dir), __version__, make_sandbox)
        res = resources or problem_mod.load(spec_dir, check_evaluator=False).resources
        self._options = dict(num_cpus=res.cpus, num_gpus=res.gpus, max_restarts=0, max_task_retries=0,
                             max_concurrency=2, scheduling_strategy="SPREAD",  # 2: close() beside a score()
                             **({"memory": res.memory_mib * 2 ** 20} if res.memory_mib else {}))
        self._resources, self._start_timeout_s = res, start_timeout_s
        self._owns_ray = _connect(self._ray, address, math.ceil(workers * res.cpus))
        self._actor_cls = self._ray.remote(EvalActor)
        self._lock = threading.Lock()
        self._closed = False
        self._slots = [_Slot(i) for i in range(workers)]
        self._idle: queue.Queue[int] = queue.Queue()
        self._retired_why = ""
        self._isolation: dict[str, str] | None = None
        self.evaluations_by_node: collections.Counter[str] = collections.Counter()  # node id -> evaluations
        try:
            self._start_all()
        except BaseException:
            self.close()
            raise
        for s in self._slots:
            self._idle.put(s.index)

    # ------------------------------------------------------------ public (WorkerPool's interface)

    def nodes(self) -> list[NodeInfo | None]:
        """Each slot's node (None for a retired slot)."""
        with self._lock:
            return [s.node if s.actor is not None else None for s in self._slots]

    def in_flight(self) -> dict[int, NodeInfo]:
        """Slots serving a request now, and their nodes."""
        with self._lock:
            return {s.index: s.node for s in self._slots if s.busy and s.node is not None}

    def close(self) -> None:
        """Stop every actor (each closes its sandbox first); shut down the Ray this pool started. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            actors = [s.actor for s in self._slots if s.actor is not None]
        ray = self._ray
        closing = [a.close.remote() for a in actors]
        if closing:
            ray.wait(closing, num_returns=len(closing), timeout=STOP_TIMEOUT_S)
        for a in actors:
            _kill(ray, a)
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()

    def __enter__(self) -> "RayWorkerPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ requests

    def _serve(self, msg: tuple) -> tuple[str, Any, list[str]]:
        """Send msg to an idle actor: (kind, payload, losses); kind is ok, error (the actor raised) or gone
        (no actor could answer). A lost actor is recreated and the request sent once more."""
        slot = self._take()
        if slot is None:
            return "gone", self._retired_why or "the evaluation pool is closed", []
        losses: list[str] = []
        try:
            while len(losses) < 2:
                try:
                    kind, payload = self._request(slot, msg)
                    return kind, payload, losses
                except _ActorLost as e:
                    if self._closed:
                        return "gone", "the evaluation pool was closed during the request", losses
                    losses.append(str(e))
                    if slot.actor is None:  # retired: no fresh actor to retry on
                        break
            return "gone", f"{losses[-1]} (also on the retry)" if len(losses) > 1 else losses[-1], losses
        finally:
            slot.busy = False
            if slot.actor is not None:
                self._idle.put(slot.index)
            elif not any(s.actor is not None for s in self._slots):
                self._idle.put(-1)  # wakes a waiting caller: nothing is left to take

    def _take(self) -> _Slot | None:
        while not self._closed:
            try:
                i = self._idle.get(timeout=0.2)
            except queue.Empty:
                continue
            if i < 0:
                self._idle.put(-1)
                return None
            slot = self._slots[i]
            slot.busy = True
            return slot
        return None

    def _request(self, slot: _Slot, msg: tuple) -> tuple[str, Any]:
        ray = self._ray
        actor = self._live(slot)
        try:
            kind, payload = ray.get(actor.serve.remote(msg))
        except ray.exceptions.RayTaskError as e:  # the method raised (answer() catches the scorer's errors)
            return "error", str(e)
        except ray.exceptions.RayError as e:
            slot.alive = False
            raise _ActorLost(f"the evaluation actor on {_where(slot)} was lost: {_one_line(e)}") from None
        if self._closed:  # the actor's sandbox was closed under this request: its verdict must not count
            raise _ActorLost("the evaluation pool was closed during the request")
        if kind == "ok" and msg[0] == "score" and slot.node is not None:
            with self._lock:
                self.evaluations_by_node[slot.node.node_id] += 1
        return kind, payload

    def _live(self, slot: _Slot):
        """The slot's actor, recreated first if it was lost; retires the slot if that cannot be done."""
        if slot.alive:
            return slot.actor
        lost = slot.actor
        _kill(self._ray, lost)
        try:
            actor, node = self._start_one(time.monotonic() + self._start_timeout_s)
        except WorkerStartError as e:
            with self._lock:
                slot.actor, slot.node = None, None
                self._retired_why = f"no evaluation actor left: {e}"
            raise _ActorLost(f"could not recreate the evaluation actor: {e}") from None
        with self._lock:
            if self._closed:
                _kill(self._ray, actor)
                raise _ActorLost("the evaluation pool is closed")
            slot.actor, slot.node, slot.alive = actor, node, True
        return actor

    # ------------------------------------------------------------ actor start

    def _start_all(self) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        for s in self._slots:  # created together: they initialise in parallel, on their nodes
            s.actor = self._actor_cls.options(**self._options).remote(self._setup)
        for s in self._slots:
            s.actor, s.node = self._await_ready(s.actor, deadline)
            s.alive = True

    def _start_one(self, deadline: float):
        return self._await_ready(self._actor_cls.options(**self._options).remote(self._setup), deadline)

    def _await_ready(self, actor, deadline: float):
        """(actor, node) once it has built its scorer. An actor that died before it ran (Ray placed it on a
        node that was dying) is created again until the deadline."""
        ray = self._ray
        while True:
            try:
                kind, payload = ray.get(actor.ready.remote(), timeout=max(0.1, deadline - time.monotonic()))
            except ray.exceptions.GetTimeoutError:
                _kill(ray, actor)
                raise WorkerStartError(self._not_placed()) from None
            except ray.exceptions.RayError as e:
                _kill(ray, actor)
                if time.monotonic() >= deadline or self._closed:
                    raise WorkerStartError(f"evaluation actor could not start: {_one_line(e)}") from None
                time.sleep(0.2)
                actor = self._actor_cls.options(**self._options).remote(self._setup)
                continue
            if kind != "ready":
                _kill(ray, actor)
                raise WorkerStartError(f"evaluation actor could not start {payload}")
            return actor, payload

    def _not_placed(self) -> str:
        r = self._resources
        free = {k: v for k, v in self._ray.available_resources().items() if k in ("CPU", "GPU", "memory")}
        need = f"cpus={r.cpus:g}, gpus={r.gpus:g}" + (f", memory_mib={r.memory_mib}" if r.memory_mib else "")
        return (f"an evaluation actor did not start in {self._start_timeout_s:g} s: each needs {need} "
                f"(problem.toml [resources]); the cluster has free {_fmt(free)}")


# ---------------------------------------------------------------- helpers

def _connect(ray, address: str, cpus: int) -> bool:
    """Connect to the cluster at `address`, or start a local Ray; True if this pool must shut it down.
    A Ray the caller already initialised (a notebook, a test) is used as it is and left running."""
    if ray.is_initialized():
        return False
    _check_reachable(address)
    for attempt in range(1, CLIENT_ATTEMPTS + 1):
        try:
            _init(ray, address, cpus)
            return True
        except ImportError as e:  # ray:// (Ray Client) without grpcio: plain `ray` lacks its [client] extra
            raise AdrsError(f"Ray cannot connect to {address or 'a local Ray'}: {e}: {INSTALL_HINT}") from None
        except (ConnectionError, RuntimeError, ValueError) as e:
            with contextlib.suppress(Exception):
                ray.shutdown()  # a failed init leaves Ray half set up; the next init must start clean
            # Ray Client's server starts a process per client, and under load that start can fail once
            # ("Initialization failure from server"): worth another try; anything else is not.
            if address.startswith("ray://") and isinstance(e, ConnectionError) and attempt < CLIENT_ATTEMPTS:
                time.sleep(attempt)
                continue
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            tries = f" (after {attempt} attempts)" if attempt > 1 else ""
            raise AdrsError(f"could not start or reach {where}{tries}: {_one_line(e, last=True)}") from None
    raise AssertionError("unreachable")


def _init(ray, address: str, cpus: int) -> None:
    quiet = dict(logging_level=logging.WARNING, log_to_driver=False)
    if address:
        ray.init(address=address, **quiet)
    else:  # "local": never attach to some other cluster found on this machine
        ray.init(address="local", num_cpus=max(1, cpus), include_dashboard=False,
                 object_store_memory=OBJECT_STORE_BYTES, **quiet)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """HOST:PORT or ray://HOST:PORT answers a TCP connection. Why: Ray's own client retries an address where
    nothing listens for minutes before it gives up."""
    m = re.fullmatch(r"(?:ray://)?\[?([^\s\[\]]+?)\]?:(\d+)", address)
    if not m:
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((m.group(1), int(m.group(2))), timeout=timeout_s).close()
    except OSError as e:
        raise AdrsError(f"no Ray cluster answers at {address} ({e.strerror or e}): start one with "
                        f"`ray start --head`, or check the address and port") from None


def _kill(ray, actor) -> None:
    if actor is None:
        return
    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # noqa: BLE001 - already gone, or Ray is shutting down
        pass


def _where(slot: _Slot) -> str:
    return slot.node.describe() if slot.node else f"slot {slot.index}"


def _one_line(e: BaseException, last: bool = False) -> str:
    """The error's first line, with the line that says why (a dead node), or with `last` its last line (a
    server's reason after Ray's own heading)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    why = next((ln for ln in lines if "died because" in ln or "node" in ln.lower() and "dead" in ln.lower()), "")
    if last and len(lines) > 1:
        why = lines[-1]
    head = lines[0] if lines else type(e).__name__
    return f"{type(e).__name__}: {head}" + (f" ({why})" if why and why != head else "")


def _fmt(resources: dict[str, float]) -> str:
    parts = [f"{k} {v / 2 ** 20:.0f} MiB" if k == "memory" else f"{k} {v:g}" for k, v in sorted(resources.items())]
    return ", ".join(parts) or "nothing"
