"""Per-step state sent as deltas: the wire format, and the mirror that rebuilds whole tables from it.

A stateful problem calls its candidate thousands of times per workload with a table of observable state
(say a 4,096-row request queue). The trusted side (evaluators/state.py, DeltaTable) sends the first step of
a stream whole and then only what changed; this module, on the candidate's side of the boundary, keeps one
reconstructed table per stream and hands the candidate the whole table (a dict of read-only numpy arrays).
The candidate never sees a delta.

A delta is a plain dict, recognised when it is a top-level call argument:
  {MARKER: 1, "stream": name, "seq": k, "n": rows,
   "columns": {name: array}}                  the whole table (first step, or cheaper than a delta), or
   "drop": positions,                         rows removed (their positions in the previous table),
   "append": bytes,                           the rows added: each column's values in turn, table order,
   "patch": {name: [positions, values]},      changed values of surviving rows (positions after the drop),
   "set": {name: array},                      whole changed columns, in the final row order,
   "order": positions}                        the final row order, if rows moved: new row j = row order[j].
Positions are unsigned integer arrays. Applying: survivors keep their order, appended rows follow, patches
apply to the survivors, then `order`.

Trust: the mirror lives in the candidate's process. Whatever a candidate does to it changes only its own
view; the trusted side never reads anything back. Only stdlib and numpy are used: the runner imports this
module inside the sandbox, and the in-process backend imports it too, so both decode identically.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MARKER = "__adrs_state__"
VERSION = 1


class StateError(Exception):
    """A delta that cannot be applied (malformed, out of sequence, unknown stream): a trusted-side bug."""


@dataclass
class _Table:
    seq: int
    columns: dict[str, np.ndarray]
    n: int


def is_delta(value: Any) -> bool:
    return type(value) is dict and MARKER in value


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


def _column(value: Any, what: str, length: int | None = None, dtype: np.dtype | None = None) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.ndim != 1:
        raise StateError(f"{what} is not a one-dimensional numpy array")
    if length is not None and len(value) != length:
        raise StateError(f"{what} has {len(value)} rows, expected {length}")
    if dtype is not None and value.dtype != dtype:
        raise StateError(f"{what} has dtype {value.dtype}, expected {dtype}")
    return value


def _positions(value: Any, what: str) -> np.ndarray:
    """Unsigned, so never negative; numpy's IndexError catches a position past the end (see resolve)."""
    arr = _column(value, what)
    if arr.dtype.kind != "u":
        raise StateError(f"{what} must be an array of unsigned integers, not {arr.dtype}")
    return arr


def _mapping(msg: dict, field: str) -> dict:
    value = msg.get(field, {})
    if not isinstance(value, dict):
        raise StateError(f"'{field}' is not a mapping of column names")
    return value


class Mirror:
    """The reconstructed tables of one candidate process, keyed by stream name."""

    def __init__(self) -> None:
        self._tables: dict[str, _Table] = {}

    def resolve(self, args: list) -> list:
        """`args` with every delta replaced by its whole table (the same list when there is none)."""
        if not any(type(a) is dict and MARKER in a for a in args):
            return args
        return [self.apply(a) if is_delta(a) else a for a in args]

    def apply(self, msg: dict) -> dict[str, np.ndarray]:
        """Apply one delta; returns the table it leaves (a fresh dict of read-only arrays). Raises
        StateError, leaving the stream as it was, if the delta cannot be applied."""
        try:
            return self._apply(msg)
        except (IndexError, ValueError, TypeError) as e:  # numpy refusing a position or a length
            raise StateError(f"malformed state delta: {type(e).__name__}: {e}") from None

    def _apply(self, msg: dict) -> dict[str, np.ndarray]:
        if msg.get(MARKER) != VERSION:
            raise StateError(f"state delta version {str(msg.get(MARKER))[:20]} is not {VERSION}")
        stream, seq, n = msg.get("stream"), msg.get("seq"), msg.get("n")
        if not (isinstance(stream, str) and type(seq) is int and type(n) is int and n >= 0):
            raise StateError("a state delta needs a string 'stream' and integer 'seq' and 'n'")
        if "columns" in msg:
            table = self._whole(msg, seq, n)
        else:
            table = self._tables.get(stream)
            if table is None:
                raise StateError(f"stream '{stream[:60]}' has no first step here: a delta continues a "
                                 "stream only in the candidate that got its first step")
            if seq != table.seq:  # the same seq again is a repeat (timed_call resends one payload)
                if seq != table.seq + 1:
                    raise StateError(f"stream '{stream[:60]}' got step {seq} after step {table.seq}")
                table = _Delta(table, msg, n).apply(seq)
        self._tables[stream] = table
        return dict(table.columns)

    @staticmethod
    def _whole(msg: dict, seq: int, n: int) -> _Table:
        cols = _mapping(msg, "columns")
        if not cols:
            raise StateError("a whole table needs at least one column")
        # the arrays are taken over as they are: they come fresh from decoding the call
        return _Table(seq, {str(k): _frozen(_column(v, f"column '{k}'", n)) for k, v in cols.items()}, n)


