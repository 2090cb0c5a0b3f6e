"""llm_sql workload ids: a generated table or a CSV file.

    <dataset>:seed<N>:rows<R>   a generated table (datasets: movies, products, beer, bird, pdmx)
    csv:<path>                  a CSV file with a header line; a relative path is taken from the problem folder
"""
from __future__ import annotations

import re
from pathlib import Path

from evaluators.base import ConfigError
from evaluators.llm_sql.csv_file import load_csv
from evaluators.llm_sql.generator import generate
from evaluators.llm_sql.schemas import DATASETS
from evaluators.llm_sql.table import MAX_CELLS, Table

ROWS_RANGE = (2, 100_000)


def is_file(wid: str) -> bool:
    return wid.startswith("csv:")


def check(wid: str) -> None:
    """Raise ConfigError if a generated table's id is malformed (the table is not made)."""
    _parse(wid)


def _parse(wid: str) -> tuple[str, int, int]:
    """(dataset, seed, rows) of a generated table's id."""
    parts = wid.split(":")
    if parts[0] not in DATASETS:
        raise ConfigError(f"workload id '{wid}': unknown dataset '{parts[0]}' (known: {', '.join(sorted(DATASETS))}, "
                          f"or csv:<path>)")
    fields: dict[str, int] = {}
    for tok in parts[1:]:
        m = re.fullmatch(r"(seed|rows)([0-9]+)", tok)
        if not m:
            raise ConfigError(f"workload id '{wid}': bad part '{tok}' (expected seed<N> and rows<R>)")
        if m.group(1) in fields:
            raise ConfigError(f"workload id '{wid}': '{m.group(1)}' given twice")
        fields[m.group(1)] = int(m.group(2))
    for req in ("seed", "rows"):
        if req not in fields:
            raise ConfigError(f"workload id '{wid}': missing {req}<value>")
    lo, hi = ROWS_RANGE
    d = DATASETS[parts[0]]
    if not lo <= fields["rows"] <= hi or fields["rows"] * len(d.columns) > MAX_CELLS:
        raise ConfigError(f"workload id '{wid}': rows must be in [{lo}, {hi}] (and at most {MAX_CELLS} cells)")
    return parts[0], fields["seed"], fields["rows"]


def build(wid: str, problem_dir: Path) -> Table:
    if is_file(wid):
        rel = wid[len("csv:"):]
        if not rel:
            raise ConfigError(f"workload id '{wid}': no file path after 'csv:'")
        path = Path(rel) if Path(rel).is_absolute() else (problem_dir / rel)
        return load_csv(path.resolve(), wid)
    dataset, seed, rows = _parse(wid)
    return generate(DATASETS[dataset], rows, seed, wid)
