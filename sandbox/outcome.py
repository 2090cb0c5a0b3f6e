"""Turning what happened to a candidate into one CandidateError reason and a one-line message."""
from __future__ import annotations

import errno
import signal
from typing import Any

from sandbox.base import CandidateError, Limits
from sandbox.runner import EXIT_MEMORY
from sandbox.zygote import EXIT_SETUP
from sandbox.zygote_client import ExitInfo

# Answers after which the candidate process is still healthy and may serve further calls.
SURVIVABLE = ("exception", "import_error")


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def from_exit(info: ExitInfo, limits: Limits, output_size: int) -> CandidateError:
    """Classify a candidate process that died (or was killed) without answering."""
    sig, code = info.signal, info.code
    if info.zygote_died:
        return CandidateError("infrastructure", "the sandbox zygote died while the candidate ran")
    if info.killed == "deadline":
        return CandidateError("timeout", life_timeout_message(limits))
    if info.killed == "timeout":
        return CandidateError("timeout", f"exceeded the per-call limit of {limits.call_timeout_s:g} s; killed")
    if sig == signal.SIGXFSZ or output_size >= limits.output_bytes:
        return CandidateError("output_limit", f"wrote more than {limits.output_bytes} bytes of output; killed")
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and info.cpu_s >= limits.cpu_s - 0.05):
        return CandidateError("cpu_limit", f"used its {limits.cpu_s} s of CPU time ({info.cpu_s:.1f} s); killed")
    if code == EXIT_MEMORY or (sig == signal.SIGKILL and info.maxrss_kb * 1024 >= (limits.memory_mb << 20) // 2):
        return CandidateError("memory_limit", f"ran out of its {limits.memory_mb} MB of memory; killed")
    if code == EXIT_SETUP:
        return CandidateError("infrastructure", "the sandbox could not set up the candidate process")
    if sig is not None:
        return CandidateError("crash", f"died by {_signame(sig)} without answering")
    return CandidateError("crash", f"exited with code {code} without answering")


def life_timeout_message(limits: Limits) -> str:
    return f"exceeded the per-workload limit of {limits.workload_timeout_s:g} s; killed"


def output_exceeded(limits: Limits) -> CandidateError:
    return CandidateError("output_limit", f"wrote more than {limits.output_bytes} bytes of output")


def from_answer(answer: Any, function: str) -> CandidateError:
    """Classify a well-formed failure answer from the runner."""
    kind = answer.get("kind")
    message = str(answer.get("error", ""))[:500] or kind
    tb = str(answer.get("tb", ""))
    exc_type = answer.get("type")
    where = f"in {function}(): " if function else ""
    if kind == "exception" and answer.get("errno") == errno.EFBIG:
        return CandidateError("output_limit", f"{where}a write went past the output/file size cap", tb)
    if kind == "exception" and answer.get("errno") == errno.ENOSPC:
        return CandidateError("output_limit", f"{where}filled its writable space (no space left on device)", tb)
    if kind == "exception" and exc_type == "MemoryError":
        return CandidateError("memory_limit", f"{where}MemoryError (address-space limit)", tb)
    if kind == "exception" and (exc_type == "BlockingIOError" or answer.get("errno") == errno.EAGAIN
                                or "can't start new thread" in message):
        return CandidateError("process_limit", f"{where}could not fork or start a thread: process limit reached", tb)
    if kind == "exception":
        return CandidateError("exception", f"{where}{message}", tb)
    if kind == "import_error":
        return CandidateError("import_error", message, tb)
    if kind == "infrastructure":
        return CandidateError("infrastructure", message, tb)
    if kind == "state":  # the trusted side sent a delta the mirror cannot apply: not the candidate's fault
        return CandidateError("infrastructure", f"{where}the sandbox refused a state delta: {message}", tb)
    return CandidateError("protocol", f"unknown answer kind {str(kind)[:40]!r}")
