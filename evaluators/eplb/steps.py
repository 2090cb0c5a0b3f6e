"""Sampled forward steps of a scoring window: what a placement is actually run against.

A window's expert loads are an average; each forward step draws its own tokens around it. Two samples,
both functions of the window's loads only (never of the placement), drawn once per workload and window
from a generator seeded by the workload id, so every program meets the very same steps:

- `counts[s, l, e]`: expert assignments in step s, multinomial(step_tokens * top_k, load / sum(load)).
  These set every GPU's compute and (low-latency kernels) its messages.
- `routes[l, k, :]`: the top_k experts of k = 1..K sampled tokens, group-limited as DeepSeek-V3 routes
  (the token's groups drawn by group load, then its experts by expert load inside those groups, both
  weighted and without replacement). These set how many nodes and GPUs one token's experts span,
  which is what normal-kernel dispatch pays for. `pick_u` is the uniform that picks the replica.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowSample:
    counts: np.ndarray   # [S, L, E] float64 assignments per expert per step
    routes: np.ndarray   # [L, K, top_k] int64 expert ids of sampled tokens
    pick_u: np.ndarray   # [L, K, top_k] float64 in [0, 1): which replica each pick goes to


def rng_for(workload_id: str, window: int, purpose: int) -> np.random.Generator:
    """Seeded by the workload id (crc32, stable across processes), the window and the purpose."""
    return np.random.default_rng([zlib.crc32(workload_id.encode()), window, purpose])


def sample_window(load: np.ndarray, num_groups: int, step_tokens: int, top_k: int, groups_per_token: int,
                  steps: int, routes_per_layer: int, rng: np.random.Generator) -> WindowSample:
    load = np.asarray(load, dtype=np.float64)
    L, E = load.shape
    total = load.sum(axis=1, keepdims=True)
    share = np.divide(load, total, out=np.full_like(load, 1.0 / E), where=total > 0)
    counts = rng.multinomial(step_tokens * top_k, share, size=(steps, L)).astype(np.float64)
    routes = _routes(share, num_groups, top_k, groups_per_token, routes_per_layer, rng)
    return WindowSample(counts, routes, rng.random(routes.shape))


def _routes(share: np.ndarray, num_groups: int, top_k: int, groups_per_token: int, K: int,
            rng: np.random.Generator) -> np.ndarray:
    """Weighted sampling without replacement as an exponential race: the k smallest Exp(1)/weight win
    (equivalent to Gumbel top-k on log weights). Groups first, then experts inside the chosen groups."""
    L, E = share.shape
    size = E // num_groups
    tiny = 1e-12  # an expert or group that got no load can still be picked last, never first
    glimit = min(groups_per_token, num_groups)
    if glimit * size < top_k:
        glimit = num_groups
    by_group = share.reshape(L, num_groups, size)
    race = rng.standard_exponential((L, K, num_groups)) / (by_group.sum(axis=2)[:, None, :] + tiny)
    chosen = np.argpartition(race, glimit - 1, axis=2)[:, :, :glimit] if glimit < num_groups \
        else np.broadcast_to(np.arange(num_groups), (L, K, num_groups))
    weight = by_group[np.arange(L)[:, None, None], chosen].reshape(L, K, glimit * size)   # [L, K, glimit*size]
    race = rng.standard_exponential(weight.shape) / (weight + tiny)
    top = np.argpartition(race, top_k - 1, axis=2)[:, :, :top_k]
    return (np.take_along_axis(chosen, top // size, axis=2) * size + top % size).astype(np.int64)
