"""Loop overhead: iterations/s of the controller + archive + store with an instant proposer and a trivial
evaluator, measured over windows as the store grows to 10,000 programs; and lineage DB size per 1,000.

    .venv/bin/python bench/loop_overhead.py [--programs 10000] [--problem eplb]

Programs carry the problem's real initial source and the real number of metric rows per program, so the
database size is what a real run of that size would write (minus artifacts and LLM calls).
"""
from __future__ import annotations

import argparse
import asyncio
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluators.base import WorkloadResult  # noqa: E402
from evolve import problem  # noqa: E402
from evolve.config import RunConfig  # noqa: E402
from evolve.run.controller import Controller  # noqa: E402
from evolve.search.edits import FullRewrite  # noqa: E402
from evolve.run.scoring import Scorecard  # noqa: E402
from evolve.search.proposer import Proposal, Proposer  # noqa: E402
from evolve.store import Run, Store, sqlite_url  # noqa: E402


class InstantProposer(Proposer):
    """Appends a counter comment-free statement inside the EVOLVE-BLOCK so every child is new."""
    name = "instant"

    async def propose(self, ctx):
        src = re.sub(r"(# EVOLVE-BLOCK-END)", f"_bench_marker = {ctx.iteration}\n\\1", ctx.parent.source, count=1)
        src = re.sub(r"_bench_marker = \d+\n(?=_bench_marker)", "", src)
        return Proposal(edit=FullRewrite(src), description="instant")


def trivial_evaluate(spec, metrics: list[str]):
    def evaluate(source: str, stages):
        h = (len(source) * 2654435761) % 1000 / 1000.0
        out = Scorecard(status="ok", stage=stages[-1][0])
        for split, ids in stages:
            out.results[split] = [WorkloadResult(w, {m: h for m in metrics}) for w in ids]
        return out
    return evaluate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--programs", type=int, default=10_000)
    ap.add_argument("--problem", default="eplb")
    ap.add_argument("--window", type=int, default=1000)
    a = ap.parse_args()
    spec = problem.load(a.problem)
    metrics = sorted(set(spec.objective.metrics) | {spec.objective.score})
    tmp = Path(tempfile.mkdtemp(prefix="adrs-bench-"))
    db = tmp / "lineage.db"
    store = Store(sqlite_url(db), create=True)
    cfg = RunConfig(problem=a.problem, iterations=a.programs, eval_slots=2, proposals_in_flight=1)
    store.create_run(Run(id="bench", problem=spec.name, problem_dir=str(spec.directory), seed=0,
                         config=cfg.to_json(), sandbox="none", isolation="{}", versions="{}", created_at=0))
    marks: list[tuple[int, float]] = []

    def on_commit(i: int, _stats) -> None:
        if i % a.window == 0 or i == 1:
            marks.append((i, time.perf_counter()))

    ctl = Controller(spec, cfg, store, "bench", InstantProposer(), trivial_evaluate(spec, metrics), on_commit)
    asyncio.run(ctl.run())
    print(f"loop overhead ({spec.name} sources, {len(spec.workloads.train)} train workloads x "
          f"{len(metrics)} metrics, {cfg.eval_slots} eval slots):")
    rates = [(i1 - i0) / (t1 - t0) for (i0, t0), (i1, t1) in zip(marks, marks[1:])]
    for ((i0, _), (i1, _)), rate in zip(zip(marks, marks[1:]), rates):
        print(f"  programs {i0:>6}-{i1:<6} {rate:8.0f} iterations/s")
    store.close()
    size = sum(f.stat().st_size for f in tmp.glob("lineage.db*"))
    print(f"lineage DB size: {size / 1e6:.1f} MB for {a.programs} programs = "
          f"{size / 1e6 / a.programs * 1000:.2f} MB per 1,000 programs")
    # ru_maxrss is KiB on Linux: the controller's whole peak, store and archive included
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if len(rates) >= 2:
        last = rates[-1] / rates[0]
        print(f"last window at {last:.0%} of the first (goal: within 10%, i.e. at least 90%)")


if __name__ == "__main__":
    main()
