"""The Evaluator of both spot problems: a sandboxed policy over each episode of a workload.

Each episode calls the candidate's `init(config)` with the static facts and then `decide(state)` once per
tick until the job is done (about 300-550 ticks at 600 s, ~960 at 195 s). The simulator, the deadline
guard, validation and every metric are on this side; the candidate only answers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evaluators.base import Evaluator, WorkloadResult
from evaluators.spot.policy_io import SandboxPolicy, init_config
from evaluators.spot.scoring import feedback, workload_metrics
from evaluators.spot.simulator import Episode, simulate
from evaluators.spot.workloads import Settings, Workload, parse_workload
from sandbox.base import Candidate


@dataclass
class SpotEvaluator(Evaluator):
    settings: Settings

    def check_workload(self, workload_id: str) -> None:
        parse_workload(workload_id, self.settings)

    def evaluate(self, candidate: Candidate, workload_id: str) -> WorkloadResult:
        w = parse_workload(workload_id, self.settings)
        episodes = [self._episode(candidate, w, i) for i in range(len(w.episodes))]
        return WorkloadResult(workload_id, workload_metrics(episodes),
                              feedback=feedback(episodes, self.settings.multi))

    def _episode(self, candidate: Candidate, w: Workload, i: int) -> Episode:
        avail, multi = w.episodes[i], self.settings.multi
        candidate.call("init", init_config(w.job, avail, w.start_region, multi))
        return simulate(w.job, avail, SandboxPolicy(candidate, w.job, avail, multi), w.start_region)


def make_spot_evaluator(params: dict, problem_dir: Path, multi: bool) -> Evaluator:
    return SpotEvaluator(Settings.from_params(params, multi, problem_dir))
