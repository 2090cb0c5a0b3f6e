"""Generate a table of one dataset schema: entity instances (with their fixed attributes and parents), then
rows that each pick instances by Zipf popularity and add their own per-row cells. Rows come in arrival
order (as after a shuffle or a join), columns in the raw file's order."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluators.llm_sql.schemas import Dataset, Entity
from evaluators.llm_sql.table import Table
from evaluators.llm_sql.text import Words


@dataclass
class _Instances:
    """The generated instances of one entity: attribute values and, per parent, the parent instance."""

    values: list[dict[str, str]]
    parent: dict[str, np.ndarray]


def _zipf_pick(rng: np.random.Generator, count: int, size: int, s: float) -> np.ndarray:
    """`size` draws of instances 0..count-1; popularity falls as 1/rank^s with ranks shuffled."""
    p = 1.0 / np.arange(1, count + 1) ** s
    p = p[rng.permutation(count)]
    return np.searchsorted(np.cumsum(p / p.sum()), rng.random(size) * (1 - 1e-12), side="right")


def _count(e: Entity, rows: int) -> int:
    return int(max(1, min(e.max_count, round(rows / e.per))))


def _instances(e: Entity, rows: int, made: dict[str, _Instances], words: Words) -> _Instances:
    n = _count(e, rows)
    values = [{col: gen(words, i) for col, gen in e.attrs} for i in range(n)]
    parent = {p: _zipf_pick(words.rng, len(made[p].values), n, 1.0) for p in e.parents}
    return _Instances(values, parent)


def _row_cells(d: Dataset, made: dict[str, _Instances], picks: dict[str, int]) -> dict[str, str]:
    """The entity cells of one row: each picked instance's attributes and, recursively, its parents'."""
    cells: dict[str, str] = {}
    todo = list(picks.items())
    while todo:
        name, i = todo.pop()
        inst = made[name]
        cells.update(inst.values[i])
        todo.extend((p, int(idx[i])) for p, idx in inst.parent.items())
    return cells


def generate(d: Dataset, rows: int, seed: int, name: str) -> Table:
    rng = np.random.default_rng(seed)
    words = Words(rng)
    made: dict[str, _Instances] = {}
    by_name = {e.name: e for e in d.entities}
    for e in d.entities:
        made[e.name] = _instances(e, rows, made, words)
    picks = {n: _zipf_pick(rng, len(made[n].values), rows, by_name[n].zipf) for n in d.row_entities}
    out = []
    for r in range(rows):
        cells = _row_cells(d, made, {n: int(p[r]) for n, p in picks.items()})
        cells.update({col: gen(words, r) for col, gen in d.row_attrs})
        out.append(tuple(cells[c] for c in d.columns))
    return Table(name, d.columns, tuple(out))
