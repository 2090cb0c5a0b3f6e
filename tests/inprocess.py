"""A Candidate that runs TRUSTED code (a baseline file) in this process, for unit-testing evaluators
without a sandbox. Arguments are deep-copied so the code under test cannot alter the evaluator's data;
exceptions become CandidateError("exception"), as a real sandbox would report them."""
from __future__ import annotations

import copy
import statistics
import time
import types
from pathlib import Path
from typing import Any

from sandbox.base import CandidateError


class InProcessCandidate:
    def __init__(self, source: str, name: str = "candidate") -> None:
        self.module = types.ModuleType(f"adrs_inprocess_{name}")
        exec(compile(source, f"<{name}>", "exec"), self.module.__dict__)  # trusted test code only
        self.calls = 0

    @classmethod
    def from_file(cls, path: str | Path) -> "InProcessCandidate":
        path = Path(path)
        return cls(path.read_text(), path.stem)

    def call(self, function: str, *args: Any) -> Any:
        fn = getattr(self.module, function, None)
        if not callable(fn):
            raise CandidateError("import_error", f"no function {function}()")
        self.calls += 1
        try:
            return fn(*copy.deepcopy(args))
        except Exception as e:
            raise CandidateError("exception", f"{type(e).__name__}: {e}") from e

    def timed_call(self, function: str, *args: Any, repeats: int = 1) -> tuple[Any, list[float]]:
        times, result = [], None
        for _ in range(repeats):
            t = time.perf_counter()
            result = self.call(function, *args)
            times.append(time.perf_counter() - t)
        base = self.round_trip_s()
        return result, [max(0.0, x - base) for x in times]

    def round_trip_s(self) -> float:
        samples = []
        for _ in range(5):
            t = time.perf_counter()
            copy.deepcopy(())
            samples.append(time.perf_counter() - t)
        return statistics.median(samples)
