"""Repeated short runs: wall time of `adrs run PROBLEM --iterations 1` (offline mutator, local sandbox), the
first time in a fresh runs folder and then repeated under the same folder, where the initial program's and the
baselines' results come from the reference cache (evolve/run/reference_cache.py) and only the child is
evaluated (plus its held-out workloads when it beats the initial program on train).

    .venv/bin/python bench/repeated_run.py [--repeat 3] [PROBLEM ...]      (default: every bundled problem)

Goal (issue 14): a repeated one-iteration offline run under 2 s. Each run is a fresh interpreter; the
medians of --repeat runs are printed with every figure, and whether the cache served the run.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADRS = Path(sys.executable).with_name("adrs")
GOAL_S = 2.0


def timed_run(problem: str, runs: Path, run_id: str) -> tuple[float, str]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "DEEPSEEK_API_KEY"):
        env.pop(key, None)   # the offline mutator
    t0 = time.perf_counter()
    r = subprocess.run([str(ADRS), "run", problem, "--iterations", "1", "--runs-dir", str(runs), "--run-id", run_id],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"{problem}: adrs run failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return wall, r.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("problems", nargs="*")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", help="write the runs under this folder (kept) instead of a temporary one")
    args = ap.parse_args()
    problems = args.problems or sorted(p.name for p in (ROOT / "problems").iterdir() if (p / "problem.toml").is_file())
    print(f"{'problem':<20} {'first':>8} {'repeated (median)':>18}  runs            served from the cache")
    met = []
    for problem in problems:
        with tempfile.TemporaryDirectory(prefix="adrs-bench-repeat-") as tmp:
            tmp = f"{args.keep}/{problem}" if args.keep else tmp
            first, _ = timed_run(problem, Path(tmp), "first")
            walls, served = [], ""
            for i in range(args.repeat):
                wall, out = timed_run(problem, Path(tmp), f"again{i}")
                walls.append(wall)
                served = next((ln.split(": ", 1)[1] for ln in out.splitlines()
                               if ln.startswith("cached by an earlier run")), "nothing")
        med = statistics.median(walls)
        met.append(med < GOAL_S)
        runs = ", ".join(f"{w:.2f}" for w in walls)
        print(f"{problem:<20} {first:>7.2f}s {med:>17.2f}s  ({runs})  {served[:60]}", flush=True)
    print(f"repeated run under {GOAL_S:.0f} s: {sum(met)} of {len(met)} problems")


if __name__ == "__main__":
    main()
