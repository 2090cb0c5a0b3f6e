"""The offline mutator: blind AST edits of the EVOLVE-BLOCK regions, and crossover with inspirations.

It is the proposer when no LLM is configured and a baseline an LLM must beat. Each child gets 1-3
operators (constant perturbation, comparison/arithmetic/min-max swaps, statement reorder or drop,
crossover). Only the regions' text is re-generated (with ast.unparse, so comments inside a mutated
region are lost); everything outside stays byte-identical. All randomness comes from the generator
passed in, and every traversal order is fixed by the source, so equal inputs give equal children.
"""
from __future__ import annotations

import ast
import math
import textwrap
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np

from evolve.edits import EditError, check_regions, evolve_regions

Site = tuple[int, Callable[[np.random.Generator], str]]  # (region index, apply -> description)

DEFAULT_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("constant", 4.0), ("compare", 1.0), ("arith", 1.0), ("minmax", 1.0),
    ("reorder", 1.0), ("drop", 0.5), ("crossover", 2.0),
)
_COMPARE_OPS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)
_ARITH_GROUPS = ((ast.Add, ast.Sub), (ast.Mult, ast.Div, ast.FloorDiv))  # swaps stay within a group
_SYMBOLS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
            ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//"}
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom,
         ast.Global, ast.Nonlocal)
_JUMPS = (ast.Return, ast.Raise, ast.Continue, ast.Break)
_STMT_FIELDS = ("body", "orelse", "finalbody")


@dataclass(frozen=True)
class Mutation:
    source: str
    description: str
    operators: tuple[str, ...] = ()  # operator names, in order applied (for statistics)


class MutationError(Exception):
    """No valid child could be produced from this parent."""


@dataclass(frozen=True)
class _Region:
    start: int   # 0-based file line of the region's first line
    end: int     # end-exclusive
    indent: str  # common indentation removed before parsing, restored after unparsing
    text: str    # dedented region text


# ---------------------------------------------------------------- regions

def _regions(source: str) -> tuple[list[str], list[_Region]]:
    """The file's lines and its regions that parse on their own; others are left untouched."""
    try:
        spans = evolve_regions(source)
    except EditError as e:
        raise MutationError(e.message) from None
    lines = source.splitlines(keepends=True)
    regions = []
    for start, end in spans:
        raw = "".join(lines[start:end])
        text = textwrap.dedent(raw)
        first = next((line for line in raw.splitlines() if line.strip()), "")
        indent = first[: len(first) - len(first.lstrip())] if text.strip() else ""
        try:
            ast.parse(text)
        except SyntaxError:
            continue
        regions.append(_Region(start, end, indent, text))
    return lines, regions


def _splice(lines: list[str], regions: list[_Region], new_text: dict[int, str]) -> str:
    out, pos = [], 0
    for r, region in enumerate(regions):
        if r in new_text:
            out.extend(lines[pos:region.start])
            out.append(new_text[r])
            pos = region.end
    out.extend(lines[pos:])
    return "".join(out)


def _stmt_lists(node: ast.AST) -> list[list[ast.stmt]]:
    lists = [getattr(node, name, None) for name in _STMT_FIELDS]
    return [body for body in lists if isinstance(body, list) and body and isinstance(body[0], ast.stmt)]


def _line(node: ast.AST, offset: int) -> int:
    return offset + getattr(node, "lineno", 0)


def _short(node: ast.AST) -> str:
    text = ast.unparse(node).split("\n")[0]
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------- local operators

def _perturb_float(value: float, rng: np.random.Generator) -> float:
    if value == 0.0:
        return float(f"{abs(rng.normal(0.0, 0.1)):.4g}") or 0.01
    new = float(f"{value * math.exp(rng.normal(0.0, 0.25)):.4g}")  # 4 significant digits stay readable
    return new if new != value else float(f"{value * 1.1:.4g}")


