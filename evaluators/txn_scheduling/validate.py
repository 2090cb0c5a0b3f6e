"""Check that a candidate's answer is a full permutation of the transactions; name what is wrong."""
from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from evaluators.base import InvalidOutput

SHOWN = 5  # how many missing/duplicated transactions a message lists


def validate(result: Any, n: int) -> list[int]:
    """Return the order as plain ints, or raise InvalidOutput naming the first broken rule."""
    if isinstance(result, np.ndarray):
        if result.ndim != 1 or result.dtype == np.bool_ or not np.issubdtype(result.dtype, np.integer):
            raise InvalidOutput(f"the order must be a 1-D integer array, got shape {result.shape} {result.dtype}")
        result = result.tolist()
    if not isinstance(result, (list, tuple)):
        raise InvalidOutput(f"schedule must return a list of transaction indices (a permutation of 0..{n - 1}), "
                            f"got {type(result).__name__}")
    for pos, t in enumerate(result):
        if isinstance(t, bool) or not isinstance(t, int):
            raise InvalidOutput(f"order[{pos}] = {_show(t)} is not an integer transaction index")
        if not 0 <= t < n:
            raise InvalidOutput(f"order[{pos}] = {t} is not a transaction index in [0, {n})")
    order = list(result)
    counts = Counter(order)
    duplicated = sorted(t for t, c in counts.items() if c > 1)
    missing = [t for t in range(n) if t not in counts]
    if duplicated or missing or len(order) != n:
        raise InvalidOutput(f"the order is not a permutation of the {n} transactions (length {len(order)}): "
                            + "; ".join(_problems(order, duplicated, missing)))
    return order


def _problems(order: list[int], duplicated: list[int], missing: list[int]) -> list[str]:
    out = []
    for t in duplicated[:SHOWN]:
        at = [p for p, x in enumerate(order) if x == t]
        out.append(f"transaction {t} appears {len(at)} times (positions {', '.join(map(str, at[:SHOWN]))})")
    if len(duplicated) > SHOWN:
        out.append(f"{len(duplicated) - SHOWN} more duplicated")
    if missing:
        more = f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
        out.append(f"missing transaction{'s' if len(missing) > 1 else ''} "
                   f"{', '.join(map(str, missing[:SHOWN]))}{more}")
    return out


def _show(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."
