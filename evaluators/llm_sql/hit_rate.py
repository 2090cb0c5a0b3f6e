"""The prefix-cache hit rate of a serialised table, in characters.

Rows are sent to the LLM one after another, each as the concatenation of its cells `"<column>: <value>\\n"`
in the order the row gives them. A row hits the cache for the longest prefix it shares with any row still in
the cache; the cache holds the last `window` rows sent (a bounded KV cache evicting the oldest prompt).

    hit_rate = sum over rows of that prefix length / sum over rows of the row's length

With an unbounded cache (`window >= rows`) a row hits the longest prefix it shares with ANY earlier row, and
the total equals the sum of the longest common prefixes of neighbours in sorted order (a trie of all rows has
sum(len) - sum(adjacent LCP) nodes, each inserted once): row order then does not matter at all, only each
row's column order. That is why the scored cache is bounded.

Computation: sort the rows once, take adjacent LCPs, and answer LCP(i, j) as a range minimum over that array
(sparse table), vectorised over every pair (i, i - d) for d = 1..window.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HitRate:
    hit_chars: int         # with the bounded cache
    unbounded_chars: int   # with every earlier row cached (row order irrelevant)
    total_chars: int
    row_hits: np.ndarray   # [rows] hit characters of each row in sent order (bounded cache)

    @property
    def rate(self) -> float:
        return self.hit_chars / self.total_chars if self.total_chars else 0.0

    @property
    def unbounded_rate(self) -> float:
        return self.unbounded_chars / self.total_chars if self.total_chars else 0.0


def common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix, by bisection on slice equality (C-speed comparisons)."""
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo + 1 < hi:  # a[:lo] == b[:lo] and a[:hi] != b[:hi]
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class _RangeMin:
    """Sparse table over an int array: min of a[lo..hi] (inclusive) for arrays of (lo, hi) in O(1) each."""

    def __init__(self, a: np.ndarray) -> None:
        self.levels = [a]
        k = 1
        while 2 * k <= len(a):
            prev = self.levels[-1]
            self.levels.append(np.minimum(prev[:-k], prev[k:]))
            k *= 2

    def query(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        span = hi - lo + 1
        k = np.floor(np.log2(np.maximum(span, 1))).astype(np.int64)
        out = np.empty(len(lo), dtype=np.int64)
        for level in np.unique(k):
            sel = k == level
            arr = self.levels[level]
            out[sel] = np.minimum(arr[lo[sel]], arr[hi[sel] - (1 << int(level)) + 1])
        return out


def measure(strings: list[str], window: int) -> HitRate:
    """Hit characters of `strings` sent in this order through a cache of the last `window` strings."""
    n = len(strings)
    lengths = np.fromiter((len(s) for s in strings), dtype=np.int64, count=n)
    total = int(lengths.sum())
    if n < 2:
        return HitRate(0, 0, total, np.zeros(n, dtype=np.int64))
    order = sorted(range(n), key=strings.__getitem__)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    # adj[k] = LCP(sorted[k-1], sorted[k]) for k >= 1; adj[0] is never queried
    adj = np.zeros(n, dtype=np.int64)
    for k in range(1, n):
        adj[k] = common_prefix(strings[order[k - 1]], strings[order[k]])
    rmq = _RangeMin(adj)
    hits = np.zeros(n, dtype=np.int64)
    for d in range(1, min(window, n - 1) + 1):
        i = np.arange(d, n)
        a, b = rank[i], rank[i - d]
        lcp = rmq.query(np.minimum(a, b) + 1, np.maximum(a, b))
        np.maximum(hits[d:], lcp, out=hits[d:])
    return HitRate(int(hits.sum()), int(adj[1:].sum()), total, hits)