class _Delta:
    """One delta checked against the table it continues, then applied column by column."""

    def __init__(self, table: _Table, msg: dict, n: int) -> None:
        self.table, self.n = table, n
        cols = table.columns
        self.keep: np.ndarray | None = None
        self.survivors = table.n
        if "drop" in msg:
            self.keep = np.ones(table.n, dtype=bool)
            self.keep[_positions(msg["drop"], "'drop'")] = False
            self.survivors = int(np.count_nonzero(self.keep))
        self.added = self._appended(msg.get("append", b""), n - self.survivors)
        self.patch = _mapping(msg, "patch")
        for k, pv in self.patch.items():
            if k not in cols or not (isinstance(pv, list) and len(pv) == 2):
                raise StateError(f"'patch' of '{str(k)[:60]}' is not [positions, values] of a known column")
            _column(pv[1], f"patch values of '{k}'", len(_positions(pv[0], f"patch of '{k}'")), cols[k].dtype)
        self.set = _mapping(msg, "set")
        for k, v in self.set.items():
            if k not in cols:
                raise StateError(f"'set' names an unknown column '{str(k)[:60]}'")
            _column(v, f"set column '{k}'", n, cols[k].dtype)
        order = msg.get("order")
        self.order = None if order is None else _positions(_column(order, "'order'", n), "'order'")

    def _appended(self, blob: Any, added: int) -> dict[str, np.ndarray]:
        """The appended rows of each column, read from one bytes value (one column after another)."""
        cols = self.table.columns
        width = sum(c.dtype.itemsize for c in cols.values())
        if added < 0 or not isinstance(blob, bytes) or len(blob) != added * width:
            raise StateError(f"{self.survivors} surviving rows and {len(blob) if isinstance(blob, bytes) else '?'}"
                             f" appended bytes do not make the {self.n} rows announced")
        out, offset = {}, 0
        if added:
            for name, col in cols.items():
                out[name] = np.frombuffer(blob, dtype=col.dtype, count=added, offset=offset)
                offset += added * col.dtype.itemsize
        return out

    def apply(self, seq: int) -> _Table:
        out = {}
        for name, col in self.table.columns.items():
            if name in self.set:
                out[name] = _frozen(self.set[name])
            else:
                out[name] = self._rebuilt(name, col)
        return _Table(seq, out, self.n)

    def _rebuilt(self, name: str, col: np.ndarray) -> np.ndarray:
        patch, added = self.patch.get(name), self.added.get(name)
        if self.keep is None and patch is None and added is None and self.order is None:
            return col  # unchanged: the same read-only array as last step
        new = col[self.keep] if self.keep is not None else col.copy()
        if patch is not None:
            new[patch[0]] = patch[1]
        if added is not None:
            new = np.concatenate((new, added))
        if self.order is not None:
            new = new[self.order]
        return _frozen(new)
