"""The contract every sandbox backend keeps: limits in, a candidate handle out, failures as reasons.

The trusted side (evaluators/) only ever sees a `Candidate`: it can call the candidate's functions with
plain data (numbers, strings, lists, dicts, numpy arrays) and time those calls. It never imports candidate
code. A backend (local process, Docker container) decides how the candidate is isolated.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


# Why a candidate failed, as recorded in the lineage store. Closed set so reports can group by it.
REASONS = (
    "timeout",        # wall-clock limit hit; the whole process group / container was killed
    "cpu_limit",      # RLIMIT_CPU hit
    "memory_limit",   # address-space limit hit (MemoryError or killed)
    "output_limit",   # stdout/stderr or a file grew past the cap
    "process_limit",  # could not fork: process limit
    "crash",          # died by a signal or exited without answering
    "import_error",   # the candidate module failed to import or lacks the entry point
    "exception",      # the candidate raised while serving a call
    "protocol",       # spoke garbage on the pipe (too large frame, undecodable data)
    "infrastructure", # the sandbox itself could not be started; not the candidate's fault
)


@dataclass(frozen=True)
class Limits:
    """Resource limits for one candidate, from the problem spec's [limits] table."""

    call_timeout_s: float = 10.0       # wall clock for one call
    candidate_timeout_s: float = 120.0  # wall clock for the candidate's whole life
    cpu_s: int = 120                    # RLIMIT_CPU
    memory_mb: int = 2048               # RLIMIT_AS (address space)
    max_processes: int = 32             # RLIMIT_NPROC
    output_bytes: int = 1 << 20         # cap on captured stdout+stderr and on any file written
    max_frame_bytes: int = 256 << 20    # a reply larger than this is a protocol failure


class CandidateError(Exception):
    """A candidate failed; `reason` is one of REASONS, `message` says what happened in one line."""

    def __init__(self, reason: str, message: str, detail: str = "") -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.detail = detail  # e.g. the candidate's traceback


@dataclass
class Artifacts:
    """What a candidate left behind, kept for the prompt and the report (never parsed for scores)."""

    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    extra: dict[str, str] = field(default_factory=dict)


class Candidate(Protocol):
    """A live candidate inside a sandbox. Every method may raise CandidateError."""

    def call(self, function: str, *args: Any) -> Any:
        """Call a top-level function of the candidate with plain data; return its (decoded) result."""

    def timed_call(self, function: str, *args: Any, repeats: int = 1) -> tuple[Any, list[float]]:
        """Call `repeats` times; return the last result and each call's seconds, measured on the trusted
        side around the round trip, minus the median empty round trip (never below 0)."""

    def round_trip_s(self) -> float:
        """Median seconds of an empty call (ping) through the pipe."""


class Sandbox(Protocol):
    """A backend. `start` returns a context manager yielding a fresh Candidate for one program."""

    def start(self, source: str, limits: Limits): ...  # -> ContextManager[Candidate]

    def isolation(self) -> dict[str, str]:
        """What isolation is in effect (network, user, pid, env), recorded in the run's metadata."""

    def close(self) -> None: ...
