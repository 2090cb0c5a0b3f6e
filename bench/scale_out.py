"""Scale-out: evaluations/s and worker utilisation for 1, 2 and 4 workers, as local worker processes and as
Ray actors (a local Ray), committing in proposal order and in completion order, when evaluation times are
heavy-tailed (lognormal, CV 1.5).

    .venv/bin/python bench/scale_out.py [--evals 200] [--mean 0.1] [--db URL] [--executors local,ray]

A synthetic problem (written to a temp folder) whose trusted evaluator sleeps a lognormal time drawn from
the iteration the candidate reports; the same iterations get the same times in every setting. Every
evaluation goes through the real path: a worker process, a fresh sandboxed candidate, the store.
Utilisation = the workers' busy seconds (each scoring, sandbox start included) / (workers x loop seconds).
Then a projection of one controller's limit from the measured cost of a commit. Last line: utilisation of
4 Ray workers in completion order (of 4 local workers when Ray is not benchmarked).
"""
from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from evolve import problem as problem_mod  # noqa: E402
from evolve.config import RunConfig  # noqa: E402
from evolve.run.controller import Controller  # noqa: E402
from evolve.run.workers import WorkerPool  # noqa: E402
from evolve.search.edits import FullRewrite  # noqa: E402
from evolve.search.proposer import Proposal, Proposer  # noqa: E402
from evolve.store import Run, Store, sqlite_url  # noqa: E402

CV = 1.5
SIGMA = math.sqrt(math.log(1 + CV ** 2))   # lognormal: CV^2 = exp(sigma^2) - 1

PROBLEM_TOML = """name = "heavy_tail"
description = "Synthetic evaluation times, lognormal CV 1.5 (bench/scale_out.py)"
family = "other"

[entry]
file = "initial.py"
function = "ident"
signature = "ident() -> int"

[evaluator]
file = "evaluator.py"
params = {{ mean_s = {mean}, sigma = {sigma}, seed = 7 }}

[workloads]
train = ["w0"]
held_out = ["w1"]

[objective]
score = "score"
metrics = {{ score = "max" }}

[limits]
call_timeout_s = 5
workload_timeout_s = 60
"""

INITIAL = "# EVOLVE-BLOCK-START\nITERATION = 0\n\n\ndef ident():\n    return ITERATION\n# EVOLVE-BLOCK-END\n"

EVALUATOR = '''"""Sleeps a lognormal time drawn from the iteration the candidate names (same iteration, same time)."""
import math
import time

import numpy as np

from evaluators.base import Evaluator, InvalidOutput, WorkloadResult


class HeavyTail(Evaluator):
    def __init__(self, mean_s: float, sigma: float, seed: int) -> None:
        self.mu, self.sigma, self.seed = math.log(mean_s) - sigma ** 2 / 2, sigma, seed

    def check_workload(self, workload_id):
        pass

    def evaluate(self, candidate, workload_id):
        i = candidate.call("ident")
        if not isinstance(i, int) or i < 0:
            raise InvalidOutput("ident() must return the iteration, an int >= 0")
        time.sleep(float(np.random.default_rng([self.seed, i]).lognormal(self.mu, self.sigma)))
        return WorkloadResult(workload_id, {"score": 1.0 / (1.0 + i)})


def make_evaluator(params, problem_dir):
    return HeavyTail(float(params["mean_s"]), float(params["sigma"]), int(params["seed"]))
'''


class NumberingProposer(Proposer):
    """Instant proposals: the child names its iteration, which sets its evaluation time."""
    name = "numbering"

    async def propose(self, ctx):
        src = re.sub(r"ITERATION = \d+", f"ITERATION = {ctx.iteration}", ctx.parent.source)
        return Proposal(edit=FullRewrite(src), description="numbering")


@dataclass
class Measure:
    evals_per_s: float
    utilisation: float
    commit_ms: float        # one commit: the store's transaction and the archive
    controller_ms: float    # the event loop's CPU per iteration: proposal, reads, commit, scheduling


class Timed:
    """The controller's evaluate and commit, timed: busy seconds of scoring and seconds per commit."""

    def __init__(self, pool: WorkerPool, ctl_commit) -> None:
        self.pool, self.ctl_commit = pool, ctl_commit
        self.busy, self.evals, self.loop_start, self.last_commit = 0.0, 0, None, 0.0
        self.commit_s, self.commits = 0.0, 0
        self._lock = threading.Lock()

    def score(self, source, stages):
        out = self.pool.score(source, stages)
        with self._lock:
            if self.loop_start is None:          # the initial program: the loop starts after it
                self.loop_start = time.perf_counter()
            else:
                self.busy += out.duration_s
                self.evals += 1
        return out

    def commit(self, i, attempt):
        t0 = time.perf_counter()
        self.ctl_commit(i, attempt)
        self.last_commit = time.perf_counter()
        self.commit_s += self.last_commit - t0
        self.commits += 1


