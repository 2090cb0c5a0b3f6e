"""Transaction scheduling: the trusted evaluator for problems/txn_scheduling.

Modules: workloads (the three ADRS families, generated from an id), makespan (the scheduler model and a
lower bound), validate (the order must be a permutation), evaluator (the Evaluator implementation).
"""
from __future__ import annotations

from pathlib import Path

from evaluators.params import parse_params
from evaluators.txn_scheduling.evaluator import Params, TxnSchedulingEvaluator


def make_evaluator(params: dict, problem_dir: Path) -> TxnSchedulingEvaluator:
    return TxnSchedulingEvaluator(parse_params(Params, params, "txn_scheduling"))


__all__ = ["make_evaluator", "TxnSchedulingEvaluator", "Params"]
