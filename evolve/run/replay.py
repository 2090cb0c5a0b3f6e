"""`adrs replay RUN`: run a recorded run again into a new run, serving its recorded LLM answers in order.

No model is called. Iteration i gets the answers recorded for iteration i of the original run, and
answer.decide turns them into the same proposal (or the same failure) as the first time; parents are
drawn from the same seed at the same points, so with deterministic metrics the lineage is identical. With
a changed evaluator, the same proposals are re-scored. A run made by the offline mutator is replayed by
the mutator itself (it is deterministic). The original run is only read.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from evolve.run import session
from evolve.llm.answer import decide
from evolve.llm.client import CallRecord
from evolve.search.proposer import MutatorProposer, Proposal, ProposalContext, ProposalFailed, Proposer
from evolve.store import Attempt, Store

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


def lineage(store: Store, run_id: str) -> list[tuple]:
    """Per iteration: (iteration, parent's iteration, status, stage, reason, child source, child score)."""
    progs = {p.id: p for p in store.programs(run_id)}
    rows = []
    for a in store.attempts(run_id):
        parent = progs.get(a.parent_id) if a.parent_id else None
        child = progs.get(a.program_id) if a.program_id else None
        rows.append((a.iteration, parent.iteration if parent else None, a.status, a.stage, a.reason,
                     child.source if child else None, child.score if child else None))
    return rows


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
    difference: str        # "" when the lineage matches

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
                              max_wall_time_s=0.0, max_cost=0.0, runs_dir=str(runs_dir),
                              run_id=_replay_id(src.store, src.cfg.db, runs_dir, src.run_id))
    proposer: Proposer = ReplayProposer(src.store, src.run_id) if src.cfg.models else MutatorProposer()
    sb = session.make_workers(cfg)
    try:
        h = session.create(cfg, sb)
        h.store.add_event(h.run_id, "replay_of", json.dumps({"run": src.run_id, "store": src.store.url}))
        console.print(f"replaying {src.run_id} ({last} iterations) into {h.run_id}; no model is called")
        session.execute(h, sb, proposer, console, resumed=False)
    finally:
        sb.close()
    diff = first_difference(lineage(src.store, src.run_id), lineage(h.store, h.run_id))
    return ReplayResult(src.run_id, h.run_id, h.run_dir, last, diff)
