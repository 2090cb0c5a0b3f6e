"""LocalCandidate: the trusted side's handle on one live candidate process forked by the zygote.

Calls go straight over the candidate's own socket (no lock, no zygote involved), so candidates in
different threads never wait for each other. A call waits for the answer, the call deadline, or the
candidate's death (the zygote's exit report wakes the poll through a pipe), whichever comes first.
"""
from __future__ import annotations

import os
import shutil
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

from sandbox import artifacts, outcome, protocol
from sandbox.base import Artifacts, CandidateError, Limits
from sandbox.uids import UidLease
from sandbox.zygote_client import ChildWatch, ExitInfo, ZygoteClient, ZygoteDied

PING_COUNT = 20
EXIT_WAIT_S = 5.0
PING = protocol.encode({"op": "ping"})


@dataclass
class Process:
    """Everything the handle owns for one candidate; released exactly once by `finish`."""

    client: ZygoteClient
    pid: int
    watch: ChildWatch
    fd: int                 # our end of the candidate's socket (non-blocking)
    notify_r: int           # readable once the zygote reported the process's exit
    notify_w: int
    workdir: str
    lease: UidLease | None
    release_lease: Callable[[UidLease], None]


class LocalCandidate:
    """A live candidate. Every method may raise CandidateError (with `.artifacts` attached)."""

    def __init__(self, proc: Process, limits: Limits, artifact_bytes: int) -> None:
        self._p = proc
        self.limits = limits
        self._artifact_bytes = artifact_bytes
        self._reader = protocol.FrameReader(proc.fd, limits.max_frame_bytes)
        self._life_deadline = time.monotonic() + limits.candidate_timeout_s
        self._failed: CandidateError | None = None
        self._final: Artifacts | None = None
        self._rtt: float | None = None

    # ------------------------------------------------------------ public API

    @property
    def pid(self) -> int:
        return self._p.pid

    @property
    def workdir(self) -> str:
        return self._p.workdir

    @property
    def artifacts(self) -> Artifacts:
        """Capped stdout/stderr: final once the candidate ended, otherwise a snapshot."""
        return self._final if self._final is not None else self._snapshot()[0]

    def call(self, function: str, *args: Any) -> Any:
        payload = protocol.encode({"op": "call", "fn": function, "args": list(args)})
        return self._result(self._exchange(payload, function), function)

    def timed_call(self, function: str, *args: Any, repeats: int = 1) -> tuple[Any, list[float]]:
        rtt = self.round_trip_s()
        payload = protocol.encode({"op": "call", "fn": function, "args": list(args)})
        times, result = [], None
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter_ns()
            raw = self._exchange(payload, function)
            elapsed = (time.perf_counter_ns() - t0) / 1e9
            result = self._result(raw, function)
            times.append(max(0.0, elapsed - rtt))
        return result, times

    def round_trip_s(self) -> float:
        if self._rtt is None:
            samples = []
            for _ in range(PING_COUNT):
                t0 = time.perf_counter_ns()
                self._expect_ok(self._exchange(PING, "ping"))
                samples.append((time.perf_counter_ns() - t0) / 1e9)
            self._rtt = statistics.median(samples)
        return self._rtt

    def ping(self) -> None:
        """One empty round trip (for benchmarks)."""
        self._expect_ok(self._exchange(PING, "ping"))

    # ------------------------------------------------------------ the exchange

    def _exchange(self, payload: bytes, function: str, timeout_s: float | None = None) -> bytes | bytearray:
        """Send one request and return the raw answer; any failure kills and raises CandidateError."""
        if self._failed is not None:
            raise self._attach(CandidateError(self._failed.reason, f"already failed: {self._failed.message}"))
        if self._reader.pending():
            self._die("protocol", f"sent {self._reader.pending()} unsolicited bytes")
        timeout_s = self.limits.call_timeout_s if timeout_s is None else timeout_s
        call_deadline = time.monotonic() + timeout_s
        deadline = min(call_deadline, self._life_deadline)
        watch = (self._p.notify_r,)
        try:
            protocol.send_frame(self._p.fd, payload, deadline, watch)
            return self._reader.read(deadline, watch)
        except protocol.FrameTimeout:
            life = deadline < call_deadline
            what = (f"exceeded its whole-life limit of {self.limits.candidate_timeout_s:g} s" if life else
                    f"{function}() exceeded the per-call limit of {timeout_s:g} s")
            self._die("timeout", f"{what}; killed")
        except (protocol.Interrupted, protocol.PeerClosed, BrokenPipeError, ConnectionResetError):
            self._died()
        except protocol.ProtocolError as e:
            self._die("protocol", f"spoke garbage on the channel: {e}")
        raise AssertionError("unreachable")

    def _decode(self, raw: bytes | bytearray) -> Any:
        try:
            answer = protocol.decode(raw)
        except protocol.ProtocolError as e:
            self._die("protocol", f"spoke garbage on the channel: {e}")
        if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
            self._die("protocol", "sent a frame that is not an answer")
        return answer

    def _result(self, raw: bytes | bytearray, function: str) -> Any:
        answer = self._decode(raw)
        # Python ignores SIGXFSZ, so a flood usually surfaces as EFBIG or just a full file: check the cap.
        if self._output_size() >= self.limits.output_bytes:
            self._fail(outcome.output_exceeded(self.limits, self._output_size()))
        if answer["ok"]:
            return answer.get("result")
        err = outcome.from_answer(answer, function)
        if err.reason in outcome.SURVIVABLE and function:
            raise self._attach(err)
        self._fail(err)

    def _expect_ok(self, raw: bytes | bytearray) -> None:
        if raw != protocol.encode({"ok": True}):
            self._result(raw, "")

    def await_hello(self) -> None:
        """Wait for the runner's first frame: ready, or why the candidate could not be imported."""
        raw = self._exchange_hello()
        answer = self._decode(raw)
        if not answer["ok"]:
            self._fail(outcome.from_answer(answer, ""))

    def _exchange_hello(self) -> bytes | bytearray:
        deadline = min(time.monotonic() + self.limits.call_timeout_s, self._life_deadline)
        try:
            return self._reader.read(deadline, (self._p.notify_r,))
        except protocol.FrameTimeout:
            self._die("timeout", f"import took longer than {self.limits.call_timeout_s:g} s; killed")
        except (protocol.Interrupted, protocol.PeerClosed, ConnectionResetError):
            self._died()
        except protocol.ProtocolError as e:
            self._die("protocol", f"spoke garbage on the channel: {e}")
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ failures

    def _attach(self, err: CandidateError) -> CandidateError:
        err.artifacts = self.artifacts  # type: ignore[attr-defined]
        return err

    def _fail(self, err: CandidateError) -> None:
        """A fatal failure: make sure the process is gone, keep the artifacts, raise."""
        self._kill("failed")
        self._failed = err
        raise self._attach(err)

    def _die(self, reason: str, message: str) -> None:
        self._kill("timeout" if reason == "timeout" else "failed")
        self._fail(CandidateError(reason, message))

    def _died(self) -> None:
        """The process is gone (or going) without answering: wait for the zygote's report and classify."""
        info = self._wait_exit()
        if info is None:
            self._kill("failed")
            info = self._wait_exit() or ExitInfo(zygote_died=True)
        _, out_size = self._snapshot()
        self._fail(outcome.from_exit(info, self.limits, out_size))

    def _kill(self, why: str) -> None:
        if self._p.watch.done.is_set():
            return
        try:
            self._p.client.kill(self._p.pid, why)
        except ZygoteDied:
            pass

    def _wait_exit(self) -> ExitInfo | None:
        return self._p.watch.info if self._p.watch.done.wait(EXIT_WAIT_S) else None

    def _output_size(self) -> int:
        size = 0
        for name in ("stdout", "stderr"):
            try:
                size = max(size, os.stat(os.path.join(self._p.workdir, name)).st_size)
            except OSError:
                pass
        return size

    def _snapshot(self) -> tuple[Artifacts, int]:
        return artifacts.collect(self._p.workdir, self._artifact_bytes)

    # ------------------------------------------------------------ the end

    def finish(self) -> None:
        """Kill whatever is left of the candidate, keep its artifacts, remove its directory."""
        if self._final is not None:
            return
        p = self._p
        self._kill("done")
        confirmed = p.watch.done.wait(EXIT_WAIT_S)
        self._final = self._snapshot()[0]
        p.watch.detach()
        for fd in (p.fd, p.notify_r, p.notify_w):
            os.close(fd)
        shutil.rmtree(p.workdir, ignore_errors=True)
        # Without a confirmed exit the uid may still have processes: keep it leased rather than reuse it.
        if p.lease is not None and confirmed and not (p.watch.info and p.watch.info.zygote_died):
            p.release_lease(p.lease)
