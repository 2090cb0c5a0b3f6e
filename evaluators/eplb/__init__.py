"""MoE expert placement (EPLB): the trusted evaluator for problems/eplb.

Modules: settings (cluster shapes, hardware figures), workloads (generator + trace loader), validate,
cost_model (balancedness, modelled layer time), evaluator (the Evaluator implementation).
"""
from __future__ import annotations

from pathlib import Path

from evaluators.eplb.evaluator import EplbEvaluator, Params


def make_evaluator(params: dict, problem_dir: Path) -> EplbEvaluator:
    return EplbEvaluator(Params.parse(dict(params)), Path(problem_dir))


__all__ = ["make_evaluator", "EplbEvaluator", "Params"]
