"""The offline mutator: blind AST edits of the EVOLVE-BLOCK regions, and crossover with inspirations.

It is the proposer when no LLM is configured and a baseline an LLM must beat. Each child gets 1-3
operators: the type- and shape-preserving local edits of evolve.search.operators (constant tuning,
comparison, arithmetic, sort order and sort key swaps, ordering by a column, dropping a refinement,
forcing a branch) and crossover from evolve.search.crossover. Only the regions' text is re-generated
(with ast.unparse, so comments inside a mutated region are lost); everything outside stays
byte-identical. All randomness comes from the generator passed in, and every traversal order is fixed
by the source, so equal inputs give equal children. bench/offline_mutator.py measures what it earns.
"""
from __future__ import annotations

import ast
import math
import textwrap
from dataclasses import dataclass, field

import numpy as np

from evolve.search.crossover import collect_crossover, donor_index, DonorIndex
from evolve.search.edits import EditError, check_regions
from evolve.search.operators import LOCAL, collect as collect_local
from evolve.search.regions import Region as _Region, Site, parse_regions


OPERATORS = LOCAL + ("crossover",)
DEFAULT_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("constant", 4.0), ("compare", 1.0), ("arith", 1.0), ("order", 1.0), ("key", 1.0), ("sort_by", 1.0),
    ("drop", 0.5), ("branch", 1.0), ("crossover", 2.0),
)


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


# Structural operators move or replace statements or subtrees, so sites collected before them go stale.
_STRUCTURAL = ("sort_by", "drop", "branch", "crossover")
# Operators whose result can equal the parent (taking back an earlier edit).
# Edits of distinct nodes and drops always leave a visible change.
_MAY_CANCEL = ("crossover",)


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
                local = collect_local(trees, ctx.regions)
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