def make_pool(spec, executor: str, workers: int):
    if executor == "ray":  # actors on the Ray this script started (main), one CPU each
        from evolve.run.ray_pool import RayWorkerPool
        return RayWorkerPool(spec.directory, "local", workers)
    return WorkerPool(spec.directory, "local", workers)


def measure(spec, url: str, executor: str, workers: int, order: str, evals: int) -> Measure:
    store = Store(url, create=True)
    rid = f"scale-{executor}-{order}-{workers}w-{time.time_ns()}"
    cfg = RunConfig(problem=str(spec.directory), iterations=evals, eval_slots=workers, proposals_in_flight=1,
                    order=order, executor=executor)
    store.create_run(Run(id=rid, problem=spec.name, problem_dir=str(spec.directory), seed=0, config=cfg.to_json(),
                         sandbox="local", isolation="{}", versions="{}", created_at=time.time()))
    with make_pool(spec, executor, workers) as pool:
        ctl = Controller(spec, cfg, store, rid, NumberingProposer(), pool.score)
        timed = Timed(pool, ctl._commit)
        ctl.evaluate, ctl._commit = timed.score, timed.commit
        cpu0 = time.thread_time()   # this thread runs the event loop; evaluations wait in other threads
        asyncio.run(ctl.run())
        cpu = time.thread_time() - cpu0
    store.close()
    loop_s = timed.last_commit - timed.loop_start
    return Measure(timed.evals / loop_s, timed.busy / (workers * loop_s), 1000 * timed.commit_s / timed.commits,
                   1000 * cpu / timed.commits)


def write_problem(folder: Path, mean: float) -> None:
    (folder / "problem.toml").write_text(PROBLEM_TOML.format(mean=mean, sigma=SIGMA))
    (folder / "initial.py").write_text(INITIAL)
    (folder / "evaluator.py").write_text(EVALUATOR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evals", type=int, default=200, help="evaluations per setting")
    ap.add_argument("--mean", type=float, default=0.1, help="mean evaluation time, seconds")
    ap.add_argument("--db", default="", help="store URL (default: a temp SQLite file); e.g. postgresql+psycopg://...")
    ap.add_argument("--executors", default="local,ray", help="comma-separated: local, ray")
    a = ap.parse_args()
    executors = [e for e in a.executors.split(",") if e]
    if "ray" in executors:
        start_ray(4)
    tmp = Path(tempfile.mkdtemp(prefix="adrs-scale-"))
    write_problem(tmp, a.mean)
    spec = problem_mod.load(str(tmp))
    url = a.db or sqlite_url(tmp / "lineage.db")
    print(f"{a.evals} evaluations per setting, lognormal times: mean {a.mean} s, CV {CV} (sigma {SIGMA:.3f}); "
          f"{os.cpu_count()} CPUs; store {url.split('://')[0]}")
    print(f"{'executor':>8} {'workers':>7} {'order':>10} {'evals/s':>8} {'utilisation':>11} {'ms/commit':>9} "
          f"{'loop CPU ms/it':>14}")
    results: dict[tuple[str, int, str], Measure] = {}
    for executor in executors:
        for workers in (1, 2, 4):
            for order in ("proposal", "completion"):
                m = results[executor, workers, order] = measure(spec, url, executor, workers, order, a.evals)
                print(f"{executor:>8} {workers:>7} {order:>10} {m.evals_per_s:>8.2f} {m.utilisation:>10.0%} "
                      f"{m.commit_ms:>9.2f} {m.controller_ms:>14.2f}", flush=True)
    per_it = max(m.controller_ms for m in results.values())
    print(f"controller limit: the event loop spends at most {per_it:.2f} ms of CPU per iteration (proposal, reads, "
          f"commit), so one controller keeps at most 1000 / {per_it:.2f} = {1000 / per_it:.0f} evaluations/s "
          f"going: {a.mean * 1000:.0f} ms per evaluation / {per_it:.2f} ms = {a.mean * 1000 / per_it:.0f} "
          f"workers busy at these times, {5000 / per_it:.0f} at 5 s per evaluation (serving and spot simulations)")
    last = executors[-1]
    print(f"utilisation of 4 {'Ray' if last == 'ray' else last} workers in completion order: "
          f"{results[last, 4, 'completion'].utilisation:.0%}")


def start_ray(cpus: int) -> None:
    """One local Ray for every Ray setting (each pool uses it and leaves it running): no dashboard, a small
    object store, as `adrs run --executor ray` starts it."""
    import logging

    import ray
    from evolve.run.ray_pool import OBJECT_STORE_BYTES
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES,
             logging_level=logging.WARNING, log_to_driver=False)


if __name__ == "__main__":
    main()
