"""Trusted evaluator of the llm_scheduler problem: a sandboxed request scheduler on one serving instance.

A workload id names a request workload (evaluators/serving/workloads.py) and the load levels to run it at,
as fractions of the goodput capacity of the reference policy (the built-in FCFS: the rate at which it meets
the SLOs for 90% of requests; capacity.py) measured by this simulator on the same model and GPU, so "0.8"
means 80% of that capacity wherever it runs:

    <serving workload id>@<load>[,<load>...]        e.g.  azure-conv:seed=1:n=1000@0.7,1.2

For each level the evaluator generates the requests, calls the candidate's `init(config)` with the static
facts, and runs the simulator with the candidate deciding at every decision point (adapter.py). Every
metric is computed here (scoring.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evaluators.base import ConfigError, Evaluator, WorkloadResult
from evaluators.llm_scheduler.adapter import SandboxPolicy
from evaluators.llm_scheduler.capacity import level_requests
from evaluators.llm_scheduler.scoring import Level, feedback, score_level, workload_metrics
from evaluators.llm_scheduler.setup import Settings, Workload, parse_workload
from evaluators.serving.engine import simulate
from sandbox.base import Candidate


@dataclass
class LlmSchedulerEvaluator(Evaluator):
    settings: Settings

    def check_workload(self, workload_id: str) -> None:
        parse_workload(workload_id, self.settings)

    def evaluate(self, candidate: Candidate, workload_id: str) -> WorkloadResult:
        w = parse_workload(workload_id, self.settings)
        levels = [self._run(candidate, w, load) for load in w.loads]
        return WorkloadResult(workload_id, workload_metrics(levels), feedback=feedback(levels, w.slo))

    def _run(self, candidate: Candidate, w: Workload, load: float) -> Level:
        # each level is a fresh serving instance (request ids start at 0 again), so the policy starts over
        candidate.call("init", w.init_config())
        result = simulate(level_requests(w, load), self.settings.gpu, SandboxPolicy(candidate), w.engine_config())
        return score_level(load, result.records, w.slo)


def make_evaluator(params: dict, problem_dir: Path) -> Evaluator:
    return LlmSchedulerEvaluator(Settings.from_params(params, problem_dir))


__all__ = ["ConfigError", "LlmSchedulerEvaluator", "make_evaluator"]
