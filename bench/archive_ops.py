"""Cost of archive operations as the population grows: µs per add+sample, and per add, sample, migrate.

Run: .venv/bin/python bench/archive_ops.py [--sizes 1000 10000] [--ops 2000]
The archive's operations touch one island's grid, not the population, so the figures should not grow.
"""
from __future__ import annotations

import argparse
import time

from evolve.search.archive import Archive, ArchiveConfig, ArchiveMember
from evolve.rng import rng


def _program(pid: int, islands: int, seed: int) -> ArchiveMember:
    g = rng(seed, pid, "bench.program")
    # Scores drift upward like an improving run; complexity is log-normal like real program sizes.
    features = {"complexity": float(g.lognormal(5.0, 0.8)), "diversity": float(g.beta(4.0, 4.0))}
    return ArchiveMember(pid, pid % islands, float(g.normal(pid / 1000, 1.0)), features, 0, pid)


def measure(population: int, ops: int, seed: int = 0) -> dict[str, float]:
    config = ArchiveConfig()
    archive = Archive(config, seed=seed)
    n = config.num_islands
    for pid in range(population):
        archive.add(_program(pid, n, seed))
        archive.migrate(pid)
    programs = [_program(pid, n, seed) for pid in range(population, population + ops)]
    add_s = sample_s = 0.0
    for program in programs:
        start = time.perf_counter()
        archive.add(program)
        middle = time.perf_counter()
        archive.sample(archive.island_for(program.iteration), program.iteration)
        add_s += middle - start
        sample_s += time.perf_counter() - middle
    start = time.perf_counter()
    migrations = 0
    for it in range(config.migration_interval, config.migration_interval * 51, config.migration_interval):
        archive.migrate(it)
        migrations += 1
    migrate_s = time.perf_counter() - start
    return {
        "add_us": add_s / ops * 1e6,
        "sample_us": sample_s / ops * 1e6,
        "add_sample_us": (add_s + sample_s) / ops * 1e6,
        "migrate_us": migrate_s / migrations * 1e6,
        "cells": sum(i["occupied_cells"] for i in archive.stats()["islands"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args()
    header = ("programs", "add+sample µs", "add µs", "sample µs", "migrate µs", "elites")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (9, 14, 8, 10, 11, 7))))
    for size in args.sizes:
        r = measure(size, args.ops)
        print(
            f"{size:>9} {r['add_sample_us']:>14.1f} {r['add_us']:>8.1f} {r['sample_us']:>10.1f} "
            f"{r['migrate_us']:>11.1f} {r['cells']:>7}"
        )


if __name__ == "__main__":
    main()
