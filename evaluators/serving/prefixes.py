"""The prefix cache seen through one workload's requests: the engine's bookkeeping around prefix_cache.py.

A request's prompt is a chain of 512-token content units (its hash ids; only whole units are cached). This
module knows which units a request holds, refreshes what a waiting request would find (`Seq.cached`), gives
an admitted request its hit as its own KV, takes back and offers a leaving request's units, and pins them
for a time-to-live. Memory is reported in the engine's 16-token KV blocks.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from evaluators.serving.policy import Seq
from evaluators.serving.prefix_cache import UNIT_BLOCKS, UNIT_TOKENS, PrefixCache


class Prefixes:
    def __init__(self, hash_ids: Sequence[np.ndarray]) -> None:
        self.cache = PrefixCache()
        self._hash = [h.tolist() for h in hash_ids]

    @property
    def hit_rate(self) -> float:
        """Share of prompt units looked up at admission that the cache served."""
        c = self.cache
        return c.hits / c.lookups if c.lookups else 0.0

    def pinned_blocks(self) -> int:
        return self.cache.pinned_units * UNIT_BLOCKS

    def refresh(self, now: float, free_blocks: int, waiting: Iterable[Seq]) -> tuple[int, int]:
        """At a decision point: expire pins, evict what no longer fits in `free_blocks` (free memory before
        pins), and set each waiting request's hit. Returns (evictable, pinned) blocks."""
        cache, hashes = self.cache, self._hash
        cache.expire(now)
        pinned = self.pinned_blocks()
        cache.trim((free_blocks - pinned) // UNIT_BLOCKS)
        for seq in waiting:
            k = cache.match(hashes[seq.id])
            seq.cached = min(k * UNIT_TOKENS, seq.prompt_tokens + seq._g - 1) if k else 0
        return cache.evictable_units * UNIT_BLOCKS, pinned

    def retain_blocks(self, seq: Seq) -> int:
        """Blocks that retaining `seq`'s prefix would newly pin (its evictable cached units)."""
        return self.cache.evictable_in(self._full_units(seq)) * UNIT_BLOCKS

    def pin(self, seq: Seq, until: float) -> None:
        self.cache.pin(self._full_units(seq), until)

    def admit(self, seq: Seq) -> None:
        """`seq` is admitted: its hit (if any) becomes its own KV (`seq._c`), held until it leaves."""
        seq._units = -(-seq.cached // UNIT_TOKENS)
        self.cache.acquire(self._hash[seq.id], seq._units)
        seq._c = seq.cached

    def release(self, seq: Seq, now: float) -> None:
        """`seq` leaves the running set: it gives its held units back and offers its computed ones."""
        units = self._full_units(seq)
        self.cache.release(units, seq._units, min(seq._c // UNIT_TOKENS, len(units)), now)
        seq._units = 0

    def _full_units(self, seq: Seq) -> list[int]:
        return self._hash[seq.id][:seq.prompt_tokens // UNIT_TOKENS]
