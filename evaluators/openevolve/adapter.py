"""The trusted side of an OpenEvolve-format problem (trust = "sandboxed-evaluator").

The problem's own evaluator (evaluator.py, copied verbatim at import) imports the candidate into its process,
so it never runs here. `sandbox_program` is the scoring hook (evolve/run/scoring.py): instead of the bare
candidate, the sandbox gets the harness (harness.py) with the candidate's and the evaluator's sources
appended, and the one entry function the harness serves. `evaluate` calls it once per workload and
validates what comes back (results.py). Hangs and crashes are the sandbox's usual timeouts and reasons.

The sandbox strips the environment (no API keys) and hides the checkout and run folders; but the candidate
shares a process with the evaluator, so it can tamper with it: the scores are only as honest as that.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from evaluators.base import ConfigError, Evaluator, WorkloadResult
from evaluators.openevolve import results
from sandbox.base import Candidate, CandidateError, Reason

HARNESS = Path(__file__).with_name("harness.py")
ENTRY = "adrs_openevolve_evaluate"
# OpenEvolve scores one program once: there is no held-out set. "held-out" runs the same evaluator again in a
# fresh sandbox, so it agrees with train up to the evaluator's own noise.
WORKLOADS = ("openevolve", "openevolve:held-out")
PARAMS = {"evaluator_file", "cascade", "thresholds", "modules", "functions", "score_bound"}


@dataclass(frozen=True)
class Params:
    evaluator_file: str = "evaluator.py"
    cascade: bool = True                                  # OpenEvolve's default
    thresholds: tuple[float, ...] = (0.5, 0.75, 0.9)      # OpenEvolve's default
    modules: tuple[str, ...] = ()                         # import names the evaluator needs in the sandbox
    functions: tuple[str, ...] = ()                       # top-level functions the candidate must define
    score_bound: float = 1e9                              # |score| above this is invalid (kept bounded)


def read_params(raw: dict) -> Params:
    unknown = sorted(set(raw) - PARAMS)
    if unknown:
        raise ConfigError(f"evaluator.params: unknown key(s) {', '.join(unknown)} "
                          f"(allowed: {', '.join(sorted(PARAMS))})")
    p = Params(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    if not isinstance(p.evaluator_file, str) or not isinstance(p.cascade, bool):
        raise ConfigError("evaluator.params: evaluator_file must be a string and cascade a boolean")
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in p.thresholds):
        raise ConfigError("evaluator.params.thresholds: must be numbers")
    for key in ("modules", "functions"):
        if not all(isinstance(m, str) and m.replace(".", "_").isidentifier() for m in getattr(p, key)):
            raise ConfigError(f"evaluator.params.{key}: must be a list of Python names")
    if not isinstance(p.score_bound, (int, float)) or not p.score_bound > 0:
        raise ConfigError("evaluator.params.score_bound: must be a positive number")
    return p


class OpenEvolveEvaluator(Evaluator):
    def __init__(self, params: Params, evaluator_source: str, evaluator_file: str) -> None:
        self.params = params
        self._tail = (f"\nADRS_EVALUATOR_SOURCE = {evaluator_source!r}\n"
                      f"ADRS_EVALUATOR_FILE = {Path(evaluator_file).name!r}\n")
        self._harness = HARNESS.read_text()

    def check_workload(self, workload_id: str) -> None:
        if workload_id not in WORKLOADS:
            raise ConfigError(f"unknown workload '{workload_id}': an imported OpenEvolve problem has "
                              f"{' and '.join(WORKLOADS)}")

    def sandbox_program(self, source: str) -> tuple[str, tuple[str, ...]]:
        """The program the sandbox starts instead of `source`: the harness, the candidate, the evaluator."""
        try:
            defined = {n.name for n in ast.parse(source).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        except SyntaxError as e:
            raise CandidateError(Reason.IMPORT_ERROR, f"not valid Python: {e.msg} (line {e.lineno})") from None
        missing = [f for f in self.params.functions if f not in defined]
        if missing:
            raise CandidateError(Reason.IMPORT_ERROR, f"the candidate defines no function "
                                 f"{', '.join(repr(m) for m in missing)} (the evaluator calls it)")
        return f"{self._harness}\nADRS_CANDIDATE_SOURCE = {source!r}\n{self._tail}", (ENTRY,)

    def evaluate(self, candidate: Candidate, workload_id: str) -> WorkloadResult:
        self.check_workload(workload_id)
        plan = {"cascade": self.params.cascade, "thresholds": [float(t) for t in self.params.thresholds],
                "modules": list(self.params.modules)}
        answer = candidate.call(ENTRY, plan)
        missing = results.missing_modules(answer)
        if missing:  # the sandbox's Python lacks them: not the candidate's fault, and every program would fail
            raise RuntimeError(f"the sandbox lacks Python package(s) the evaluator imports: {', '.join(missing)} "
                               "(local sandbox: pip install them into this environment; docker: "
                               "adrs sandbox build --problem <problem folder>)")
        mapped = results.map_answer(answer, float(self.params.score_bound))
        return WorkloadResult(workload_id, mapped.metrics, feedback=mapped.feedback)


def make_evaluator(params: dict, problem_dir: Path) -> OpenEvolveEvaluator:
    p = read_params(dict(params))
    path = Path(problem_dir) / p.evaluator_file
    if not path.is_file():
        raise ConfigError(f"evaluator.params.evaluator_file: {path} not found")
    text = path.read_text()
    try:  # parsed, never imported: it runs only in the sandbox
        ast.parse(text, filename=str(path))
    except SyntaxError as e:
        raise ConfigError(f"{path}, line {e.lineno}: not valid Python: {e.msg}") from None
    return OpenEvolveEvaluator(p, text, p.evaluator_file)
