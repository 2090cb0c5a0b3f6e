"""The prefix cache of one serving instance: KV of earlier prompts kept in the free part of the KV cache.

Content is identified as the workloads know it: a prompt's 512-token units carry content hashes (Mooncake's
`hash_ids`; the generators produce them the same way), and two prompts sharing their first k units share
their first k ids. Memory is the engine's: a unit holds UNIT_BLOCKS of its 16-token KV blocks. A request
whose first k units are cached skips their prefill (it still attends to them), as vLLM's automatic prefix
caching and SGLang's radix cache do; only whole units match, so a partial last unit is always recomputed.

Every cached unit is in one of three states, and the engine's memory accounting follows it:
  in use    a running request holds it (it counts in that request's KV blocks);
  pinned    kept for a time-to-live a policy asked for (Continuum), until the TTL ends or a request uses
            it; counts as used memory;
  evictable nobody holds it; it sits in free memory and is evicted, least recently used first, when the
            running requests need the space. Within one request's chain the last unit is evicted first (a
            prefix is useless without its beginning), as vLLM evicts the tail of a sequence first.
Simplification (stated in the README): two running requests that hit the same units both count them, so
memory is overestimated where concurrent requests share a prefix; the compute saving is exact.
"""
from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass

from evaluators.serving.gpu import BLOCK_TOKENS
from evaluators.serving.lengths import BLOCK_TOKENS as UNIT_TOKENS

UNIT_BLOCKS = UNIT_TOKENS // BLOCK_TOKENS   # KV blocks per cached 512-token unit


@dataclass(slots=True)
class _Entry:
    refs: int = 0            # running requests holding it
    pin_until: float = -1.0  # pinned while now < pin_until


class PrefixCache:
    def __init__(self) -> None:
        self._entries: dict[int, _Entry] = {}
        self._lru: OrderedDict[int, None] = OrderedDict()   # evictable ids, least recently used first
        self._expiry: list[tuple[float, int]] = []           # (pin_until, id), may hold stale pins
        self.pinned_units = 0       # pinned and not in use
        self.hits = self.lookups = 0   # units found / units looked up at admission (a diagnostic)

    @property
    def evictable_units(self) -> int:
        return len(self._lru)

    def match(self, ids) -> int:
        """How many leading units of `ids` are cached (in any state)."""
        entries, k = self._entries, 0
        for h in ids:
            if h not in entries:
                break
            k += 1
        return k

    def evictable_in(self, ids) -> int:
        """How many of the cached leading units of `ids` are evictable (neither in use nor pinned)."""
        n = 0
        for h in ids:
            if h not in self._entries:
                break
            n += h in self._lru
        return n

    def acquire(self, ids, k: int) -> None:
        """A request admitted with its first k units from the cache holds them until release()."""
        self.lookups += len(ids)
        self.hits += k
        for h in ids[:k]:
            e = self._entries[h]
            if e.refs == 0:
                if h in self._lru:
                    del self._lru[h]
                else:
                    self.pinned_units -= 1
            e.refs += 1
            e.pin_until = -1.0   # a pin keeps a prefix for its next use: this is it

    def release(self, ids, held: int, computed: int, now: float) -> None:
        """A request leaves the running set (finished or preempted): it gives back its first `held` units
        and offers the units it computed (up to `computed`, whole units only) to the cache."""
        entries, lru = self._entries, self._lru
        for h in ids[:held]:
            e = entries[h]
            e.refs -= 1
            if e.refs == 0:
                self._park(h, e, now)
        for h in ids[held:computed]:
            if h not in entries:
                entries[h] = e = _Entry()
                self._park(h, e, now)
        for h in reversed(ids[:computed]):   # the chain is now most recently used, its head last to go
            if h in lru:
                lru.move_to_end(h)

    def pin(self, ids, until: float) -> int:
        """Keep the cached leading units of `ids` until `until`; returns the units newly pinned."""
        new = 0
        for h in ids:
            e = self._entries.get(h)
            if e is None:
                break
            if e.refs == 0 and h in self._lru:
                del self._lru[h]
                self.pinned_units += 1
                new += 1
            if until > e.pin_until:
                e.pin_until = until
                heapq.heappush(self._expiry, (until, h))
        return new

    def expire(self, now: float) -> None:
        """Pins whose time is up become evictable."""
        heap, entries = self._expiry, self._entries
        while heap and heap[0][0] <= now:
            until, h = heapq.heappop(heap)
            e = entries.get(h)
            if e is not None and e.pin_until == until and e.refs == 0 and h not in self._lru:
                self.pinned_units -= 1
                self._lru[h] = None   # freed now: the most recently used end, as vLLM's free queue

    def trim(self, free_units: int) -> int:
        """Evict least recently used units until the evictable ones fit in `free_units`; returns how many."""
        lru, entries, n = self._lru, self._entries, 0
        while len(lru) > max(free_units, 0):
            h, _ = lru.popitem(last=False)
            del entries[h]
            n += 1
        return n

    def _park(self, h: int, e: _Entry, now: float) -> None:
        if e.pin_until > now:
            self.pinned_units += 1
        else:
            self._lru[h] = None
