"""MoE expert placement (EPLB): the trusted evaluator for problems/eplb.

Modules: settings (cluster shapes, kernel modes, hardware figures), workloads (generator + trace loader),
steps (sampled forward steps and token routes of a window), validate (rules; log2phy derived here),
replica_routing (even or least-loaded split over replicas), cost_model (balancedness, modelled layer time:
compute, DeepEP dispatch/combine, micro-batch overlap), migration (weights fetched per rebalance),
evaluator (the Evaluator implementation).
"""
from __future__ import annotations

from pathlib import Path

from evaluators.eplb.evaluator import EplbEvaluator, Params


def make_evaluator(params: dict, problem_dir: Path) -> EplbEvaluator:
    return EplbEvaluator(Params.parse(params), Path(problem_dir))


__all__ = ["make_evaluator", "EplbEvaluator", "Params"]
