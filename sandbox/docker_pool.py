"""Pre-started sandbox containers, so that no candidate waits for `docker run` (0.3-0.7 s).

A slot is a container that has booted Python, imported numpy and the runner, and connected to a Unix socket
we listen on in its own folder (mounted read-only at /sandbox). It then waits for its candidate. Each slot
serves exactly one candidate and is removed after it: nothing persists from one candidate to the next.
The pool keeps `size` slots ready (or being made) per set of limits, making new ones in the background as
slots are taken. A slot that cannot be made becomes an "infrastructure" failure for the one who takes it.
"""
from __future__ import annotations

import os
import queue
import shutil
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from sandbox import docker_options as opts
from sandbox.artifacts import DEFAULT_CAP
from sandbox.base import Artifacts, CandidateError, Limits

BOOT_TIMEOUT_S = 60.0   # create + start + Python and numpy import, on a loaded machine
TAKE_TIMEOUT_S = 120.0


class OutputCapture:
    """Reads a container's attach stream (stdout and stderr, multiplexed by Docker) in a thread, keeping
    the head and tail of each stream and counting every byte. Past `limit` bytes it calls `on_overflow`
    once (which kills the container). When the stream ends (the container stopped) `ended_r` becomes
    readable, waking any call waiting on the candidate."""

    def __init__(self, sock, cap: int = DEFAULT_CAP) -> None:
        self.sock = sock
        self.cap = cap
        self.marker = b""
        self._last = {1: b"", 2: b""}  # the last bytes of each stream, to spot the end marker
        self.complete = threading.Event()  # both streams ended with the marker: all output is here
        self.limit: int | None = None
        self.on_overflow: Callable[[], None] | None = None
        self.total = 0
        self.overflow = False
        self._head = {1: bytearray(), 2: bytearray()}
        self._tail = {1: bytearray(), 2: bytearray()}
        self._size = {1: 0, 2: 0}
        self._lock = threading.Lock()
        self.ended = threading.Event()
        self.ended_r, self._ended_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._run, name="adrs-docker-output", daemon=True)
        self._thread.start()

    def arm(self, limit: int, on_overflow: Callable[[], None], marker: bytes) -> None:
        with self._lock:
            self.limit, self.on_overflow, self.marker = limit, on_overflow, marker
        self._check()

    def disarm(self) -> None:
        """The candidate is done: the end marker that follows must not count as its output."""
        with self._lock:
            self.limit = None

    def _run(self) -> None:
        from docker.utils.socket import frames_iter
        try:
            for stream, data in frames_iter(self.sock, tty=False):
                self._keep(stream if stream in (1, 2) else 2, data)
                self._check()
        except (OSError, ValueError):
            pass
        finally:
            self.ended.set()
            os.write(self._ended_w, b"x")

    def _keep(self, stream: int, data: bytes) -> None:
        half = self.cap // 2
        with self._lock:
            self.total += len(data)
            self._size[stream] += len(data)
            if self.marker:
                self._last[stream] = (self._last[stream] + data)[-len(self.marker):]
                if self._last[1] == self._last[2] == self.marker:
                    self.complete.set()
            head = self._head[stream]
            if len(head) < half:
                take = half - len(head)
                head += data[:take]
                data = data[take:]
            tail = self._tail[stream]
            tail += data
            if len(tail) > half:
                del tail[:len(tail) - half]

    def _check(self) -> None:
        with self._lock:
            fire = (self.limit is not None and not self.overflow and self.total > self.limit)
            if fire:
                self.overflow = True
            callback = self.on_overflow
        if fire and callback is not None:
            # Not in this thread: while it waits for Docker nobody would drain the stream, and Docker
            # may wait for the stream before it kills.
            threading.Thread(target=callback, name="adrs-docker-overflow", daemon=True).start()

    def artifacts(self) -> Artifacts:
        with self._lock:
            texts, cut = [], False
            for s in (1, 2):
                head, tail, size = bytes(self._head[s]), bytes(self._tail[s]), self._size[s]
                missing = size - len(head) - len(tail)
                if missing > 0:
                    cut = True
                    texts.append(f"{head.decode('utf-8', 'replace')}\n... [{missing} bytes cut] ...\n"
                                 f"{tail.decode('utf-8', 'replace')}")
                else:
                    texts.append((head + tail).decode("utf-8", "replace"))
        if self.marker:
            texts = [t.replace(self.marker.decode(), "") for t in texts]
        return Artifacts(stdout=texts[0], stderr=texts[1], truncated=cut)

    def close(self, wait_s: float = 2.0) -> None:
        """Stop reading (the container is gone or going) and release the thread and its pipe."""
        self.ended.wait(wait_s)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._thread.join(wait_s)
        try:
            self.sock.close()
        except OSError:
            pass
        if not self._thread.is_alive():  # else it may still write to the pipe: leak it rather than race
            os.close(self.ended_r)
            os.close(self._ended_w)


@dataclass
class Slot:
    """One pre-started container waiting for its candidate."""

    container_id: str
    folder: str                  # host side of /sandbox
    fd: int                      # our end of the runner's socket (non-blocking)
    output: OutputCapture
    limits: Limits
    made_s: float = 0.0          # seconds it took to make (create + start + boot)
    taken: bool = field(default=False)


