"""Load a CSV file a user brings (`csv:PATH`) as a table; every error names the file and the line."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

from evaluators.base import ConfigError
from evaluators.llm_sql.table import MAX_CELLS, Table


def _line_of_byte(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} line {_line_of_byte(raw, e.start)}: not UTF-8 text ({e.reason})") from None


def _header(path: Path, reader) -> tuple[str, ...]:
    try:
        header = next(reader)
    except StopIteration:
        raise ConfigError(f"{path}: empty file, expected a header line of column names") from None
    names = tuple(h.strip() for h in header)
    for i, h in enumerate(names):
        if not h:
            raise ConfigError(f"{path} line 1: column {i + 1} has no name")
        if h in names[:i]:
            raise ConfigError(f"{path} line 1: column name '{h}' appears twice")
    return names


def load_csv(path: Path, name: str) -> Table:
    if not path.is_file():
        raise ConfigError(f"csv workload '{name}': file not found: {path}")
    text = _decode(path)
    old = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 1 << 30))  # long review text is the point of these tables
    try:
        reader = csv.reader(text.splitlines(keepends=True), strict=True)
        columns = _header(path, reader)
        rows = []
        try:
            for record in reader:
                if not record:
                    continue  # blank line
                if len(record) != len(columns):
                    raise ConfigError(f"{path} line {reader.line_num}: {len(record)} fields, the header has "
                                      f"{len(columns)} ({', '.join(columns[:4])}{', ...' if len(columns) > 4 else ''})")
                rows.append(tuple(record))
                if len(rows) * len(columns) > MAX_CELLS:
                    raise ConfigError(f"{path} line {reader.line_num}: more than {MAX_CELLS} cells")
        except csv.Error as e:
            raise ConfigError(f"{path} line {reader.line_num}: malformed CSV ({e})") from None
    finally:
        csv.field_size_limit(old)
    if len(rows) < 2:
        raise ConfigError(f"{path}: {len(rows)} data rows, need at least 2 to reorder")
    return Table(name, columns, tuple(rows))
