"""The cloudcast evaluator: send the candidate the graph and the transfer, validate its plan, price it."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluators.base import Evaluator, WorkloadResult
from evaluators.cloudcast import files, workload_id
from evaluators.cloudcast.bound import Bound, lower_bound
from evaluators.cloudcast.cost_model import Cost, plan_cost
from evaluators.cloudcast.generator import GenParams, generate
from evaluators.cloudcast.graph import Workload, candidate_view
from evaluators.cloudcast.validate import Plan, validate
from sandbox.base import Candidate


@dataclass(frozen=True)
class Params:
    """[evaluator.params] of problem.toml."""

    function: str = "search_algorithm"


class CloudcastEvaluator(Evaluator):
    def __init__(self, params: Params, problem_dir: Path) -> None:
        self.params = params
        self.problem_dir = Path(problem_dir)
        self.workload = functools.cache(self._build)

    def _build(self, wid: str) -> tuple[Workload, Bound]:
        """The workload and its lower bound (built once per process)."""
        what = workload_id.parse(wid, self.problem_dir)
        w = generate(wid, what) if isinstance(what, GenParams) else files.load(wid, what)
        return w, lower_bound(w.graph, w.transfer)

    def check_workload(self, workload_id: str) -> None:
        self.workload(workload_id)

    def evaluate(self, candidate: Candidate, workload_id: str) -> WorkloadResult:
        w, bound = self.workload(workload_id)
        t = w.transfer
        result = candidate.call(self.params.function, t.source, list(t.destinations), candidate_view(w),
                                t.partitions)
        plan = validate(result, w.graph, t)
        cost = plan_cost(w.graph, t, plan.partitions_per_edge)
        metrics = {
            "score": min(1.0, bound.total_usd / cost.total_usd) if cost.total_usd > 0 else 1.0,
            "cost_usd": cost.total_usd,
            "egress_usd": cost.egress_usd,
            "instance_usd": cost.instance_usd,
            "transfer_s": cost.transfer_s,
            "lower_bound_usd": bound.total_usd,
            "regions_used": float(cost.regions_used),
        }
        return WorkloadResult(workload_id, metrics, feedback=_feedback(w, plan, cost, bound))


def _feedback(w: Workload, plan: Plan, cost: Cost, bound: Bound) -> str:
    g, t = w.graph, w.transfer
    spend = plan.partitions_per_edge * t.partition_gb * g.price_per_gb
    e = int(np.argmax(spend))
    tree = "the cheapest overlay" if bound.exact else "a bound on the cheapest overlay"
    return (f"cost ${cost.total_usd:.2f} = egress ${cost.egress_usd:.2f} + VMs ${cost.instance_usd:.2f} "
            f"({cost.regions_used} regions for {cost.transfer_s:.0f} s, set by the {cost.bottleneck}). "
            f"Lower bound ${bound.total_usd:.2f}: {tree} costs ${bound.tree_price_per_gb:.3f}/GB, yours "
            f"${cost.egress_usd / t.data_gb:.3f}/GB on average. Costliest edge: {g.names[g.edge_src[e]]} -> "
            f"{g.names[g.edge_dst[e]]}, {plan.partitions_per_edge[e]} partitions at ${g.price_per_gb[e]:.3f}/GB "
            f"= ${spend[e]:.2f}.")
