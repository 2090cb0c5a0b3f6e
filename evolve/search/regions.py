"""EVOLVE-BLOCK regions parsed as Python on their own: what the mutator edits and crossover borrows from."""
from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from typing import Callable

import numpy as np

from evolve.search.edits import evolve_regions

# A place the mutator or crossover can change: (region index, apply(rng) -> description of the change).
Site = tuple[int, Callable[[np.random.Generator], str]]


@dataclass(frozen=True)
class Region:
    start: int   # 0-based file line of the region's first line
    end: int     # end-exclusive
    indent: str  # common indentation removed before parsing, restored after unparsing
    text: str    # dedented region text


def parse_regions(source: str) -> tuple[list[str], list[tuple[Region, ast.Module]]]:
    """The file's lines and its regions that parse on their own (others are skipped).
    Raises edits.EditError when the markers are malformed."""
    lines = source.splitlines(keepends=True)
    regions = []
    for start, end in evolve_regions(source):
        raw = "".join(lines[start:end])
        text = textwrap.dedent(raw)
        first = next((line for line in raw.splitlines() if line.strip()), "")
        indent = first[: len(first) - len(first.lstrip())] if text.strip() else ""
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        regions.append((Region(start, end, indent, text), tree))
    return lines, regions
