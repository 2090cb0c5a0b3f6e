"""LocalCandidate: the trusted side's handle on one live candidate process forked by the zygote.

Calls go straight over the candidate's own socket (no lock, no zygote involved), so candidates in
different threads never wait for each other. The exchange itself is FramedCandidate's (sandbox/channel.py);
the candidate's death wakes its poll through a pipe the zygote's exit report writes to.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Callable

from sandbox import artifacts, outcome
from sandbox.base import Artifacts, CandidateError, Limits
from sandbox.channel import EXIT_WAIT_S, IMPORT, FramedCandidate
from sandbox.uids import UidLease
from sandbox.zygote_client import ChildWatch, ExitInfo, ZygoteClient, ZygoteDied


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


class LocalCandidate(FramedCandidate):
    """A live candidate process. Every method may raise CandidateError (with `.artifacts` attached)."""

    def __init__(self, proc: Process, limits: Limits, artifact_bytes: int) -> None:
        self._p = proc
        self._artifact_bytes = artifact_bytes
        super().__init__(proc.fd, (proc.notify_r,), limits)

    @property
    def pid(self) -> int:
        return self._p.pid

    @property
    def workdir(self) -> str:
        return self._p.workdir

    def await_hello(self) -> None:
        """Wait for the runner's first frame (the zygote started it with the candidate in its workdir)."""
        self._hello(None)

    # ------------------------------------------------------------ FramedCandidate's hooks

    def _timeout_message(self, label: str, life: bool) -> str:
        if label == IMPORT:  # a slow import is worded as such, whichever deadline hit
            return f"import took longer than {self.limits.call_timeout_s:g} s; killed"
        return super()._timeout_message(label, life)

    def _live_artifacts(self) -> Artifacts:
        return self._snapshot()[0]

    def _output_over(self) -> bool:
        # Python ignores SIGXFSZ, so a flood usually surfaces as EFBIG or just a full file: check the cap.
        size = 0
        for name in ("stdout", "stderr"):
            try:
                size = max(size, os.stat(os.path.join(self._p.workdir, name)).st_size)
            except OSError:
                pass
        return size >= self.limits.output_bytes

    def _kill(self, why: str) -> None:
        if self._p.watch.done.is_set():
            return
        try:
            self._p.client.kill(self._p.pid, why)
        except ZygoteDied:
            pass

    def _exit_error(self) -> CandidateError:
        """Wait for the zygote's exit report (killing first if none comes) and classify it."""
        info = self._wait_exit()
        if info is None:
            self._kill("failed")
            info = self._wait_exit() or ExitInfo(zygote_died=True)
        _, out_size = self._snapshot()
        return outcome.from_exit(info, self.limits, out_size)

    def _wait_exit(self) -> ExitInfo | None:
        return self._p.watch.info if self._p.watch.done.wait(EXIT_WAIT_S) else None

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
