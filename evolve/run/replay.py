"""`adrs replay RUN`: run a recorded run again into a new run, serving its recorded LLM answers in order.

No model is called. Iteration i gets the answers recorded for iteration i of the original run, and
answer.decide turns them into the same proposal (or the same failure) as the first time; parents are
drawn from the same seed at the same points, so with deterministic metrics the lineage is identical. With
a changed evaluator, the same proposals are re-scored. A run made by the offline mutator is replayed by
the mutator itself (it is deterministic). The original run is only read. Everything is measured again,
the initial program and the baselines too (the reference cache is not read, only refreshed).

The check compares the lineage and every deterministic metric of every program; metrics the evaluator
declares noisy (measured time) are not compared but shown side by side with their difference.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from evaluators.base import DECISION_METRIC
from evolve.problem import ProblemSpec
from evolve.run import session
from evolve.run.executor import make_workers
from evolve.llm.answer import decide
from evolve.llm.client import CallRecord
from evolve.search.proposer import MutatorProposer, Proposal, ProposalContext, ProposalFailed, Proposer
from evolve.store import Attempt, Store
from evolve.terms import ProgramKind

_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(CallRecord))


class ReplayProposer(Proposer):
    """Serves the original run's recorded calls per iteration; zero network."""

    name = "replay"

    def __init__(self, store: Store, run_id: str) -> None:
        self.source_run = run_id
        self._attempts: dict[int, Attempt] = {a.iteration: a for a in store.attempts(run_id)}
        self._calls: dict[int, list[CallRecord]] = {
            it: [CallRecord(**{f: getattr(c, f) for f in _RECORD_FIELDS}) for c in calls]
            for it, calls in store.calls_by_iteration(run_id).items()}

    async def propose(self, ctx: ProposalContext) -> Proposal:
        records = self._calls.get(ctx.iteration)
        if not records:
            a = self._attempts.get(ctx.iteration)
            if a is not None and a.stage == "propose":  # failed before any call (e.g. a proposer bug)
                raise ProposalFailed(a.reason, a.message, a.proposal)
            raise ProposalFailed("replay_missing", f"{self.source_run} recorded no answer for iteration "
                                 f"{ctx.iteration}")
        try:
            proposal = decide(records)
        except ProposalFailed as e:
            e.llm_calls = ()  # the replay made no call; the originals stay with the original run
            raise
        return dataclasses.replace(proposal, llm_calls=())


def noisy_metrics(spec: ProblemSpec) -> frozenset[str]:
    """Metrics that differ between two runs of the same code: what the problem's evaluator declares noisy (an
    instance may widen its class's list, e.g. EPLB's score when it mixes in measured runtime) and the
    policy's measured decision time."""
    return frozenset(spec.make_evaluator().noisy_metrics) | {DECISION_METRIC}


def lineage(store: Store, run_id: str, noisy_score: bool = False) -> list[tuple]:
    """Per iteration: (iteration, parent's iteration, status, stage, reason, child source, child score);
    the score is left out (None) when it is a noisy metric."""
    progs = {p.id: p for p in store.programs(run_id)}
    rows = []
    for a in store.attempts(run_id):
        parent = progs.get(a.parent_id) if a.parent_id else None
        child = progs.get(a.program_id) if a.program_id else None
        score = child.score if child and not noisy_score else None
        rows.append((a.iteration, parent.iteration if parent else None, a.status, a.stage, a.reason,
                     child.source if child else None, score))
    return rows


@dataclass(frozen=True)
class NoisyComparison:
    """One noisy metric over every (program, split, workload) both runs measured: side by side."""
    metric: str
    n: int
    original: float        # mean over those values
    replay: float
    max_abs_diff: float    # the largest |replay - original| of one value

    @property
    def diff(self) -> float:
        return self.replay - self.original


def _metric_values(store: Store, run_id: str) -> dict[tuple, float]:
    """(program kind, iteration, name, split, workload, metric) -> value: keys that do not depend on ids."""
    out = {}
    for p in store.programs(run_id):
        for m in store.metrics(p.id):
            out[(p.kind, p.iteration, p.name, m.split, m.workload, m.metric)] = m.value
    return out


@dataclass(frozen=True)
class MetricCheck:
    difference: str                  # the first deterministic metric of the lineage that differs; "" if none
    noisy: list[NoisyComparison]     # noisy metrics side by side
    baselines: list[str]             # baselines whose "deterministic" metrics differ: noted, not failed


