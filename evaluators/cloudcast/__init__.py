"""Multi-cloud broadcast (Cloudcast): the trusted evaluator for problems/cloudcast.

Modules: regions (published prices, limits, metro catalogue), graph (the graph, the transfer, the candidate's
view), generator (seeded 3-provider graphs), files (user CSV/JSON graphs), workload_id, validate (the plan's
rules), cost_model (egress + VM-hours over the bottleneck time), bound (the lower bound the score divides by),
evaluator.
"""
from __future__ import annotations

from pathlib import Path

from evaluators.cloudcast.evaluator import CloudcastEvaluator, Params
from evaluators.params import parse_params


def make_evaluator(params: dict, problem_dir: Path) -> CloudcastEvaluator:
    return CloudcastEvaluator(parse_params(Params, params, "cloudcast"), Path(problem_dir))


__all__ = ["make_evaluator", "CloudcastEvaluator", "Params"]
