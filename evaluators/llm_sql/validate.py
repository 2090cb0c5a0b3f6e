"""Check a candidate's reordering against the rules; one precise InvalidOutput message per breach.

The candidate returns positions, never text: `row_order[k]` is the table row sent k-th, and `col_order`
is either one column order for every row (`[cols]`) or one per sent row (`[rows, cols]`, row k of it for the
k-th sent row). The trusted side builds every prompt from its own copy of the table, so a cell cannot be
altered, dropped or duplicated unless an order breaks, and these checks name the first order that does."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluators.base import InvalidOutput
from evaluators.llm_sql.table import Table, cell_text


@dataclass(frozen=True)
class Reordering:
    row_order: np.ndarray  # [rows] int64, a permutation of the table's rows
    col_order: np.ndarray  # [rows, cols] int64, row k: a permutation of the columns for the k-th sent row


def _as_int_array(x: Any, name: str) -> np.ndarray:
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as e:
        raise InvalidOutput(f"{name} is not a rectangular array: {e}") from None
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise InvalidOutput(f"{name} must hold integers, got dtype {a.dtype}")
    return a.astype(np.int64, copy=True)


def _check_rows(row_order: np.ndarray, n: int) -> None:
    if row_order.shape != (n,):
        raise InvalidOutput(f"row_order shape {row_order.shape}, expected ({n},): every table row exactly once")
    bad = (row_order < 0) | (row_order >= n)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InvalidOutput(f"row_order[{k}] = {row_order[k]} is not a table row in [0, {n})")
    seen = np.bincount(row_order, minlength=n)
    if (seen != 1).any():
        missing = int(np.flatnonzero(seen == 0)[0])
        twice = int(np.flatnonzero(seen > 1)[0])
        where = np.flatnonzero(row_order == twice)[:2].tolist()
        raise InvalidOutput(f"row_order sends table row {twice} {seen[twice]} times (positions {where}) "
                            f"and table row {missing} never: every row exactly once")


def _check_cols(col_order: np.ndarray, row_order: np.ndarray, table: Table) -> None:
    n, m = table.n_rows, table.n_cols
    if col_order.shape != (n, m):
        raise InvalidOutput(f"col_order shape {col_order.shape}, expected ({m},) or ({n}, {m})")
    bad = (col_order < 0) | (col_order >= m)
    if bad.any():
        k, j = (int(x) for x in np.argwhere(bad)[0])
        raise InvalidOutput(f"col_order[{k}][{j}] = {col_order[k, j]} (sent row {k}, table row "
                            f"{row_order[k]}) is not a column in [0, {m})")
    flat = (np.arange(n)[:, None] * m + col_order).ravel()
    seen = np.bincount(flat, minlength=n * m).reshape(n, m)
    if (seen != 1).any():
        k = int(np.flatnonzero((seen != 1).any(axis=1))[0])
        missing = int(np.flatnonzero(seen[k] == 0)[0])
        twice = int(np.flatnonzero(seen[k] > 1)[0])
        raise InvalidOutput(f"col_order[{k}] (sent row {k}, table row {row_order[k]}) repeats column "
                            f"'{table.columns[twice]}' and drops column '{table.columns[missing]}': "
                            f"each row must carry each of its cells exactly once")


def validate(result: Any, table: Table) -> Reordering:
    """The reordering as int64 arrays (col_order always [rows, cols]), or InvalidOutput naming the breach."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise InvalidOutput("reorder must return a pair (row_order, col_order)")
    row_order = _as_int_array(result[0], "row_order")
    col_order = _as_int_array(result[1], "col_order")
    _check_rows(row_order, table.n_rows)
    if col_order.ndim == 1:
        if col_order.shape != (table.n_cols,):
            raise InvalidOutput(f"col_order shape {col_order.shape}, expected ({table.n_cols},) or "
                                f"({table.n_rows}, {table.n_cols})")
        col_order = np.tile(col_order, (table.n_rows, 1))
    _check_cols(col_order, row_order, table)
    return Reordering(row_order, col_order)


def serialise(table: Table, r: Reordering) -> list[str]:
    """The prompts in the order they are sent: each row's cells, column names attached, in its order."""
    cols = table.columns
    out = []
    for k, row in enumerate(r.row_order.tolist()):
        cells = table.rows[row]
        out.append("".join(cell_text(cols[c], cells[c]) for c in r.col_order[k].tolist()))
    return out
