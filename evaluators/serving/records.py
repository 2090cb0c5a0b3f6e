"""What a simulated run leaves behind: per-request records (what metrics are computed from) and run
statistics."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Records:
    """Per request, indexed like the Requests: what the metrics are computed from."""

    arrival_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    preemptions: np.ndarray
    session: np.ndarray | None = None   # -1 where a request belongs to no session
    client: np.ndarray | None = None


@dataclass(frozen=True)
class RunStats:
    decisions: int
    steps: int              # GPU steps
    prefill_steps: int      # of which ran prefill chunks
    decode_runs: int        # runs of alike decode steps advanced in closed form
    idle_decisions: int
    preemptions: int
    busy_s: float           # GPU time spent in steps
    end_s: float            # when the last request finished
    prefix_hit: float = 0.0  # share of prompt units looked up at admission that the prefix cache served


@dataclass(frozen=True)
class RunResult:
    records: Records
    stats: RunStats
    gpu: str
