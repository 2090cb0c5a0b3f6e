"""Compact per-step state for stateful problems: tables as columns, sent to the candidate as keyed deltas.

A stateful evaluator calls its candidate once per simulator step, thousands of times per workload, with the
observable state. A 4,096-request queue (6 fields) sent as a list of dicts costs milliseconds per call; as
columns (a dict of numpy arrays, `columns()`), about 0.1 ms. A DeltaTable sends only what changed since
the last step (~2% of the bytes when 1% of the rows come and go), but through a local socket diffing and
rebuilding cost about what they save in copying until a table passes a megabyte or so (measured in
bench/policy_call.py): pass small tables as plain columns, large ones (or ones that travel further) as
deltas. Either way the candidate gets the same thing.

    queue = DeltaTable("queue", key="id")     # one per stream and per candidate (a workload's fresh one)
    for step in ...:
        table = columns(waiting, {"id": np.int64, "arrival_s": np.float64, "prompt_tokens": np.int32})
        decision = candidate.call("step", queue.encode(table), now)

The candidate's function receives the whole table, `{"id": array, "arrival_s": array, ...}`, with
read-only arrays, rebuilt inside the sandbox by sandbox/state_mirror.py; it never sees a delta. The wire
format is described there. Nothing flows back: whatever a candidate does to its copy changes only its own
view. A stream must start in the candidate that continues it: make a new DeltaTable for each candidate (or
`reset()` it), as every workload gets a freshly imported candidate.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any, Iterable, Mapping

import numpy as np

from sandbox.state_mirror import MARKER, VERSION

_UNSIGNED = {1: np.dtype(np.uint8), 2: np.dtype(np.uint16), 4: np.dtype(np.uint32), 8: np.dtype(np.uint64)}
LOOKUP_SPAN = 8  # integer keys spanning at most this many times the rows are located by a lookup array


def columns(records: Iterable[Any], fields: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Struct-of-arrays from a sequence of records: dicts (by key) or objects (by attribute).

    `fields` maps each column name to its numpy dtype, e.g. {"id": np.int64, "arrival_s": np.float64}."""
    rows = records if isinstance(records, (list, tuple)) else list(records)
    by_key = bool(rows) and isinstance(rows[0], Mapping)
    out = {}
    for name, dtype in fields.items():
        get = itemgetter(name) if by_key else attrgetter(name)
        out[name] = np.array([get(r) for r in rows], dtype=dtype).reshape(len(rows))
    return out


def _changed(old: np.ndarray, new: np.ndarray) -> np.ndarray | None:
    """Positions whose bits differ (so NaN equals NaN, and -0.0 differs from 0.0); None if none do."""
    if old.tobytes() == new.tobytes():  # the usual case, and a memcmp is the fastest way to see it
        return None
    size = old.dtype.itemsize
    if size in _UNSIGNED:
        differs = old.view(_UNSIGNED[size]) != new.view(_UNSIGNED[size])
    else:
        differs = (old.view(np.uint8).reshape(-1, size) != new.view(np.uint8).reshape(-1, size)).any(axis=1)
    return np.flatnonzero(differs)


def _unsigned(positions: np.ndarray, bound: int) -> np.ndarray:
    """Positions as the mirror wants them: unsigned (never negative), 4 bytes where that is enough."""
    return positions.astype(np.uint32 if bound <= 2**32 else np.uint64)


def _nbytes(msg: dict) -> int:
    total = 0
    for value in msg.values():
        if isinstance(value, np.ndarray):
            total += value.nbytes
        elif isinstance(value, bytes):
            total += len(value)
        elif isinstance(value, dict):
            total += _nbytes(value)
        elif isinstance(value, list):
            total += sum(v.nbytes for v in value if isinstance(v, np.ndarray))
    return total


