"""Docker sandbox overhead per candidate: cold container vs a pre-started pool.

    .venv/bin/python bench/docker_overhead.py [--candidates 40] [--work-ms 300] [--slots 2]

- cold: one container made on demand (create, attach, start, Python + numpy boot, connect), as
  `docker run` would cost, plus loading the candidate;
- pool, paced: `--slots` evaluation threads, each candidate doing `--work-ms` of (trusted-side) evaluation
  work; overhead = the time a candidate's thread spends in start() and finish() (taking a pre-started
  container, loading the source, the runner's hello; closing it, collecting output), amortised over all;
- pool, back to back: the same with no evaluation work at all, the worst case: the pool is drained and
  containers are made as fast as the engine can; reports candidates per second;
- the bare round trip (ping) through the container's socket, and the empty-call baseline.
Needs a reachable Docker engine and `adrs sandbox build`.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox.base import Limits  # noqa: E402
from sandbox.docker import DockerSandbox  # noqa: E402
from sandbox.docker_pool import make_slot  # noqa: E402
from sandbox_overhead import percentile, round_trips  # noqa: E402  (same figures, both backends)

SOURCE = "def f(x):\n    return x + 1\n"
LIMITS = Limits(call_timeout_s=30, workload_timeout_s=60)


def ms(x: float) -> str:
    return f"{x * 1e3:.1f} ms"


def cold(sb: DockerSandbox, n: int) -> list[float]:
    """Seconds to make one container on demand and have it ready for calls."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        slot = make_slot(sb._engine, LIMITS)
        out.append(time.perf_counter() - t0)
        sb._release(slot)
        sb.wait_removed()
    return out


def pooled(sb: DockerSandbox, n: int, slots: int, work_s: float) -> tuple[list[float], float]:
    """Per-candidate overhead (start + finish) with `slots` threads; returns (overheads, wall seconds)."""
    overheads: list[float] = []
    lock = threading.Lock()
    todo = list(range(n))

    def worker() -> None:
        while True:
            with lock:
                if not todo:
                    return
                todo.pop()
            t0 = time.perf_counter()
            with sb.start(SOURCE, LIMITS) as cand:
                t1 = time.perf_counter()
                assert cand.call("f", 1) == 2
                t2 = time.perf_counter()
                time.sleep(work_s)  # the trusted evaluator's own work between calls
                t3 = time.perf_counter()
            t4 = time.perf_counter()
            with lock:
                overheads.append((t1 - t0) + (t4 - t3) + (t2 - t1))
    threads = [threading.Thread(target=worker) for _ in range(slots)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return overheads, time.perf_counter() - t0


def report(name: str, values: list[float]) -> None:
    print(f"{name}: mean {ms(statistics.mean(values))}, median {ms(statistics.median(values))}, "
          f"p90 {ms(percentile(values, 0.9))} (n={len(values)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=40)
    ap.add_argument("--work-ms", type=float, default=300.0)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--cold", type=int, default=10)
    args = ap.parse_args()
    with DockerSandbox(limits=LIMITS, pool_size=2 * args.slots) as sb:
        print(f"image {sb.image.tag}; pool of {2 * args.slots}; {args.slots} evaluation slots")
        report("cold container (create + start + boot + connect)", cold(sb, args.cold))
        time.sleep(3)  # let the pool fill
        over, wall = pooled(sb, args.candidates, args.slots, args.work_ms / 1e3)
        report(f"pool, {args.work_ms:g} ms of evaluation per candidate: overhead per candidate", over)
        time.sleep(3)
        over, wall = pooled(sb, args.candidates, args.slots, 0.0)
        report("pool, back to back (no evaluation work): time per candidate in start+call+finish", over)
        print(f"pool, back to back: {args.candidates / wall:.1f} candidates/s, "
              f"{ms(wall / args.candidates)} wall per candidate")
        pings, baseline = round_trips(sb, 5000, LIMITS)
        print(f"bare round trip (ping): median {statistics.median(pings) * 1e6:.1f} µs, "
              f"p90 {percentile(pings, 0.9) * 1e6:.1f} µs; empty-call baseline {baseline * 1e6:.1f} µs")


if __name__ == "__main__":
    main()
