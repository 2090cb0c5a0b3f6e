"""DockerCandidate: the trusted side's handle on one candidate running in its own container.

Same exchange as the local handle (sandbox/handle.py), over the runner's socket: a call waits for the
answer, the call deadline, or the container's end (the output stream closing wakes the poll), whichever
comes first. A timeout kills the container. What ended a container is read from Docker (exit code of the
runner via docker-init, OOM kill) and turned into one reason by docker_options.classify_exit.
"""
from __future__ import annotations

import os
import statistics
import time
import uuid
from typing import Any, Callable

from sandbox import docker_options as opts
from sandbox import outcome, protocol
from sandbox.base import Artifacts, CandidateError, Limits
from sandbox.docker_pool import Slot, engine_error

PING_COUNT = 20
EXIT_WAIT_S = 5.0
FINISH_WAIT_S = 2.0
MARKER_WAIT_S = 0.5  # a candidate that closed its stdout never shows the marker
PING = protocol.encode({"op": "ping"})
OK = protocol.encode({"ok": True})


class DockerCandidate:
    """A live candidate in a container. Every method may raise CandidateError (with `.artifacts`)."""

    def __init__(self, slot: Slot, client, limits: Limits, release: Callable[[Slot], None]) -> None:
        self._slot = slot
        self._api = client.api
        self.limits = limits
        self._release = release
        self._reader = protocol.FrameReader(slot.fd, limits.max_frame_bytes)
        self._life_deadline = time.monotonic() + limits.candidate_timeout_s
        self._failed: CandidateError | None = None
        self._final: Artifacts | None = None
        self._rtt: float | None = None
        self._killed = False
        self._marker = f"<adrs-output-end-{uuid.uuid4().hex}>"
        slot.output.arm(limits.output_bytes, self._kill, self._marker.encode())

    # ------------------------------------------------------------ public API

    @property
    def container_id(self) -> str:
        return self._slot.container_id

    @property
    def artifacts(self) -> Artifacts:
        return self._final if self._final is not None else self._slot.output.artifacts()

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
        raw = self._exchange(PING, "ping")
        if raw != OK:
            self._result(raw, "")

    # ------------------------------------------------------------ start: source in, hello back

    def load(self, source: str) -> None:
        """Give the waiting container its candidate and wait for the runner's hello."""
        path = os.path.join(self._slot.folder, "candidate.py")
        with open(path, "w") as f:
            f.write(source)
        os.chmod(path, 0o644)
        answer = self._decode(self._exchange(protocol.encode(opts.load_request(self.limits, self._marker)), "",
                                             what="import"))
        if not answer["ok"]:
            self._fail(outcome.from_answer(answer, ""))

    # ------------------------------------------------------------ the exchange

    def _exchange(self, payload: bytes, function: str, what: str = "") -> bytes | bytearray:
        if self._failed is not None:
            raise self._attach(CandidateError(self._failed.reason, f"already failed: {self._failed.message}"))
        if self._reader.pending():
            self._die("protocol", f"sent {self._reader.pending()} unsolicited bytes")
        call_deadline = time.monotonic() + self.limits.call_timeout_s
        deadline = min(call_deadline, self._life_deadline)
        watch = (self._slot.output.ended_r,)
        try:
            protocol.send_frame(self._slot.fd, payload, deadline, watch)
            return self._reader.read(deadline, watch)
        except protocol.FrameTimeout:
            if deadline < call_deadline:
                self._die("timeout", f"exceeded its whole-life limit of {self.limits.candidate_timeout_s:g} s; killed")
            label = what or f"{function}()"
            self._die("timeout", f"{label} exceeded the per-call limit of {self.limits.call_timeout_s:g} s; killed")
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
        if self._slot.output.overflow:
            self._fail(outcome.output_exceeded(self.limits, self._slot.output.total))
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

    def _fail(self, err: CandidateError) -> None:
        self._kill()
        self._failed = err
        raise self._attach(err)

    def _die(self, reason: str, message: str) -> None:
        self._fail(CandidateError(reason, message))

    def _died(self) -> None:
        """The runner is gone without answering: wait for the container to stop and ask Docker why."""
        out = self._slot.output
        if not out.ended.wait(EXIT_WAIT_S):
            self._kill()
        try:
            state = self._api.inspect_container(self._slot.container_id)["State"]
            code = None if state.get("Running") else state.get("ExitCode")
            err = opts.classify_exit(code, bool(state.get("OOMKilled")), self.limits, out.overflow)
        except Exception as e:  # noqa: BLE001 - Docker itself failed or the container was removed under us
            err = CandidateError("infrastructure", f"the Docker engine lost the candidate's container: "
                                 f"{engine_error(e)}")
        self._fail(err)

    def _kill(self) -> None:
        """SIGKILL the container (the whole candidate: every process is in it). Safe to call twice."""
        if self._killed:
            return
        self._killed = True
        try:
            self._api.kill(self._slot.container_id)
        except Exception:  # noqa: BLE001 - already stopped, or the engine is gone; removal follows anyway
            pass

    # ------------------------------------------------------------ the end

    def finish(self) -> None:
        """Let the runner exit, keep the artifacts, hand the container over for removal (in the background).

        Output reaches us through Docker, behind the answers on the socket: only once the container has
        stopped (its output stream ended) is all of it here."""
        if self._final is not None:
            return
        out = self._slot.output
        out.disarm()
        try:
            os.close(self._slot.fd)  # the runner sees EOF, writes the end marker and exits
        except OSError:
            pass
        if not self._killed and not out.complete.wait(MARKER_WAIT_S) and not out.ended.wait(FINISH_WAIT_S):
            self._kill()
            out.ended.wait(FINISH_WAIT_S)
        self._final = out.artifacts()
        self._release(self._slot)
