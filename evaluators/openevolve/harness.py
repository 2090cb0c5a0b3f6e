"""The program sent INTO the sandbox for an OpenEvolve-format problem: it carries the candidate's source and
the imported evaluator's source (appended as constants by evaluators/openevolve/adapter.py) and runs that
evaluator on the candidate, stage by stage, as OpenEvolve would.

An OpenEvolve evaluator imports the candidate into its own process, so it can only run here, beside the
candidate, never in the trusted process. What this returns is plain data (numbers and strings) that the
trusted side validates before anything is stored. Only the standard library is used here.

Cascade (OpenEvolve's rules): with cascade on and an `evaluate_stage1`, stage 1 runs; stage n+1 runs only if
`evaluate_stage{n+1}` exists, a threshold n exists and the metrics so far pass it (`combined_score` when the
evaluator gives one, else the mean of the numeric metrics but `error`); later stages' metrics are merged in.
A later stage that raises keeps the earlier results and records `stage{n}_passed = 0`. Stage 1 (or a plain
`evaluate`) that raises fails the program: the exception reaches the trusted side as the candidate's.
"""
import dataclasses
import importlib.util
import math
import numbers
import os
import sys
import tempfile
import traceback
import types

ENTRY = "adrs_openevolve_evaluate"
TEXT_CHARS = 4000      # each artifact or string metric, cut here already (the trusted side caps again)
MAX_ITEMS = 64         # metrics and artifacts kept, each
PROGRAM_FILE = "program.py"
EVALUATOR_MODULE = "evaluation_module"  # the name OpenEvolve imports an evaluator under


@dataclasses.dataclass
class EvaluationResult:
    """OpenEvolve's result type (metrics and artifacts), for evaluators that import it."""

    metrics: dict = dataclasses.field(default_factory=dict)
    artifacts: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, metrics):
        return cls(metrics=dict(metrics))

    def to_dict(self):
        return dict(self.metrics)

    def has_artifacts(self):
        return bool(self.artifacts)


def _provide_openevolve() -> None:
    """`from openevolve.evaluation_result import EvaluationResult` works without OpenEvolve installed."""
    if "openevolve.evaluation_result" in sys.modules:
        return
    pkg = types.ModuleType("openevolve")
    pkg.__path__ = []
    sub = types.ModuleType("openevolve.evaluation_result")
    sub.EvaluationResult = EvaluationResult
    pkg.evaluation_result = sub
    sys.modules.setdefault("openevolve", pkg)
    sys.modules["openevolve.evaluation_result"] = sub


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return (value if isinstance(value, str) else repr(value))[:TEXT_CHARS]


def _plain(result) -> tuple[dict, dict]:
    """(metrics, artifacts) of a dict or an EvaluationResult, as numbers and strings only."""
    metrics = getattr(result, "metrics", result)
    artifacts = getattr(result, "artifacts", {}) if not isinstance(result, dict) else {}
    if not isinstance(metrics, dict):
        raise TypeError(f"the evaluator returned {type(result).__name__}, not a dict or EvaluationResult")
    out: dict = {}
    for k, v in list(metrics.items())[:MAX_ITEMS]:
        if isinstance(v, numbers.Real):  # bool, int, float, numpy scalars
            out[str(k)] = float(v)
        else:
            out[str(k)] = _text(v)
    arts = {str(k): _text(v) for k, v in list(dict(artifacts or {}).items())[:MAX_ITEMS]}
    return out, arts


def passes(metrics: dict, threshold: float) -> bool:
    """OpenEvolve's gate: combined_score if numeric, else the mean of numeric metrics except `error`."""
    score = metrics.get("combined_score")
    if isinstance(score, float):
        return score >= threshold
    vals = [v for k, v in metrics.items() if k != "error" and isinstance(v, float) and math.isfinite(v)]
    return bool(vals) and sum(vals) / len(vals) >= threshold


def _merge(into: tuple[dict, dict], new: tuple[dict, dict]) -> None:
    metrics, artifacts = into
    metrics.update({k: v for k, v in new[0].items() if isinstance(v, float) and k != "error"})
    artifacts.update(new[1])


def _cascade(module, program: str, thresholds: list) -> tuple[dict, dict, int]:
    first = _plain(module.evaluate_stage1(program))
    merged = ({k: v for k, v in first[0].items()}, dict(first[1]))
    stage = 1
    for n in (2, 3):
        fn = getattr(module, f"evaluate_stage{n}", None)
        if fn is None or len(thresholds) < n - 1 or not passes(merged[0], float(thresholds[n - 2])):
            break
        try:
            _merge(merged, _plain(fn(program)))
        except Exception as e:  # noqa: BLE001 - as OpenEvolve: a later stage failing keeps the earlier ones
            merged[0][f"stage{n}_passed"] = 0.0
            merged[1][f"stage{n}_stderr"] = _text(f"{type(e).__name__}: {e}")
            merged[1][f"stage{n}_traceback"] = _text(traceback.format_exc())
            merged[1]["failure_stage"] = f"stage{n}"
            break
        stage = n
    return merged[0], merged[1], stage


def _load_evaluator(folder: str):
    path = os.path.join(folder, ADRS_EVALUATOR_FILE)
    spec = importlib.util.spec_from_file_location(EVALUATOR_MODULE, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[EVALUATOR_MODULE] = module
    spec.loader.exec_module(module)
    return module


def adrs_openevolve_evaluate(plan: dict) -> dict:
    """Run the evaluator on the candidate; `plan`: {"cascade": bool, "thresholds": [float], "modules": [str]}."""
    missing = [m for m in plan.get("modules", []) if importlib.util.find_spec(m) is None]
    if missing:
        return {"missing": missing}
    _provide_openevolve()
    folder = tempfile.mkdtemp(prefix="openevolve-")
    program = os.path.join(folder, PROGRAM_FILE)
    for name, text in ((PROGRAM_FILE, ADRS_CANDIDATE_SOURCE), (ADRS_EVALUATOR_FILE, ADRS_EVALUATOR_SOURCE)):
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
    sys.path.insert(0, folder)  # as OpenEvolve does: the evaluator's folder is importable
    module = _load_evaluator(folder)
    if plan.get("cascade") and callable(getattr(module, "evaluate_stage1", None)):
        metrics, artifacts, stage = _cascade(module, program, list(plan.get("thresholds", [])))
    else:
        metrics, artifacts = _plain(module.evaluate(program))
        stage = 0
    return {"metrics": metrics, "artifacts": artifacts, "stage": stage}


# Set by the trusted side, which appends their definitions below (these defaults are never run with).
ADRS_CANDIDATE_SOURCE = ""
ADRS_EVALUATOR_SOURCE = ""
ADRS_EVALUATOR_FILE = "evaluator.py"
