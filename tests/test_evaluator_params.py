"""evaluators.params.parse_params: the one reader of every evaluator's [evaluator.params]."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from evaluators.base import ConfigError
from evaluators.params import parse_params


@dataclass(frozen=True)
class Toy:
    function: str = "solve"
    rows: int = 4
    weight: float = 0.5
    strict: bool = False
    mode: str = field(default="even", metadata={"choices": ("even", "greedy")})
    where: str = ""   # set by the evaluator itself


def test_defaults_values_and_given_fields():
    assert parse_params(Toy, {}, "toy", where="x") == Toy(where="x")
    p = parse_params(Toy, {"rows": 9, "weight": 1, "strict": True, "mode": "greedy"}, "toy", where="x")
    assert (p.rows, p.weight, p.strict, p.mode) == (9, 1.0, True, "greedy")
    assert type(p.weight) is float   # an int where a float is wanted is taken as that float


@pytest.mark.parametrize("raw,message", [
    ({"row": 3}, r"unknown toy param 'row' \(did you mean 'rows'\? known: function, mode, rows, strict, weight\)"),
    ({"zzz": 1}, r"unknown toy param 'zzz' \(known: function, mode, rows, strict, weight\)$"),
    ({"where": "y"}, "unknown toy param 'where'"),          # a field the evaluator sets is not the file's
    ({"rows": 2.5}, "toy param 'rows' must be int, got 2.5"),
    ({"rows": True}, "toy param 'rows' must be int, got True"),
    ({"weight": False}, "toy param 'weight' must be float, got False"),
    ({"weight": "0.5"}, "toy param 'weight' must be float, got '0.5'"),
    ({"strict": 1}, "toy param 'strict' must be bool, got 1"),
    ({"function": ""}, "toy param 'function' must be a non-empty string"),
    ({"mode": "random"}, "toy param 'mode' must be one of even, greedy, got 'random'"),
])
def test_bad_params_are_refused_naming_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_params(Toy, raw, "toy", where="x")
