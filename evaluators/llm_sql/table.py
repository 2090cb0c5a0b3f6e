"""A relational table as the llm_sql problem sees it: named columns of text cells, plus what the trusted
side derives from it once (integer codes per column, serialised cell lengths, functional dependencies)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

MAX_CELLS = 2_000_000  # a larger table would not fit the candidate's memory limit alongside its own copy


def cell_text(column: str, value: str) -> str:
    """One cell as a prompt carries it: the column name is attached, so a row's cells may come in any
    order and still say what they are."""
    return f"{column}: {value}\n"


@dataclass(frozen=True)
class Table:
    """`rows[r][c]` is the text of row r's cell in column `columns[c]`; every row has every column."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    @property
    def n_cols(self) -> int:
        return len(self.columns)

    @cached_property
    def codes(self) -> np.ndarray:
        """[rows, cols] int64: equal codes in a column iff equal values (codes follow sorted value order)."""
        out = np.empty((self.n_rows, self.n_cols), dtype=np.int64)
        for c in range(self.n_cols):
            column = [r[c] for r in self.rows]
            index = {v: i for i, v in enumerate(sorted(set(column)))}  # a dict: long text needs no fixed width
            out[:, c] = [index[v] for v in column]
        return out

    @cached_property
    def cell_chars(self) -> np.ndarray:
        """[rows, cols] int64: characters of each serialised cell (column name attached)."""
        extra = np.array([len(cell_text(c, "")) for c in self.columns], dtype=np.int64)
        vals = np.array([[len(v) for v in r] for r in self.rows], dtype=np.int64).reshape(self.n_rows, self.n_cols)
        return vals + extra[None, :]

    def distinct(self) -> np.ndarray:
        """Distinct values per column."""
        return np.array([len(np.unique(self.codes[:, c])) for c in range(self.n_cols)], dtype=np.int64)

    def functional_dependencies(self) -> list[tuple[str, str]]:
        """Every exact single-column dependency a -> b of this table (each value of a goes with one value
        of b), a != b, leaving out determinants that are keys (a value per row: they determine everything
        and group nothing) and constant dependents. Sorted, so the list does not depend on hashing."""
        codes, n = self.codes, self.n_rows
        distinct = self.distinct()
        out: list[tuple[str, str]] = []
        for a in range(self.n_cols):
            if distinct[a] >= n:
                continue
            for b in range(self.n_cols):
                if a == b or distinct[b] <= 1:
                    continue
                pairs = codes[:, a] * (int(distinct[b]) + 1) + codes[:, b]
                if len(np.unique(pairs)) == distinct[a]:
                    out.append((self.columns[a], self.columns[b]))
        return sorted(out)