def _perturb_int(value: int, rng: np.random.Generator) -> int:
    step = 1 if rng.random() < 0.7 else int(rng.integers(2, 3 + abs(value) // 4))
    new = value + step if rng.random() < 0.5 else value - step
    return new if new >= 0 else value + step  # negative literals would unparse into surprises


def _perturb_constant(node: ast.Constant, offset: int, rng: np.random.Generator) -> str:
    old = node.value
    node.value = _perturb_float(old, rng) if isinstance(old, float) else _perturb_int(old, rng)
    return f"constant {old!r} -> {node.value!r} at line {_line(node, offset)}"


def _swap_compare(node: ast.Compare, k: int, offset: int, rng: np.random.Generator) -> str:
    old = type(node.ops[k])
    choices = [op for op in _COMPARE_OPS if op is not old]
    new = choices[int(rng.integers(len(choices)))]
    node.ops[k] = new()
    return f"swap {_SYMBOLS[old]} -> {_SYMBOLS[new]} at line {_line(node, offset)}"


def _swap_arith(node: ast.BinOp | ast.AugAssign, offset: int, rng: np.random.Generator) -> str:
    old = type(node.op)
    group = next(g for g in _ARITH_GROUPS if old in g)
    choices = [op for op in group if op is not old]
    new = choices[int(rng.integers(len(choices)))]
    node.op = new()
    return f"swap {_SYMBOLS[old]} -> {_SYMBOLS[new]} at line {_line(node, offset)}"


def _swap_minmax(node: ast.Call, offset: int, rng: np.random.Generator) -> str:
    func = node.func
    assert isinstance(func, ast.Name)
    old, func.id = func.id, ("max" if func.id == "min" else "min")
    return f"swap {old} -> {func.id} at line {_line(node, offset)}"


def _reorder(body: list[ast.stmt], i: int, offset: int, rng: np.random.Generator) -> str:
    a, b = body[i], body[i + 1]
    body[i], body[i + 1] = b, a
    return f"reorder lines {_line(a, offset)} and {_line(b, offset)}"


def _drop(body: list[ast.stmt], i: int, offset: int, rng: np.random.Generator) -> str:
    node = body.pop(i)
    return f"drop line {_line(node, offset)}: `{_short(node)}`"


def _is_number(node: ast.AST) -> bool:
    value = getattr(node, "value", None)
    return (isinstance(node, ast.Constant) and isinstance(value, (int, float))
            and not isinstance(value, bool) and math.isfinite(value))


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant)
                                              and isinstance(node.value, (str, bytes)))


def _arith_ok(node: ast.AST) -> bool:
    if not isinstance(node, (ast.BinOp, ast.AugAssign)) or not any(type(node.op) in g for g in _ARITH_GROUPS):
        return False
    operands = (node.left, node.right) if isinstance(node, ast.BinOp) else (node.target, node.value)
    return not any(_is_text(x) for x in operands)  # "a" + "b" -> "a" - "b" can only crash


def _movable(node: ast.stmt) -> bool:
    docstring = isinstance(node, ast.Expr) and _is_text(node.value)
    return not (isinstance(node, _DEFS + _JUMPS) or docstring)


def _collect_local(trees: list[ast.Module], regions: list[_Region]) -> dict[str, list[Site]]:
    sites: dict[str, list[Site]] = {name: [] for name in ("constant", "compare", "arith", "minmax",
                                                          "reorder", "drop")}
    for r, (tree, region) in enumerate(zip(trees, regions)):
        off = region.start
        for node in ast.walk(tree):
            if _is_number(node):
                sites["constant"].append((r, partial(_perturb_constant, node, off)))
            elif isinstance(node, ast.Compare):
                sites["compare"].extend((r, partial(_swap_compare, node, k, off))
                                        for k, op in enumerate(node.ops) if isinstance(op, _COMPARE_OPS))
            elif _arith_ok(node):
                sites["arith"].append((r, partial(_swap_arith, node, off)))
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("min", "max")):
                sites["minmax"].append((r, partial(_swap_minmax, node, off)))
            for body in _stmt_lists(node):
                sites["reorder"].extend((r, partial(_reorder, body, i, off)) for i in range(len(body) - 1)
                                        if _movable(body[i]) and _movable(body[i + 1]))
                if len(body) > 1:
                    sites["drop"].extend((r, partial(_drop, body, i, off))
                                         for i, st in enumerate(body) if _movable(st))
    return sites


