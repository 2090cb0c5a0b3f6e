"""Final scoring: the initial program, the best evolved programs and every baseline, on train and held-out.

Held-out workloads are touched only here, after the search, so they never steer selection. Idempotent:
a resumed or re-run final stage scores only what is still missing.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from evolve.run.baseline_cache import BaselineCache
from evolve.run.scoring import Scorecard
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
                      cache: BaselineCache | None = None) -> None:
    """Held-out scores of the finalists, and every baseline on train and held-out (from `cache` when it has
    them: see evolve/run/baseline_cache.py)."""
    stages_ho = [(HELD_OUT, spec.workloads.held_out)]
    have_ho = store.programs_with_split(run_id, HELD_OUT)
    baselines = {p.name for p in store.programs(run_id, kind=ProgramKind.BASELINE)}
    jobs, cached = [], []
    for p in finalists(store, run_id, top_k):
        if p.id not in have_ho:
            jobs.append(("program", p.id, p.source, stages_ho))
    for name, src in spec.baseline_sources().items():
        if name in baselines:
            continue
        stages = [(Split.TRAIN, spec.workloads.train), *stages_ho]
        hit = cache.get(name, src, stages) if cache else None
        if hit is not None:
            cached.append(hit)
        else:
            jobs.append(("baseline", name, src, stages))
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="adrs-final") as pool:
        outs = await asyncio.gather(*(loop.run_in_executor(pool, evaluate, src, st) for _, _, src, st in jobs))
    for (kind, key, src, stages), out in zip(jobs, outs):  # commit in a fixed order
        if kind == "program":
            store.add_metrics(key, out.metric_rows(), out.feedback_rows())
        else:
            program = _baseline_program(spec, key, src, out)
            store.add_program(run_id, program)
            if cache:
                cache.put(key, src, stages, program)
    for program in cached:
        store.add_program(run_id, program)


def _baseline_program(spec: ProblemSpec, name: str, source: str, out: Scorecard) -> NewProgram:
    return NewProgram(kind=ProgramKind.BASELINE, name=name, source=source, status=out.status, reason=out.reason,
                      score=out.mean(Split.TRAIN, spec.objective.score) if out.ok else None,
                      origin=f"baseline {spec.baselines[name]}", metrics=out.metric_rows(),
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
