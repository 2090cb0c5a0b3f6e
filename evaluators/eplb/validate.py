"""Check a candidate's placement against every EPLB rule; one precise InvalidOutput message per breach.

The candidate returns (phy2log, logcnt). log2phy, which DeepSeek's and vLLM's code also return, is implied by
phy2log, so the trusted side derives it (`replica_slots`) instead of receiving it: its 4-8 MB would otherwise
be timed as part of the candidate's runtime. Everything scored is recomputed from phy2log; logcnt is only
checked against it, so a candidate cannot claim a replica it did not place.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluators.base import InvalidOutput


@dataclass(frozen=True)
class Placement:
    phy2log: np.ndarray  # [L, R] int64, logical expert held by each physical slot (GPU-major slots)
    logcnt: np.ndarray   # [L, E] int64, replicas of each expert


def _as_int_array(x: Any, name: str) -> np.ndarray:
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as e:
        raise InvalidOutput(f"{name} is not a rectangular array: {e}") from None
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise InvalidOutput(f"{name} must have an integer dtype, got {a.dtype}")
    return a.astype(np.int64)  # always a copy: the trusted side never shares memory with the answer


def validate(result: Any, num_layers: int, num_experts: int, num_replicas: int) -> Placement:
    """Return the placement as int64 arrays, or raise InvalidOutput naming the first broken rule."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        got = f"{len(result)} items" if isinstance(result, (tuple, list)) else type(result).__name__
        raise InvalidOutput(f"rebalance_experts must return a tuple (phy2log, logcnt), got {got} "
                            "(log2phy is derived by the evaluator: do not return it)")
    phy2log = _as_int_array(result[0], "phy2log")
    logcnt = _as_int_array(result[1], "logcnt")
    L, E, R = num_layers, num_experts, num_replicas
    if phy2log.shape != (L, R):
        raise InvalidOutput(f"phy2log shape {phy2log.shape}, expected {(L, R)} (layers, slots)")
    if logcnt.shape != (L, E):
        raise InvalidOutput(f"logcnt shape {logcnt.shape}, expected {(L, E)} (layers, experts)")
    _check_phy2log(phy2log, E)
    _check_logcnt(phy2log, logcnt)
    return Placement(phy2log, logcnt)


def _check_phy2log(phy2log: np.ndarray, E: int) -> None:
    bad = (phy2log < 0) | (phy2log >= E)
    if bad.any():
        l, s = np.argwhere(bad)[0]
        raise InvalidOutput(f"phy2log[{l}, {s}] = {phy2log[l, s]} is not an expert in [0, {E})")


def counts(phy2log: np.ndarray, E: int) -> np.ndarray:
    """Replicas of each expert per layer, from the slots themselves: [L, E]."""
    L = phy2log.shape[0]
    flat = (np.arange(L)[:, None] * E + phy2log).ravel()
    return np.bincount(flat, minlength=L * E).reshape(L, E)


def _check_logcnt(phy2log: np.ndarray, logcnt: np.ndarray) -> None:
    E = logcnt.shape[1]
    real = counts(phy2log, E)
    missing = real == 0
    if missing.any():
        l, e = np.argwhere(missing)[0]
        raise InvalidOutput(f"layer {l}: expert {e} has no replica in phy2log (every expert needs >= 1)")
    wrong = real != logcnt
    if wrong.any():
        l, e = np.argwhere(wrong)[0]
        raise InvalidOutput(f"logcnt[{l}, {e}] = {logcnt[l, e]} but phy2log holds {real[l, e]} replicas of it")


def replica_slots(phy2log: np.ndarray, logcnt: np.ndarray) -> np.ndarray:
    """log2phy as vLLM defines it, derived from a validated placement: [L, E, max(logcnt)], the slots of
    each expert in increasing order, -1 padded."""
    L, R = phy2log.shape
    order = np.argsort(phy2log, axis=1, kind="stable")        # slots grouped by expert, in slot order
    experts = np.take_along_axis(phy2log, order, axis=1)
    starts = np.cumsum(logcnt, axis=1) - logcnt                 # first position of each expert in `order`
    rank = np.arange(R)[None, :] - np.take_along_axis(starts, experts, axis=1)
    table = np.full((L, logcnt.shape[1], int(logcnt.max())), -1, dtype=np.int64)
    table[np.arange(L)[:, None], experts, rank] = order
    return table
