"""The contract every sandbox backend keeps: limits in, a candidate handle out, failures as reasons.

The trusted side (evaluators/) only ever sees a `Candidate`: it can call the candidate's functions with
plain data (numbers, strings, lists, dicts, numpy arrays) and time those calls. It never imports candidate
code. A backend (local process, Docker container) decides how the candidate is isolated.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol


class Word(str, enum.Enum):
    """A str enum that stores, compares, prints and formats as its plain value (enum.StrEnum is 3.11+)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Reason(Word):
    """Why a candidate failed, as recorded in the lineage store: a closed set so reports can group by it.
    A str enum: stored and compared as its plain value."""

    TIMEOUT = "timeout"                # wall-clock limit hit; the whole process group / container was killed
    CPU_LIMIT = "cpu_limit"            # RLIMIT_CPU hit
    MEMORY_LIMIT = "memory_limit"      # address-space limit hit (MemoryError or killed)
    OUTPUT_LIMIT = "output_limit"      # stdout/stderr or a file grew past the cap
    PROCESS_LIMIT = "process_limit"    # could not fork: process limit
    CRASH = "crash"                    # died by a signal or exited without answering
    IMPORT_ERROR = "import_error"      # the candidate module failed to import or lacks an entry function
    EXCEPTION = "exception"            # the candidate raised while serving a call
    PROTOCOL = "protocol"              # spoke garbage on the pipe (too large frame, undecodable data)
    INFRASTRUCTURE = "infrastructure"  # the sandbox itself failed (or refused the trusted side's state
                                       # delta); not the candidate's fault


REASONS = tuple(r.value for r in Reason)


@dataclass(frozen=True)
class Limits:
    """Resource limits for one candidate, from the problem spec's [limits] table."""

    call_timeout_s: float = 10.0       # wall clock for one call
    workload_timeout_s: float = 120.0  # wall clock for one candidate, which serves exactly one workload
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


class DecisionMeter:
    """The decision time a candidate is charged, added up per call; shared by every backend's handle."""

    def __init__(self) -> None:
        self._decision_ns = 0
        self._calls = 0

    def _charge(self, spent_ns: int) -> int:
        """Count one answered call that took `spent_ns` beyond the baseline (floored at 0); return it."""
        spent_ns = max(0, spent_ns)
        self._calls += 1
        self._decision_ns += spent_ns
        return spent_ns

    @property
    def decision_s(self) -> float:
        """Seconds spent deciding over every call so far (round trip minus the baseline, floored at 0)."""
        return self._decision_ns / 1e9

    @property
    def calls(self) -> int:
        """Calls answered so far (each repeat of a timed call counts)."""
        return self._calls


class Candidate(Protocol):
    """A live candidate inside a sandbox. Every method may raise CandidateError; a CandidateError raised
    by a backend carries the candidate's `artifacts` as an attribute too."""

    @property
    def artifacts(self) -> Artifacts:
        """What the candidate printed so far (capped stdout/stderr) and backend notes: final once it
        ended, a snapshot while it runs. Kept for prompts and reports, never parsed for scores."""

    @property
    def decision_s(self) -> float:
        """Seconds the candidate spent deciding, summed over every `call` and `timed_call` so far: each
        round trip measured on the trusted side minus the empty-call baseline, floored at 0. It includes
        decoding the call's arguments inside the sandbox (the policy's input is part of its cost)."""

    @property
    def calls(self) -> int:
        """How many calls (`call` and each repeat of `timed_call`) were answered so far."""

    def call(self, function: str, *args: Any) -> Any:
        """Call a top-level function of the candidate with plain data; return its (decoded) result."""

    def timed_call(self, function: str, *args: Any, repeats: int = 1) -> tuple[Any, list[float]]:
        """Call `repeats` times; return the last result and each call's seconds, measured on the trusted
        side around the round trip, minus the empty-call baseline (never below 0)."""

    def round_trip_s(self) -> float:
        """The empty-call baseline: median seconds of recent calls that travel the same path as a real
        one (encode, send, decode, dispatch, encode the answer, send it back) but run no candidate code."""


class Sandbox(Protocol):
    """A backend. `start` returns a context manager yielding a fresh Candidate for one program."""

    def start(self, source: str, limits: Limits, entries: tuple[str, ...] = ()):
        """A context manager yielding a freshly imported candidate. `entries` names the top-level functions
        the evaluator may call; if the module lacks any, start raises CandidateError("import_error")
        naming them."""

    def isolation(self) -> dict[str, str]:
        """What isolation is in effect (network, user, pid, env), recorded in the run's metadata."""

    def close(self) -> None: ...


def check_entries(entries: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """`entries` as a tuple of identifiers (they travel to the runner); a bad name is a trusted-side bug."""
    out = tuple(entries)
    bad = [e for e in out if not (isinstance(e, str) and e.isidentifier())]
    if bad:
        raise ValueError(f"entry function names must be identifiers, got {bad!r}")
    return out
