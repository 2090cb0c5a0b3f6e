"""The evolution loop: an asyncio pipeline of proposals and sandboxed evaluations over one lineage store.

Determinism with work in flight (`order = "proposal"`, the default): iteration i draws its parent right
after iteration i-lag is committed (lag = proposals + evaluation slots), and results are committed strictly
in iteration order. So what the archive looks like when i samples never depends on which evaluation
happened to finish first. Resume replays the committed iterations into a fresh archive, drawing the same
samples at the same points.

`order = "completion"` commits each iteration as its evaluation ends and starts the next one at once, so
no worker waits behind a slow evaluation (heavy-tailed evaluation times); the archive a draw sees then
depends on timing, and a seed's lineage is not reproducible (the run records that).
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator

from evolve.search.archive import Archive, ArchiveMember
from evolve.config import RunConfig
from evolve.search.edits import EditError, apply_edit, unified_diff
from evolve.errors import AdrsError
from evolve.run.reference_cache import ReferenceCache, cached_origin
from evolve.run.scoring import Scorecard
from evolve.search.features import compute_features
from evolve.problem import ProblemSpec
from evolve.search.proposer import Proposal, ProposalContext, ProposalFailed, Proposer, ProgramView
from evolve.rng import rng
from evolve.store import MetricRow, NewAttempt, NewProgram, Store, metrics_by_program
from evolve.terms import ProgramKind, ProposalReason, Split, Stage, Status

EvaluateFn = Callable[[str, list], Scorecard]   # (source, [(split, workload ids)]) -> outcome


@dataclass
class Selection:
    parent: ArchiveMember
    inspirations: list[ArchiveMember]


@dataclass
class LoopStats:
    committed: int = 0
    evaluated: int = 0
    best_score: float | None = None
    best_id: int | None = None
    failures: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    replayed: int = 0   # of `evaluated`, those read back from the store (the initial program, a resumed run's)

    def note(self, a: NewAttempt, archive: Archive) -> None:
        self.committed += 1
        if a.program is not None:
            self.evaluated += 1
        if a.status == Status.FAILED:
            self.failures[a.reason] = self.failures.get(a.reason, 0) + 1
        best = archive.best()
        if best is not None:
            self.best_score, self.best_id = best.score, best.id


class Controller:
    def __init__(self, spec: ProblemSpec, cfg: RunConfig, store: Store, run_id: str, proposer: Proposer,
                 evaluate: EvaluateFn, on_commit: Callable[[int, LoopStats], None] | None = None,
                 cache: ReferenceCache | None = None) -> None:
        self.spec, self.cfg, self.store, self.run_id = spec, cfg, store, run_id
        self.proposer, self.evaluate, self.cache = proposer, evaluate, cache
        self.on_commit = on_commit or (lambda i, s: None)
        self.archive = Archive(cfg.archive, cfg.seed)
        self.stats = LoopStats()
        self._pending: dict[int, Selection] = {}
        self._pool = ThreadPoolExecutor(max_workers=cfg.eval_slots, thread_name_prefix="adrs-eval")
        self._eval_sem = asyncio.Semaphore(cfg.eval_slots)
        self._prop_sem = asyncio.Semaphore(cfg.proposals_in_flight)
        self._deadline = time.monotonic() + cfg.max_wall_time_s if cfg.max_wall_time_s else None
        self.stopped_by = ""
        self.stop_hooks: list[Callable[[], str]] = []   # each returns why to stop launching, or ""

    # -- the loop -------------------------------------------------------------------------------------
    async def run(self) -> LoopStats:
        try:
            if self.store.last_iteration(self.run_id) < 0:
                await self._commit_initial()
            last = self._rebuild()
            tasks: dict[int, asyncio.Task] = {}
            if self._by_completion:
                await self._commit_as_completed(last, tasks)
            else:
                await self._commit_in_order(last, tasks)
            if not self.stopped_by:
                self.stopped_by = "iterations"
            return self.stats
        finally:
            for t in list(locals().get("tasks", {}).values()):
                t.cancel()
            self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def _by_completion(self) -> bool:
        return self.cfg.order == "completion"

    async def _commit_in_order(self, last: int, tasks: dict[int, asyncio.Task]) -> None:
        for i in sorted(self._pending):
            self._launch(i, tasks)
        nxt = last + 1
        while nxt in tasks:
            self._commit(nxt, await tasks.pop(nxt))
            self._after_commit(nxt, tasks)
            nxt += 1

    async def _commit_as_completed(self, last: int, tasks: dict[int, asyncio.Task]) -> None:
        """Iterations a killed run left uncommitted first, then new ones; each finished one is committed
        at once and its slot goes to the next iteration, whose parent is drawn from the archive as it is."""
        committed = {a.iteration for a in self.store.attempts(self.run_id)}
        lost = [i for i in range(1, last + 1) if i not in committed]
        todo = iter(lost + list(range(last + 1, self.cfg.iterations + 1)))
        for _ in range(self.cfg.lag):
            self._launch_next(todo, tasks)
        while tasks:
            done, _ = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_COMPLETED)
            for i in sorted(i for i, t in tasks.items() if t in done):
                self._commit(i, tasks.pop(i).result())
                self._launch_next(todo, tasks)

    def _launch_next(self, todo: Iterator[int], tasks: dict[int, asyncio.Task]) -> None:
        i = None if self.stopped_by else next(todo, None)
        if i is None:
            return
        parent, insp = self.archive.sample(self.archive.island_for(i), i)
        self._pending[i] = Selection(parent, insp)
        self._launch(i, tasks)
        self._pending.clear()   # a launch refused (a budget or the wall clock) leaves nothing behind

    def _launch(self, i: int, tasks: dict[int, asyncio.Task]) -> None:
        if i > self.cfg.iterations:
            return
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self.stopped_by = "max_wall_time"
            return
        for hook in self.stop_hooks:  # e.g. the LLM proposer's cost budget; work in flight drains
            why = hook()
            if why:
                self.stopped_by = why
                return
        sel = self._pending.pop(i)
        tasks[i] = asyncio.ensure_future(self._iteration(i, sel))

    def _after_commit(self, k: int, tasks: dict[int, asyncio.Task]) -> None:
        self._draw_samples_after(k)
        for i in sorted(self._pending):
            self._launch(i, tasks)
        self._pending.clear()

    def _sample_targets(self, k: int) -> list[int]:
        """Iterations whose parent is drawn right after iteration k commits."""
        lag = self.cfg.lag
        return list(range(1, lag + 1)) if k == 0 else [k + lag]

    def _draw_samples_after(self, k: int, committed_upto: int | None = None) -> None:
        if len(self.archive) == 0:
            return
        for i in self._sample_targets(k):
            if committed_upto is not None and i <= committed_upto:
                continue
            island = self.archive.island_for(i)
            parent, insp = self.archive.sample(island, i)
            self._pending[i] = Selection(parent, insp)

    # -- one iteration (runs concurrently; writes nothing) ---------------------------------------------
    async def _iteration(self, i: int, sel: Selection) -> NewAttempt:
        t0 = time.perf_counter()
        parent, island = sel.parent, self.archive.island_for(i)
        attempt = NewAttempt(iteration=i, island=island, parent_id=parent.id,
                             proposer=self.proposer.name, stage=Stage.PROPOSE, status=Status.FAILED)
        srcs = self.store.sources([parent.id] + [p.id for p in sel.inspirations])
        feedback = self.proposer.wants_feedback  # prompts do; the mutator does not
        ctx = ProposalContext(
            iteration=i, island=island, parent=self._view(parent, srcs[parent.id], feedback),
            inspirations=tuple(self._view(p, srcs[p.id]) for p in sel.inspirations),
            rng=rng(self.cfg.seed, i, "propose"), lag=self.cfg.lag,
            failures=tuple(self.store.recent_failures(self.run_id, parent.id, i - self.cfg.lag))
            if feedback else ())
        try:
            async with self._prop_sem:
                proposal = await self.proposer.propose(ctx)
        except ProposalFailed as e:
            return self._failed(attempt, Stage.PROPOSE, e.reason, e.message, e.raw, t0, e.llm_calls)
        except Exception as e:  # a proposer bug must not stop the run
            return self._failed(attempt, Stage.PROPOSE, ProposalReason.PROPOSER_ERROR, f"{type(e).__name__}: {e}", "", t0)
        attempt.llm_calls = list(proposal.llm_calls)
        attempt.proposal = proposal.raw
        try:
            child = apply_edit(ctx.parent.source, proposal.edit)
        except EditError as e:
            return self._failed(attempt, Stage.EDIT, e.reason, e.message, proposal.raw, t0, proposal.llm_calls)
        async with self._eval_sem:
            out = await asyncio.get_running_loop().run_in_executor(
                self._pool, self.evaluate, child, self._stages())
        program = self._new_program(child, out, i, parent, proposal, ctx.parent.source, island)
        attempt.stage, attempt.status = out.stage, out.status
        attempt.reason, attempt.message = out.reason, out.message
        attempt.program, attempt.duration_s = program, time.perf_counter() - t0
        return attempt

    def _view(self, p: ArchiveMember, source: str, feedback: bool = False) -> ProgramView:
        """What a proposer sees of a program; with feedback also its train metrics, the evaluator's words
        per train workload and its artifacts."""
        if not feedback:
            return ProgramView(p.id, source, p.score)
        per_wl: dict[str, dict[str, float]] = {}
        for m in self.store.metrics(p.id, Split.TRAIN):
            per_wl.setdefault(m.workload, {})[m.metric] = m.value
        names = sorted({k for d in per_wl.values() for k in d})
        means = {k: sum(d[k] for d in per_wl.values() if k in d) / sum(k in d for d in per_wl.values())
                 for k in names}
        words = {f.workload: f.text for f in self.store.feedback(p.id, Split.TRAIN)}
        return ProgramView(p.id, source, p.score, means, per_wl, self.store.artifacts(p.id), words)

    def _stages(self) -> list[tuple[str, tuple[str, ...]]]:
        w = self.spec.workloads
        return [(Split.QUICK, w.quick), (Split.TRAIN, w.train)]

    def _failed(self, a: NewAttempt, stage: str, reason: str, message: str, raw: str, t0: float,
                llm_calls: tuple = ()) -> NewAttempt:
        a.stage, a.status, a.reason, a.message, a.proposal = stage, Status.FAILED, reason, message, raw
        a.llm_calls = list(llm_calls)
        a.duration_s = time.perf_counter() - t0
        return a

    def _new_program(self, source: str, out: Scorecard, i: int, parent: ArchiveMember | None,
                     proposal: Proposal | None, parent_source: str = "", island: int = 0) -> NewProgram:
        # A quick workload that is also a train workload was scored once; store it under train only.
        train = set(self.spec.workloads.train)
        metrics = [r for r in out.metric_rows() if r.split != Split.QUICK or r.workload not in train]
        feedback = [r for r in out.feedback_rows() if r.split != Split.QUICK or r.workload not in train]
        return NewProgram(
            kind=ProgramKind.CHILD if parent else ProgramKind.INITIAL, source=source, status=out.status, iteration=i,
            parent_id=parent.id if parent else None, island=island,
            generation=parent.generation + 1 if parent else 0,
            diff=unified_diff(parent_source, source) if parent else "",
            reason=out.reason, score=out.mean(Split.TRAIN, self.spec.objective.score) if out.ok else None,
            origin=proposal.description if proposal else cached_origin("initial program", out),
            metrics=metrics, artifacts=out.artifacts, feedback=feedback)

    # -- commits (in iteration order, on the event loop) -----------------------------------------------
    def _commit(self, i: int, attempt: NewAttempt) -> None:
        pid = self.store.commit_attempt(self.run_id, attempt)
        if attempt.program is not None and attempt.status == Status.OK:
            self.archive.add(self._record(pid, attempt.program, self._train_rows(attempt.program)))
        self.archive.migrate(i)
        self.stats.note(attempt, self.archive)
        observe = getattr(self.proposer, "observe", None)  # e.g. the LLM proposer watching for repeated failures
        if observe is not None:
            observe(attempt)
        self.on_commit(i, self.stats)

    def _train_rows(self, p: NewProgram) -> list[MetricRow]:
        return [m for m in p.metrics if m.split == Split.TRAIN]

    def _record(self, pid: int, p: NewProgram, train_rows: list[MetricRow]) -> ArchiveMember:
        score_metric = self.spec.objective.score
        wl_scores = {m.workload: m.value for m in train_rows if m.metric == score_metric}
        means: dict[str, list[float]] = {}
        for m in train_rows:
            means.setdefault(m.metric, []).append(m.value)
        metrics = {k: sum(v) / len(v) for k, v in sorted(means.items())}
        feats = compute_features(self.cfg.archive.feature_dims, p.source, wl_scores, metrics)
        return ArchiveMember(id=pid, island=p.island, score=float(p.score), features=feats,
                             generation=p.generation, iteration=p.iteration)

    async def _commit_initial(self) -> None:
        """Score the initial program, or take its scorecard from an earlier run of this problem version."""
        source, stages = self.spec.initial_source(), self._stages()
        out = self.cache.get("initial program", source, stages) if self.cache else None
        if out is None:
            out = await asyncio.get_running_loop().run_in_executor(self._pool, self.evaluate, source, stages)
            if self.cache:
                self.cache.put(source, stages, out)
        program = self._new_program(source, out, 0, None, None)
        attempt = NewAttempt(iteration=0, island=0, parent_id=None, proposer="initial", stage=out.stage,
                             status=out.status, reason=out.reason, message=out.message,
                             duration_s=out.duration_s, program=program)
        self.store.commit_attempt(self.run_id, attempt)
        if not out.ok:
            raise AdrsError(f"the initial program {self.spec.entry.file} fails: {out.reason}: {out.message}")

    def _rebuild(self) -> int:
        """Replay committed iterations into the archive; return the last committed iteration."""
        attempts = self.store.attempts(self.run_id)
        if self._by_completion:  # replayed as they were committed (ids rise with commits)
            attempts.sort(key=lambda a: a.id)
        programs = {p.id: p for p in self.store.programs(self.run_id, status=Status.OK)}
        rows = metrics_by_program(self.store, self.run_id, Split.TRAIN)
        last = max((a.iteration for a in attempts), default=-1)
        initial_ok = any(a.iteration == 0 and a.status == Status.OK for a in attempts)
        if not initial_ok:
            raise AdrsError("this run's initial program failed; nothing to evolve from")
        for a in attempts:
            p = programs.get(a.program_id) if a.program_id else None
            if p is not None:
                np_ = NewProgram(kind=p.kind, source=p.source, status=p.status, iteration=p.iteration,
                                 island=p.island, generation=p.generation, score=p.score)
                self.archive.add(self._record(p.id, np_, rows.get(p.id, [])))
            self.archive.migrate(a.iteration)
            self.stats.note(NewAttempt(a.iteration, a.island, a.parent_id, a.proposer, a.stage, a.status,
                                       a.reason, program=NewProgram("", "", "") if a.program_id else None),
                            self.archive)
            if not self._by_completion:
                self._draw_samples_after(a.iteration, committed_upto=last)
        self.stats.replayed = self.stats.evaluated
        return last
