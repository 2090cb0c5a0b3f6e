"""The txn_scheduling evaluator: one call for an order, validated, then scheduled by the trusted model."""
from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass

from evaluators.base import Evaluator, WorkloadResult, located
from evaluators.txn_scheduling import workloads as wl
from evaluators.txn_scheduling.makespan import Bound, Schedule, lower_bound, simulate
from evaluators.txn_scheduling.validate import validate
from sandbox.base import Candidate


@dataclass(frozen=True)
class Params:
    """[evaluator.params] of problem.toml."""

    function: str = "schedule"


class TxnSchedulingEvaluator(Evaluator):
    def __init__(self, params: Params) -> None:
        self.params = params
        self.workload = functools.cache(_workload)   # built once per process

    def check_workload(self, workload_id: str) -> None:
        wl.parse_id(workload_id)

    def evaluate(self, candidate: Candidate, workload_id: str) -> WorkloadResult:
        w, bound = self.workload(workload_id)
        # a fresh copy per call: whatever the candidate does to its argument never reaches w.txns
        result = candidate.call(self.params.function, w.as_lists())
        with located(f"workload {workload_id}"):
            order = validate(result, w.n)
        sched = simulate(w.txns, order)
        serial = sum(len(t) for t in w.txns)
        metrics = {
            "score": min(1.0, bound.value / sched.makespan),
            "makespan": float(sched.makespan),
            "lower_bound": float(bound.value),
            "speedup_vs_serial": serial / sched.makespan,
        }
        return WorkloadResult(workload_id, metrics, feedback=_feedback(w, bound, sched))


def _workload(workload_id: str) -> tuple[wl.Workload, Bound]:
    w = wl.build(workload_id)
    return w, lower_bound(w.txns)


def _feedback(w: wl.Workload, bound: Bound, sched: Schedule) -> str:
    """Where the time went: the binding key of the bound, the keys that delayed most starts, the last one."""
    where = (f"key {bound.key} ({bound.writers} transactions write it, their locks cannot overlap)"
             if bound.key is not None else "the longest transaction")
    text = (f"{w.n} {w.family} transactions: makespan {sched.makespan} slots, lower bound {bound.value} set by "
            f"{where}, serial {sum(len(t) for t in w.txns)}.")
    waits = Counter(k for k in sched.waited_on if k is not None)
    if waits:
        top = ", ".join(f"key {k} ({c})" for k, c in waits.most_common(3))
        text += f" {sum(waits.values())} transactions started late; their start was set by {top}."
    last = max(range(w.n), key=lambda t: (sched.end[t], -t))
    why = f"waited on key {sched.waited_on[last]}" if sched.waited_on[last] is not None else "started at slot 0"
    return text + f" The last to finish, transaction {last} ({len(w.txns[last])} ops), {why}."
