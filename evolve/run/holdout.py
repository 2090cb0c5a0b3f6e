"""Final scoring: the initial program, the best evolved programs and every baseline, on train and held-out.

Held-out workloads are touched only here, after the search, so they never steer selection. Idempotent:
a resumed or re-run final stage scores only what is still missing.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from evolve.run.reference_cache import ReferenceCache, cached_origin
from evolve.run.scoring import Scorecard, merge, one_per_workload
from evolve.problem import ProblemSpec
from evolve.store import NewProgram, Program, Store
from evolve.terms import ProgramKind, Split, Status

HELD_OUT = Split.HELD_OUT


@dataclass
class ScoreRow:
    label: str
    program_id: int
    status: str
    reason: str
    train: dict[str, float]
    held_out: dict[str, float]


def finalists(store: Store, run_id: str, top_k: int) -> list[Program]:
    """The initial program and the top_k children by train score (ties: earlier program)."""
    progs = store.programs(run_id, status=Status.OK)
    initial = [p for p in progs if p.kind == ProgramKind.INITIAL]
    children = sorted((p for p in progs if p.kind == ProgramKind.CHILD), key=lambda p: (-p.score, p.id))
    best = sorted(initial + children, key=lambda p: (-p.score, p.id))[:top_k]
    return initial + [p for p in best if p.kind != ProgramKind.INITIAL]


async def score_final(spec: ProblemSpec, store: Store, run_id: str, evaluate, slots: int, top_k: int,
                      cache: ReferenceCache | None = None) -> None:
    """Held-out scores of the finalists, and every baseline on train and held-out. The initial program's and
    the baselines' come from `cache` when it has them (evolve/run/reference_cache.py); the remaining jobs
    are spread over all `slots`."""
    stages_ho = [(HELD_OUT, spec.workloads.held_out)]
    have_ho = store.programs_with_split(run_id, HELD_OUT)
    baselines = {p.name for p in store.programs(run_id, kind=ProgramKind.BASELINE)}
    jobs = [_Job("program", p.id, "initial program" if p.kind == ProgramKind.INITIAL else "", p.source, stages_ho)
            for p in finalists(store, run_id, top_k) if p.id not in have_ho]
    jobs += [_Job("baseline", name, name, src, [(Split.TRAIN, spec.workloads.train), *stages_ho])
             for name, src in spec.baseline_sources().items() if name not in baselines]
    outs: dict[int, Scorecard] = {}
    for n, job in enumerate(jobs):   # evolved programs (no label) are always measured
        if cache and job.label and (hit := cache.get(job.label, job.source, job.stages)) is not None:
            outs[n] = hit
    todo = [n for n in range(len(jobs)) if n not in outs]
    outs.update(zip(todo, await _score_spread(evaluate, [jobs[n] for n in todo], slots)))
    for n, job in enumerate(jobs):  # commit in a fixed order
        out = outs[n]
        if cache and job.label:
            cache.put(job.source, job.stages, out)
        if job.kind == "program":
            store.add_metrics(job.key, out.metric_rows(), out.feedback_rows())
        else:
            store.add_program(run_id, _baseline_program(spec, job.key, job.source, out))


async def _score_spread(evaluate, jobs: list[_Job], slots: int) -> list[Scorecard]:
    """Each job's workloads as separate requests over all slots, so even one finalist's held-out set keeps
    every worker busy; merged back into one Scorecard per job (scoring.merge)."""
    loop = asyncio.get_running_loop()
    parts = [one_per_workload(job.stages) for job in jobs]
    with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="adrs-final") as pool:
        cards = iter(await asyncio.gather(*(loop.run_in_executor(pool, evaluate, job.source, part)
                                            for job, ps in zip(jobs, parts) for part in ps)))
    return [merge(job.stages, [next(cards) for _ in ps]) for job, ps in zip(jobs, parts)]


@dataclass
class _Job:
    kind: str            # "program" (a finalist's held-out) or "baseline" (train and held-out)
    key: int | str       # the finalist's program id, or the baseline's name
    label: str           # how the reference cache names it; "" for an evolved program (never cached)
    source: str
    stages: list


def _baseline_program(spec: ProblemSpec, name: str, source: str, out: Scorecard) -> NewProgram:
    return NewProgram(kind=ProgramKind.BASELINE, name=name, source=source, status=out.status, reason=out.reason,
                      score=out.mean(Split.TRAIN, spec.objective.score) if out.ok else None,
                      origin=cached_origin(f"baseline {spec.baselines[name]}", out), metrics=out.metric_rows(),
                      artifacts=out.artifacts, feedback=out.feedback_rows())


def summary_rows(store: Store, run_id: str, top_k: int) -> list[ScoreRow]:
    rows: list[ScoreRow] = []
    for p in finalists(store, run_id, top_k):
        label = "initial" if p.kind == ProgramKind.INITIAL else f"best (it {p.iteration})"
        rows.append(_row(store, label, p))
    for p in store.programs(run_id, kind=ProgramKind.BASELINE):
        rows.append(_row(store, p.name, p))
    return rows


def _row(store: Store, label: str, p: Program) -> ScoreRow:
    by_split: dict[str, dict[str, list[float]]] = {}
    for m in store.metrics(p.id):
        by_split.setdefault(m.split, {}).setdefault(m.metric, []).append(m.value)
    mean = {s: {k: sum(v) / len(v) for k, v in ms.items()} for s, ms in by_split.items()}
    return ScoreRow(label, p.id, p.status, p.reason, mean.get(Split.TRAIN, {}), mean.get(HELD_OUT, {}))
