"""How a step's tokens for one expert are split among that expert's replicas.

even         every replica serves load / logcnt (what vLLM's and SGLang's EPLB assume: a token picks a
             replica uniformly).
least_loaded per step, each replicated expert's tokens go to whichever of its GPUs are least loaded
             (water-filling over the GPUs holding it, given the load of everything else; two rounds over
             the replicated experts, hottest first): LLEP's dynamic routing with full knowledge of the
             step, so close to the best any load-aware routing can do. Replicas that get no tokens cost
             nothing.

Returns the tokens of every physical slot, [S, L, R].
"""
from __future__ import annotations

import numpy as np

ROUTINGS = ("even", "least_loaded")
PASSES = 2  # rounds over the replicated experts; a third changes the max GPU load by < 0.1% here


def slot_tokens(counts: np.ndarray, phy2log: np.ndarray, logcnt: np.ndarray, slots: np.ndarray,
                slots_per_gpu: int, routing: str) -> np.ndarray:
    """counts [S, L, E]; phy2log [L, R]; logcnt [L, E]; slots [L, E, maxrep] (derived log2phy)."""
    per_replica = counts / logcnt[None]
    even = np.take_along_axis(per_replica, np.broadcast_to(phy2log, (counts.shape[0],) + phy2log.shape), axis=2)
    if routing == "even" or logcnt.max() == 1:
        return even
    return _least_loaded(even, logcnt, slots, slots_per_gpu)


def _least_loaded(even: np.ndarray, logcnt: np.ndarray, slots: np.ndarray, per_gpu: int) -> np.ndarray:
    """Start from the even split; then, hottest replicated expert first, take the expert's tokens back and
    water-fill them over the GPUs holding it given everything else's load. Each such move lowers (never
    raises) the highest of those GPUs and leaves the others alone, so the step's max GPU load never rises."""
    tokens = even.copy()
    S, L, R = tokens.shape
    G = R // per_gpu
    gpu_load = tokens.reshape(S, L, G, per_gpu).sum(axis=3)                 # [S, L, G]
    counts = np.take_along_axis(tokens, np.maximum(slots[:, :, 0], 0)[None].repeat(S, 0), axis=2) * logcnt[None]
    rows_s, rows_l = (a[..., None] for a in np.indices((S, L)))
    order = np.argsort(np.where(logcnt > 1, -counts, np.inf), axis=2)        # replicated experts, hottest first
    gpus_all = np.where(slots >= 0, slots // per_gpu, 0)                     # [L, E, maxrep]
    first = _first_on_gpu(np.where(slots >= 0, gpus_all, -1))                # one choice per GPU holding it
    for _ in range(PASSES):
        for k in range(int((logcnt > 1).sum(axis=1).max())):
            e = order[:, :, k]                                               # [S, L]
            held = (slots[rows_l[..., 0], e] >= 0) & (logcnt[rows_l[..., 0], e] > 1)[..., None]
            slot = np.maximum(slots[rows_l[..., 0], e], 0)                   # [S, L, maxrep]
            gpus = gpus_all[rows_l[..., 0], e]
            mine = np.where(held, tokens[rows_s, rows_l, slot], 0.0)
            np.add.at(gpu_load, (rows_s, rows_l, gpus), -mine)               # take the expert's tokens back
            np.add.at(tokens, (rows_s, rows_l, slot), -mine)                 # (add.at: padding repeats slot 0)
            use = first[rows_l[..., 0], e] & held
            level = np.where(use, np.take_along_axis(gpu_load, gpus, axis=2), np.inf)
            add = np.where(use, _water_fill(level, mine.sum(axis=2)), 0.0)
            np.add.at(gpu_load, (rows_s, rows_l, gpus), add)
            np.add.at(tokens, (rows_s, rows_l, slot), add)
    return tokens


def _first_on_gpu(gpus: np.ndarray) -> np.ndarray:
    """True for a replica whose GPU holds no earlier replica of the same expert (a second copy on the
    same GPU adds nothing to least-loaded routing)."""
    m = gpus.shape[-1]
    same = (gpus[..., :, None] == gpus[..., None, :]) & np.tri(m, k=-1, dtype=bool)
    return (gpus >= 0) & ~same.any(axis=-1)


def _water_fill(level: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Raise the lowest of `level` (inf = not a choice) to a common water line that uses up `amount`;
    returns what each entry receives. level [..., m], amount [...]."""
    h = np.sort(level, axis=-1)
    finite = np.isfinite(h)
    hz = np.where(finite, h, 0.0)
    cum = np.cumsum(hz, axis=-1)
    j = np.arange(1, h.shape[-1] + 1)
    fits = finite & (j * hz - cum <= amount[..., None])       # filling up to h_j costs j*h_j - sum(h_1..h_j)
    n = np.maximum(fits.sum(axis=-1), 1)                      # the lowest finite level always fits
    line = (amount + np.take_along_axis(cum, (n - 1)[..., None], axis=-1)[..., 0]) / n
    return np.where(np.isfinite(level), np.maximum(line[..., None] - level, 0.0), 0.0)
