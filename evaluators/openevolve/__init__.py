"""OpenEvolve-format problems (imported by `adrs import-openevolve`): the trusted-side adapter (adapter.py,
results.py) and the harness that runs the problem's own evaluator inside the sandbox (harness.py)."""
from evaluators.openevolve.adapter import OpenEvolveEvaluator, make_evaluator

__all__ = ["OpenEvolveEvaluator", "make_evaluator"]
