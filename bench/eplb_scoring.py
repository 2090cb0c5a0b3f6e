"""EPLB evaluator figures: trusted-side scoring time per window, and every baseline's metrics.

Runs trusted code (the baselines, initial.py) in-process; never use it on untrusted candidates.
Usage: .venv/bin/python bench/eplb_scoring.py [--layers N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from evaluators.eplb.cost_model import Coefficients, score_window  # noqa: E402
from evaluators.eplb.settings import SETTINGS  # noqa: E402
from evaluators.eplb.validate import validate  # noqa: E402
from evolve.problem import load  # noqa: E402
from inprocess import InProcessCandidate  # noqa: E402


def scoring_ms(ev, setting: str, layers: int, reps: int = 30) -> float:
    """Median ms to validate and score one window (the candidate's call excluded)."""
    w = ev.workload(f"{setting}:skew6:seed999:win2:layers{layers}")
    s = w.setting
    cand = InProcessCandidate.from_file(ROOT / "problems/eplb/baselines/deepseek_global.py")
    out = cand.call("rebalance_experts", w.loads[0], s.num_replicas, s.num_groups, s.num_nodes, s.num_gpus)
    coef = Coefficients.of(s, ev.shape, ev.hardware)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        p = validate(out, layers, s.num_experts, s.num_replicas)
        score_window(p.phy2log, p.logcnt, w.loads[1], s, coef, ev.shape.top_k)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=None, help="override the problem's layer count")
    args = ap.parse_args()
    spec = load("eplb")
    ev = spec.make_evaluator()
    layers = args.layers or ev.params.layers
    print(f"scoring time per window, candidate excluded ({layers} layers):")
    for name in SETTINGS:
        print(f"  {name}: {scoring_ms(ev, name, layers):.2f} ms (median of 30)")
    programs = {"initial": spec.directory / spec.entry.file,
                **{k: spec.directory / v for k, v in sorted(spec.baselines.items())}}
    for split in ("train", "held-out"):
        print(f"\n{split}: mean over {len(spec.workload_ids(split))} workloads")
        print(f"  {'program':24s} {'balancedness':>12s} {'layer_time_us':>13s} {'time_eff':>8s} "
              f"{'runtime_ms':>10s} {'score':>7s}")
        for name, path in programs.items():
            rs = [ev.evaluate(InProcessCandidate.from_file(path), wid) for wid in spec.workload_ids(split)]
            m = {k: statistics.mean(r.metrics[k] for r in rs) for k in rs[0].metrics}
            print(f"  {name:24s} {m['balancedness']:12.4f} {m['layer_time_us']:13.1f} {m['time_efficiency']:8.4f} "
                  f"{m['runtime_ms']:10.2f} {m['score']:7.4f}")


if __name__ == "__main__":
    main()