# ---------------------------------------------------------------- crossover

def _target(node: ast.stmt) -> str | None:
    if isinstance(node, ast.Assign):
        return "|".join(ast.dump(t) for t in node.targets)
    if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        return ast.dump(node.target)
    return None


def _assign_slots(tree: ast.Module) -> list[tuple[tuple[str, str, int], list[ast.stmt], int]]:
    """(key, list, index) of every assignment, in source order.

    key = (top-level function holding it or '', target, how many earlier assignments in that function
    set the same target): the k-th `x = ...` of f in one program corresponds to the k-th in another.
    """
    slots = []
    for owner, root in _owners(tree):
        seen: dict[str, int] = {}
        if root is tree:  # module level: only the region's own top-level statements
            found = [(st, tree.body, i) for i, st in enumerate(tree.body)]
        else:
            found = [(st, body, i) for node in ast.walk(root) for body in _stmt_lists(node)
                     for i, st in enumerate(body)]
        found.sort(key=lambda item: (item[0].lineno, item[0].col_offset))
        for st, body, i in found:
            target = _target(st)
            if target is not None:
                slots.append(((owner, target, seen.get(target, 0)), body, i))
                seen[target] = seen.get(target, 0) + 1
    return slots


def _owners(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """The region's top level ('' owns only its own statements) and each top-level function."""
    return [("", tree)] + [(top.name, top) for top in tree.body
                           if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef))]


@dataclass
class _Donor:
    """An inspiration's regions, indexed for crossover; built once per proposal."""
    number: int                                                    # 1-based, for descriptions
    functions: dict[str, tuple[ast.AST, str]] = field(default_factory=dict)   # name -> (node, dump)
    assigns: dict[tuple[str, str, int], list[tuple[ast.stmt, str]]] = field(default_factory=dict)


def _donor(number: int, source: str) -> _Donor | None:
    try:
        _, regions = _regions(source)
    except MutationError:
        return None
    donor = _Donor(number)
    for region in regions:
        tree = ast.parse(region.text)
        for top in tree.body:
            if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)):
                donor.functions.setdefault(top.name, (top, ast.dump(top)))
        for key, body, i in _assign_slots(tree):
            donor.assigns.setdefault(key, []).append((body[i], ast.dump(body[i])))
    return donor if donor.functions or donor.assigns else None


def _replace_function(tree: ast.Module, j: int, node: ast.AST, number: int, offset: int,
                      rng: np.random.Generator) -> str:
    old = tree.body[j]
    tree.body[j] = _fresh(node)
    return f"crossover: function {getattr(old, 'name', '?')} (line {_line(old, offset)}) from inspiration {number}"


def _replace_stmt(body: list[ast.stmt], i: int, node: ast.stmt, number: int, offset: int,
                  rng: np.random.Generator) -> str:
    old = body[i]
    body[i] = _fresh(node)
    return f"crossover: line {_line(old, offset)} <- `{_short(node)}` from inspiration {number}"


def _fresh(node: ast.AST) -> ast.AST:
    # A private copy, so later operators in this child never edit the donor's tree.
    return ast.parse(ast.unparse(node)).body[0]


