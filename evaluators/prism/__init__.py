"""Prism GPU model placement: the trusted evaluator for problems/prism.

Modules: workloads (random cases in the ADRS style), kvpr (KV pressure and its lower bound), validate
(every model exactly once, memory left on every GPU), evaluator (the Evaluator implementation).
"""
from __future__ import annotations

from pathlib import Path

from evaluators.params import parse_params
from evaluators.prism.evaluator import Params, PrismEvaluator


def make_evaluator(params: dict, problem_dir: Path) -> PrismEvaluator:
    return PrismEvaluator(parse_params(Params, params, "prism"))


__all__ = ["make_evaluator", "PrismEvaluator", "Params"]
