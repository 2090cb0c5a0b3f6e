"""The prism evaluator: one call per case, validated, then KV pressure computed on the trusted side."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from evaluators.base import Evaluator, WorkloadResult, located
from evaluators.prism import workloads as wl
from evaluators.prism.kvpr import gpu_kvpr, lower_bound
from evaluators.prism.validate import validate
from sandbox.base import Candidate


@dataclass(frozen=True)
class Params:
    """[evaluator.params] of problem.toml."""

    function: str = "place_models"


@dataclass(frozen=True)
class CaseResult:
    ratio: float            # lower bound / max KVPR, in (0, 1]
    max_kvpr: float
    bound: float
    worst_gpu: int
    worst_models: tuple[int, ...]
    worst_free_gb: float
    idle_gpus: int


class PrismEvaluator(Evaluator):
    def __init__(self, params: Params) -> None:
        self.params = params
        self.workload = functools.cache(wl.build)   # each workload is built once per process

    def check_workload(self, workload_id: str) -> None:
        wl.parse_id(workload_id)

    def evaluate(self, candidate: Candidate, workload_id: str) -> WorkloadResult:
        w = self.workload(workload_id)
        results = []
        for i, case in enumerate(w.cases):
            # fresh copies: a candidate that edits its arrays edits only its own
            answer = candidate.call(self.params.function, case.gpu_num, case.gpu_mem_gb, case.size_gb.copy(),
                                    case.req_rate.copy(), case.slo.copy())
            with located(f"workload {workload_id}, case {i}"):
                gpu_of = validate(answer, case)
            results.append(_score_case(case, gpu_of))
        ratios = [r.ratio for r in results]
        metrics = {
            "score": float(np.mean(ratios)),
            "max_kvpr": float(np.mean([r.max_kvpr for r in results])),
            "lower_bound": float(np.mean([r.bound for r in results])),
            "worst_case_ratio": float(min(ratios)),
        }
        return WorkloadResult(workload_id, metrics, {"ratio": ratios}, _feedback(w, results))


def _score_case(case: wl.Case, gpu_of: np.ndarray) -> CaseResult:
    kvpr, free = gpu_kvpr(case, gpu_of)
    g = int(np.argmax(kvpr))
    bound = lower_bound(case)
    return CaseResult(min(1.0, bound / kvpr[g]), float(kvpr[g]), bound, g,
                      tuple(int(m) for m in np.flatnonzero(gpu_of == g)), float(free[g]),
                      int(case.gpu_num - len(np.unique(gpu_of))))


def _feedback(w: wl.Workload, results: list[CaseResult]) -> str:
    i = int(np.argmin([r.ratio for r in results]))
    r, case = results[i], w.cases[i]
    text = (f"{len(results)} cases, mean bound/max-KVPR {np.mean([x.ratio for x in results]):.3f}. Worst: case {i} "
            f"({case.gpu_num} GPUs, {case.models} models) reaches max KVPR {r.max_kvpr:.4f} against a bound of "
            f"{r.bound:.4f}, on GPU {r.worst_gpu} with models {', '.join(map(str, r.worst_models))} "
            f"and {r.worst_free_gb:.1f} GB free.")
    idle = sum(x.idle_gpus for x in results)
    if idle:
        text += f" {idle} GPUs over all cases hold no model (their free memory absorbs no pressure)."
    return text