def _collect_crossover(trees: list[ast.Module], regions: list[_Region], donors: list[_Donor]) -> list[Site]:
    sites: list[Site] = []
    for r, (tree, region) in enumerate(zip(trees, regions)):
        off = region.start
        for j, top in enumerate(tree.body):
            if not isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            mine = ast.dump(top)
            sites.extend((r, partial(_replace_function, tree, j, d.functions[top.name][0], d.number, off))
                         for d in donors if top.name in d.functions and d.functions[top.name][1] != mine)
        for key, body, i in _assign_slots(tree):
            mine = ast.dump(body[i])
            sites.extend((r, partial(_replace_stmt, body, i, node, d.number, off))
                         for d in donors for node, dump in d.assigns.get(key, ()) if dump != mine)
    return sites


# ---------------------------------------------------------------- the mutator

@dataclass(frozen=True)
class OfflineMutator:
    weights: tuple[tuple[str, float], ...] = DEFAULT_WEIGHTS
    op_counts: tuple[int, ...] = (1, 2, 3)
    op_probs: tuple[float, ...] = (0.6, 0.3, 0.1)
    max_tries: int = 16

    def propose(self, parent: str, inspirations: list[str], rng: np.random.Generator) -> Mutation:
        """A compiling child differing from `parent` only inside its regions, or MutationError."""
        lines, regions = _regions(parent)
        if not regions:
            raise MutationError("no EVOLVE-BLOCK region parses as Python on its own")
        donors = [d for n, src in enumerate(inspirations, 1) if (d := _donor(n, src)) is not None]
        originals = [ast.dump(ast.parse(region.text)) for region in regions]
        for _ in range(self.max_tries):
            child = self._try(lines, regions, originals, donors, rng)
            if child is not None:
                return child
        raise MutationError(f"no valid child after {self.max_tries} tries")

    def _try(self, lines: list[str], regions: list[_Region], originals: list[str],
             donors: list[_Donor], rng: np.random.Generator) -> Mutation | None:
        trees = [ast.parse(region.text) for region in regions]
        n_ops = self.op_counts[int(rng.choice(len(self.op_counts), p=self.op_probs))]
        names, notes, touched = [], [], set()
        for step in range(n_ops):
            picked = self._pick(trees, regions, donors, rng)
            if picked is None and step == 0:  # fresh trees: nothing here can ever be mutated
                raise MutationError("nothing to mutate in the EVOLVE-BLOCK regions")
            if picked is None:
                break
            name, (r, apply) = picked
            notes.append(apply(rng))
            names.append(name)
            touched.add(r)
        new_text = {r: textwrap.indent(ast.unparse(trees[r]), regions[r].indent) + "\n"
                    for r in sorted(touched) if ast.dump(trees[r]) != originals[r]}
        if not new_text:
            return None  # the operators cancelled out
        child = _splice(lines, regions, new_text)
        if not _valid(lines, child):
            return None
        return Mutation(child, "; ".join(notes), tuple(names))

    def _pick(self, trees: list[ast.Module], regions: list[_Region], donors: list[_Donor],
              rng: np.random.Generator) -> tuple[str, Site] | None:
        """An operator by weight among those with a site, then one of its sites uniformly."""
        local = _collect_local(trees, regions)
        options = [(name, w) for name, w in self.weights
                   if w > 0 and (local.get(name) if name != "crossover" else donors)]
        while options:
            weights = np.array([w for _, w in options])
            k = int(rng.choice(len(options), p=weights / weights.sum()))
            name = options[k][0]
            sites = local[name] if name != "crossover" else _collect_crossover(trees, regions, donors)
            if sites:
                return name, sites[int(rng.integers(len(sites)))]
            del options[k]  # crossover had nothing to exchange: choose again among the rest
        return None


def _valid(lines: list[str], child: str) -> bool:
    parent = "".join(lines)
    if child == parent:
        return False
    try:
        compile(child, "<mutant>", "exec")
        check_regions(parent, child)  # guards the splice itself; should never fire
    except (SyntaxError, ValueError, EditError):
        return False
    return True
