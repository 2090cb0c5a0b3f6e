"""Transaction workloads: the three ADRS families, generated from an id.

Id: `<family>:seed<N>[:n<T>]`, family one of `hot`, `rmw`, `ronwa` (see problems/txn_scheduling/README.md):
    hot    16-op transactions, keys Zipf-distributed over a keyspace (a hot-key read/write mix)
    rmw    two classes of read-modify-write transactions: short ones on hot keys, long ones on a wider set
    ronwa  10 shared keys; each transaction reads one and writes another, among private work
A transaction is a tuple of ops (is_write, key); op j runs j slots after the transaction starts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from evaluators.base import ConfigError

Op = tuple[bool, int]          # (is_write, key)
Txn = tuple[Op, ...]

DEFAULT_TXNS = 100             # REFERENCE.md: 3 workloads of 100 transactions
MAX_TXNS = 5000

# hot: 16-op Zipf hot-key mix
HOT_OPS = 16
HOT_KEYS = 1000
HOT_THETA = 1.1                # Zipf exponent over key ranks
HOT_WRITE = 0.2                # probability an op is a write
# rmw: two classes of read-modify-write transactions (reads of all its keys, then writes of them)
RMW_SHORT_SHARE = 0.6
RMW_SHORT_KEYS = (1, 2)        # inclusive range of keys a short transaction updates ...
RMW_SHORT_POOL = 8             # ... drawn from this many hot keys
RMW_LONG_KEYS = (5, 8)         # a long transaction updates this many keys ...
RMW_LONG_POOL = 64             # ... drawn from this many keys (the hot ones included)
# ronwa: 10-key read-one/write-another
RONWA_SHARED = 10
RONWA_LEN = (4, 16)            # inclusive range of ops per transaction
RONWA_PRIVATE_BASE = 1000      # private keys (never shared) are numbered from here
FAMILIES = ("hot", "rmw", "ronwa")


@dataclass(frozen=True)
class Workload:
    id: str
    family: str
    txns: tuple[Txn, ...]

    @property
    def n(self) -> int:
        return len(self.txns)

    def as_lists(self) -> list[list[list]]:
        """What the candidate receives: a fresh copy, txns[i][j] = ["r" or "w", key]."""
        return [[["w" if w else "r", k] for w, k in t] for t in self.txns]


def parse_id(wid: str) -> tuple[str, int, int]:
    """(family, seed, transactions); ConfigError naming the part that is wrong."""
    parts = wid.split(":")
    if parts[0] not in FAMILIES:
        raise ConfigError(f"workload id '{wid}': unknown family '{parts[0]}' (known: {', '.join(FAMILIES)})")
    fields: dict[str, int] = {}
    for tok in parts[1:]:
        m = re.fullmatch(r"(seed|n)([0-9]+)", tok)
        if not m:
            raise ConfigError(f"workload id '{wid}': bad part '{tok}' (expected seed<N> or n<transactions>)")
        if m.group(1) in fields:
            raise ConfigError(f"workload id '{wid}': '{m.group(1)}' given twice")
        fields[m.group(1)] = int(m.group(2))
    if "seed" not in fields:
        raise ConfigError(f"workload id '{wid}': missing seed<N>")
    n = fields.get("n", DEFAULT_TXNS)
    if not 2 <= n <= MAX_TXNS:
        raise ConfigError(f"workload id '{wid}': n must be in [2, {MAX_TXNS}], got {n}")
    return parts[0], fields["seed"], n


def _zipf_keys(rng: np.random.Generator, size: int, keys: int, theta: float) -> np.ndarray:
    p = 1.0 / np.arange(1, keys + 1) ** theta
    return rng.choice(keys, size=size, p=p / p.sum())


def _hot(rng: np.random.Generator, n: int) -> list[Txn]:
    keys = _zipf_keys(rng, n * HOT_OPS, HOT_KEYS, HOT_THETA).reshape(n, HOT_OPS)
    writes = rng.random((n, HOT_OPS)) < HOT_WRITE
    return [tuple((bool(w), int(k)) for w, k in zip(writes[i], keys[i])) for i in range(n)]


def _rmw(rng: np.random.Generator, n: int) -> list[Txn]:
    txns = []
    for _ in range(n):
        short = rng.random() < RMW_SHORT_SHARE
        lo, hi = RMW_SHORT_KEYS if short else RMW_LONG_KEYS
        pool = RMW_SHORT_POOL if short else RMW_LONG_POOL
        keys = rng.choice(pool, size=int(rng.integers(lo, hi + 1)), replace=False)
        txns.append(tuple((False, int(k)) for k in keys) + tuple((True, int(k)) for k in keys))
    return txns


def _ronwa(rng: np.random.Generator, n: int) -> list[Txn]:
    txns, private = [], RONWA_PRIVATE_BASE
    for _ in range(n):
        length = int(rng.integers(RONWA_LEN[0], RONWA_LEN[1] + 1))
        read, write = (int(k) for k in rng.choice(RONWA_SHARED, size=2, replace=False))
        read_at = int(rng.integers(0, length // 2))          # the read in the first half ...
        write_at = int(rng.integers(length // 2, length))    # ... the write in the second
        ops: list[Op] = []
        for j in range(length):
            if j == read_at:
                ops.append((False, read))
            elif j == write_at:
                ops.append((True, write))
            else:  # private work: a key no other transaction touches
                ops.append((bool(rng.random() < 0.5), private))
                private += 1
        txns.append(tuple(ops))
    return txns


_GENERATORS = {"hot": _hot, "rmw": _rmw, "ronwa": _ronwa}


def build(wid: str) -> Workload:
    family, seed, n = parse_id(wid)
    # the family joins the seed so that hot:seed1 and rmw:seed1 draw unrelated streams
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    return Workload(wid, family, tuple(_GENERATORS[family](rng, n)))
