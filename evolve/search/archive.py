"""The archive: islands of MAP-Elites grids that decide which programs an iteration builds on.

Each island evolves on its own (a ring migration now and then shares its best programs), and inside an
island a grid over the feature dimensions keeps the best program of each niche, so a high score found by
a big program does not crowd out a small one that might be improved further.

The archive holds no state of its own beyond what add() and migrate() put in it, and sample() only reads:
replaying the same add/migrate calls (as resume does from the store) gives an identical archive and
identical samples. All randomness comes from evolve.rng; nothing iterates a hash-ordered container.

Cost: add, sample and migrate touch one island's grid (at most feature_bins ** len(feature_dims) cells)
and a short best-first list per island, never the whole population.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field, replace

import numpy as np

from evolve.search.features import COMPLEXITY
from evolve.rng import rng

Cell = tuple[int, ...]

# Complexity is binned on log(1 + nodes): doubling a 50-node program is as big a step as doubling a
# 500-node one, and one bloated outlier does not squeeze every other program into the first bin.
_LOG_DIMS = frozenset({COMPLEXITY})
# When a feature value falls outside an island's range, the range is widened past it by this fraction of
# the new span: a steadily growing feature (complexity usually is) then re-bins every few additions, not
# on every one, and elites change cells less often.
_RANGE_SLACK = 0.1
# Exploitation is a tournament among the island's elites: rank-based, so it is indifferent to the scale
# and sign of scores, and it costs O(size) instead of a sort.
_TOURNAMENT_SIZE = 3


@dataclass(frozen=True)
class ArchiveConfig:
    num_islands: int = 4
    feature_dims: tuple[str, ...] = ("complexity", "diversity")
    feature_bins: int = 10
    migration_interval: int = 20  # every this many iterations, migrate (0: never)
    migration_count: int = 1  # top programs copied from each island to the next (ring)
    exploration_ratio: float = 0.2  # parent = uniformly random program of the island
    exploitation_ratio: float = 0.7  # parent = from the island's elites, biased to high score
    # (the rest: a uniformly random elite of the island's grid)
    num_inspirations: int = 4  # top programs + diverse elites from other cells


@dataclass(frozen=True)
class ArchiveMember:
    id: int
    island: int
    score: float
    features: dict[str, float]
    generation: int
    iteration: int


def check_config(config: ArchiveConfig) -> None:
    """Raise ValueError on a config the archive cannot run with.

    Called by Archive(), not by the dataclass itself, so that the run-config loader can build the object
    first and report a bad value with the file and key it came from.
    """
    if config.num_islands < 1:
        raise ValueError(f"archive: num_islands must be >= 1, got {config.num_islands}")
    if config.feature_bins < 1:
        raise ValueError(f"archive: feature_bins must be >= 1, got {config.feature_bins}")
    if len(set(config.feature_dims)) != len(config.feature_dims):
        raise ValueError(f"archive: feature_dims repeat a name: {config.feature_dims}")
    if config.migration_interval < 0 or config.migration_count < 0 or config.num_inspirations < 0:
        raise ValueError("archive: migration_interval, migration_count, num_inspirations must be >= 0")
    ratios = (config.exploration_ratio, config.exploitation_ratio)
    if min(ratios) < 0 or sum(ratios) > 1 + 1e-9:
        raise ValueError(
            f"archive: exploration_ratio and exploitation_ratio must be >= 0 and sum to <= 1, "
            f"got {config.exploration_ratio} and {config.exploitation_ratio}"
        )


def _rank(program: ArchiveMember) -> tuple[float, int]:
    """Sort key, best first: higher score, then lower id (the older program wins a tie)."""
    return (-program.score, program.id)


@dataclass
class _Island:
    population: list[ArchiveMember] = field(default_factory=list)  # insertion order, for uniform draws
    ids: set[int] = field(default_factory=set)  # membership only, never iterated
    grid: dict[Cell, ArchiveMember] = field(default_factory=dict)  # cell -> elite
    top: list[ArchiveMember] = field(default_factory=list)  # best first, bounded length
    lo: list[float] = field(default_factory=list)  # per-dimension binning range (transformed values)
    hi: list[float] = field(default_factory=list)


class Archive:
    def __init__(self, config: ArchiveConfig, seed: int):
        check_config(config)
        self.config = config
        self.seed = seed
        dims = len(config.feature_dims)
        self._islands = [
            _Island(lo=[math.inf] * dims, hi=[-math.inf] * dims) for _ in range(config.num_islands)
        ]
        # One spare slot so that "top programs other than the parent" still has enough candidates.
        self._top_size = max(config.num_inspirations, config.migration_count, 1) + 1
        self._best: ArchiveMember | None = None
        self._count = 0

    # ---- building: add and migrate (the only calls that change state; replayed on resume) ----

    def add(self, program: ArchiveMember) -> bool:
        """Consider a newly evaluated program on its island; True if it became the elite of its cell."""
        self._check_island(program.island)
        if not math.isfinite(program.score):
            raise ValueError(f"archive: program {program.id} has a non-finite score {program.score}")
        became_elite = self._insert(program.island, program)
        self._count += 1
        if self._best is None or _rank(program) < _rank(self._best):
            self._best = program
        return became_elite

    def migrate(self, iteration: int) -> list[tuple[int, int]]:
        """At a migration point, copy each island's top programs to the next island of the ring.

        Returns (program id, destination island) for every copy made. A program the destination already
        holds is not copied again. Sources are read before any copy lands, so a program moves one step
        per migration, not around the whole ring.
        """
        if not self._is_migration_point(iteration):
            return []
        n = self.config.num_islands
        moves: list[tuple[ArchiveMember, int]] = []
        for source in range(n):
            dest = (source + 1) % n
            for program in self._islands[source].top[: self.config.migration_count]:
                if program.id not in self._islands[dest].ids:
                    moves.append((program, dest))
        for program, dest in moves:
            self._insert(dest, replace(program, island=dest))
        return [(program.id, dest) for program, dest in moves]

    def _is_migration_point(self, iteration: int) -> bool:
        interval = self.config.migration_interval
        return self.config.num_islands > 1 and interval > 0 and iteration > 0 and iteration % interval == 0

    def _insert(self, index: int, program: ArchiveMember) -> bool:
        island = self._islands[index]
        if program.id in island.ids:
            raise ValueError(f"archive: program {program.id} is already on island {index}")
        coords = self._coords(program)
        island.population.append(program)
        island.ids.add(program.id)
        self._push_top(island, program)
        if self._widen(island, coords):
            self._rebin(island)
        cell = self._cell(island, coords)
        incumbent = island.grid.get(cell)
        if incumbent is not None and program.score <= incumbent.score:
            return False  # ties keep the incumbent
        island.grid[cell] = program
        return True

    def _push_top(self, island: _Island, program: ArchiveMember) -> None:
        bisect.insort(island.top, program, key=_rank)
        del island.top[self._top_size :]

    # ---- binning ----

    def _coords(self, program: ArchiveMember) -> list[float]:
        coords = []
        for dim in self.config.feature_dims:
            if dim not in program.features:
                raise KeyError(
                    f"archive: program {program.id} has no feature {dim!r}; the archive bins on "
                    f"{self.config.feature_dims}, it has {tuple(program.features)}"
                )
            value = float(program.features[dim])
            if not math.isfinite(value):
                raise ValueError(f"archive: program {program.id} has a non-finite feature {dim}={value}")
            coords.append(math.log1p(max(value, 0.0)) if dim in _LOG_DIMS else value)
        return coords

    def _widen(self, island: _Island, coords: list[float]) -> bool:
        """Stretch the island's ranges to cover coords; True if any range changed.

        Adaptive per-island ranges, because a metric dimension has no known range and an island's
        programs may sit anywhere on it. The range depends only on the values the island has seen, in
        order, so it replays exactly.
        """
        changed = False
        for d, value in enumerate(coords):
            lo, hi = island.lo[d], island.hi[d]
            if lo <= value <= hi:
                continue
            new_lo, new_hi = min(lo, value), max(hi, value)
            slack = _RANGE_SLACK * (new_hi - new_lo)
            island.lo[d] = new_lo - slack if value < lo else new_lo
            island.hi[d] = new_hi + slack if value > hi else new_hi
            changed = True
        return changed

    def _rebin(self, island: _Island) -> None:
        """Re-place the elites after a range change: O(cells).

        Placed best first, so when two elites fall into one cell the better one stays (a tie goes to the
        lower id, as in best()): the island's best, and with it the overall best, is never evicted.
        Programs pushed out stay in the population and can still be drawn by exploration.
        """
        elites = sorted(island.grid.values(), key=_rank)
        island.grid = {}
        for elite in elites:
            island.grid.setdefault(self._cell(island, self._coords(elite)), elite)

    def _cell(self, island: _Island, coords: list[float]) -> Cell:
        bins = self.config.feature_bins
        cell = []
        for d, value in enumerate(coords):
            lo, hi = island.lo[d], island.hi[d]
            index = 0 if hi <= lo else int((value - lo) / (hi - lo) * bins)
            cell.append(min(max(index, 0), bins - 1))
        return tuple(cell)

    # ---- sampling (read-only) ----

    def sample(self, island: int, iteration: int) -> tuple[ArchiveMember, list[ArchiveMember]]:
        """A parent and up to num_inspirations other programs (never the parent) for an iteration.

        An island that is still empty borrows from the next non-empty island of the ring.
        """
        self._check_island(island)
        source = self._source_island(island)
        g = rng(self.seed, iteration, f"archive.sample.island{island}")
        parent = self._choose_parent(self._islands[source], g)
        return parent, self._choose_inspirations(source, parent, g)

    def _source_island(self, island: int) -> int:
        n = self.config.num_islands
        for step in range(n):
            candidate = (island + step) % n
            if self._islands[candidate].population:
                return candidate
        raise LookupError("archive: nothing to sample, no program has been added yet")

    def _choose_parent(self, island: _Island, g: np.random.Generator) -> ArchiveMember:
        draw = g.random()
        if draw < self.config.exploration_ratio:
            return island.population[int(g.integers(len(island.population)))]
        elites = list(island.grid.values())
        if draw < self.config.exploration_ratio + self.config.exploitation_ratio:
            picks = g.integers(len(elites), size=_TOURNAMENT_SIZE)
            return min((elites[int(i)] for i in picks), key=_rank)
        return elites[int(g.integers(len(elites)))]

    def _choose_inspirations(
        self, source: int, parent: ArchiveMember, g: np.random.Generator
    ) -> list[ArchiveMember]:
        """Half the island's top programs, half random elites of other cells, then other islands' best.

        The top programs show what works; elites from other niches show different ways of doing it.
        Only when the parent's island has too few programs are other islands' top programs used.
        """
        wanted = self.config.num_inspirations
        island = self._islands[source]
        chosen: list[ArchiveMember] = []
        taken = {parent.id}

        def take(program: ArchiveMember) -> None:
            chosen.append(program)
            taken.add(program.id)

        for program in island.top:
            if len(chosen) >= (wanted + 1) // 2:
                break
            if program.id not in taken:
                take(program)
        parent_cell = self._cell(island, self._coords(parent))
        others = [e for c, e in island.grid.items() if c != parent_cell and e.id not in taken]
        room = min(wanted - len(chosen), len(others))
        if room > 0:
            for i in g.choice(len(others), size=room, replace=False):
                take(others[int(i)])
        for step in range(1, self.config.num_islands):
            for program in self._islands[(source + step) % self.config.num_islands].top:
                if len(chosen) >= wanted:
                    return chosen
                if program.id not in taken:
                    take(program)
        return chosen

    # ---- queries ----

    def island_for(self, iteration: int) -> int:
        """The island an iteration works on: round robin."""
        return iteration % self.config.num_islands

    def best(self) -> ArchiveMember | None:
        """The best program ever added (ties: lower id)."""
        return self._best

    def elites(self, island: int) -> list[ArchiveMember]:
        """The island's current elites, best first."""
        self._check_island(island)
        return sorted(self._islands[island].grid.values(), key=_rank)

    def stats(self) -> dict:
        """Per island: programs held (migrated copies included), occupied cells, best score."""
        islands = [
            {
                "island": index,
                "programs": len(island.population),
                "occupied_cells": len(island.grid),
                "best_score": island.top[0].score if island.top else None,
            }
            for index, island in enumerate(self._islands)
        ]
        return {
            "programs": self._count,
            "best_id": self._best.id if self._best else None,
            "best_score": self._best.score if self._best else None,
            "islands": islands,
        }

    def __len__(self) -> int:
        """Distinct programs added (migrated copies are not counted again)."""
        return self._count

    def _check_island(self, island: int) -> None:
        if not 0 <= island < self.config.num_islands:
            raise ValueError(f"archive: island {island} out of range [0, {self.config.num_islands})")
