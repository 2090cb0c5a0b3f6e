"""Check a candidate's broadcast plan end to end; one precise InvalidOutput per broken rule.

The plan is `paths[k][p]`: for destination k (in the order given) and partition p, the regions the partition
travels through, source first, destination last. The paths of one partition together form its overlay (a
Steiner tree when they share prefixes): an edge used by several of them carries that partition once.
Rules: format, region, start, end, cycle, edge.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluators.base import InvalidOutput
from evaluators.cloudcast.graph import Graph, Transfer


@dataclass(frozen=True)
class Plan:
    paths: tuple[tuple[tuple[int, ...], ...], ...]   # [destination][partition] -> regions
    partitions_per_edge: np.ndarray                  # [E] int64: partitions that cross each edge


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _path(raw: Any, where: str, graph: Graph) -> tuple[int, ...]:
    if isinstance(raw, np.ndarray):
        if raw.ndim != 1 or not np.issubdtype(raw.dtype, np.integer):
            raise InvalidOutput(f"{where}: a path must be a 1-D list of region indices (rule 'format')")
        raw = raw.tolist()
    if not isinstance(raw, (list, tuple)) or len(raw) < 2:
        raise InvalidOutput(f"{where}: a path must be a list of at least 2 region indices (rule 'format')")
    if len(raw) > graph.size:
        raise InvalidOutput(f"{where}: {len(raw)} hops but only {graph.size} regions exist (rule 'cycle')")
    for h, r in enumerate(raw):
        if not _is_int(r) or not 0 <= r < graph.size:
            raise InvalidOutput(f"{where}, position {h}: {r!r} is not a region index in [0, {graph.size}) "
                                f"(rule 'region')")
    return tuple(int(r) for r in raw)


def _check_path(path: tuple[int, ...], dst: int, where: str, graph: Graph, t: Transfer) -> list[int]:
    """The edge ids of a well-formed path from the source to `dst`."""
    names = graph.names
    if path[0] != t.source:
        raise InvalidOutput(f"{where}: starts at {names[path[0]]}, not the source {names[t.source]} (rule 'start')")
    if path[-1] != dst:
        raise InvalidOutput(f"{where}: ends at {names[path[-1]]}, not at {names[dst]} (rule 'end')")
    if len(set(path)) != len(path):
        again = next(r for i, r in enumerate(path) if r in path[:i])
        raise InvalidOutput(f"{where}: visits {names[again]} twice (rule 'cycle')")
    edges = []
    for h, (u, v) in enumerate(zip(path, path[1:])):
        e = graph.edge_index.get((u, v))
        if e is None:
            raise InvalidOutput(f"{where}, hop {h}: no edge {names[u]} -> {names[v]} in the graph (rule 'edge')")
        edges.append(e)
    return edges


def validate(result: Any, graph: Graph, t: Transfer) -> Plan:
    K, P = len(t.destinations), t.partitions
    if not isinstance(result, (list, tuple)) or len(result) != K:
        got = f"a list of {len(result)}" if isinstance(result, (list, tuple)) else type(result).__name__
        raise InvalidOutput(f"search_algorithm must return a list with one entry per destination ({K}), got {got} "
                            f"(rule 'format')")
    counts = np.zeros(len(graph.edge_src), dtype=np.int64)
    used: list[set[int]] = [set() for _ in range(P)]
    plan: list[tuple[tuple[int, ...], ...]] = []
    for k, (dst, per_dst) in enumerate(zip(t.destinations, result)):
        where_k = f"destination {k} ({graph.names[dst]})"
        if not isinstance(per_dst, (list, tuple)) or len(per_dst) != P:
            raise InvalidOutput(f"{where_k}: needs one path per partition ({P}) (rule 'format')")
        row = []
        for p, raw in enumerate(per_dst):
            where = f"{where_k}, partition {p}"
            path = _path(raw, where, graph)
            used[p].update(_check_path(path, dst, where, graph, t))
            row.append(path)
        plan.append(tuple(row))
    for edges in used:
        counts[list(edges)] += 1
    return Plan(tuple(plan), counts)
