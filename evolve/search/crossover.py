"""Crossover: splicing code from an inspiration program into a mutator's child.

Where an inspiration's same-named top-level function, or its version of an assignment (matched by
enclosing function, target and occurrence), differs from the parent's, it can replace the parent's.
This recombines what separate lineages found, which blind local edits rarely rediscover. It is one
of evolve.search.mutator's operators; inspirations are archive elites that recur across iterations, so each
program's index of exchangeable parts is parsed once and cached.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Iterator

import numpy as np

from evolve.search.edits import EditError
from evolve.search.regions import Region as _Region, Site, parse_regions

Key = tuple[str, str, int]  # (top-level function or '', assignment target, occurrence)

_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass
class _Part:
    """A function or assignment of a pristine (never mutated) tree, with its source text."""
    node: ast.AST
    text: str
    _dump: str | None = None

    def same_as(self, other: _Part) -> bool:
        # Equal text settles it cheaply; otherwise compare structure (formatting, comments differ).
        if self.text == other.text:
            return True
        if self._dump is None:
            self._dump = ast.dump(self.node)
        if other._dump is None:
            other._dump = ast.dump(other.node)
        return self._dump == other._dump


@dataclass
class DonorIndex:
    """What crossover can exchange in one program, by function name and by assignment key."""
    functions: dict[str, _Part] = field(default_factory=dict)
    assigns: dict[Key, _Part] = field(default_factory=dict)


# ---------------------------------------------------------------- indexing a program

def _target(node: ast.stmt) -> str | None:
    targets = (node.targets if isinstance(node, ast.Assign)
               else [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else None)
    if targets is None:
        return None
    return "|".join(t.id if isinstance(t, ast.Name) else ast.unparse(t) for t in targets)


def _statements(body: list[ast.stmt]) -> Iterator[tuple[ast.stmt, list[ast.stmt], int]]:
    """(statement, its list, index) under `body` in source order; expressions are never visited."""
    for i, st in enumerate(body):
        yield st, body, i
        nested = [getattr(st, "body", None)] + [h.body for h in getattr(st, "handlers", ())]
        nested += [c.body for c in getattr(st, "cases", ())]
        nested += [getattr(st, "orelse", None), getattr(st, "finalbody", None)]
        for block in nested:
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                yield from _statements(block)


def _assign_slots(tree: ast.Module) -> list[tuple[Key, list[ast.stmt], int]]:
    """(key, list, index) of every assignment, in source order.

    key = (top-level function holding it or '', target, how many earlier assignments in that function
    set the same target): the k-th `x = ...` of f in one program corresponds to the k-th in another.
    """
    slots = []
    owners = [("", tree)] + [(top.name, top) for top in tree.body if isinstance(top, _FUNCS)]
    for owner, root in owners:
        # Module level: only the region's own top-level statements; functions: everything inside.
        found = ([(st, tree.body, i) for i, st in enumerate(tree.body)] if root is tree
                 else _statements(root.body))  # type: ignore[attr-defined]
        seen: dict[str, int] = {}
        for st, body, i in found:
            target = _target(st)
            if target is not None:
                slots.append(((owner, target, seen.get(target, 0)), body, i))
                seen[target] = seen.get(target, 0) + 1
    return slots


def _segment(data: bytes, starts: list[int], node: ast.AST) -> str:
    # AST column offsets count UTF-8 bytes, hence slicing the encoded text.
    begin = starts[node.lineno - 1] + node.col_offset
    end = starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[attr-defined]
    return data[begin:end].decode("utf-8", errors="replace")


def _index(parsed: list[tuple[str, ast.Module]]) -> DonorIndex:
    index = DonorIndex()
    for text, tree in parsed:
        data = text.encode("utf-8")
        starts = [0]
        for line in data.splitlines(keepends=True):
            starts.append(starts[-1] + len(line))
        for top in tree.body:
            if isinstance(top, _FUNCS):
                index.functions.setdefault(top.name, _Part(top, _segment(data, starts, top)))
        for key, body, i in _assign_slots(tree):
            index.assigns.setdefault(key, _Part(body[i], _segment(data, starts, body[i])))
    return index


def _parsed_regions(source: str) -> list[tuple[str, ast.Module]] | None:
    """Each parseable region's dedented text and tree; None if the region markers are malformed."""
    try:
        return [(r.text, tree) for r, tree in parse_regions(source)[1]]
    except EditError:
        return None


@lru_cache(maxsize=32)
def donor_index(source: str) -> DonorIndex | None:
    # Inspirations recur across iterations (they are archive elites), so their index is cached;
    # the cached trees are only ever copied from, never edited.
    parsed = _parsed_regions(source)
    if parsed is None:
        return None
    index = _index(parsed)
    return index if index.functions or index.assigns else None


# ---------------------------------------------------------------- splicing

def _short(node: ast.AST) -> str:
    text = ast.unparse(node).split("\n")[0]
    return text if len(text) <= 60 else text[:57] + "..."


def _fresh(node: ast.AST, where: ast.AST) -> ast.AST:
    # A private copy, so later operators in this child never edit the donor's tree.
    # Shifted to the replaced statement's line, so later descriptions in this child name real lines.
    copy = ast.parse(ast.unparse(node)).body[0]
    return ast.increment_lineno(copy, getattr(where, "lineno", 1) - 1)


def _replace(body: list[ast.stmt], i: int, node: ast.stmt, number: int, offset: int,
             rng: np.random.Generator) -> str:
    old, body[i] = body[i], _fresh(node, body[i])  # type: ignore[assignment]
    line = offset + old.lineno
    if isinstance(old, _FUNCS):
        return f"crossover: function {old.name} (line {line}) from inspiration {number}"
    return f"crossover: line {line} <- `{_short(node)}` from inspiration {number}"


def collect_crossover(trees: list[ast.Module], regions: list[_Region], mine: DonorIndex,
                       donors: list[tuple[int, DonorIndex]]) -> list[Site]:
    """Sites where an inspiration's function or assignment differs from the parent's original one."""
    sites: list[Site] = []
    for r, (tree, region) in enumerate(zip(trees, regions)):
        off = region.start
        for j, top in enumerate(tree.body):
            own = mine.functions.get(getattr(top, "name", ""))
            if own is None or not isinstance(top, _FUNCS):
                continue
            sites.extend((r, partial(_replace, tree.body, j, theirs.node, n, off)) for n, d in donors
                         if (theirs := d.functions.get(top.name)) and not own.same_as(theirs))
        for key, body, i in _assign_slots(tree):
            own = mine.assigns.get(key)
            if own is None:
                continue
            sites.extend((r, partial(_replace, body, i, theirs.node, n, off)) for n, d in donors
                         if (theirs := d.assigns.get(key)) and not own.same_as(theirs))
    return sites
