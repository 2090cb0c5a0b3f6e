"""DockerCandidate: the trusted side's handle on one candidate running in its own container.

The exchange is FramedCandidate's (sandbox/channel.py), over the runner's socket; the container's end
(its output stream closing) wakes the poll. A timeout kills the container. What ended a container is read
from Docker (exit code of the runner via docker-init, OOM kill) and turned into one reason by
docker_options.classify_exit.
"""
from __future__ import annotations

import os
import uuid
from typing import Callable

from sandbox import docker_options as opts
from sandbox import protocol
from sandbox.base import Artifacts, CandidateError, Limits
from sandbox.channel import EXIT_WAIT_S, FramedCandidate
from sandbox.docker_pool import Slot, engine_error

FINISH_WAIT_S = 2.0
MARKER_WAIT_S = 0.5  # a candidate that closed its stdout never shows the marker


class DockerCandidate(FramedCandidate):
    """A live candidate in a container. Every method may raise CandidateError (with `.artifacts`)."""

    def __init__(self, slot: Slot, client, limits: Limits, release: Callable[[Slot], None]) -> None:
        super().__init__(slot.fd, (slot.output.ended_r,), limits)
        self._slot = slot
        self._api = client.api
        self._release = release
        self._killed = False
        self._marker = f"<adrs-output-end-{uuid.uuid4().hex}>"
        slot.output.arm(limits.output_bytes, self._kill, self._marker.encode())

    @property
    def container_id(self) -> str:
        return self._slot.container_id

    def load(self, source: str, entries: tuple[str, ...] = ()) -> None:
        """Give the waiting container its candidate (and the entry functions it must define) and wait for
        the runner's hello."""
        path = os.path.join(self._slot.folder, "candidate.py")
        with open(path, "w") as f:
            f.write(source)
        os.chmod(path, 0o644)
        self._hello(protocol.encode(opts.load_request(self.limits, self._marker, entries)))

    # ------------------------------------------------------------ FramedCandidate's hooks

    def _live_artifacts(self) -> Artifacts:
        return self._slot.output.artifacts()

    def _output_over(self) -> bool:
        return self._slot.output.overflow

    def _kill(self, why: str = "") -> None:
        """SIGKILL the container (the whole candidate: every process is in it). Also the overflow callback."""
        if self._killed:
            return
        self._killed = True
        try:
            self._api.kill(self._slot.container_id)
        except Exception:  # noqa: BLE001 - already stopped, or the engine is gone; removal follows anyway
            pass

    def _exit_error(self) -> CandidateError:
        """Wait for the container to stop (killing it if it does not) and ask Docker why."""
        out = self._slot.output
        if not out.ended.wait(EXIT_WAIT_S):
            self._kill()
        try:
            state = self._api.inspect_container(self._slot.container_id)["State"]
            code = None if state.get("Running") else state.get("ExitCode")
            return opts.classify_exit(code, bool(state.get("OOMKilled")), self.limits, out.overflow)
        except Exception as e:  # noqa: BLE001 - Docker itself failed or the container was removed under us
            return CandidateError("infrastructure", f"the Docker engine lost the candidate's container: "
                                  f"{engine_error(e)}")

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
