"""What one policy call costs through the local sandbox, by how its per-step state travels.

    .venv/bin/python bench/policy_call.py [--rows 4096] [--steps 2000] [--small-steps 10000]

Cases: an empty call; a queue of --rows requests (6 fields) as a list of dicts, as columns (numpy arrays),
and as deltas (evaluators/state.py), either with rows coming and going (each step 1% of rows, anywhere in
the queue, leave, 1% arrive and 2% get a new value) or with 2% of rows getting a new value and none coming
or going; and --small-steps steps of a small state. Each figure is per call, trusted-side encoding
(columns -> delta) included, the simulation that changes the queue excluded.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluators.state import DeltaTable  # noqa: E402
from sandbox.base import Limits  # noqa: E402
from sandbox.local import LocalSandbox  # noqa: E402

SOURCE = """
def empty():
    return None
def queue_dicts(q):
    return len(q)
def queue_columns(q):
    return len(q["id"])
def small(state):
    return state["free"] > 0
"""
ENTRIES = ("empty", "queue_dicts", "queue_columns", "small")
FIELDS = {"id": np.int64, "arrival_s": np.float64, "prompt_tokens": np.int32, "output_done": np.int32,
          "priority": np.int8, "deadline_s": np.float64}


class Queue:
    """A request queue that changes a little every step: 1% leave and 1% arrive (if `churn`), 2% progress."""

    def __init__(self, rows: int, churn: bool = True, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.churn = churn
        self.next_id = 0
        self.cols = self._new(rows)

    def _new(self, n: int) -> dict[str, np.ndarray]:
        ids = np.arange(self.next_id, self.next_id + n)
        self.next_id += n
        r = self.rng
        return {"id": ids, "arrival_s": ids * 0.01, "prompt_tokens": r.integers(16, 4096, n).astype(np.int32),
                "output_done": np.zeros(n, np.int32), "priority": r.integers(0, 3, n).astype(np.int8),
                "deadline_s": ids * 0.01 + r.uniform(1, 30, n)}

    def step(self) -> None:
        n = len(self.cols["id"])
        k = max(1, n // 100)
        if self.churn:
            stay = np.ones(n, dtype=bool)
            stay[self.rng.choice(n, k, replace=False)] = False
            fresh = self._new(k)
            self.cols = {name: np.concatenate((col[stay], fresh[name])) for name, col in self.cols.items()}
        else:
            self.cols = {name: col.copy() for name, col in self.cols.items()}
        moved = self.rng.choice(n, 2 * k, replace=False)
        self.cols["output_done"][moved] += 1

    def dicts(self) -> list[dict[str, Any]]:
        names = list(self.cols)
        return [dict(zip(names, row)) for row in zip(*(self.cols[c].tolist() for c in names))]


def per_call(steps: int, state: Callable[[], Any], call: Callable[[Any], Any],
             encode: Callable[[Any], Any] = lambda s: s) -> tuple[float, float]:
    """(median, mean) seconds of encode + call per step; `state` (the simulation's step, giving the state
    in the form the trusted side keeps it) is not timed."""
    times = []
    for _ in range(steps):
        s = state()
        t0 = time.perf_counter_ns()
        call(encode(s))
        times.append((time.perf_counter_ns() - t0) / 1e9)
    return statistics.median(times), statistics.mean(times)


def stepped(q: "Queue", view: Callable[["Queue"], Any]) -> Callable[[], Any]:
    def state() -> Any:
        q.step()
        return view(q)
    return state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--small-steps", type=int, default=10_000)
    args = ap.parse_args()
    limits = Limits(call_timeout_s=30, workload_timeout_s=600)
    rows: list[tuple[str, int, float, float]] = []
    with LocalSandbox() as sb, sb.start(SOURCE, limits, ENTRIES) as cand:
        for _ in range(300):  # warm up
            cand.call("empty")
        rows.append(("empty call", args.steps, *per_call(args.steps, lambda: None, lambda _: cand.call("empty"))))
        q = Queue(args.rows)
        dict_steps = max(50, args.steps // 10)
        rows.append((f"queue of {args.rows} as a list of dicts", dict_steps,
                     *per_call(dict_steps, stepped(q, Queue.dicts), lambda s: cand.call("queue_dicts", s))))
        rows.append((f"queue of {args.rows} as columns", args.steps,
                     *per_call(args.steps, stepped(q, lambda q: q.cols), lambda s: cand.call("queue_columns", s))))
        table = DeltaTable("queue")
        rows.append((f"queue of {args.rows} as deltas", args.steps,
                     *per_call(args.steps, stepped(q, lambda q: q.cols), lambda s: cand.call("queue_columns", s),
                               table.encode)))
        still, table = Queue(args.rows, churn=False), DeltaTable("still")
        rows.append(("  ... no rows coming or going", args.steps,
                     *per_call(args.steps, stepped(still, lambda q: q.cols),
                               lambda s: cand.call("queue_columns", s), table.encode)))
        small = {"now": 0.0, "free": 3, "queued": 17, "load": np.zeros(8)}
        rows.append(("small state (4 fields)", args.small_steps,
                     *per_call(args.small_steps, lambda: small, lambda s: cand.call("small", s))))
        decided = cand.decision_s
    print(f"{'case':<34} {'calls':>6} {'median':>10} {'mean':>10}")
    for name, n, med, mean in rows:
        print(f"{name:<34} {n:>6} {med * 1e6:>7.1f} µs {mean * 1e6:>7.1f} µs")
    small = rows[-1]
    deltas = rows[3]
    print(f"{small[1]} steps of the small state: {small[1] * small[3]:.2f} s in all; "
          f"candidate decision time over every call: {decided * 1e3:.1f} ms")
    print(f"queue of {args.rows} as deltas: {deltas[2] * 1e6:.0f} µs per call")


if __name__ == "__main__":
    main()
