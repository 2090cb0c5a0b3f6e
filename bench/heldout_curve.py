"""Held-out score of the best-so-far program (by train score) along a finished run:

    .venv/bin/python bench/heldout_curve.py runs/<run-id> [--every 25]

Held-out workloads never steer the search; this scores the programs the search would have returned had it
stopped at each checkpoint, to show whether train gains carry over.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evolve.run.scoring import ProgramScorer  # noqa: E402
from evolve.run.session import open_run  # noqa: E402
from sandbox.local import LocalSandbox  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--every", type=int, default=25)
    a = ap.parse_args()
    h = open_run(a.run)
    progs = sorted((p for p in h.store.programs(h.run_id, status="ok") if p.kind != "baseline"),
                   key=lambda p: p.iteration)
    last = max(p.iteration for p in progs)
    checkpoints = sorted(set(range(0, last + 1, a.every)) | {last})
    sb = LocalSandbox()
    scorer = ProgramScorer(h.spec, sb)
    score = h.spec.objective.score
    cache: dict[int, float] = {}
    print(f"{'iteration':>9} {'best id':>7} {'train':>8} {'held-out':>8}")
    try:
        for k in checkpoints:
            best = max((p for p in progs if p.iteration <= k), key=lambda p: (p.score, -p.id))
            if best.id not in cache:
                out = scorer.score(best.source, [("held-out", h.spec.workloads.held_out)])
                cache[best.id] = out.mean("held-out", score) if out.ok else float("nan")
            print(f"{k:>9} {best.id:>7} {best.score:8.4f} {cache[best.id]:8.4f}")
    finally:
        sb.close()


if __name__ == "__main__":
    main()
