"""The offline mutator: blind AST edits of the EVOLVE-BLOCK regions, and crossover with inspirations.

It is the proposer when no LLM is configured and a baseline an LLM must beat. Each child gets 1-3
operators (constant perturbation, comparison/arithmetic/min-max swaps, statement reorder or drop,
crossover from evolve.search.crossover). Only the regions' text is re-generated (with ast.unparse, so
comments inside a mutated region are lost); everything outside stays byte-identical. All randomness
comes from the generator passed in, and every traversal order is fixed by the source, so equal
inputs give equal children.
"""
from __future__ import annotations

import ast
import math
import textwrap
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np

from evolve.search.crossover import collect_crossover, donor_index, DonorIndex
from evolve.search.regions import Region as _Region, Site, parse_regions
from evolve.search.edits import EditError, check_regions


OPERATORS = ("constant", "compare", "arith", "minmax", "reorder", "drop", "crossover")
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


def _regions(source: str) -> tuple[list[str], list[tuple[_Region, ast.Module]]]:
    try:
        return parse_regions(source)
    except EditError as e:
        raise MutationError(e.message) from None


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


def _swap_op(node: ast.AST, k: int | None, offset: int, rng: np.random.Generator) -> str:
    """Replace a comparison operator (node.ops[k]) or an arithmetic one (node.op, k None)."""
    old = type(node.op if k is None else node.ops[k])  # type: ignore[attr-defined]
    group = _COMPARE_OPS if k is not None else next(g for g in _ARITH_GROUPS if old in g)
    choices = [op for op in group if op is not old]
    new = choices[int(rng.integers(len(choices)))]
    if k is None:
        node.op = new()  # type: ignore[attr-defined]
    else:
        node.ops[k] = new()  # type: ignore[attr-defined]
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


def _is_number(node: ast.Constant) -> bool:
    value = node.value
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant)
                                              and isinstance(node.value, (str, bytes)))


def _arith_ok(node: ast.BinOp | ast.AugAssign) -> bool:
    if not any(type(node.op) in group for group in _ARITH_GROUPS):  # type: ignore[attr-defined]
        return False
    operands = (node.left, node.right) if isinstance(node, ast.BinOp) else (node.target, node.value)
    return not any(_is_text(x) for x in operands)  # "a" + "b" -> "a" - "b" can only crash


def _movable(node: ast.stmt) -> bool:
    docstring = isinstance(node, ast.Expr) and _is_text(node.value)
    return not (isinstance(node, _DEFS + _JUMPS) or docstring)


# Node types that can hold statement lists; checked by type first because this walk is the hot loop.
_BLOCK_TYPES = frozenset(cls for cls in vars(ast).values()
                         if isinstance(cls, type) and issubclass(cls, ast.AST)
                         and set(getattr(cls, "_fields", ())) & set(_STMT_FIELDS))


def _collect_local(trees: list[ast.Module], regions: list[_Region]) -> dict[str, list[Site]]:
    sites: dict[str, list[Site]] = {name: [] for name in OPERATORS if name != "crossover"}
    constant, compare, arith = sites["constant"], sites["compare"], sites["arith"]
    minmax, reorder, drop = sites["minmax"], sites["reorder"], sites["drop"]
    for r, (tree, region) in enumerate(zip(trees, regions)):
        off = region.start
        for node in ast.walk(tree):
            kind = type(node)
            if kind is ast.Constant:
                if _is_number(node):
                    constant.append((r, partial(_perturb_constant, node, off)))
            elif kind is ast.Compare:
                compare.extend((r, partial(_swap_op, node, k, off))
                               for k, op in enumerate(node.ops) if isinstance(op, _COMPARE_OPS))
            elif kind is ast.BinOp or kind is ast.AugAssign:
                if _arith_ok(node):
                    arith.append((r, partial(_swap_op, node, None, off)))
            elif kind is ast.Call:
                if isinstance(node.func, ast.Name) and node.func.id in ("min", "max"):
                    minmax.append((r, partial(_swap_minmax, node, off)))
            if kind not in _BLOCK_TYPES:
                continue
            for body in _stmt_lists(node):
                movable = [_movable(st) for st in body]
                reorder.extend((r, partial(_reorder, body, i, off))
                               for i in range(len(body) - 1) if movable[i] and movable[i + 1])
                if len(body) > 1:
                    drop.extend((r, partial(_drop, body, i, off)) for i in range(len(body)) if movable[i])
    return sites


# ---------------------------------------------------------------- the mutator

