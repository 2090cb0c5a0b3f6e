"""The cant_be_late_multi problem's evaluator: nine regions, the policy may move (evaluators/spot/)."""
from __future__ import annotations

from pathlib import Path

from evaluators.base import Evaluator
from evaluators.spot.evaluator import make_spot_evaluator


def make_evaluator(params: dict, problem_dir: Path) -> Evaluator:
    return make_spot_evaluator(params, problem_dir, multi=True)
