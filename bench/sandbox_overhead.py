"""Sandbox overhead: per-candidate cost (start, one trivial call, exit), the bare round trip (ping) and the
empty-call baseline that timed calls subtract (an empty call through the whole call path).

    .venv/bin/python bench/sandbox_overhead.py [--candidates 200] [--pings 10000]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox.base import Limits  # noqa: E402
from sandbox.local import LocalSandbox  # noqa: E402

SOURCE = "def f(x):\n    return x + 1\n"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def per_candidate(sb: LocalSandbox, n: int) -> list[float]:
    limits = Limits()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        with sb.start(SOURCE, limits) as cand:
            assert cand.call("f", 1) == 2
        out.append(time.perf_counter() - t0)
    return out


def round_trips(sb, n: int, limits: Limits = Limits()) -> tuple[list[float], float]:
    """Seconds of each of `n` pings on one candidate of any backend, after a warm-up; and that candidate's
    empty-call baseline."""
    with sb.start(SOURCE, limits, ("f",)) as cand:
        for _ in range(200):  # warm up
            cand.ping()
        out = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            cand.ping()
            out.append((time.perf_counter_ns() - t0) / 1e9)
        return out, cand.round_trip_s()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=200)
    ap.add_argument("--pings", type=int, default=10_000)
    args = ap.parse_args()
    with LocalSandbox() as sb:
        t0 = time.perf_counter()
        with sb.start(SOURCE, Limits()) as cand:  # starts the zygote
            cand.call("f", 1)
        print(f"zygote start + first candidate: {(time.perf_counter() - t0) * 1e3:.1f} ms")
        cands = per_candidate(sb, args.candidates)
        pings, baseline = round_trips(sb, args.pings)
        iso = sb.isolation()
    print(f"per-candidate overhead (start + 1 call + exit), n={len(cands)}: "
          f"median {statistics.median(cands) * 1e3:.2f} ms, p90 {percentile(cands, 0.9) * 1e3:.2f} ms")
    print(f"bare round trip (ping), n={len(pings)}: median {statistics.median(pings) * 1e6:.1f} us, "
          f"p90 {percentile(pings, 0.9) * 1e6:.1f} us")
    print(f"empty-call baseline (subtracted from timed calls): {baseline * 1e6:.1f} us")
    print(f"isolation: network={iso['network']}, user={iso['user']}, proc_environ={iso['proc_environ']}")


if __name__ == "__main__":
    main()
