"""Every llm_scheduler baseline on every held-out workload: the table behind the problem README's orderings.

    .venv/bin/python bench/scheduler_orderings.py [--split held-out|train] [--baselines a,b,...]

Runs each baseline in process (the same numbers as sandboxed: tests/test_llm_scheduler.py checks that) and
prints, per workload, mean E2E, p99 TPOT, SLO attainment per load level and, where the workload has them,
mean session time and client fairness.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from evaluators.llm_scheduler import make_evaluator
from evolve import problem
from sandbox.base import Limits
from sandbox.inprocess import InProcessSandbox

PROBLEM = Path(__file__).resolve().parent.parent / "problems" / "llm_scheduler"


def _metrics(spec, name: str, wid: str) -> dict[str, float]:
    source = (PROBLEM / spec.baselines[name]).read_text()
    with InProcessSandbox().start(source, Limits(), spec.entry.names) as cand:
        return make_evaluator(dict(spec.evaluator.params), PROBLEM).evaluate(cand, wid).metrics


def _row(name: str, m: dict[str, float]) -> str:
    levels = " ".join(f"{k.split('@')[1]}:{v:.3f}" for k, v in m.items() if k.startswith("slo_attainment@"))
    extra = "".join(f" {k}={m[k]:.3g}" for k in ("mean_session_s", "client_fairness") if k in m)
    return (f"  {name:22s} score {m['score']:.3f}  E2E {m['mean_e2e_s']:6.2f} s  p99 TPOT "
            f"{m['p99_tpot_s'] * 1e3:5.0f} ms  attainment {levels}{extra}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="held-out", choices=("held-out", "train"))
    ap.add_argument("--baselines", default="")
    args = ap.parse_args()
    spec = problem.load(PROBLEM)
    names = args.baselines.split(",") if args.baselines else sorted(spec.baselines)
    t0 = time.perf_counter()
    for wid in spec.workload_ids(args.split):
        print(wid)
        for name in names:
            print(_row(name, _metrics(spec, name, wid)), flush=True)
    print(f"{len(names)} baselines x {len(spec.workload_ids(args.split))} workloads in "
          f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
