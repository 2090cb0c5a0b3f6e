"""Reading a TOML spec (problem.toml) with errors a user can act on: the file, the dotted key, the line of an
unknown key and the closest valid one. tomllib keeps no positions, so lines are found by searching the text."""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from evolve.errors import AdrsError


class TomlTables:
    """Typed reads of one TOML document's tables; every error names the file, the dotted key and, for an
    unknown key, its line and the closest allowed key."""


    def __init__(self, path: Path, text: str = "") -> None:
        self.path = path
        self.text = text

    def fail(self, key: str, msg: str) -> AdrsError:
        return AdrsError(f"{self.path}: {key}: {msg}")

    def table(self, raw: dict, key: str, required: bool = True) -> dict:
        if key not in raw:
            if required:
                raise self.fail(key, "missing required table")
            return {}
        v = raw[key]
        if not isinstance(v, dict):
            raise self.fail(key, "must be a table")
        return v

    def only(self, raw: dict, allowed: set[str], where: str) -> None:
        for k in raw:
            if k not in allowed:
                name = f"{where}.{k}" if where else k
                line = self.line_of(k, where)
                close = difflib.get_close_matches(k, sorted(allowed), n=1, cutoff=0.6)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise self.fail(name, f"unknown key{f' (line {line})' if line else ''}{hint} "
                                      f"(allowed: {', '.join(sorted(allowed))})")

    def line_of(self, key: str, where: str) -> int | None:
        """The line that sets `key`, searched from the header of table `where` (good enough for messages:
        TOML parsers keep no positions)."""
        lines = self.text.splitlines()
        start, parts = 0, where.split("[")[0].split(".") if where else []
        for n in range(len(parts), 0, -1):  # [entry.functions] or else [entry]
            header = re.compile(rf"^\s*\[\s*{re.escape('.'.join(parts[:n]))}\s*\]")
            at = next((i for i, ln in enumerate(lines) if header.match(ln)), None)
            if at is not None:
                start = at
                break
        pattern = re.compile(rf"(^|[\s{{,]){re.escape(key)}\s*=")
        for i in range(start, len(lines)):
            if pattern.search(lines[i].split("#")[0]):
                return i + 1
        return None

    def get(self, raw: dict, key: str, typ: type | tuple, where: str, default: Any = ...) -> Any:
        name = f"{where}.{key}" if where else key
        if key not in raw:
            if default is ...:
                raise self.fail(name, "missing required key")
            return default
        v = raw[key]
        if typ is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, typ) or isinstance(v, bool) and typ is not bool:
            tname = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
            raise self.fail(name, f"must be {tname}, got {type(v).__name__}")
        return v

    def str_list(self, raw: dict, key: str, where: str, required: bool = True) -> tuple[str, ...]:
        v = self.get(raw, key, list, where, ... if required else [])
        if not all(isinstance(x, str) for x in v):
            raise self.fail(f"{where}.{key}", "must be a list of strings")
        return tuple(v)
