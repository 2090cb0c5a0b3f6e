"""Evaluation throughput of the worker pool on a CPU-bound pure-Python evaluator: 1 worker vs 2 workers.

    .venv/bin/python bench/eval_workers.py [--evals 16] [--problem tests/fixtures/cpu_toy] [--threads]

Each setting gets as many concurrent callers (threads, as the controller's executor) as workers, a warm-up
of two evaluations per worker, then `--evals` timed evaluations of the initial program through the full
cascade (quick, then train). `--threads` adds today's design for reference: one in-process ProgramScorer
called from 2 threads, where the evaluators share one GIL. The last line is the 2-vs-1-worker speedup.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from evolve import problem as problem_mod  # noqa: E402
from evolve.run.scoring import ProgramScorer  # noqa: E402
from evolve.run.workers import WorkerPool  # noqa: E402
from sandbox.local import LocalSandbox  # noqa: E402

DEFAULT_PROBLEM = ROOT / "tests" / "fixtures" / "cpu_toy"


def throughput(score, callers: int, source: str, stages, evals: int) -> float:
    """Evaluations per second with `callers` threads calling `score` concurrently, after a warm-up."""
    with ThreadPoolExecutor(max_workers=callers) as ex:
        for out in ex.map(lambda _: score(source, stages), range(2 * callers)):
            assert out.ok, out.message
        t0 = time.perf_counter()
        outs = list(ex.map(lambda _: score(source, stages), range(evals)))
        elapsed = time.perf_counter() - t0
    assert all(o.ok for o in outs) and len({repr(o.metric_means("train").get("score")) for o in outs}) == 1
    return evals / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evals", type=int, default=16)
    ap.add_argument("--problem", default=str(DEFAULT_PROBLEM))
    ap.add_argument("--threads", action="store_true", help="also measure in-process threads (today's design)")
    args = ap.parse_args()
    spec = problem_mod.load(args.problem)
    stages = [("quick", spec.workloads.quick), ("train", spec.workloads.train)]
    source = spec.initial_source()
    print(f"problem {spec.name}, {args.evals} evaluations per setting, {os.cpu_count()} CPUs")
    if args.threads:
        sandbox = LocalSandbox()
        try:
            rate = throughput(ProgramScorer(spec, sandbox).score, 2, source, stages, args.evals)
        finally:
            sandbox.close()
        print(f"in-process threads x2: {rate:.2f} evals/s")
    rates = {}
    for workers in (1, 2):
        t0 = time.perf_counter()
        with WorkerPool(spec.directory, "local", workers) as pool:
            started = time.perf_counter() - t0
            rates[workers] = throughput(pool.score, workers, source, stages, args.evals)
        print(f"{workers} worker{'s' if workers > 1 else ''}: {rates[workers]:.2f} evals/s "
              f"(pool started in {started:.2f} s)")
    print(f"speedup {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
