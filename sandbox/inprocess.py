"""InProcessSandbox: candidates run inside THIS process, with no isolation at all. Trusted code only.

For `adrs eval --no-sandbox` (an author debugging their own program: prints reach the terminal, a debugger
can step into it) and for unit-testing evaluators. It keeps the Sandbox contract so evaluators cannot tell
the difference in what they get back:
- every `start` executes the source into a brand-new module: no state survives from one start to the next;
- the required entry functions are checked at import, with the runner's own message;
- arguments and results cross as they would cross the sandbox boundary (encoded and decoded with
  sandbox.protocol): the same types arrive (tuples as lists, numpy scalars as numbers), nothing is shared,
  and state deltas are rebuilt by the same mirror (sandbox/state_mirror.py) as in the runner;
- exceptions become CandidateError("exception") with the traceback in `detail`.
It enforces no limit, captures no output, and times only the candidate's function (nothing crosses a pipe,
so the empty-call baseline is 0).
"""
from __future__ import annotations

import contextlib
import itertools
import linecache
import sys
import time
import traceback
import types
from pathlib import Path
from typing import Any, Iterator

from sandbox import protocol
from sandbox.base import Artifacts, CandidateError, DecisionMeter, Limits, check_entries
from sandbox.runner import missing_entries
from sandbox.state_mirror import Mirror, StateError

_serial = itertools.count(1)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def _candidate_traceback(e: BaseException) -> str:
    """The traceback from the candidate's frames on (this module's own frame left out)."""
    return "".join(traceback.format_exception(type(e), e, e.__traceback__.tb_next if e.__traceback__ else None))


def _cross(value: Any) -> Any:
    """`value` as the other side of the boundary would receive it (a deep, type-faithful copy)."""
    return protocol.decode(protocol.encode(value))


class InProcessCandidate(DecisionMeter):
    """A candidate module executed in this process; the Candidate protocol without a sandbox."""

    def __init__(self, source: str, name: str = "candidate", entries: tuple[str, ...] = ()) -> None:
        entries = check_entries(entries)
        serial = next(_serial)
        self.name = f"adrs_inprocess_{name}_{serial}"  # unique: fresh module state per start
        self.module = types.ModuleType(self.name)
        self.file = f"<{name} {serial}>"
        self.module.__file__ = self.file
        # tracebacks and debuggers show the candidate's source lines
        linecache.cache[self.file] = (len(source), None, source.splitlines(True), self.file)
        sys.modules[self.name] = self.module  # dataclasses, pickle and friends look modules up by name
        try:
            exec(compile(source, self.file, "exec"), self.module.__dict__)  # noqa: S102 - trusted code only
        except Exception as e:
            self.close()
            raise CandidateError("import_error", _one_line(f"import failed: {type(e).__name__}: {e}"),
                                 _candidate_traceback(e)) from e
        missing = missing_entries(self.module, entries)
        if missing:
            self.close()
            raise CandidateError("import_error", missing)
        self._mirror = Mirror()
        DecisionMeter.__init__(self)

    @classmethod
    def from_file(cls, path: str | Path, entries: tuple[str, ...] = ()) -> "InProcessCandidate":
        path = Path(path)
        return cls(path.read_text(), path.stem, entries)

    @property
    def artifacts(self) -> Artifacts:
        """Nothing is captured: output went to this process's own stdout/stderr."""
        return Artifacts()

    def call(self, function: str, *args: Any) -> Any:
        return self._invoke(function, args)[0]

    def timed_call(self, function: str, *args: Any, repeats: int = 1) -> tuple[Any, list[float]]:
        result, times = None, []
        for _ in range(max(1, repeats)):
            result, spent_ns = self._invoke(function, args)
            times.append(spent_ns / 1e9)
        return result, times

    def round_trip_s(self) -> float:
        return 0.0

    def close(self) -> None:
        """Forget the module's registration and source (its objects live on while referenced)."""
        if sys.modules.get(self.name) is self.module:
            del sys.modules[self.name]
        linecache.cache.pop(self.file, None)

    def _invoke(self, function: str, args: tuple) -> tuple[Any, int]:
        fn = getattr(self.module, function, None)
        crossed = _cross(list(args))  # before the lookup fails, as in the runner: the mirror follows
        try:
            crossed = self._mirror.resolve(crossed)
        except StateError as e:
            raise CandidateError("infrastructure", f"in {function}(): the sandbox refused a state delta: "
                                 f"{_one_line(str(e))}") from e
        if not callable(fn):
            raise CandidateError("import_error", f"the candidate has no function '{function}'")
        t0 = time.perf_counter_ns()
        try:
            result = fn(*crossed)
        except (Exception, SystemExit) as e:
            raise CandidateError("exception", _one_line(f"in {function}(): {type(e).__name__}: {e}"),
                                 _candidate_traceback(e)) from e
        finally:
            spent = self._charge(time.perf_counter_ns() - t0)
        try:
            return _cross(result), spent
        except TypeError as e:
            raise CandidateError("exception", _one_line(f"in {function}(): the return value cannot be sent: "
                                                        f"{e}")) from e


class InProcessSandbox:
    """The Sandbox protocol with no sandbox: each start is a fresh module in this process."""

    def __init__(self) -> None:
        self._closed = False

    @contextlib.contextmanager
    def start(self, source: str, limits: Limits | None = None,
              entries: tuple[str, ...] = ()) -> Iterator[InProcessCandidate]:
        """A freshly executed candidate module; `limits` are accepted and not enforced."""
        if self._closed:
            raise CandidateError("infrastructure", "the sandbox is closed")
        cand = InProcessCandidate(source, entries=entries)
        try:
            yield cand
        finally:
            cand.close()

    def isolation(self) -> dict[str, str]:
        return {"backend": "in-process (no sandbox)",
                "isolation": "none: the candidate runs inside the trusted process, with its user, environment, "
                             "files, network and memory; for trusted code only",
                "limits": "none enforced (no call or workload timeout, no CPU, memory or output cap)",
                "output": "not captured: prints go to the terminal"}

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> "InProcessSandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
