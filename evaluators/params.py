"""Evaluator params: a problem's [evaluator.params] table (problem.toml) read into its frozen dataclass.

Each evaluator declares its params as a dataclass whose fields all have defaults; `parse_params` is the one
reader. It refuses a key the dataclass lacks (naming the closest known key: most mistakes are typos), a value
whose type is not the field's annotation (an int is taken, as a float, where a float is wanted; a bool is
never a number), an empty string, and a string outside a field's `choices` (dataclass field metadata).
Range rules stay with each evaluator: they are its own.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from evaluators.base import ConfigError

P = TypeVar("P")


def parse_params(cls: type[P], raw: Mapping[str, Any], problem: str, **given: Any) -> P:
    """`cls` built from the file's `raw` table; `given` are fields the evaluator sets itself, never read
    from the file (a key naming one is unknown)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in given}
    for key in sorted(raw):
        if key not in fields:
            raise ConfigError(_unknown(problem, key, sorted(fields)))
    values = {k: _checked(problem, k, v, hints[k], fields[k].metadata.get("choices")) for k, v in raw.items()}
    return cls(**values, **given)


def _unknown(problem: str, key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown {problem} param '{key}' ({hint}known: {', '.join(known)})"


def _checked(problem: str, name: str, value: Any, want: type, choices: tuple[str, ...] | None) -> Any:
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, want) or (isinstance(value, bool) and want is not bool):
        raise ConfigError(f"{problem} param '{name}' must be {want.__name__}, got {value!r}")
    if value == "":
        raise ConfigError(f"{problem} param '{name}' must be a non-empty string")
    if choices is not None and value not in choices:
        raise ConfigError(f"{problem} param '{name}' must be one of {', '.join(choices)}, got {value!r}")
    return value