def compare_metrics(a: dict[tuple, float], b: dict[tuple, float], noisy: frozenset[str], noisy_score: bool = False
                    ) -> MetricCheck:
    """Deterministic metrics of the lineage (initial and children) must match; noisy ones are paired. A
    baseline is scored afresh by every run and is no part of the lineage: one whose metrics differ (e.g. a
    solver with a time limit) is named, not failed. With a noisy score the finalists scored on held-out may
    differ too: then only values both runs measured count."""
    keys = set(a) & set(b) if noisy_score else set(a) | set(b)
    difference, baselines = "", {}
    for key in sorted(keys, key=repr):
        kind, it, name, split, wl, metric = key
        if metric in noisy or a.get(key) == b.get(key):
            continue
        what = f"{metric} on {split} {wl}: {a.get(key)!r} then {b.get(key)!r}"
        if kind == ProgramKind.BASELINE:
            baselines.setdefault(name, f"{name}: {what}")
        elif not difference:
            difference = f"{name or f'{kind} of iteration {it}'}: {what}"
    return MetricCheck(difference, _side_by_side(a, b, noisy), list(baselines.values()))


def _side_by_side(a: dict[tuple, float], b: dict[tuple, float], noisy: frozenset[str]) -> list[NoisyComparison]:
    pairs: dict[str, list[tuple[float, float]]] = {}
    for key in sorted(set(a) & set(b), key=repr):
        if key[-1] in noisy:
            pairs.setdefault(key[-1], []).append((a[key], b[key]))
    return [NoisyComparison(m, len(v), sum(x for x, _ in v) / len(v), sum(y for _, y in v) / len(v),
                                max(abs(y - x) for x, y in v)) for m, v in sorted(pairs.items())]


def first_difference(a: list[tuple], b: list[tuple]) -> str:
    names = ("iteration", "parent", "status", "stage", "reason", "source", "score")
    for x, y in zip(a, b):
        if x != y:
            what = ", ".join(n for n, u, v in zip(names, x, y) if u != v)
            return f"iteration {x[0]} differs in {what}"
    if len(a) != len(b):
        return f"the original has {len(a)} iterations, the replay {len(b)}"
    return ""


@dataclass
class ReplayResult:
    source_run: str
    run_id: str
    run_dir: Path
    iterations: int
    difference: str        # "" when the deterministic lineage and metrics match
    noisy: list[NoisyComparison] = dataclasses.field(default_factory=list)
    noisy_score: bool = False   # the score itself is noisy: parent draws may differ when scores are close
    baselines: list[str] = dataclasses.field(default_factory=list)   # baselines not reproducible, noted
    completion_order: bool = False  # the original committed as evaluations finished: not reproducible

    @property
    def matches(self) -> bool:
        return not self.difference


def _replay_id(store: Store, cfg_db: str, runs_dir: Path, base: str) -> str:
    taken = {r.id for r in store.runs()} if cfg_db else set()
    rid, n = f"{base}-replay", 1
    while rid in taken or (runs_dir / rid).exists():
        n += 1
        rid = f"{base}-replay-{n}"
    return rid


def replay(src: session.RunHandle, console: Console) -> ReplayResult:
    last = src.store.last_iteration(src.run_id)
    runs_dir = src.run_dir.parent if not src.cfg.db else Path(src.cfg.runs_dir)
    cfg = dataclasses.replace(src.cfg, problem=str(src.spec.directory), iterations=max(last, 0),
                              max_wall_time_s=0.0, max_cost=0.0, runs_dir=str(runs_dir), baseline_cache=False,
                              run_id=_replay_id(src.store, src.cfg.db, runs_dir, src.run_id))
    completion = src.cfg.order == "completion"
    if completion:
        console.print(f"note: {src.run_id} committed in completion order: which parent each iteration drew "
                      "depended on evaluation timing, so the replay serves the same answers but its lineage can "
                      "differ", markup=False)
    proposer: Proposer = ReplayProposer(src.store, src.run_id) if src.cfg.models else MutatorProposer()
    sb = make_workers(cfg)
    try:
        h = session.create(cfg, sb)
        h.store.add_event(h.run_id, "replay_of", json.dumps({"run": src.run_id, "store": src.store.url}))
        console.print(f"replaying {src.run_id} ({last} iterations) into {h.run_id}; no model is called")
        session.execute(h, sb, proposer, console, resumed=False)
    finally:
        sb.close()
    noisy = noisy_metrics(src.spec)
    noisy_score = src.spec.objective.score in noisy
    diff = first_difference(lineage(src.store, src.run_id, noisy_score), lineage(h.store, h.run_id, noisy_score))
    check = compare_metrics(_metric_values(src.store, src.run_id), _metric_values(h.store, h.run_id), noisy,
                            noisy_score)
    return ReplayResult(src.run_id, h.run_id, h.run_dir, last, diff or check.difference, check.noisy, noisy_score,
                        check.baselines, completion)
