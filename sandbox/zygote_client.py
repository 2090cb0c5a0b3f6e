"""The trusted side's handle on one zygote process: start it, send requests, route its answers.

One reader thread owns the receiving end; any number of threads may send requests (a lock guards only the
send). Requests are matched to answers by id; exit reports are delivered to a per-child ChildWatch, which
can also wake a poll() through a pipe so a call notices its candidate died even if some grandchild still
holds the candidate's socket open.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import protocol

REPO_ROOT = str(Path(__file__).resolve().parent.parent)
BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from sandbox.zygote import main; main(sys.argv[1:])"
MSG_MAX = 1 << 16
START_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 30.0


class ZygoteDied(Exception):
    """The zygote is gone (or never started); not the candidate's fault."""


@dataclass
class ExitInfo:
    code: int | None = None
    signal: int | None = None
    cpu_s: float = 0.0
    maxrss_kb: int = 0
    killed: str | None = None      # "deadline", "timeout", "done", "shutdown" when we killed it
    zygote_died: bool = False


@dataclass
class ChildWatch:
    """Where the exit report of one candidate process lands."""

    pid: int
    notify_w: int
    done: threading.Event = field(default_factory=threading.Event)
    info: ExitInfo | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def deliver(self, info: ExitInfo) -> None:
        with self._lock:
            if self.done.is_set():
                return
            self.info = info
            self.done.set()
            if self.notify_w >= 0:
                try:
                    os.write(self.notify_w, b"x")
                except OSError:
                    pass

    def detach(self) -> None:
        """The owner is about to close its notify pipe: never write to that fd number again."""
        with self._lock:
            self.notify_w = -1


@dataclass
class _Pending:
    event: threading.Event = field(default_factory=threading.Event)
    answer: dict[str, Any] | None = None
    notify_w: int = -1
    watch: ChildWatch | None = None


def scrubbed_env(home: str) -> dict[str, str]:
    """The zygote's whole environment: nothing secret from the caller survives."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONHASHSEED": "0",
           # one BLAS thread: forking a multi-threaded process is unsafe, and timings stay comparable
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for key in ("LANG", "LC_ALL"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


class ZygoteClient:
    def __init__(self, home: str) -> None:
        self.home = home
        self.facts: dict[str, Any] = {}
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._next_req = 0
        self._pending: dict[int, _Pending] = {}
        self._watches: dict[int, ChildWatch] = {}
        self._dead = False
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        # The zygote dies with the thread that spawned it (PR_SET_PDEATHSIG), so the long-lived reader
        # thread spawns it, never a short-lived caller thread.
        self._reader = threading.Thread(target=self._run, name="adrs-zygote-reader", daemon=True)
        self._reader.start()
        if not self._started.wait(START_TIMEOUT_S) or self._start_error is not None:
            self.close()
            raise ZygoteDied(f"the sandbox zygote did not start: {self._start_error}")

    # ------------------------------------------------------------ reader thread

    def _run(self) -> None:
        try:
            self._spawn_process()
            hello = protocol.decode(self.sock.recv(MSG_MAX))
            if hello.get("op") != "hello":
                raise ZygoteDied(f"unexpected first message {hello!r}")
            self.facts = hello
        except BaseException as e:  # noqa: BLE001 - reported to the constructor
            self._start_error = e
            self._started.set()
            return
        self._started.set()
        try:
            while True:
                data = self.sock.recv(MSG_MAX)
                if not data:
                    break
                self._dispatch(protocol.decode(data))
        except (OSError, protocol.ProtocolError):
            pass
        finally:
            self._mark_dead()

    def _spawn_process(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-s", "-B", "-c", BOOT, REPO_ROOT, str(theirs.fileno()), str(os.getpid())],
                env=scrubbed_env(self.home), cwd=self.home, pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
        finally:
            theirs.close()
        self.sock = ours

    def _dispatch(self, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "exit":
            info = ExitInfo(msg.get("code"), msg.get("signal"), msg.get("cpu_s", 0.0),
                            msg.get("maxrss_kb", 0), msg.get("killed"))
            with self._state_lock:
                watch = self._watches.pop(msg["pid"], None)
            if watch is not None:
                watch.deliver(info)
            return
        with self._state_lock:
            pending = self._pending.pop(msg.get("req", -1), None)
            if op == "spawned" and pending is not None:
                # registered before the answer is released, so no exit report can be missed
                pending.watch = self._watches[msg["pid"]] = ChildWatch(msg["pid"], pending.notify_w)
        if pending is not None:
            pending.answer = msg
            pending.event.set()

    def _mark_dead(self) -> None:
        with self._state_lock:
            self._dead = True
            pending, self._pending = list(self._pending.values()), {}
            watches, self._watches = list(self._watches.values()), {}
        for p in pending:
            p.event.set()
        for w in watches:
            w.deliver(ExitInfo(zygote_died=True))

    # ------------------------------------------------------------ requests

    @property
    def alive(self) -> bool:
        return not self._dead

    def _request(self, msg: dict[str, Any], fds: tuple[int, ...] = (), notify_w: int = -1) -> _Pending:
        with self._state_lock:
            if self._dead:
                raise ZygoteDied("the sandbox zygote is not running")
            self._next_req += 1
            req = msg["req"] = self._next_req
            pending = self._pending[req] = _Pending(notify_w=notify_w)
        try:
            with self._send_lock:
                socket.send_fds(self.sock, [protocol.encode(msg)], list(fds))
        except OSError as e:
            with self._state_lock:
                self._pending.pop(req, None)
            raise ZygoteDied(f"cannot reach the sandbox zygote: {e}") from e
        if not pending.event.wait(REQUEST_TIMEOUT_S) or pending.answer is None:
            raise ZygoteDied("the sandbox zygote stopped answering")
        return pending

    def spawn(self, spec: dict[str, Any], child_fd: int, notify_w: int) -> tuple[int, ChildWatch]:
        """Fork a candidate process; its exit will be delivered to the returned watch."""
        pending = self._request({"op": "spawn", **spec}, (child_fd,), notify_w)
        answer = pending.answer
        if answer.get("op") != "spawned" or pending.watch is None:
            raise ZygoteDied(answer.get("error", "spawn failed"))
        return answer["pid"], pending.watch

    def kill(self, pid: int, why: str) -> None:
        """Kill the candidate's group (and uid); returns once the zygote has done so."""
        self._request({"op": "kill", "pid": pid, "why": why})

    def close(self) -> None:
        if self.sock is not None:
            try:
                with self._send_lock:
                    self.sock.send(protocol.encode({"op": "bye"}))
            except OSError:
                pass
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._reader is not threading.current_thread():
            self._reader.join(timeout=5)
        if self.sock is not None:
            self.sock.close()
