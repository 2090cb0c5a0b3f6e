"""Network telemetry repair (telemetry_repair): the trusted evaluator for problems/telemetry_repair.

Modules: topology (wan and clos generators), traffic (gravity demands, ECMP routing: the true counters),
faults (noise and corruption), workloads (ids; the truth stays here), scoring (validation, repair and
detection scores), evaluator (the Evaluator implementation).
"""
from __future__ import annotations

from pathlib import Path

from evaluators.telemetry_repair.evaluator import Params, TelemetryRepairEvaluator, make


def make_evaluator(params: dict, problem_dir: Path) -> TelemetryRepairEvaluator:
    return make(params)


__all__ = ["make_evaluator", "TelemetryRepairEvaluator", "Params"]
