"""The trusted scheduler model: the makespan of an order, and a lower bound no order can beat.

Model. Transactions are admitted one by one in the given order. Transaction T with ops o_0 .. o_{L-1}
starts at slot s_T >= 0 and runs op j in slot s_T + j, so it ends at e_T = s_T + L (each op one slot).
A transaction holds the lock an op takes from that op's slot until it ends (strict two-phase locking).
Two ops on the same key conflict unless both are reads. Op j of T on key k may run only after every
transaction admitted before T that holds a conflicting lock on k has ended:
    write on k:  s_T + j >= e_U for every earlier U with any op on k
    read on k:   s_T + j >= e_U for every earlier U with a write on k
s_T is the smallest slot that meets all of these; the makespan is max e_T.

Lower bound. Fix a key k; a writer writes k, a reader only reads it; a transaction's offset on k is the
slot (within it) of its first op on k. An interval [s_T + o, e_T) starts no earlier than o and ends by
the makespan, so for a family of pairwise disjoint such intervals the makespan is at least the smallest
o in the family plus their total length. Two families:
  (a) writers' [s_T + offset, e_T): of two writers, the later one's first op on k conflicts with the
      earlier one's write, so it waits for the earlier one to end;
  (b) writers' [s_T + first write on k, e_T) together with the longest reader's [s_R + offset, e_R):
      a write never overlaps a lock held by another transaction, in either order.
The bound is the largest of (a), (b) over all keys, and the longest transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from evaluators.txn_scheduling.workloads import Txn


@dataclass(frozen=True)
class Schedule:
    start: tuple[int, ...]     # per transaction index (not per position in the order)
    end: tuple[int, ...]
    waited_on: tuple[int | None, ...]  # per transaction: the key whose lock set its start (None: slot 0)
    makespan: int


def simulate(txns: Sequence[Txn], order: Sequence[int]) -> Schedule:
    """The schedule of a validated order (a permutation of range(len(txns)))."""
    access_end: dict[int, int] = {}   # key -> latest end of an admitted transaction with any op on it
    write_end: dict[int, int] = {}    # key -> latest end of an admitted transaction that wrote it
    start = [0] * len(txns)
    end = [0] * len(txns)
    waited: list[int | None] = [None] * len(txns)
    for t in order:
        ops = txns[t]
        s = 0
        for j, (w, k) in enumerate(ops):
            bound = (access_end if w else write_end).get(k, 0) - j
            if bound > s:
                s, waited[t] = bound, k
        e = s + len(ops)
        for w, k in ops:
            if access_end.get(k, 0) < e:
                access_end[k] = e
            if w and write_end.get(k, 0) < e:
                write_end[k] = e
        start[t], end[t] = s, e
    return Schedule(tuple(start), tuple(end), tuple(waited), max(end, default=0))


@dataclass(frozen=True)
class Bound:
    value: int
    key: int | None        # the key that sets it (None: the longest transaction does)
    writers: int           # transactions writing that key


def lower_bound(txns: Sequence[Txn]) -> Bound:
    first_op: dict[int, dict[int, int]] = {}     # key -> {txn: offset of its first op on the key}
    first_write: dict[int, dict[int, int]] = {}  # key -> {txn: offset of its first write on the key}
    for t, ops in enumerate(txns):
        for j, (w, k) in enumerate(ops):
            first_op.setdefault(k, {}).setdefault(t, j)
            if w:
                first_write.setdefault(k, {}).setdefault(t, j)
    best = Bound(max((len(o) for o in txns), default=0), None, 0)
    for k, writers in first_write.items():
        readers = {t: j for t, j in first_op[k].items() if t not in writers}
        # (a) writers from their first op on k
        whole = min(first_op[k][t] for t in writers) + sum(len(txns[t]) - first_op[k][t] for t in writers)
        # (b) writers from their first write, with the reader that holds k longest
        reader = max(readers.items(), key=lambda tj: (len(txns[tj[0]]) - tj[1], -tj[1]), default=None)
        offsets = [*writers.values(), *([reader[1]] if reader else [])]
        write_part = min(offsets) + sum(len(txns[t]) - j for t, j in writers.items())
        value = max(whole, write_part + (len(txns[reader[0]]) - reader[1] if reader else 0))
        if value > best.value:
            best = Bound(value, k, len(writers))
    return best
