"""What one rebalance moves: expert weights a GPU must fetch because it did not hold that expert before.

A (GPU, expert) pair present in the new placement but not in the previous one costs one copy of the
expert's weights (88 MB for DeepSeek-V3 in BF16); replicas that stay on their GPU, or move between slots
of the same GPU, cost nothing.
"""
from __future__ import annotations

import numpy as np


def fetched_pairs(old: np.ndarray, new: np.ndarray, num_experts: int, slots_per_gpu: int) -> int:
    """(layer, GPU, expert) triples held in `new` and not in `old`; both [L, R] phy2log."""
    L, R = new.shape
    gpus = R // slots_per_gpu
    width = gpus * num_experts
    gpu = np.arange(R) // slots_per_gpu
    base = np.arange(L)[:, None] * width
    held = np.zeros(L * width, dtype=bool)
    held[(base + gpu * num_experts + old).ravel()] = True
    wanted = np.zeros(L * width, dtype=bool)
    wanted[(base + gpu * num_experts + new).ravel()] = True
    return int((wanted & ~held).sum())
