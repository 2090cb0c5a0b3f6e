"""FramedCandidate: a candidate reached through length-prefixed frames on a file descriptor.

Both backends (the local fork server and Docker) talk to the same runner over a socket with the frame
protocol of sandbox/protocol.py, so the client side lives here once: a call waits for the answer, the call
deadline, the candidate's per-workload deadline, or the candidate's death (a watched fd becomes readable),
whichever comes first, and every failure becomes one CandidateError. A subclass supplies only what differs
per backend: how output overflow is detected, how the candidate is killed and its death classified, and
where its stdout/stderr are read from.

Timing: every call is timed on the trusted side (two perf_counter_ns reads around the exchange). What is
subtracted is the empty-call baseline: the median round trip of recent "empty" requests, which travel the
whole path of a call (encode, frames both ways, decode, dispatch, flush, encode the answer) but run no
candidate code. A machine's load changes the round trip by tens of µs within seconds, so the baseline is
a rolling window: filled before the first call, refreshed by one empty request every BASELINE_EVERY calls
(about 1.5% more exchanges) and before every repeat of a timed call, whose precision matters more.
"""
from __future__ import annotations

import abc
import statistics
import time
from collections import deque
from typing import Any, NoReturn

from sandbox import outcome, protocol
from sandbox.base import Artifacts, CandidateError, DecisionMeter, Limits

BASELINE_WARMUP = 8     # first exchanges of a fresh process are slow (cold caches): not counted
BASELINE_WINDOW = 31    # the most recent empty calls, whose median is the baseline
BASELINE_EVERY = 64     # calls between two refreshes of the window
# The baseline is measured through the candidate's own process, which could slow its empty calls to
# shrink its measured time; honest baselines are tens of µs even on a loaded machine, this bounds the gain.
BASELINE_CAP_NS = 250_000
EXIT_WAIT_S = 5.0  # how long a candidate that stopped answering gets to be reported gone
IMPORT = "import"  # the phase label of the runner's hello (the candidate module's import)
PING = protocol.encode({"op": "ping"})
OK = protocol.encode({"ok": True})
EMPTY = protocol.encode({"op": "empty", "args": []})
EMPTY_OK = protocol.encode({"ok": True, "result": None})


class FramedCandidate(DecisionMeter, abc.ABC):
    """A live candidate. Every method may raise CandidateError (with `.artifacts` attached)."""

    def __init__(self, fd: int, watch: tuple[int, ...], limits: Limits) -> None:
        """`fd`: our (non-blocking) end of the runner's socket; `watch`: fds readable once it is gone."""
        self.limits = limits
        self._fd = fd
        self._watch = watch
        self._reader = protocol.FrameReader(fd, limits.max_frame_bytes)
        self._life_deadline = time.monotonic() + limits.workload_timeout_s
        self._failed: CandidateError | None = None
        self._final: Artifacts | None = None
        self._window: deque[int] = deque(maxlen=BASELINE_WINDOW)  # recent empty round trips, ns
        self._base_ns = 0  # their median (capped), valid once the window is filled
        self._until_refresh = 0  # calls left before the next empty sample; <= 0: sample first
        DecisionMeter.__init__(self)

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
            return outcome.life_timeout_message(self.limits)
        return f"{label} exceeded the per-call limit of {self.limits.call_timeout_s:g} s; killed"

    # ------------------------------------------------------------ public API

    @property
    def artifacts(self) -> Artifacts:
        """Capped stdout/stderr: final once the candidate ended, otherwise a snapshot."""
        return self._final if self._final is not None else self._live_artifacts()

    def call(self, function: str, *args: Any) -> Any:
        payload = protocol.encode({"op": "call", "fn": function, "args": list(args)})
        if self._until_refresh <= 0:
            self._refresh_baseline()
        self._until_refresh -= 1
        t0 = time.perf_counter_ns()
        raw = self._exchange(payload, function)
        self._charge(time.perf_counter_ns() - t0 - self._base_ns)
        return self._result(raw, function)

    def timed_call(self, function: str, *args: Any, repeats: int = 1) -> tuple[Any, list[float]]:
        payload = protocol.encode({"op": "call", "fn": function, "args": list(args)})
        times, result = [], None
        for _ in range(max(1, repeats)):
            self._refresh_baseline()  # an empty sample right before: the same load as the call
            t0 = time.perf_counter_ns()
            raw = self._exchange(payload, function)
            spent = self._charge(time.perf_counter_ns() - t0 - self._base_ns)
            result = self._result(raw, function)
            times.append(spent / 1e9)
        return result, times

    def round_trip_s(self) -> float:
        if not self._window:
            self._refresh_baseline()
        return self._base_ns / 1e9

    def _refresh_baseline(self) -> None:
        """Add one empty-call sample to the window (filling it first if empty) and take its median."""
        if not self._window:
            for _ in range(BASELINE_WARMUP):
                self._empty_ns()
            self._window.extend(self._empty_ns() for _ in range(BASELINE_WINDOW - 1))
        self._window.append(self._empty_ns())
        self._base_ns = min(int(statistics.median(self._window)), BASELINE_CAP_NS)
        self._until_refresh = BASELINE_EVERY

    def _empty_ns(self) -> int:
        """Nanoseconds of one empty call (the path of a call, no candidate code)."""
        t0 = time.perf_counter_ns()
        raw = self._exchange(EMPTY, "", phase="an empty call (the timing baseline)")
        elapsed = time.perf_counter_ns() - t0
        if raw != EMPTY_OK:
            self._result(raw, "")  # a failure answer raises; anything else is not an empty answer
            self._die("protocol", "answered an empty call with something else")
        return elapsed

    def ping(self) -> None:
        """One bare transport round trip, answered without decoding (for benchmarks)."""
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
        # a refused state delta leaves the candidate as it was: the evaluator may reset and resend
        if function and (err.reason in outcome.SURVIVABLE or answer.get("kind") == "state"):
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
