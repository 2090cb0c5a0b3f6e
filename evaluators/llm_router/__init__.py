"""Trusted evaluator of the llm_router problem: a sandboxed router in front of N serving instances.

Workload ids: `<serving workload>@<loads>[/half=K]` (setup.py). For each load level the evaluator builds
the cluster (every instance Llama-3-8B on an H100 by default, FCFS scheduling with chunked prefill and a
prefix cache; instance K at half speed if asked), calls the candidate's `init(config)` and runs the cluster
simulator (evaluators/serving/cluster.py) with the candidate routing every arrival (adapter.py). Every
metric is computed here (scoring.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evaluators.base import ConfigError, Evaluator, WorkloadResult
from evaluators.llm_router.adapter import SandboxRouter
from evaluators.llm_router.scoring import CLUSTER_METRICS, feedback, level
from evaluators.llm_router.setup import Settings, Workload, parse_workload
from evaluators.llm_scheduler.scoring import workload_metrics
from evaluators.serving.cluster import simulate_cluster
from sandbox.base import Candidate


@dataclass
class LlmRouterEvaluator(Evaluator):
    settings: Settings

    def check_workload(self, workload_id: str) -> None:
        parse_workload(workload_id, self.settings)

    def evaluate(self, candidate: Candidate, workload_id: str) -> WorkloadResult:
        w = parse_workload(workload_id, self.settings)
        runs = [self._run(candidate, w, load) for load in w.loads]
        levels = [lv for lv, _ in runs]
        metrics = workload_metrics(levels)
        for key in CLUSTER_METRICS:
            metrics[key] = sum(lv.metrics[key] for lv in levels) / len(levels)
        return WorkloadResult(workload_id, metrics, feedback=feedback(levels, [r for _, r in runs], w.slo))

    def _run(self, candidate: Candidate, w: Workload, load: float):
        candidate.call("init", w.init_config())
        res = simulate_cluster(w.requests(load), w.instances(), SandboxRouter(candidate), self.settings.delay_s)
        return level(load, res, w.slo, w.speeds()), res


def make_evaluator(params: dict, problem_dir: Path) -> Evaluator:
    return LlmRouterEvaluator(Settings.from_params(params, str(problem_dir)))


__all__ = ["ConfigError", "LlmRouterEvaluator", "make_evaluator"]
