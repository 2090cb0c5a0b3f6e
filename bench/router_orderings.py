"""Every llm_router baseline on every workload of a split: the table behind the problem README's orderings.

    .venv/bin/python bench/router_orderings.py [--split held-out|train] [--baselines a,b,...]

In process (the same numbers as sandboxed); prints per workload each baseline's score, mean and p99 TTFT,
attainment per load level, prefix-cache hit rate and imbalance.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from evolve import problem
from sandbox.base import Limits
from sandbox.inprocess import InProcessSandbox

PROBLEM = Path(__file__).resolve().parent.parent / "problems" / "llm_router"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="held-out", choices=("held-out", "train"))
    ap.add_argument("--baselines", default="")
    args = ap.parse_args()
    spec = problem.load(PROBLEM)
    ev = spec.make_evaluator()
    names = args.baselines.split(",") if args.baselines else sorted(spec.baselines)
    t0 = time.perf_counter()
    for wid in spec.workload_ids(args.split):
        print(wid)
        for name in names:
            source = (PROBLEM / spec.baselines[name]).read_text()
            with InProcessSandbox().start(source, Limits(), spec.entry.names) as cand:
                m = ev.evaluate(cand, wid).metrics
            levels = " ".join(f"{k.split('@')[1]}:{v:.3f}" for k, v in m.items() if k.startswith("slo_attainment@"))
            print(f"  {name:16s} score {m['score']:.3f}  TTFT {m['mean_ttft_s']:6.3f} s p99 {m['p99_ttft_s']:6.2f} s"
                  f"  hit {m['prefix_hit']:.3f}  imbalance {m['imbalance']:.2f}  attainment {levels}", flush=True)
    print(f"{len(names)} baselines x {len(spec.workload_ids(args.split))} workloads in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