@dataclass
class _Context:
    """One proposal's fixed inputs: the parent's lines and regions, and crossover material."""
    parent: str
    lines: list[str]
    regions: list[_Region]
    inspirations: list[str]
    first_trees: list[ast.Module] | None  # the validation parse, reused by the first try
    _unparsed: dict[int, str] = field(default_factory=dict)
    _donors: list[tuple[int, DonorIndex]] | None = None

    def trees(self) -> list[ast.Module]:
        trees, self.first_trees = self.first_trees, None
        return trees if trees is not None else [ast.parse(region.text) for region in self.regions]

    def unparsed(self, r: int) -> str:
        """The parent's region r as ast.unparse writes it, to spot operators that cancelled out."""
        if r not in self._unparsed:
            self._unparsed[r] = ast.unparse(ast.parse(self.regions[r].text))
        return self._unparsed[r]

    def index(self) -> DonorIndex:
        return donor_index(self.parent) or DonorIndex()  # cached: a parent is usually some child's donor

    def donors(self) -> list[tuple[int, DonorIndex]]:
        """(1-based inspiration number, index); built only once crossover is actually drawn."""
        if self._donors is None:
            self._donors = [(n, d) for n, src in enumerate(self.inspirations, 1)
                            if (d := donor_index(src)) is not None]
        return self._donors


# Structural operators move or replace statements, so sites collected before them go stale.
_STRUCTURAL = ("reorder", "drop", "crossover")
# Operators whose result can equal the parent (swapping equal statements, taking back an earlier edit).
# Edits of distinct nodes and drops always leave a visible change.
_MAY_CANCEL = ("reorder", "crossover")


@dataclass(frozen=True)
class OfflineMutator:
    weights: tuple[tuple[str, float], ...] = DEFAULT_WEIGHTS
    op_counts: tuple[int, ...] = (1, 2, 3)
    op_probs: tuple[float, ...] = (0.6, 0.3, 0.1)
    max_tries: int = 16

    def __post_init__(self) -> None:
        unknown = [name for name, _ in self.weights if name not in OPERATORS]
        if unknown:
            raise ValueError(f"unknown mutation operator(s) {unknown}; known: {list(OPERATORS)}")
        if len(self.op_counts) != len(self.op_probs) or not math.isclose(sum(self.op_probs), 1.0):
            raise ValueError("op_probs must give one probability per entry of op_counts, summing to 1")

    def propose(self, parent: str, inspirations: list[str], rng: np.random.Generator) -> Mutation:
        """A compiling child differing from `parent` only inside its regions, or MutationError."""
        lines, parsed = _regions(parent)
        if not parsed:
            raise MutationError("no EVOLVE-BLOCK region parses as Python on its own")
        ctx = _Context(parent, lines, [region for region, _ in parsed], list(inspirations),
                       [tree for _, tree in parsed])
        for _ in range(self.max_tries):
            child = self._try(ctx, rng)
            if child is not None:
                return child
        raise MutationError(f"no valid child after {self.max_tries} tries")

    def _try(self, ctx: _Context, rng: np.random.Generator) -> Mutation | None:
        trees = ctx.trees()
        n_ops = self.op_counts[int(rng.choice(len(self.op_counts), p=self.op_probs))]
        names: list[str] = []
        notes: list[str] = []
        touched: set[int] = set()
        nodes: list[int] = []  # ids of nodes edited in place; editing one twice may undo the first edit
        local: dict[str, list[Site]] | None = None
        for step in range(n_ops):
            if local is None:  # sites stay valid after in-place node edits, not after structural ones
                local = _collect_local(trees, ctx.regions)
            picked = self._pick(local, trees, ctx, rng)
            if picked is None and step == 0:  # fresh trees: nothing here can ever be mutated
                raise MutationError("nothing to mutate in the EVOLVE-BLOCK regions")
            if picked is None:
                break
            name, (r, apply) = picked
            notes.append(apply(rng))
            names.append(name)
            touched.add(r)
            if name in _STRUCTURAL:
                local = None
            else:
                nodes.append(id(apply.args[0]))  # type: ignore[attr-defined]
        unparsed = {r: ast.unparse(trees[r]) for r in sorted(touched)}
        if len(set(nodes)) < len(nodes) or any(name in _MAY_CANCEL for name in names):
            unparsed = {r: text for r, text in unparsed.items() if text != ctx.unparsed(r)}
        if not unparsed:
            return None  # the operators cancelled out
        new_text = {r: textwrap.indent(text, ctx.regions[r].indent) + "\n" for r, text in unparsed.items()}
        child = _splice(ctx.lines, ctx.regions, new_text)
        return Mutation(child, "; ".join(notes), tuple(names)) if _valid(ctx.lines, child) else None

    def _pick(self, local: dict[str, list[Site]], trees: list[ast.Module], ctx: _Context,
              rng: np.random.Generator) -> tuple[str, Site] | None:
        """An operator by weight among those with a site, then one of its sites uniformly."""
        options = [(name, w) for name, w in self.weights
                   if w > 0 and (local.get(name) if name != "crossover" else ctx.inspirations)]
        while options:
            weights = np.array([w for _, w in options])
            k = int(rng.choice(len(options), p=weights / weights.sum()))
            name = options[k][0]
            sites = (local[name] if name != "crossover"
                     else collect_crossover(trees, ctx.regions, ctx.index(), ctx.donors()))
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
