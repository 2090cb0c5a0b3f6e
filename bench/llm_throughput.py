"""LLM pipeline throughput: iterations/s with a simulated model latency of 2 s, an evaluator of 0.5 s and
8 proposals in flight, through the real litellm client and a real HTTP server on loopback.

    .venv/bin/python bench/llm_throughput.py [--iterations 120] [--latency 2.0] [--proposals 8]

Goal: >= 90% of proposals / latency (8 / 2 s = 4 it/s, so >= 3.6 it/s). The steady-state rate is taken
between the commits of iteration `warmup` and of the last iteration, so the first 2 s of filling the
pipeline are not counted; the overall rate (from the start, initial program included) is printed too.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from evolve import problem  # noqa: E402
from evolve.config import RunConfig  # noqa: E402
from evolve.run.controller import Controller  # noqa: E402
from evolve.run.scoring import ProgramScorer  # noqa: E402
from evolve.llm.proposer import LlmProposer  # noqa: E402
from evolve.store import Run, Store, sqlite_url  # noqa: E402
from sandbox.local import LocalSandbox  # noqa: E402
from tests.llm_server import ScriptedServer, toy_diff  # noqa: E402

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "slow_toy"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=120)
    ap.add_argument("--latency", type=float, default=2.0)
    ap.add_argument("--proposals", type=int, default=8)
    ap.add_argument("--eval-slots", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=16)
    a = ap.parse_args()

    spec = problem.load(FIXTURE)
    commits: dict[int, float] = {}
    with ScriptedServer(default=lambda body: dataclasses.replace(toy_diff(body), delay_s=a.latency)) as srv, \
            tempfile.TemporaryDirectory() as tmp, LocalSandbox() as sb:
        cfg = RunConfig(problem=str(FIXTURE), iterations=a.iterations, proposals_in_flight=a.proposals,
                        eval_slots=a.eval_slots, models=("openai/gpt-4o-mini",), api_base=srv.base_url,
                        run_id="bench")
        store = Store(sqlite_url(Path(tmp) / "lineage.db"), create=True)
        store.create_run(Run(id="bench", problem=spec.name, problem_dir=str(spec.directory), seed=0,
                             config=cfg.to_json(), sandbox="local", isolation="{}", versions="{}",
                             created_at=time.time()))
        proposer = LlmProposer(cfg, spec, store, "bench")
        ctl = Controller(spec, cfg, store, "bench", proposer, ProgramScorer(spec, sb).score,
                         on_commit=lambda i, s: commits.setdefault(i, time.perf_counter()))
        t_start = time.perf_counter()
        asyncio.run(ctl.run())
        failures = store.failure_counts("bench")
        requests = len(srv.requests)
    last = max(commits)
    steady = (last - a.warmup) / (commits[last] - commits[a.warmup])
    overall = last / (commits[last] - t_start)
    goal = 0.9 * a.proposals / a.latency
    print(f"model latency {a.latency:g} s, evaluator 0.5 s, {a.proposals} proposals in flight, "
          f"{a.eval_slots} evaluation slots, {last} iterations, {requests} HTTP requests")
    print(f"steady state (iterations {a.warmup}-{last}): {steady:.2f} it/s; overall: {overall:.2f} it/s; "
          f"goal >= {goal:.2f} it/s (90% of {a.proposals}/{a.latency:g} s): {'met' if steady >= goal else 'MISSED'}")
    if failures:
        print(f"failed attempts: {failures}")


if __name__ == "__main__":
    main()
