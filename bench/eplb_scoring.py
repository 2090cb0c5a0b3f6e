"""EPLB figures: trusted-side scoring time, what a timed call costs besides the algorithm, every program's
runtime through the real local sandbox, and every program's metrics per split.

Runs trusted code (the baselines, initial.py) in-process for the metric tables; never use it on untrusted
candidates. Usage: .venv/bin/python bench/eplb_scoring.py [--layers N] [--skip-tables]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from evaluators.eplb.cost_model import score_window  # noqa: E402
from evaluators.eplb.settings import SETTINGS  # noqa: E402
from evaluators.eplb.validate import replica_slots, validate  # noqa: E402
from evolve.problem import load  # noqa: E402
from inprocess import InProcessCandidate  # noqa: E402
from sandbox.local import LocalSandbox  # noqa: E402


def scoring_ms(ev, setting: str, layers: int, reps: int = 10) -> float:
    """Median ms to validate and score one window (the candidate's call excluded)."""
    wid = f"{setting}:skew6:seed999:win2:layers{layers}"
    w, sample = ev.workload(wid), ev.samples(wid)[0]
    s = w.setting
    cand = InProcessCandidate.from_file(ROOT / "problems/eplb/baselines/deepseek_global.py")
    out = cand.call("rebalance_experts", w.loads[0], s.num_replicas, s.num_groups, s.num_nodes, s.num_gpus)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        p = validate(out, layers, s.num_experts, s.num_replicas)
        score_window(p.phy2log, p.logcnt, replica_slots(p.phy2log, p.logcnt), sample, s, ev.coef, ev.model)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


CANNED = """
import numpy as np
L, E, R, MAXREP = {L}, 256, 288, 33
PHY2LOG = np.tile(np.arange(R) % E, (L, 1)).astype(np.int64)
LOGCNT = np.ones((L, E), dtype=np.int64)
LOG2PHY = np.full((L, E, MAXREP), -1, dtype=np.int64)

def nothing(weight, *args):
    return None

def answer(weight, *args):
    return PHY2LOG, LOGCNT

def answer_with_log2phy(weight, *args):
    return PHY2LOG, LOG2PHY, LOGCNT
"""


def transport_ms(spec, layers: int, reps: int = 15) -> dict[str, float]:
    """Median timed-call ms of functions that compute nothing: what the measured runtime includes besides the
    algorithm (sending and decoding the [L, 256] loads; encoding and sending the answer)."""
    box = LocalSandbox()
    weight = np.random.default_rng(0).integers(0, 5000, size=(layers, 256))
    out = {}
    try:
        with box.start(CANNED.format(L=layers), spec.limits) as cand:
            for fn in ("nothing", "answer", "answer_with_log2phy"):
                _, times = cand.timed_call(fn, weight, 288, 8, 4, 32, repeats=reps)
                out[fn] = statistics.median(times) * 1e3
    finally:
        box.close()
    return out


def sandboxed_runtime_ms(spec, ev, programs: dict[str, Path], wids: list[str]) -> dict[str, float]:
    """Median runtime_ms over every window of `wids`, each program in a fresh sandboxed candidate."""
    box = LocalSandbox()
    out = {}
    try:
        for name, path in programs.items():
            samples = []
            for wid in wids:
                with box.start(path.read_text(), spec.limits) as cand:
                    samples += ev.evaluate(cand, wid).samples["runtime_ms"]
            out[name] = statistics.median(samples)
    finally:
        box.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=None, help="override the problem's layer count")
    ap.add_argument("--skip-tables", action="store_true", help="only the timing figures")
    args = ap.parse_args()
    spec = load("eplb")
    ev = spec.make_evaluator()
    layers = args.layers or ev.params.layers
    print(f"scoring time per window, candidate excluded ({layers} layers, {ev.params.steps_per_window} steps):")
    for name in SETTINGS:
        print(f"  {name}: {scoring_ms(ev, name, layers):.1f} ms (median of 10)")
    print(f"\ntimed call of a function that computes nothing, local sandbox, {layers} layers (median of 15):")
    for fn, ms in transport_ms(spec, layers).items():
        print(f"  {fn:22s} {ms:7.3f} ms")
    programs = {"initial": spec.directory / spec.entry.file,
                **{k: spec.directory / v for k, v in sorted(spec.baselines.items())}}
    held = list(spec.workload_ids("held-out"))
    print("\nruntime through the local sandbox, median over every held-out window:")
    for name, ms in sandboxed_runtime_ms(spec, ev, programs, held).items():
        print(f"  {name:24s} {ms:8.1f} ms")
    if args.skip_tables:
        return
    for split in ("train", "held-out"):
        print(f"\n{split}: mean over {len(spec.workload_ids(split))} workloads (in-process; runtime noisy)")
        print(f"  {'program':24s} {'balancedness':>12s} {'layer_time_us':>13s} {'comm_us':>8s} {'nodes':>5s} "
              f"{'time_eff':>8s} {'migr_GB':>7s} {'runtime_ms':>10s} {'score':>7s}")
        for name, path in programs.items():
            rs = [ev.evaluate(InProcessCandidate.from_file(path), wid) for wid in spec.workload_ids(split)]
            m = {k: statistics.mean(r.metrics[k] for r in rs) for k in rs[0].metrics}
            print(f"  {name:24s} {m['balancedness']:12.4f} {m['layer_time_us']:13.1f} {m['comm_time_us']:8.1f} "
                  f"{m['nodes_per_token']:5.2f} {m['time_efficiency']:8.4f} {m['migration_gb']:7.0f} "
                  f"{m['runtime_ms']:10.2f} {m['score']:7.4f}")


if __name__ == "__main__":
    main()