@dataclass
class DeltaTable:
    """One stream of tables keyed by a unique column; `encode` gives what to pass as a call argument."""

    name: str
    key: str = "id"
    _seq: int = field(default=0, init=False, repr=False)
    _prev: dict[str, np.ndarray] | None = field(default=None, init=False, repr=False)
    _prev_sorted: np.ndarray | None = field(default=None, init=False, repr=False)  # prev keys, ascending
    _prev_sorter: np.ndarray | None = field(default=None, init=False, repr=False)  # None: already sorted

    def reset(self) -> None:
        """The next `encode` sends the whole table (for a new candidate)."""
        self._prev = self._prev_sorted = self._prev_sorter = None

    def encode(self, table: Mapping[str, Any]) -> dict[str, Any]:
        """A payload that turns the candidate's copy of this stream into `table`: the whole table the first
        time (or when that is smaller, or the columns changed), else only what changed."""
        cols = self._checked(table)
        sorter, sorted_keys = self._sort_keys(cols[self.key])
        self._seq += 1
        msg, same = None, set()
        if self._prev is not None and _schema(self._prev) == _schema(cols):
            msg, same = self._delta(cols, sorted_keys)
        # our own copy of what the candidate now has (the caller may change its arrays after encode),
        # reusing last step's arrays where nothing changed
        snap = {k: self._prev[k] if k in same else v.copy() for k, v in cols.items()}
        whole = {MARKER: VERSION, "stream": self.name, "seq": self._seq, "n": len(cols[self.key]),
                 "columns": snap}
        if msg is None or _nbytes(msg) >= _nbytes(whole):
            msg = whole
        elif "set" in msg:
            msg["set"] = {k: snap[k] for k in msg["set"]}
        self._prev, self._prev_sorted, self._prev_sorter = snap, sorted_keys, sorter
        return msg

    # ------------------------------------------------------------ internals

    def _checked(self, table: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The columns as contiguous one-dimensional arrays of one length (not copied yet)."""
        if self.key not in table:
            raise ValueError(f"state table '{self.name}' has no key column '{self.key}'")
        cols = {str(k): np.ascontiguousarray(v) for k, v in table.items()}
        n = len(cols[self.key])
        for k, v in cols.items():
            if v.ndim != 1 or len(v) != n:
                raise ValueError(f"state table '{self.name}': column '{k}' has shape {v.shape}, expected ({n},)")
            if v.dtype.hasobject or v.dtype.fields is not None:
                raise ValueError(f"state table '{self.name}': column '{k}' has dtype {v.dtype}, which cannot "
                                 "cross the sandbox boundary as a column")
        return cols

    def _sort_keys(self, keys: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """(argsort of the keys, or None if already ascending; the keys ascending); refuses duplicates."""
        if len(keys) < 2 or bool(np.all(keys[1:] > keys[:-1])):
            return None, keys
        sorter = np.argsort(keys, kind="stable")
        ordered = keys[sorter]
        if not bool(np.all(ordered[1:] > ordered[:-1])):
            raise ValueError(f"state table '{self.name}': key column '{self.key}' has duplicate values")
        return sorter, ordered

    def _locate(self, keys: np.ndarray, new_sorted: np.ndarray) -> np.ndarray:
        """Each key's row in the previous table, or -1 for a new key."""
        ordered = self._prev_sorted
        if len(ordered) == 0 or len(keys) == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        if keys.dtype.kind in "iu":  # ids are usually dense: a lookup array is 4x faster than a search
            lo, hi = min(ordered[0], new_sorted[0]), max(ordered[-1], new_sorted[-1])
            span = int(hi) - int(lo) + 1
            if span <= LOOKUP_SPAN * (len(keys) + len(ordered)):
                prev_keys = self._prev[self.key]
                slot = np.full(span, -1, dtype=np.int64)
                slot[prev_keys - lo] = np.arange(len(prev_keys))
                return slot[keys - lo]
        idx = np.minimum(np.searchsorted(ordered, keys), len(ordered) - 1)
        hit = ordered[idx] == keys
        rows = idx if self._prev_sorter is None else self._prev_sorter[idx]
        return np.where(hit, rows, -1)

    def _delta(self, cols: dict[str, np.ndarray], new_sorted: np.ndarray) -> tuple[dict[str, Any], set[str]]:
        """The delta from the previous table to `cols`, and the columns that did not change at all."""
        prev = self._prev
        assert prev is not None
        keys, prev_keys = cols[self.key], prev[self.key]
        n, n_prev = len(keys), len(prev_keys)
        msg: dict[str, Any] = {MARKER: VERSION, "stream": self.name, "seq": self._seq, "n": n}
        if n == n_prev and keys.tobytes() == prev_keys.tobytes():  # the same rows: only values may differ
            return msg, {self.key} | self._changes(msg, cols, None, slice(0, n), n)
        pos = self._locate(keys, new_sorted)  # each new row's row in the previous table, or -1
        found = pos >= 0
        s = int(np.count_nonzero(found))
        keep = np.zeros(n_prev, dtype=bool)
        new_of_surv: Any
        if s == 0 or (bool(found[:s].all()) and (s == 1 or bool(np.all(pos[1:s] > pos[:s - 1])))):
            # the usual case: survivors first, in their old order, then the new rows
            keep[pos[:s]] = True
            new_of_surv, app_rows = slice(0, s), slice(s, n)
        else:
            surv_rows, app_rows = np.flatnonzero(found), np.flatnonzero(~found)
            surv_pos = pos[surv_rows]
            keep[surv_pos] = True
            rank = np.cumsum(keep) - 1     # a survivor's row once the dropped rows are gone
            order = np.empty(n, dtype=np.int64)
            order[surv_rows] = rank[surv_pos]
            order[app_rows] = s + np.arange(len(app_rows))
            msg["order"] = _unsigned(order, n)
            new_of_surv = np.empty(s, dtype=np.int64)
            new_of_surv[rank[surv_pos]] = surv_rows
        if s < n_prev:
            msg["drop"] = _unsigned(np.flatnonzero(~keep), n_prev)
        if s < n:  # one bytes value, not an array per column: each array costs ~3 µs to send
            msg["append"] = b"".join(v[app_rows].tobytes() for v in cols.values())
        self._changes(msg, cols, keep if s < n_prev else None, new_of_surv, n)
        return msg, set()

    def _changes(self, msg: dict, cols: dict[str, np.ndarray], keep: np.ndarray | None, new_of_surv: Any,
                 n: int) -> set[str]:
        """Changed values of surviving rows: as patches where few changed, else the whole column. Returns
        the columns whose surviving rows did not change."""
        patch, whole, same = {}, {}, set()
        kept = np.flatnonzero(keep) if keep is not None else None
        for k, col in cols.items():
            if k == self.key:
                continue  # survivors have the same keys by definition
            old = self._prev[k] if kept is None else self._prev[k].take(kept)
            new = col[new_of_surv]
            diff = _changed(old, new)
            if diff is None:
                same.add(k)
            elif len(diff) * (4 + col.dtype.itemsize) < n * col.dtype.itemsize:
                patch[k] = [_unsigned(diff, n), new[diff]]
            else:
                whole[k] = col  # replaced by our own copy in encode
        if patch:
            msg["patch"] = patch
        if whole:
            msg["set"] = whole
        return same


def _schema(cols: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    return [(k, v.dtype.str) for k, v in cols.items()]
