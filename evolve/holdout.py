"""Final scoring: the initial program, the best evolved programs and every baseline, on train and held-out.

Held-out workloads are touched only here, after the search, so they never steer selection. Idempotent:
a resumed or re-run final stage scores only what is still missing.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from evolve.evaluation import EvalOutcome
from evolve.problem import ProblemSpec
from evolve.store import NewProgram, Program, Store

HELD_OUT = "held-out"


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
    progs = store.programs(run_id, status="ok")
    initial = [p for p in progs if p.kind == "initial"]
    children = sorted((p for p in progs if p.kind == "child"), key=lambda p: (-p.score, p.id))
    best = sorted(initial + children, key=lambda p: (-p.score, p.id))[:top_k]
    return initial + [p for p in best if p.kind != "initial"]


async def score_final(spec: ProblemSpec, store: Store, run_id: str, evaluate, slots: int, top_k: int) -> None:
    stages_ho = [(HELD_OUT, spec.workloads.held_out)]
    have_ho = {p for p in _programs_with_split(store, run_id, HELD_OUT)}
    baselines = {p.name for p in store.programs(run_id, kind="baseline")}
    jobs = []
    for p in finalists(store, run_id, top_k):
        if p.id not in have_ho:
            jobs.append(("program", p.id, p.source, stages_ho))
    for name, src in spec.baseline_sources().items():
        if name not in baselines:
            jobs.append(("baseline", name, src, [("train", spec.workloads.train), *stages_ho]))
    if not jobs:
        return
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="adrs-final") as pool:
        outs = await asyncio.gather(*(loop.run_in_executor(pool, evaluate, src, st) for _, _, src, st in jobs))
    for (kind, key, src, _), out in zip(jobs, outs):  # commit in a fixed order
        if kind == "program":
            store.add_metrics(key, out.metric_rows())
        else:
            store.add_program(run_id, _baseline_program(spec, key, src, out))


def _baseline_program(spec: ProblemSpec, name: str, source: str, out: EvalOutcome) -> NewProgram:
    return NewProgram(kind="baseline", name=name, source=source, status=out.status, reason=out.reason,
                      score=out.mean("train", spec.objective.score) if out.ok else None,
                      origin=f"baseline {spec.baselines[name]}", metrics=out.metric_rows(),
                      artifacts=out.artifacts)


def _programs_with_split(store: Store, run_id: str, split: str) -> set[int]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session
    from evolve.store import Evaluation

    q = (select(Evaluation.program_id).join(Program, Program.id == Evaluation.program_id)
         .where(Program.run_id == run_id, Evaluation.split == split).distinct())
    with Session(store.engine) as s:
        return set(s.scalars(q))


def summary_rows(store: Store, run_id: str, top_k: int) -> list[ScoreRow]:
    rows: list[ScoreRow] = []
    for p in finalists(store, run_id, top_k):
        label = "initial" if p.kind == "initial" else f"best (it {p.iteration})"
        rows.append(_row(store, label, p))
    for p in store.programs(run_id, kind="baseline"):
        rows.append(_row(store, p.name, p))
    return rows


def _row(store: Store, label: str, p: Program) -> ScoreRow:
    by_split: dict[str, dict[str, list[float]]] = {}
    for m in store.metrics(p.id):
        by_split.setdefault(m.split, {}).setdefault(m.metric, []).append(m.value)
    mean = {s: {k: sum(v) / len(v) for k, v in ms.items()} for s, ms in by_split.items()}
    return ScoreRow(label, p.id, p.status, p.reason, mean.get("train", {}), mean.get(HELD_OUT, {}))
