"""FramedCandidate: a candidate reached through length-prefixed frames on a file descriptor.

Both backends (the local fork server and Docker) talk to the same runner over a socket with the frame
protocol of sandbox/protocol.py, so the client side lives here once: a call waits for the answer, the call
deadline, the candidate's whole-life deadline, or the candidate's death (a watched fd becomes readable),
whichever comes first, and every failure becomes one CandidateError. A subclass supplies only what differs
per backend: how output overflow is detected, how the candidate is killed and its death classified, and
where its stdout/stderr are read from.
"""
from __future__ import annotations

import abc
import statistics
import time
from typing import Any, NoReturn

from sandbox import outcome, protocol
from sandbox.base import Artifacts, CandidateError, Limits

PING_COUNT = 20
EXIT_WAIT_S = 5.0  # how long a candidate that stopped answering gets to be reported gone
IMPORT = "import"  # the phase label of the runner's hello (the candidate module's import)
PING = protocol.encode({"op": "ping"})
OK = protocol.encode({"ok": True})


class FramedCandidate(abc.ABC):
    """A live candidate. Every method may raise CandidateError (with `.artifacts` attached)."""

    def __init__(self, fd: int, watch: tuple[int, ...], limits: Limits) -> None:
        """`fd`: our (non-blocking) end of the runner's socket; `watch`: fds readable once it is gone."""
        self.limits = limits
        self._fd = fd
        self._watch = watch
        self._reader = protocol.FrameReader(fd, limits.max_frame_bytes)
        self._life_deadline = time.monotonic() + limits.candidate_timeout_s
        self._failed: CandidateError | None = None
        self._final: Artifacts | None = None
        self._rtt: float | None = None

    # ------------------------------------------------------------ what a backend supplies

    @abc.abstractmethod
    def _live_artifacts(self) -> Artifacts:
        """A snapshot of the capped stdout/stderr while the candidate runs."""

    @abc.abstractmethod
    def _output_over(self) -> bool:
        """Whether the candidate's output went past limits.output_bytes."""

    @abc.abstractmethod
    def _kill(self, why: str) -> None:
        """Kill the whole candidate (`why`: "timeout", "failed", "done"); safe to call again."""

    @abc.abstractmethod
    def _exit_error(self) -> CandidateError:
        """The candidate ended without answering: wait for its end and say why."""

    def _timeout_message(self, label: str, life: bool) -> str:
        if life:
            return f"exceeded its whole-life limit of {self.limits.candidate_timeout_s:g} s; killed"
        return f"{label} exceeded the per-call limit of {self.limits.call_timeout_s:g} s; killed"

    # ------------------------------------------------------------ public API

    @property
    def artifacts(self) -> Artifacts:
        """Capped stdout/stderr: final once the candidate ended, otherwise a snapshot."""
        return self._final if self._final is not None else self._live_artifacts()

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
                self.ping()
                samples.append((time.perf_counter_ns() - t0) / 1e9)
            self._rtt = statistics.median(samples)
        return self._rtt

    def ping(self) -> None:
        """One empty round trip (for benchmarks)."""
        raw = self._exchange(PING, "ping")
        if raw != OK:
            self._result(raw, "")

    # ------------------------------------------------------------ the exchange

    def _hello(self, request: bytes | None) -> None:
        """Send `request` (if the runner waits for one) and wait for its first frame: ready, or why the
        candidate could not be imported."""
        answer = self._decode(self._exchange(request, "", phase=IMPORT))
        if not answer["ok"]:
            self._fail(outcome.from_answer(answer, ""))

    def _exchange(self, payload: bytes | None, function: str, phase: str = "") -> bytes | bytearray:
        """Send one request (None: send nothing) and return the raw answer; any failure kills and raises.

        The timeout label is formatted only on a timeout, to keep timed calls free of that work."""
        if self._failed is not None:
            raise self._attach(CandidateError(self._failed.reason, f"already failed: {self._failed.message}"))
        if self._reader.pending():
            self._die("protocol", f"sent {self._reader.pending()} unsolicited bytes")
        call_deadline = time.monotonic() + self.limits.call_timeout_s
        deadline = min(call_deadline, self._life_deadline)
        try:
            if payload is not None:
                protocol.send_frame(self._fd, payload, deadline, self._watch)
            return self._reader.read(deadline, self._watch)
        except protocol.FrameTimeout:
            self._die("timeout", self._timeout_message(phase or f"{function}()", deadline < call_deadline))
        except (protocol.Interrupted, protocol.PeerClosed, BrokenPipeError, ConnectionResetError):
            self._fail(self._exit_error())
        except protocol.ProtocolError as e:
            self._die("protocol", f"spoke garbage on the channel: {e}")

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
        if self._output_over():
            self._fail(outcome.output_exceeded(self.limits))
        if answer["ok"]:
            return answer.get("result")
        err = outcome.from_answer(answer, function)
        if err.reason in outcome.SURVIVABLE and function:
            raise self._attach(err)
        self._fail(err)

    # ------------------------------------------------------------ failures

    def _attach(self, err: CandidateError) -> CandidateError:
        err.artifacts = self.artifacts  # type: ignore[attr-defined]
        return err

    def _fail(self, err: CandidateError) -> NoReturn:
        """A fatal failure: make sure the candidate is gone, keep the artifacts, raise."""
        self._kill("failed")
        self._failed = err
        raise self._attach(err)

    def _die(self, reason: str, message: str) -> NoReturn:
        self._kill("timeout" if reason == "timeout" else "failed")
        self._fail(CandidateError(reason, message))