class Engine:
    """What the pool needs from the sandbox: the Docker client, the image, our labels, and removal
    (`remove(container_id, folder, output)`, done in the background)."""

    def __init__(self, client, image: str, labels: dict[str, str], root: str,
                 remove: Callable[[str, str, "OutputCapture | None"], None]) -> None:
        self.client, self.image, self.labels, self.root, self.remove = client, image, labels, root, remove


def make_slot(engine: Engine, limits: Limits) -> Slot:
    """Create, attach, start and connect one container. Raises CandidateError("infrastructure")."""
    t0 = time.perf_counter()
    folder = tempfile.mkdtemp(prefix="slot-", dir=engine.root)
    os.chmod(folder, 0o755)
    path = os.path.join(folder, "runner.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cid, output = None, None
    try:
        listener.bind(path)
        os.chmod(path, 0o666)  # the container's unprivileged user must be able to connect
        listener.listen(1)
        api = engine.client.api
        cid = api.create_container(
            engine.image, user=opts.USER, environment=opts.ENVIRONMENT, labels=engine.labels,
            working_dir="/tmp", hostname="sandbox", stdin_open=False, tty=False, network_disabled=True,
            host_config=api.create_host_config(**opts.host_config(limits, folder)))["Id"]
        sock = api.attach_socket(cid, params={"stdout": 1, "stderr": 1, "stream": 1})
        output = OutputCapture(getattr(sock, "_sock", sock))
        api.start(cid)
        conn = _accept(listener, output)
        os.unlink(path)  # nothing else (the candidate included) can ever connect again
        conn.setblocking(False)
        return Slot(cid, folder, conn.detach(), output, limits, time.perf_counter() - t0)
    except CandidateError:
        engine.remove(cid or "", folder, output)
        raise
    except Exception as e:  # noqa: BLE001 - the engine, not the candidate: an infrastructure failure
        engine.remove(cid or "", folder, output)
        raise CandidateError("infrastructure", f"could not start a sandbox container: {engine_error(e)}") from None
    finally:
        listener.close()


def _accept(listener: socket.socket, output: OutputCapture) -> socket.socket:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    listener.settimeout(0.05)
    while True:
        try:
            conn, _ = listener.accept()
            return conn
        except socket.timeout:
            pass
        if output.ended.is_set():
            art = output.artifacts()
            raise CandidateError("infrastructure", "the sandbox container exited while booting: "
                                 + _one_line(art.stderr or art.stdout or "no output"))
        if time.monotonic() > deadline:
            raise CandidateError("infrastructure", f"the sandbox container did not boot in {BOOT_TIMEOUT_S:g} s")


def engine_error(e: BaseException) -> str:
    """One line on what went wrong with the engine (the SDK's errors are long and nested)."""
    import requests
    if isinstance(e, requests.exceptions.ConnectionError):
        return "the Docker engine is not reachable (stopped or restarting?)"
    explanation = getattr(e, "explanation", None)  # docker.errors.APIError: the daemon's own words
    return _one_line(explanation or e)


def _one_line(e: object) -> str:
    text = " ".join(str(e).split())
    return text[-300:] if len(text) > 300 else text


_CLOSED = CandidateError("infrastructure", "the sandbox is closed")  # wakes every waiter after close


class Pool:
    """Ready slots for one set of limits; `take` hands one out and orders its replacement."""

    def __init__(self, engine: Engine, limits: Limits, size: int) -> None:
        self.engine, self.limits, self.size = engine, limits, max(1, size)
        self._ready: queue.Queue[Slot | CandidateError] = queue.Queue()  # or _CLOSED, at the end
        self._makers = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="adrs-docker-pool")
        self._closed = False
        self._lock = threading.Lock()
        for _ in range(self.size):
            self._order()

    def _order(self) -> None:
        with self._lock:
            if not self._closed:
                self._makers.submit(self._make)

    def _make(self) -> None:
        try:
            made: Slot | CandidateError = make_slot(self.engine, self.limits)
        except CandidateError as e:
            made = e
        with self._lock:
            closed = self._closed
        if closed and isinstance(made, Slot):
            discard(self.engine, made)
        else:
            self._ready.put(made)

    def take(self) -> Slot:
        """The next ready slot; waits if none is ready yet. Raises CandidateError("infrastructure")."""
        try:
            got = self._ready.get(timeout=TAKE_TIMEOUT_S)
        except queue.Empty:
            raise CandidateError("infrastructure", f"no sandbox container ready after {TAKE_TIMEOUT_S:g} s") from None
        if got is _CLOSED:
            self._ready.put(_CLOSED)  # for the next waiter
            raise CandidateError("infrastructure", "the sandbox is closed")
        self._order()
        if isinstance(got, CandidateError):
            # It may be stale (the engine is back): one fresh attempt before blaming the engine.
            got = make_slot(self.engine, self.limits)
        got.taken = True
        return got

    def close(self) -> None:
        """Discard the ready slots; whoever waits in `take`, now or later, gets "the sandbox is closed"."""
        with self._lock:
            self._closed = True
        self._makers.shutdown(wait=True, cancel_futures=True)
        while True:
            try:
                got = self._ready.get_nowait()
            except queue.Empty:
                break
            if isinstance(got, Slot):
                discard(self.engine, got)
        self._ready.put(_CLOSED)


def discard(engine: Engine, slot: Slot) -> None:
    """Close our side of a slot and have its container and folder removed."""
    try:
        os.close(slot.fd)
    except OSError:
        pass
    engine.remove(slot.container_id, slot.folder, slot.output)


def remove_folder(folder: str) -> None:
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
