"""Content hashes of 512-token prompt blocks (Mooncake's `hash_ids`), so a prefix cache can see shared prefixes.

A request's prompt is cut into blocks of BLOCK_TOKENS; a full block gets an id that depends only on its content,
so two prompts that share their first k full blocks share their first k ids. A partial last block has its own
fresh id (its content is unlike any full block's). Generators describe shared content as *streams*: a growing
token sequence (one conversation's transcript, one hot document) whose i-th full block always has the same id.
"""
from __future__ import annotations

import numpy as np

from evaluators.serving.lengths import BLOCK_TOKENS

SYSTEM_BLOCK = 0   # the id of a block every request of a workload begins with (a shared system prompt)


class BlockIds:
    """Hands out ids never used before in one workload (0 is kept for SYSTEM_BLOCK)."""

    def __init__(self) -> None:
        self._next = SYSTEM_BLOCK + 1

    def fresh(self, k: int) -> np.ndarray:
        ids = np.arange(self._next, self._next + k, dtype=np.int64)
        self._next += k
        return ids


class Stream:
    """A token sequence shared by several prompts: its first k full blocks, with stable ids, on demand."""

    def __init__(self, ids: BlockIds) -> None:
        self._ids = ids
        self._blocks = np.empty(0, np.int64)

    def blocks(self, k: int) -> np.ndarray:
        if k > len(self._blocks):   # content nobody has sent yet: new ids, stable from now on
            self._blocks = np.concatenate([self._blocks, self._ids.fresh(k - len(self._blocks))])
        return self._blocks[:k]


def prompt_blocks(prompt_tokens: int, shared: np.ndarray, ids: BlockIds) -> np.ndarray:
    """The ids of a prompt whose full blocks begin with `shared` (at most all of them); the rest are fresh."""
    full = prompt_tokens // BLOCK_TOKENS
    partial = 1 if prompt_tokens % BLOCK_TOKENS else 0
    shared = shared[:full]
    return np.concatenate([shared, ids.fresh(full - len(shared) + partial)])


def prefix_hits(hash_ids: tuple[np.ndarray, ...]) -> tuple[int, int]:
    """(blocks found, blocks in all) for an unbounded prefix cache seeing the requests in order.

    A block counts as found when it and every block before it in its prompt were in some earlier request:
    prefix caches (vLLM, SGLang, Mooncake) match prefixes, not scattered blocks."""
    lengths = np.fromiter((len(h) for h in hash_ids), np.int64, len(hash_ids))
    total = int(lengths.sum())
    if total == 0:
        return 0, 0
    flat = np.concatenate(hash_ids)
    owner = np.repeat(np.arange(len(hash_ids)), lengths)
    _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    seen_before = owner[first[inverse]] < owner   # first sent by an earlier request
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    local = np.arange(total) - np.repeat(starts, lengths)
    # per request: index of its first miss (or its length); everything before it is a prefix hit
    miss_at = np.where(seen_before, np.repeat(lengths, lengths), local)
    nonempty = lengths > 0
    first_miss = np.minimum.reduceat(miss_at, starts[nonempty])
    return int(first_miss.sum()), total


def reuse_ratio(hash_ids: tuple[np.ndarray, ...]) -> float:
    """The share of prompt blocks an unbounded prefix cache serves (REFERENCE.md: 36.6% for Mooncake conversation)."""
    hits, total = prefix_hits(hash_ids)
    return hits / total if total else 0.0
