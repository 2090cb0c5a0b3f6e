"""The offline mutator's local operators: where each may act, and the edit it makes.

Every operator keeps the program's types and shapes, because a child that crashes is a wasted evaluation
(measured with bench/offline_mutator.py: blind swaps of int literals, index arithmetic and loop
conditions made most of the failures). So the collector reads each node's context:

- `constant`: floats anywhere outside an index are perturbed multiplicatively (sign and type kept);
  ints only where they are knobs (`k = 3`, `if n > 2`, `min(x, 10)`, `window=4`, defaults, factors
  `2 * x`), never counters (`+= 1`), indices, shapes, sentinels (`-1`) or offsets (`n - 1`); a knob
  never turns negative and only a factor may reach zero (switching its term off).
- `compare`: conditions of `if`, ternaries and comprehensions only (a flipped `while` condition loops
  forever; a flipped mask inside an index breaks a shape): the boundary (`<` / `<=`) or the direction.
- `arith`: `x + c` / `x - c` and `x * c` / `x / c` where c is a float literal or a float knob (a name
  bound to one), so the edit moves a knob where constant tuning cannot (sign, reciprocal); never `//`.
- `order`: a sort's direction (`reverse=`, `np.argsort(x)` / `np.argsort(-x)`).
- `key`: a sort key's column, `T["a"]` -> `T["b"]` where the program reads both columns of T (or
  of a name bound to T: `wait = state["waiting"]`).
- `sort_by`: an index order `range(len(T["a"]))` -> `np.argsort(T["b"], kind="stable")`, T's rows
  visited by one of its columns instead of in table order (same length, same element type).
- `drop`: an assignment that only refines a name already bound before it (`x = x * 0.5`), so no
  later read is left unbound.
- `branch`: an `if` whose branches only set bound names to literals (`if cond: a, b = 1, 1`, a mode
  switch) always or never runs; e.g. a special case switched on for every input.
Traversal is in source order and all randomness comes from the generator passed to apply.
"""
from __future__ import annotations

import ast
import copy
import math
from functools import partial

import numpy as np

from evolve.search.regions import Region, Site

LOCAL = ("constant", "compare", "arith", "order", "key", "sort_by", "drop", "branch")
_COMPARE_FLIP = {ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE}
_COMPARE_EDGE = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
_ARITH_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
SYMBOLS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
           ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_CLAMPS = {"min", "max", "minimum", "maximum", "clip"}        # int arguments of these are thresholds
_SHAPE_KWARGS = {"axis", "axes", "dtype", "kind", "ndmin", "ord", "order", "shape", "size", "out",
                 "keepdims", "stacklevel", "base"}
_KEYED = {"argsort", "lexsort", "argmin", "argmax"}            # their arguments are the sort key
_KEY_KWARG = {"sorted", "sort", "min", "max", "nsmallest", "nlargest"}  # their key= is
_NUMPY = {"np", "numpy"}


def _name(func: ast.AST) -> str:
    """`f` for f(...), `sort` for x.sort(...), `argsort` for np.argsort(...)."""
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _line(node: ast.AST, offset: int) -> int:
    return offset + getattr(node, "lineno", 0)


