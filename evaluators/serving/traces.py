"""Loaders for public LLM-serving trace formats, so users can bring real traces.

- Azure LLM inference CSV (2023/2024): TIMESTAMP, ContextTokens, GeneratedTokens. TIMESTAMP is a datetime
  such as "2023-11-16 18:15:46.6805900" (any number of fraction digits, optional "T", "Z" or "+hh:mm"), or a
  plain number of seconds.
- Mooncake JSONL: one object per line with timestamp (ms), input_length, output_length and, optionally,
  hash_ids (the ids of the prompt's 512-token blocks). Blank lines are skipped.
- BurstGPT CSV: Timestamp (s), Model, Request tokens, Response tokens, Total tokens, Log Type. Rows with
  0 response tokens are failed requests (BurstGPT logs failures that way): they are dropped and counted.
  Each (Model, Log Type) pair becomes a client, numbered in order of first appearance. Total tokens is read
  but not checked.

Arrivals become seconds from the first request. A prompt or output of 0 tokens (other than BurstGPT's failed
rows) is read as 1 token, the least a served request has, and counted. Anything malformed raises ConfigError
naming the file, the line (1-based, the header is line 1) and the field. Extra columns/keys are ignored.
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from evaluators.base import ConfigError
from evaluators.serving.requests import Requests

FORMATS = ("azure", "mooncake", "burstgpt")
AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
MOONCAKE_KEYS = ("timestamp", "input_length", "output_length")
BURSTGPT_COLUMNS = ("Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type")


@dataclass(frozen=True)
class Trace:
    """A loaded trace, and what the loader changed on the way."""

    requests: Requests
    path: Path
    dropped: int = 0     # rows left out (BurstGPT failed requests)
    raised: int = 0      # zero-token prompts or outputs read as 1 token


@dataclass
class _Rows:
    """Columns gathered while reading; validated row by row."""

    path: Path
    arrival: list[float]
    prompt: list[int]
    output: list[int]
    client: list[int]
    hashes: list[np.ndarray]
    raised: int = 0
    dropped: int = 0
    last_line: int = 0

    def add(self, line: int, field: str, t: float, prompt: int, output: int, client: int = 0) -> None:
        if self.arrival and t < self.arrival[-1]:
            raise _error(self.path, line, field, f"timestamps must not decrease (line {self.last_line} has a "
                                                 f"later one); sort the trace by arrival")
        self.raised += (prompt == 0) + (output == 0)
        self.arrival.append(t)
        self.prompt.append(max(prompt, 1))
        self.output.append(max(output, 1))
        self.client.append(client)
        self.last_line = line

    def trace(self, name: str) -> Trace:
        if not self.arrival:
            raise _error(self.path, max(self.last_line, 1), "", "no requests in the trace")
        t = np.asarray(self.arrival)
        hashes = tuple(self.hashes) if any(len(h) for h in self.hashes) else ()
        req = Requests.of(t - t[0], self.prompt, self.output, client=self.client, hash_ids=hashes, name=name)
        return Trace(req, self.path, self.dropped, self.raised)


def load_trace(fmt: str, path: str | Path, limit: int | None = None) -> Trace:
    """Load a trace of format `fmt` (one of FORMATS); `limit` stops after that many requests."""
    loaders: dict[str, Callable[[Path, int | None], Trace]] = {
        "azure": load_azure, "mooncake": load_mooncake, "burstgpt": load_burstgpt}
    if fmt not in loaders:
        raise ConfigError(f"unknown trace format '{fmt}' (known: {', '.join(FORMATS)})")
    return loaders[fmt](Path(path), limit)


def load_azure(path: Path, limit: int | None = None) -> Trace:
    rows = _new_rows(path)
    for line, rec in _csv_records(path, AZURE_COLUMNS, limit, rows):
        t = _azure_time(path, line, rec["TIMESTAMP"])
        rows.add(line, "TIMESTAMP", t, _tokens(path, line, "ContextTokens", rec["ContextTokens"]),
                 _tokens(path, line, "GeneratedTokens", rec["GeneratedTokens"]))
    return rows.trace(f"azure trace {path.name}")


def load_burstgpt(path: Path, limit: int | None = None) -> Trace:
    rows = _new_rows(path)
    clients: dict[tuple[str, str], int] = {}
    for line, rec in _csv_records(path, BURSTGPT_COLUMNS, limit, rows):
        t = _number(path, line, "Timestamp", rec["Timestamp"])
        prompt = _tokens(path, line, "Request tokens", rec["Request tokens"])
        output = _tokens(path, line, "Response tokens", rec["Response tokens"])
        _tokens(path, line, "Total tokens", rec["Total tokens"])
        if output == 0:   # a failed request
            rows.dropped += 1
            continue
        client = clients.setdefault((rec["Model"], rec["Log Type"]), len(clients))
        rows.add(line, "Timestamp", t, prompt, output, client)
    return rows.trace(f"burstgpt trace {path.name}")


def load_mooncake(path: Path, limit: int | None = None) -> Trace:
    rows = _new_rows(path)
    with _open(path) as f:
        for line, text in enumerate(f, start=1):
            if limit is not None and len(rows.arrival) >= limit:
                break
            if not text.strip():
                continue
            rec = _json_object(path, line, text)
            t = _number(path, line, "timestamp", rec["timestamp"]) / 1000.0
            rows.add(line, "timestamp", t, _tokens(path, line, "input_length", rec["input_length"]),
                     _tokens(path, line, "output_length", rec["output_length"]))
            rows.hashes.append(_hash_ids(path, line, rec.get("hash_ids", [])))
    return rows.trace(f"mooncake trace {path.name}")


def _new_rows(path: Path) -> _Rows:
    return _Rows(path, [], [], [], [], [])


def _error(path: Path, line: int, field: str, what: str) -> ConfigError:
    where = f"{path}: line {line}" + (f", field '{field}'" if field else "")
    return ConfigError(f"{where}: {what}")


def _open(path: Path):
    if not path.is_file():
        raise ConfigError(f"{path}: trace file not found")
    return path.open(newline="", encoding="utf-8-sig")   # -sig: tolerate a byte-order mark


def _csv_records(path: Path, columns: tuple[str, ...], limit: int | None, rows: _Rows) -> Iterator[tuple[int, dict]]:
    with _open(path) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise _error(path, 1, "", "empty file (expected a header with " + ", ".join(columns) + ")")
        names = [h.strip() for h in header]
        missing = [c for c in columns if c not in names]
        if missing:
            raise _error(path, 1, missing[0], f"missing column (the header has: {', '.join(names)})")
        index = {c: names.index(c) for c in columns}
        for cells in reader:
            line = reader.line_num
            if limit is not None and len(rows.arrival) >= limit:
                return
            if not cells or all(not c.strip() for c in cells):
                continue
            short = [c for c, i in index.items() if i >= len(cells)]
            if short:
                raise _error(path, line, short[0], f"missing value ({len(cells)} cells, header has {len(names)})")
            yield line, {c: cells[i].strip() for c, i in index.items()}


def _json_object(path: Path, line: int, text: str) -> dict:
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as e:
        raise _error(path, line, "", f"not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(rec, dict):
        raise _error(path, line, "", f"expected a JSON object, got {type(rec).__name__}")
    for key in MOONCAKE_KEYS:
        if key not in rec:
            raise _error(path, line, key, f"missing (the object has: {', '.join(rec) or 'nothing'})")
    return rec


def _number(path: Path, line: int, field: str, value) -> float:
    if isinstance(value, bool):
        raise _error(path, line, field, f"expected a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise _error(path, line, field, f"expected a number, got {value!r}") from None
    if not math.isfinite(x):
        raise _error(path, line, field, f"expected a finite number, got {value!r}")
    return x


def _tokens(path: Path, line: int, field: str, value) -> int:
    x = _number(path, line, field, value)
    if x < 0:
        raise _error(path, line, field, f"a token count cannot be negative, got {value!r}")
    if x != int(x):
        raise _error(path, line, field, f"a token count must be a whole number, got {value!r}")
    return int(x)


def _hash_ids(path: Path, line: int, value) -> np.ndarray:
    ok = isinstance(value, list) and all(isinstance(h, int) and not isinstance(h, bool) and h >= 0 for h in value)
    if not ok:
        raise _error(path, line, "hash_ids", "expected a list of non-negative integers")
    return np.asarray(value, dtype=np.int64)


_AZURE_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}):(\d{2}):(\d{2}(?:\.\d+)?)\s*(Z|[+-]\d{2}:?\d{2})?")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _azure_time(path: Path, line: int, text: str) -> float:
    """Seconds since the epoch of an Azure TIMESTAMP; datetimes without a zone are taken as UTC."""
    m = _AZURE_TIME.fullmatch(text)
    if m is None:
        try:
            return _number(path, line, "TIMESTAMP", text)
        except ConfigError:
            raise _error(path, line, "TIMESTAMP", f"expected a datetime like '2023-11-16 18:15:46.6805900' "
                                                  f"or seconds, got {text!r}") from None
    date, hours, minutes, seconds, zone = m.groups()
    if int(hours) > 23 or int(minutes) > 59 or float(seconds) >= 61:
        raise _error(path, line, "TIMESTAMP", f"time of day out of range in {text!r}")
    try:
        day = datetime.fromisoformat(date).replace(tzinfo=_zone(zone))
    except ValueError as e:
        raise _error(path, line, "TIMESTAMP", f"bad date {date!r} ({e})") from None
    # the fraction is added as a float: datetime keeps only microseconds, the trace has 100 ns digits
    whole = day + timedelta(hours=int(hours), minutes=int(minutes))
    return (whole - _EPOCH).total_seconds() + float(seconds)


def _zone(text: str | None) -> timezone:
    if not text or text == "Z":
        return timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
