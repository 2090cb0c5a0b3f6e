"""Serving simulator speed: simulated requests per second on one core, built-in FCFS policy, no sandbox.

    .venv/bin/python bench/serving_sim.py [--requests 20000] [--load 0.8] [--device h100] [--model llama-3-8b]

Workload: Azure-2023-conversation-like (REFERENCE.md): prompt lengths lognormal(6.63, 0.99), output lengths
lognormal(5.02, 0.86), Poisson arrivals. Capacity is measured first by saturating the policy: every request
arrives at t = 0 and capacity is the completion rate between the 10% and 90% completion marks (the start,
while the first batch fills, and the drain at the end are left out). The timed run then offers
`--load` x capacity. The figure is requests / wall seconds of the engine run (metrics included), best of
`--repeat`, with the process pinned to one CPU. The last line is the figure.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluators.serving.engine import EngineConfig, simulate  # noqa: E402
from evaluators.serving.gpu import gpu_model  # noqa: E402
from evaluators.serving.metrics import serving_metrics  # noqa: E402
from evaluators.serving.policies import Fcfs  # noqa: E402
from evaluators.serving.requests import Requests  # noqa: E402


def azure_conversation(n: int, rate: float, seed: int) -> Requests:
    """A private stand-in for the workload generators: lognormal lengths, Poisson arrivals (rate inf: all
    at t = 0). Prompts are capped at 8000 tokens and outputs at 2048, within Llama-3-8B's 8192 context."""
    g = np.random.default_rng(seed)
    arrival = np.zeros(n) if np.isinf(rate) else np.cumsum(g.exponential(1 / rate, n))
    prompt = np.clip(np.rint(g.lognormal(6.63, 0.99, n)), 1, 8000)
    output = np.clip(np.rint(g.lognormal(5.02, 0.86, n)), 1, 2048)
    return Requests.of(arrival, prompt, output, name=f"azure-conv rate={rate:g}")


def capacity(gpu, config: EngineConfig, n: int, seed: int) -> float:
    rec = simulate(azure_conversation(n, np.inf, seed), gpu, Fcfs(), config).records
    done = np.sort(rec.finish_s)
    lo, hi = int(0.1 * n), int(0.9 * n)
    return (hi - lo) / (done[hi] - done[lo])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--load", type=float, default=0.8)
    parser.add_argument("--device", default="h100")
    parser.add_argument("--model", default="llama-3-8b")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    gpu = gpu_model(args.device, args.model)
    config = EngineConfig()
    print(f"{gpu.name}: KV cache {gpu.kv_blocks} blocks ({gpu.kv_tokens:,} tokens); budget "
          f"{config.token_budget} tokens/step, at most {config.max_running} running")
    t0 = time.perf_counter()
    cap = capacity(gpu, config, 8000, args.seed + 1)
    print(f"FCFS capacity (saturated, 8000 requests, 10%-90% completions): {cap:.2f} req/s "
          f"(measured in {time.perf_counter() - t0:.2f} s)")
    rate = args.load * cap
    requests = azure_conversation(args.requests, rate, args.seed)
    walls = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = simulate(requests, gpu, Fcfs(), config)
        metrics = serving_metrics(result.records)
        walls.append(time.perf_counter() - start)
    s = result.stats
    n = len(requests)
    print(f"offered {rate:.2f} req/s ({args.load:.0%} of capacity), {n} requests, "
          f"{result.records.finish_s.max():.0f} simulated s")
    print(f"served {metrics['throughput_rps']:.2f} req/s, {metrics['output_tokens_per_s']:.0f} output tok/s; "
          f"TTFT mean {metrics['mean_ttft_s'] * 1e3:.0f} ms p99 {metrics['p99_ttft_s'] * 1e3:.0f} ms; "
          f"TPOT mean {metrics['mean_tpot_s'] * 1e3:.1f} ms p99 {metrics['p99_tpot_s'] * 1e3:.1f} ms; "
          f"preemptions {s.preemptions}")
    print(f"per request: {s.decisions / n:.2f} policy decisions, {s.steps / n:.1f} GPU steps, "
          f"{s.prefill_steps / n:.2f} prefill steps, {s.decode_runs / n:.2f} closed-form decode runs; "
          f"GPU stepping {s.busy_s / s.end_s:.1%} of the time")
    print("wall s per run: " + ", ".join(f"{w:.3f}" for w in walls))
    print(f"requests/s per core {n / min(walls):,.0f}")


if __name__ == "__main__":
    main()