def _is_num(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_float_const(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    return isinstance(node, ast.Constant) and isinstance(node.value, float)


# ---------------------------------------------------------------- edits

def perturb_float(value: float, rng: np.random.Generator) -> float:
    if value == 0.0:
        return float(f"{abs(rng.normal(0.0, 0.1)):.4g}") or 0.01
    sigma = (0.05, 0.2, 0.5)[int(rng.integers(3))]  # fine tuning and bolder jumps, mixed
    new = float(f"{value * math.exp(rng.normal(0.0, sigma)):.4g}")  # 4 significant digits stay readable
    return new if new != value else float(f"{value * 1.1:.4g}")


def perturb_int(value: int, rng: np.random.Generator, floor: int = 1) -> int:
    """value +- a step, never below `floor` when it started at or above it (and never negative)."""
    step = 1 if rng.random() < 0.7 or abs(value) < 4 else int(rng.integers(2, 2 + abs(value) // 2))
    new = value + step if rng.random() < 0.5 else value - step
    if new < min(floor, value) or new < 0:
        new = value + step
    return new


def _constant(node: ast.Constant, floor: int, offset: int, rng: np.random.Generator) -> str:
    old = node.value
    node.value = perturb_float(old, rng) if isinstance(old, float) else perturb_int(old, rng, floor)
    return f"constant {old!r} -> {node.value!r} at line {_line(node, offset)}"


def _compare(node: ast.Compare, k: int, flip: bool, offset: int, rng: np.random.Generator) -> str:
    """Move the boundary (< and <=); when both sides are the same quantity (a preference between two
    candidates, `load[a] < load[b]`), possibly the direction too."""
    old = type(node.ops[k])
    new = (_COMPARE_FLIP if flip and rng.random() < 0.5 else _COMPARE_EDGE)[old]
    node.ops[k] = new()
    return f"swap {SYMBOLS[old]} -> {SYMBOLS[new]} at line {_line(node, offset)}"


def _arith(node: ast.BinOp | ast.AugAssign, offset: int, rng: np.random.Generator) -> str:
    old = type(node.op)
    node.op = _ARITH_SWAP[old]()
    return f"swap {SYMBOLS[old]} -> {SYMBOLS[_ARITH_SWAP[old]]} at line {_line(node, offset)}"


def _order(node: ast.Call, offset: int, rng: np.random.Generator) -> str:
    """Flip a sort's direction: toggle reverse=, or negate np.argsort's argument."""
    if _name(node.func) == "argsort":
        arg = node.args[0]
        negated = isinstance(arg, ast.UnaryOp) and isinstance(arg.op, ast.USub)
        node.args[0] = arg.operand if negated else ast.UnaryOp(ast.USub(), arg)  # type: ignore[attr-defined]
        return f"flip sort order ({'ascending' if negated else 'descending'}) at line {_line(node, offset)}"
    rev = next((kw for kw in node.keywords if kw.arg == "reverse"), None)
    if rev is None:
        node.keywords.append(ast.keyword("reverse", ast.Constant(True)))
        now = True
    else:
        now = not (isinstance(rev.value, ast.Constant) and rev.value.value)
        rev.value = ast.Constant(now)
    return f"flip sort order (reverse={now}) at line {_line(node, offset)}"


def _key(node: ast.Subscript, columns: list[str], offset: int, rng: np.random.Generator) -> str:
    old = node.slice.value  # type: ignore[attr-defined]
    new = columns[int(rng.integers(len(columns)))]
    node.slice = ast.Constant(new)
    return f"key {old!r} -> {new!r} at line {_line(node, offset)}"


def _short(node: ast.AST) -> str:
    text = ast.unparse(node).split("\n")[0]
    return text if len(text) <= 60 else text[:57] + "..."


def _sort_by(node: ast.Call, table: ast.expr, columns: list[str], offset: int, rng: np.random.Generator) -> str:
    col = columns[int(rng.integers(len(columns)))]
    node.func = ast.Attribute(ast.Name("np", ast.Load()), "argsort", ast.Load())
    node.args = [ast.Subscript(copy.deepcopy(table), ast.Constant(col), ast.Load())]
    node.keywords = [ast.keyword("kind", ast.Constant("stable"))]
    return f"order by {col!r} at line {_line(node, offset)}"


def _drop(body: list[ast.stmt], i: int, offset: int, rng: np.random.Generator) -> str:
    node = body.pop(i)
    return f"drop line {_line(node, offset)}: `{_short(node)}`"


def _branch(body: list[ast.stmt], i: int, can_skip: bool, offset: int, rng: np.random.Generator) -> str:
    node = body[i]
    assert isinstance(node, ast.If)
    take = not can_skip or rng.random() < 0.5
    body[i:i + 1] = node.body if take else node.orelse
    return f"branch at line {_line(node, offset)}: {'always' if take else 'never'} `if {_short(node.test)}`"


# ---------------------------------------------------------------- where each operator may act

class _Collector:
    """One pass over a region's tree in source order, noting each operator's sites with their context."""

    def __init__(self, r: int, offset: int, tree: ast.Module, sites: dict[str, list[Site]]) -> None:
        self.r, self.off, self.sites = r, offset, sites
        self.float_knobs = {t.id for st in ast.walk(tree) if isinstance(st, ast.Assign)
                            and _is_float_const(st.value) for t in st.targets if isinstance(t, ast.Name)}
        self.aliases = _aliases(tree)
        self.numpy = any(isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "np"
                         for n in ast.walk(tree))  # `np` is bound wherever the region already uses it
        self.columns: dict[str, set[str]] = {}
        for n in ast.walk(tree):
            if (bc := _column(n, self.aliases)) is not None:
                self.columns.setdefault(bc[0], set()).add(bc[1])

    def add(self, name: str, apply, *args) -> None:
        self.sites[name].append((self.r, partial(apply, *args, self.off)))

    def visit(self, node: ast.AST, *, index: bool = False, loop: bool = False, test: bool = False,
              knob: bool = False, factor: bool = False, sort: bool = False, compared: bool = False) -> None:
        kind = type(node)
        if kind is ast.Constant:
            value = node.value  # type: ignore[attr-defined]
            tunable = _is_num(value) and not index and (isinstance(value, float) or knob or factor)
            if tunable and not (compared and value == 0):  # comparing with zero is a sign check, not a limit
                self.add("constant", _constant, node, 0 if factor else 1)
            return
        if isinstance(node, ast.Compare) and test and not (index or loop):
            sides = [node.left, *node.comparators]
            for k, op in enumerate(node.ops):
                # a guard between different quantities (`used < capacity`) keeps its direction; a
                # threshold (`n > 2`) may move; `==`/`!=` are case checks and are left alone
                same = _same_quantity(sides[k], sides[k + 1])
                if type(op) in _COMPARE_EDGE and (same or _threshold(sides[k]) or _threshold(sides[k + 1])):
                    self.add("compare", _compare, node, k, same)
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and not index and type(node.op) in _ARITH_SWAP:
            right = node.right if isinstance(node, ast.BinOp) else node.value
            # `x * c` -> `x / c` is the knob c moved to 1/c (or -c); `c * x` -> `c / x` is another function
            if _is_float_const(right) or isinstance(right, ast.Name) and right.id in self.float_knobs:
                self.add("arith", _arith, node)
        elif isinstance(node, ast.Call):
            self._call(node)
        elif isinstance(node, ast.Subscript) and sort and (bc := _column(node, self.aliases)) is not None:
            others = sorted(self.columns.get(bc[0], set()) - {bc[1]})
            if others:
                self.add("key", _key, node, others)
        for field, child, kw in self._children(node, index, loop, test, sort):
            if isinstance(child, list):
                for item in child:
                    if isinstance(item, ast.AST):
                        self.visit(item, **kw)
            elif isinstance(child, ast.AST):
                self.visit(child, **kw)

    def _call(self, node: ast.Call) -> None:
        name = _name(node.func)
        table = _range_len(node)
        if table is not None and self.numpy and (bc := _column(table, self.aliases)) is not None:
            self.add("sort_by", _sort_by, node, table.value, sorted(self.columns[bc[0]]))
        numpy_attr = isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name) \
            and node.func.value.id in _NUMPY
        if name == "argsort" and numpy_attr and node.args and not isinstance(node.args[0], ast.Starred):
            self.add("order", _order, node)
        elif name in ("sorted", "sort") and (name == "sorted" or not node.args):
            self.add("order", _order, node)

    def _children(self, node: ast.AST, index: bool, loop: bool, test: bool, sort: bool):
        """(field, value, context) of each child, with the context the child is read in."""
        base = dict(index=index, loop=loop, test=test, sort=sort)
        call = _name(node.func) if isinstance(node, ast.Call) else ""
        clamp = call in _CLAMPS
        for field, value in ast.iter_fields(node):
            kw = dict(base)
            if call in _KEYED and field == "args":
                kw["sort"] = True
            elif call in _KEY_KWARG and field == "keywords":
                value = [k for k in value if k.arg != "key"]  # visited below, as a sort key
                keys = [k for k in node.keywords if k.arg == "key"]  # type: ignore[attr-defined]
                if keys:
                    yield "key", keys, dict(kw, sort=True, knob=False, factor=False, compared=False)
            if isinstance(node, ast.Subscript) and field == "slice":
                kw["index"] = True
            elif isinstance(node, ast.While) and field == "test":
                kw["loop"] = True
            elif isinstance(node, (ast.If, ast.IfExp)) and field == "test" or \
                    isinstance(node, ast.comprehension) and field == "ifs":
                kw["test"] = True
            elif isinstance(node, (ast.If, ast.IfExp, ast.While)) or isinstance(node, ast.stmt):
                kw["test"] = kw["loop"] = False  # the body of a branch is not its condition
            knob = (isinstance(node, ast.Assign) and field == "value"
                    or isinstance(node, ast.Compare) and field in ("left", "comparators")
                    and all(type(op) in _COMPARE_EDGE for op in node.ops)
                    or isinstance(node, ast.keyword) and node.arg not in _SHAPE_KWARGS
                    or clamp and field == "args"
                    or isinstance(node, ast.arguments) and field in ("defaults", "kw_defaults"))
            factor = isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) \
                and field in ("left", "right")
            yield field, value, dict(kw, knob=knob, factor=factor, compared=isinstance(node, ast.Compare))


def _is_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    return isinstance(node, ast.Constant) and _is_num(node.value)


def _threshold(node: ast.AST) -> bool:
    """A literal other than zero: comparing with zero is a sign or emptiness check, not a tunable limit."""
    return _is_literal(node) and ast.literal_eval(node) != 0


def _same_quantity(a: ast.AST, b: ast.AST) -> bool:
    """`load[p]` and `load[best]`, `w[e] / n[e]` and `w[b] / n[b]`: equal but for what they index with."""
    def shape(node: ast.AST) -> str:
        node = ast.parse(ast.unparse(node), mode="eval").body
        for sub in ast.walk(node):
            if isinstance(sub, ast.Subscript):
                sub.slice = ast.Name("_", ast.Load())
        return ast.dump(node)
    return not _is_literal(a) and shape(a) == shape(b)


def _aliases(tree: ast.Module) -> dict[str, str]:
    """name -> the table expression it is bound to (`wait = state["waiting"]`, also unpacked from a
    tuple), for names bound to one expression only."""
    seen: dict[str, set[str]] = {}
    for st in ast.walk(tree):
        if not isinstance(st, ast.Assign) or len(st.targets) != 1:
            continue
        t, v = st.targets[0], st.value
        pairs = zip(t.elts, v.elts) if isinstance(t, ast.Tuple) and isinstance(v, ast.Tuple) \
            and len(t.elts) == len(v.elts) else [(t, v)]
        for name, value in pairs:
            if isinstance(name, ast.Name) and isinstance(value, ast.Subscript):
                seen.setdefault(name.id, set()).add(ast.unparse(value))
    return {k: next(iter(v)) for k, v in seen.items() if len(v) == 1}


def _column(node: ast.AST, aliases: dict[str, str]) -> tuple[str, str] | None:
    """(table, column) of `table["column"]`, the table named by its expression (aliases resolved)."""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
            and isinstance(node.slice.value, str):
        base = node.value
        text = aliases.get(base.id, base.id) if isinstance(base, ast.Name) else ast.unparse(base)
        return text, node.slice.value
    return None


def _range_len(node: ast.Call) -> ast.Subscript | None:
    """T["a"] of `range(len(T["a"]))`."""
    if _name(node.func) == "range" and len(node.args) == 1 and not node.keywords:
        inner = node.args[0]
        if isinstance(inner, ast.Call) and _name(inner.func) == "len" and len(inner.args) == 1 \
                and isinstance(inner.args[0], ast.Subscript):
            return inner.args[0]
    return None


# ---------------------------------------------------------------- drop: only what leaves every read bound

_SCOPES = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Lambda)


def _bound_names(node: ast.AST) -> set[str]:
    """Names a statement binds in its own scope (a comprehension's or lambda's variables stay inside)."""
    if isinstance(node, ast.Name):
        return {node.id} if isinstance(node.ctx, ast.Store) else set()
    if isinstance(node, _SCOPES):
        return set()
    return set().union(*(_bound_names(child) for child in ast.iter_child_nodes(node)))


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    names += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
    return set(names)


def _globals(fn: ast.FunctionDef | ast.AsyncFunctionDef, bound: set[str]) -> set[str]:
    """Names the function declares global and the module has bound before the function."""
    return {n for st in ast.walk(fn) if isinstance(st, ast.Global) for n in st.names} & bound


def _droppable(st: ast.stmt, bound: set[str]) -> bool:
    """A plain assignment to names all bound before it: later reads still find a value."""
    # Not `x += 1`: a counter's update is what keeps a limit (budget, capacity) true.
    if not isinstance(st, ast.Assign):
        return False
    names = [n for t in st.targets for n in (t.elts if isinstance(t, ast.Tuple) else [t])]
    return all(isinstance(n, ast.Name) and n.id in bound for n in names)


def _setting(st: ast.stmt, bound: set[str]) -> bool:
    """`a, b = 1, 1`: bound names set to literals, as a special case switching a mode does."""
    if not _droppable(st, bound):
        return False
    try:
        ast.literal_eval(st.value)  # type: ignore[attr-defined]
    except ValueError:
        return False
    return True


def _drops(body: list[ast.stmt], bound: set[str], col: _Collector) -> None:
    """Walk statement lists in order, tracking names bound so far. What a compound statement (a branch,
    a loop that may run zero times) binds is not counted as bound after it: fewer sites, never a bad one."""
    for i, st in enumerate(body):
        if len(body) > 1 and _droppable(st, bound):
            col.add("drop", _drop, body, i)
        if isinstance(st, ast.If) and all(_setting(x, bound) for x in st.body + st.orelse):
            col.add("branch", _branch, body, i, len(body) > 1 or bool(st.orelse))
        if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # inside, a name the function assigns is local: only its parameters are bound at the start
            _drops(st.body, _params(st) | _globals(st, bound), col)
            bound = bound | {st.name}
            continue
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(st, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                extra = _bound_names(st.target) if isinstance(st, (ast.For, ast.AsyncFor)) else set()
                _drops(inner, bound | extra, col)
        for h in getattr(st, "handlers", ()):
            _drops(h.body, bound, col)
        if not isinstance(st, (ast.If, ast.For, ast.While, ast.Try, ast.With)):
            bound = bound | _bound_names(st)


def collect(trees: list[ast.Module], regions: list[Region]) -> dict[str, list[Site]]:
    """Every local operator's sites in the regions' trees, in source order."""
    sites: dict[str, list[Site]] = {name: [] for name in LOCAL}
    for r, (tree, region) in enumerate(zip(trees, regions)):
        col = _Collector(r, region.start, tree, sites)
        col.visit(tree)
        _drops(tree.body, set(), col)
    return sites
