"""What the offline mutator earns: failed mutations and the held-out gain of the best program, per problem.

    .venv/bin/python bench/offline_mutator.py [--problems eplb,llm_scheduler] [--iterations 200] [--seeds 3]
                                             [--eval-slots 2] [--operators]

For every bundled problem (or those named; a path to a problem folder works too) and each seed 0..K-1, a
real run of the loop with the offline mutator (the proposer of `adrs run` without an LLM): the same
controller, worker processes and sandbox. Then the initial program and the best child by train score (as
the final stage of `adrs run` picks it) are scored on the held-out workloads.

Failure share: failed attempts / proposals, by reason (mutation_failed and syntax_error: the mutator made
nothing runnable; exception, timeout, ...: the child crashed; invalid_output: it answered against the
problem's rules). Held-out gain of a seed: held-out mean score of the best program minus the initial
program's, both measured in that seed's run. Interval: mean gain over seeds ± t(0.975, K-1) · sd / sqrt(K)
(Student-t over seeds; each seed is one independent run, so this is the spread a user rerunning with
another seed would see). With --operators, failures are also counted by the operators that made the child.

The last line is the mean gain across problems.
"""
from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evolve import problem as problem_mod  # noqa: E402
from evolve.config import RunConfig  # noqa: E402
from evolve.errors import AdrsError  # noqa: E402
from evolve.report.stats import mean_ci  # noqa: E402
from evolve.run.controller import Controller  # noqa: E402
from evolve.run.holdout import finalists  # noqa: E402
from evolve.run.workers import WorkerPool  # noqa: E402
from evolve.search.proposer import MutatorProposer, ProposalContext, Proposal  # noqa: E402
from evolve.store import Run, Store, sqlite_url  # noqa: E402
from evolve.terms import Split, Status  # noqa: E402


class RecordingProposer(MutatorProposer):
    """The offline mutator (same children), noting which operators made each iteration's child."""

    def __init__(self) -> None:
        super().__init__()
        self.operators: dict[int, tuple[str, ...]] = {}
        inner, record = self._mutator, self.operators

        class Recording:  # the mutator is called synchronously at the start of MutatorProposer.propose
            def propose(self, *args):
                m = inner.propose(*args)
                record[self.iteration] = m.operators
                return m

        self._mutator = self._recording = Recording()

    async def propose(self, ctx: ProposalContext) -> Proposal:
        self._recording.iteration = ctx.iteration
        return await super().propose(ctx)


@dataclass
class SeedResult:
    seed: int
    proposals: int
    failures: Counter
    initial_ho: float
    best_ho: float
    best_train: float
    initial_train: float
    wall_s: float
    best_origin: str
    op_total: Counter = field(default_factory=Counter)
    op_failed: Counter = field(default_factory=Counter)

    @property
    def gain(self) -> float:
        return self.best_ho - self.initial_ho


def held_out(pool: WorkerPool, spec, source: str) -> float:
    out = pool.score(source, [(Split.HELD_OUT, spec.workloads.held_out)])
    return out.mean(Split.HELD_OUT, spec.objective.score) if out.ok else math.nan


def one_run(spec, seed: int, iterations: int, slots: int, pool: WorkerPool, tmp: Path) -> SeedResult:
    cfg = RunConfig(problem=str(spec.directory), iterations=iterations, seed=seed, eval_slots=slots,
                    runs_dir=str(tmp))
    run_id = f"{spec.name}-s{seed}"
    store = Store(sqlite_url(tmp / f"{run_id}.db"), create=True)
    store.create_run(Run(id=run_id, problem=spec.name, problem_dir=str(spec.directory), seed=seed,
                         config=cfg.to_json(), sandbox=cfg.sandbox, isolation="{}", versions="{}",
                         created_at=time.time()))
    proposer = RecordingProposer()
    t0 = time.perf_counter()
    asyncio.run(Controller(spec, cfg, store, run_id, proposer, pool.score).run())
    attempts = [a for a in store.attempts(run_id) if a.iteration > 0]
    failures = Counter(a.reason for a in attempts if a.status != Status.OK)
    op_total, op_failed = Counter(), Counter()
    for a in attempts:
        for name in set(proposer.operators.get(a.iteration, ())):
            op_total[name] += 1
            op_failed[name] += a.status != Status.OK
    init, *rest = finalists(store, run_id, 1)
    best = rest[0] if rest else init
    init_ho = held_out(pool, spec, init.source)
    best_ho = init_ho if best is init else held_out(pool, spec, best.source)
    store.close()
    return SeedResult(seed, len(attempts), failures, init_ho, best_ho, best.score, init.score,
                      time.perf_counter() - t0, best.origin, op_total, op_failed)


def report(name: str, results: list[SeedResult], operators: bool) -> float:
    proposals = sum(r.proposals for r in results)
    failures = sum((r.failures for r in results), Counter())
    failed = sum(failures.values())
    reasons = ", ".join(f"{k} {v / proposals:.1%}" for k, v in failures.most_common()) or "none"
    gains = [r.gain for r in results]
    iv = mean_ci(gains)
    interval = "" if iv is None or iv.lo is None else f" [{iv.lo:+.4f}, {iv.hi:+.4f}]"
    for r in results:
        print(f"  {name} seed {r.seed}: train {r.initial_train:.4f} -> {r.best_train:.4f}, held-out "
              f"{r.initial_ho:.4f} -> {r.best_ho:.4f} (gain {r.gain:+.4f}), "
              f"{sum(r.failures.values())}/{r.proposals} failed, {r.wall_s:.0f} s; "
              f"best made by: {r.best_origin[:90]}")
    print(f"{name}: failed {failed}/{proposals} = {failed / max(proposals, 1):.1%} ({reasons}); "
          f"held-out gain {iv.mean:+.4f}{interval} (95% t over {len(results)} seeds)")
    if operators:
        tot = sum((r.op_total for r in results), Counter())
        bad = sum((r.op_failed for r in results), Counter())
        print("  by operator (children it took part in, share failed): " + ", ".join(
            f"{k} {tot[k]} {bad[k] / tot[k]:.0%}" for k in sorted(tot)))
    return iv.mean


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", default="", help="comma-separated names or folders (default: every bundled one)")
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--eval-slots", type=int, default=2)
    ap.add_argument("--operators", action="store_true", help="also count failures by mutation operator")
    a = ap.parse_args()
    names = [p for p in a.problems.split(",") if p] or [d.name for d in problem_mod.bundled_problems()]
    print(f"offline mutator: {a.iterations} iterations x {a.seeds} seeds, {a.eval_slots} evaluation slots")
    means = []
    for name in names:
        try:
            spec = problem_mod.load(name)
            with tempfile.TemporaryDirectory(prefix="adrs-bench-mut-") as tmp, \
                    WorkerPool(spec.directory, "local", a.eval_slots) as pool:
                results = [one_run(spec, s, a.iterations, a.eval_slots, pool, Path(tmp)) for s in range(a.seeds)]
        except AdrsError as e:  # a problem that does not load or whose initial program fails: say so, go on
            print(f"{name}: not measured: {e}")
            continue
        means.append(report(spec.name, results, a.operators))
    mean = f"{sum(means) / len(means):+.4f}" if means else "n/a"
    print(f"mean held-out gain across {len(means)} problem(s): {mean}")


if __name__ == "__main__":
    main()
