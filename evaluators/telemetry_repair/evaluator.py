"""The telemetry_repair evaluator: for each measurement interval, hand the candidate the topology and the
corrupted counters (never the truth), validate the repaired counters, and score them against the truth."""
from __future__ import annotations

import functools
from dataclasses import dataclass

from evaluators.base import Evaluator, WorkloadResult, located
from evaluators.params import parse_params
from evaluators.telemetry_repair import workloads
from evaluators.telemetry_repair.faults import KINDS
from evaluators.telemetry_repair.scoring import Tally, validate
from sandbox.base import Candidate


@dataclass(frozen=True)
class Params:
    """[evaluator.params] of problem.toml."""

    function: str = "repair"


class TelemetryRepairEvaluator(Evaluator):
    def __init__(self, params: Params) -> None:
        self.params = params
        self.workload = functools.cache(workloads.build)   # built once per process

    def check_workload(self, workload_id: str) -> None:
        workloads.parse(workload_id)

    def evaluate(self, candidate: Candidate, workload_id: str) -> WorkloadResult:
        w = self.workload(workload_id)
        tally = Tally()
        for t, interval in enumerate(w.intervals):
            observed = interval.corrupted.observed
            result = candidate.call(self.params.function, w.topology.as_candidate_input(),
                                    {"tx": observed.tx.copy(), "rx": observed.rx.copy()})
            with located(f"interval {t}"):
                tally.add(interval, validate(result, w.topology.n_ifaces))
        metrics = {
            "score": tally.score(),
            "repair": tally.repair(),
            "detection": tally.detection(),
            "accuracy": tally.ok / tally.counters,
            "corrupted_share": tally.corrupted / tally.counters,
            "broken": float(tally.broken),
        }
        return WorkloadResult(workload_id, metrics, feedback=feedback(tally))


def feedback(t: Tally) -> str:
    parts = [f"repaired {t.fixed} of {t.corrupted} corrupted counters"]
    if t.broken:
        parts.append(f"broke {t.broken} good ones")
    worst = sorted(((fixed / n, KINDS[k], n) for k, (n, fixed) in t.by_kind.items() if n), key=lambda x: x[0])
    kinds = ", ".join(f"{name} {share:.0%} of {n}" for share, name, n in worst)
    text = "; ".join(parts) + f" (repaired by fault kind: {kinds})." if kinds else "; ".join(parts) + "."
    return text + (f" Flagged {t.flagged} counters, {t.flagged_corrupted} of them corrupted "
                   f"(detection {t.detection():.2f}: Matthews correlation with the corruption).")


def make(params: dict) -> TelemetryRepairEvaluator:
    return TelemetryRepairEvaluator(parse_params(Params, params, "telemetry_repair"))
