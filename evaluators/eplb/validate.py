"""Check a candidate's placement against every EPLB rule; one precise InvalidOutput message per breach.

The trusted side recomputes everything it scores from phy2log and checks the other two arrays only for
consistency, so a candidate cannot claim a replica it did not place.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluators.base import InvalidOutput


@dataclass(frozen=True)
class Placement:
    phy2log: np.ndarray  # [L, R] int64, logical expert held by each physical slot (GPU-major slots)
    log2phy: np.ndarray  # [L, E, maxrep] int64, slots of each expert, -1 padded at the end
    logcnt: np.ndarray   # [L, E] int64, replicas of each expert


def _as_int_array(x: Any, name: str) -> np.ndarray:
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as e:
        raise InvalidOutput(f"{name} is not a rectangular array: {e}") from None
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise InvalidOutput(f"{name} must have an integer dtype, got {a.dtype}")
    return a.astype(np.int64, copy=False)


def validate(result: Any, num_layers: int, num_experts: int, num_replicas: int) -> Placement:
    """Return the placement as int64 arrays, or raise InvalidOutput naming the first broken rule."""
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        raise InvalidOutput("rebalance_experts must return a tuple (phy2log, log2phy, logcnt)")
    phy2log = _as_int_array(result[0], "phy2log")
    log2phy = _as_int_array(result[1], "log2phy")
    logcnt = _as_int_array(result[2], "logcnt")
    L, E, R = num_layers, num_experts, num_replicas
    if phy2log.shape != (L, R):
        raise InvalidOutput(f"phy2log shape {phy2log.shape}, expected {(L, R)} (layers, slots)")
    if logcnt.shape != (L, E):
        raise InvalidOutput(f"logcnt shape {logcnt.shape}, expected {(L, E)} (layers, experts)")
    if log2phy.ndim != 3 or log2phy.shape[:2] != (L, E) or not 1 <= log2phy.shape[2] <= R:
        raise InvalidOutput(f"log2phy shape {log2phy.shape}, expected ({L}, {E}, maxrep) with 1 <= maxrep <= {R}")
    _check_phy2log(phy2log, E)
    _check_logcnt(phy2log, logcnt)
    _check_log2phy(phy2log, log2phy, logcnt)
    return Placement(phy2log, log2phy, logcnt)


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


def _check_log2phy(phy2log: np.ndarray, log2phy: np.ndarray, logcnt: np.ndarray) -> None:
    L, R = phy2log.shape
    E, maxrep = logcnt.shape[1], log2phy.shape[2]
    if logcnt.max() > maxrep:
        l, e = np.unravel_index(np.argmax(logcnt), logcnt.shape)
        raise InvalidOutput(f"log2phy has room for {maxrep} replicas but expert {e} of layer {l} has {logcnt[l, e]}")
    used = np.arange(maxrep)[None, None, :] < logcnt[:, :, None]  # the first logcnt entries are slots
    padding = log2phy[~used]
    if (padding != -1).any():
        l, e, k = np.argwhere(~used & (log2phy != -1))[0]
        raise InvalidOutput(f"log2phy[{l}, {e}, {k}] = {log2phy[l, e, k]}: entries past logcnt must be -1")
    # the used entries in C order: layer-major, R per layer (logcnt sums to R), expert e repeated logcnt times
    slots = log2phy[used]
    layer = np.repeat(np.arange(L), R)
    expert = np.repeat(np.tile(np.arange(E), L), logcnt.ravel())
    out = (slots < 0) | (slots >= R)
    if out.any():
        l, e, k = np.argwhere(used & ((log2phy < 0) | (log2phy >= R)))[0]
        raise InvalidOutput(f"log2phy[{l}, {e}, {k}] = {log2phy[l, e, k]} is not a slot in [0, {R})")
    if (phy2log[layer, slots] != expert).any():
        l, e, k = np.argwhere(used & (phy2log[np.arange(L)[:, None, None], np.clip(log2phy, 0, R - 1)]
                                      != np.arange(E)[None, :, None]))[0]
        raise InvalidOutput(f"log2phy[{l}, {e}, {k}] = {log2phy[l, e, k]} but that slot holds expert "
                            f"{phy2log[l, log2phy[l, e, k]]}")
    # sum(logcnt) == R and every listed slot holds its expert, so each slot must be listed exactly once
    listed = np.bincount(layer * R + slots, minlength=L * R).reshape(L, R)
    if (listed != 1).any():
        l, s = np.argwhere(listed != 1)[0]
        raise InvalidOutput(f"layer {l}: slot {s} is listed {listed[l, s]} times in log2phy (must be once)")
