"""Feature values of a program: the coordinates of its cell in the archive's MAP-Elites grid.

A dimension is "complexity" (size of the evolvable code), "diversity" (shape of the per-workload score
profile) or the name of any metric the evaluator reports. Every feature is a pure function of the
program's source and its own evaluation, never of the rest of the population, so the archive can be
rebuilt from the store and give the same cells.
"""
from __future__ import annotations

import ast
import math
import re

from evolve.search import edits

COMPLEXITY = "complexity"
DIVERSITY = "diversity"
BUILTIN_DIMS = (COMPLEXITY, DIVERSITY)

_TOKEN = re.compile(r"\w+|[^\w\s]")


def evolve_regions(source: str) -> list[tuple[int, int]]:
    """1-based inclusive line ranges of the EVOLVE-BLOCK regions; [] when the file marks none (or marks
    them badly: features must never fail, so such a file is measured whole)."""
    try:
        spans = edits.evolve_regions(source)
    except edits.EditError:
        return []
    if spans == [(0, len(source.splitlines()))]:  # no markers: the whole file
        return []
    return [(a + 1, b) for a, b in spans if b > a]


def _in_regions(line: int, regions: list[tuple[int, int]]) -> bool:
    return any(first <= line <= last for first, last in regions)


def _token_count(source: str, regions: list[tuple[int, int]]) -> int:
    lines = source.splitlines()
    if regions:
        lines = [line for number, line in enumerate(lines, start=1) if _in_regions(number, regions)]
    return sum(len(_TOKEN.findall(line.split("#", 1)[0])) for line in lines)


def complexity(source: str) -> float:
    """Number of AST nodes of the program, or only of its EVOLVE-BLOCK regions when it marks any.

    Only located nodes (statements, expressions, arguments...) count: Load/Store contexts and operator
    singletons carry no size of their own. Regions are measured inside the parse of the whole file (a
    region is usually an indented fragment that does not parse alone): a node counts if it starts on a
    region line. Source that does not parse falls back to a token count, so a feature never crashes.
    """
    regions = evolve_regions(source)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return float(_token_count(source, regions))
    count = 0
    for node in ast.walk(tree):
        line = getattr(node, "lineno", None)
        if line is not None and (not regions or _in_regions(line, regions)):
            count += 1
    return float(count)


def diversity(workload_scores: dict[str, float]) -> float:
    """Where a program's strengths lie along its workloads, in [0, 1]; 0.5 for a flat profile.

    Why this measure: two programs with the same mean can be good at different workloads (one wins on
    bursty traffic, another on long prompts), and MAP-Elites should keep both. A dispersion statistic
    (std, entropy) would put every specialist in one bin whatever it specialises in; this one is the
    signed contrast between the program's scores on the later and the earlier workloads (workloads
    sorted by name, so the axis is fixed for a run), with linear weights from -1 to +1. It is divided by
    the profile's mean magnitude, so it does not change when all scores are scaled, and it only needs the
    program's own scores: deterministic, O(workloads), independent of the population. With two workloads
    it is (s1 - s0) / (|s0| + |s1|) mapped to [0, 1]. It assumes the per-workload scores are on a
    comparable scale (the evaluator's per-workload combined score).
    """
    names = sorted(workload_scores)
    values = [float(workload_scores[name]) for name in names]
    n = len(values)
    if n < 2 or not all(math.isfinite(v) for v in values):
        return 0.5
    scale = sum(abs(v) for v in values) / n
    if scale == 0.0:
        return 0.5
    mean = sum(values) / n
    half = (n - 1) / 2
    contrast = sum((i - half) / half * (v - mean) for i, v in enumerate(values)) / (n * scale)
    return (1.0 + max(-1.0, min(1.0, contrast))) / 2.0


def compute_features(
    dims: tuple[str, ...],
    source: str,
    workload_scores: dict[str, float],
    metrics: dict[str, float],
) -> dict[str, float]:
    """The program's value on each of `dims`, in the order given."""
    features: dict[str, float] = {}
    for dim in dims:
        if dim == COMPLEXITY:
            features[dim] = complexity(source)
        elif dim == DIVERSITY:
            features[dim] = diversity(workload_scores)
        elif dim in metrics:
            features[dim] = float(metrics[dim])
        else:
            available = ", ".join(sorted(metrics)) or "none"
            raise KeyError(
                f"feature dimension {dim!r} is neither {COMPLEXITY!r}, {DIVERSITY!r} nor a metric the "
                f"evaluator reported (metrics: {available})"
            )
    return features
