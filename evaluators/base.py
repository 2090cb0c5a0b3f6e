"""The contract between the search (evolve/) and a trusted evaluator.

An evaluator lives outside the sandbox. It owns the simulation, the workloads, the validation of every
decision the candidate makes, and every metric. It talks to the candidate only through
`sandbox.base.Candidate` (plain data over a pipe).

A problem's evaluator module exposes `make_evaluator(params: dict, problem_dir: Path) -> Evaluator`.
"""
from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.base import Candidate


class InvalidOutput(Exception):
    """The candidate answered, but the answer breaks the problem's rules (shape, range, consistency)."""


@contextlib.contextmanager
def located(where: str) -> Iterator[None]:
    """An InvalidOutput raised inside is raised again with `where` (a window, a case, an interval) first."""
    try:
        yield
    except InvalidOutput as e:
        raise InvalidOutput(f"{where}: {e}") from None


class ConfigError(Exception):
    """Evaluator parameters or a workload id are malformed; the message names what is wrong."""


FEEDBACK_CHARS = 600  # cap on an evaluator's words about one workload (prompts stay bounded)
DECISION_METRIC = "decision_s"  # recorded for every workload: seconds the policy spent deciding


@dataclass
class WorkloadResult:
    """Metrics of one program on one workload. `samples` holds raw repeated measurements.

    `feedback` is a short diagnosis in words written by the evaluator (the trusted side), e.g. "request 812
    waited 41 s behind three long prompts". It is stored, shown on the program's report page and given to
    the LLM when it edits this program; it is capped at FEEDBACK_CHARS. Never copy candidate output into it.
    """

    workload: str
    metrics: dict[str, float]
    samples: dict[str, list[float]] = field(default_factory=dict)
    feedback: str = ""


class Evaluator(abc.ABC):
    """One problem's verifier. Must be deterministic for fixed inputs except for metrics it marks noisy."""

    #: metrics that are measured wall-clock time and therefore noisy; everything else is deterministic
    noisy_metrics: tuple[str, ...] = ()

    @abc.abstractmethod
    def check_workload(self, workload_id: str) -> None:
        """Raise ConfigError if the id is not one this evaluator understands (called at spec load)."""

    def prepare(self, workload_id: str) -> None:
        """Build what evaluating this workload needs (its trace, its sampled inputs), ahead of the first
        program. Each evaluation worker calls it for the quick and train workloads in a background thread as
        it starts, so the first evaluation does not pay for it. The default is check_workload, which builds
        the workload for evaluators that cache what they build per instance or per process."""
        self.check_workload(workload_id)

    @abc.abstractmethod
    def evaluate(self, candidate: Candidate, workload_id: str) -> WorkloadResult:
        """Drive the candidate on one workload. Raises InvalidOutput or sandbox.base.CandidateError.

        `candidate` is freshly imported for this workload (nothing carries over from another workload) and
        has every entry function of the problem spec. `candidate.decision_s` is the time its calls took so
        far, for problems that score or cap decision cost; the engine records it as the `decision_s` metric.
        The result must contain the metric named by the problem's objective `score` (bounded, higher better)."""


def load_problem_evaluator(module: str | None, file: Path | None, params: dict, problem_dir: Path) -> Evaluator:
    """Import the evaluator module (by dotted name, or by file path relative to the problem) and build it."""
    import importlib
    import importlib.util
    import sys
    import zlib

    if module:
        mod = importlib.import_module(module)
    else:
        assert file is not None
        spec = importlib.util.spec_from_file_location(f"adrs_problem_evaluator_{zlib.crc32(str(file).encode())}", file)
        if spec is None or spec.loader is None:
            raise ConfigError(f"cannot import evaluator file {file}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # as an import would: dataclasses and pickling look the module up there
        spec.loader.exec_module(mod)
    factory = getattr(mod, "make_evaluator", None)
    if factory is None:
        raise ConfigError(f"evaluator {module or file} defines no make_evaluator(params, problem_dir)")
    return factory(params, problem_dir)
