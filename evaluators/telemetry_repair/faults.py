"""Corrupt true counters the way real telemetry goes wrong.

Every counter first gets measurement noise (polls of the two ends of a link are not simultaneous): a
relative N(0, 0.3%) error, well inside the 2% tolerance. Then faults:
- per counter, with probability `fault_rate`: zero (a failed poll reads 0), scale (a unit or width bug:
  x8, x1/8, x1000, x1/1000, x2, x1/2), noise (x(1 +- U(10%, 50%))), or, per interface, swap (tx and rx
  reported the other way round);
- `router_faults` routers whose agent misbehaves as a whole: every counter of theirs reads zero, or is
  scaled by one common factor, or is stale (each at 55-85% of its value, an earlier interval's reading).
A counter counts as corrupted when its reported value ends up outside the tolerance of the truth (so
zeroing an idle counter is harmless and not counted).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluators.telemetry_repair.topology import Topology
from evaluators.telemetry_repair.traffic import Counters

NOISE_SIGMA = 0.003
TOLERANCE = 0.02          # HODOR's 2% hardening threshold; also the scoring tolerance
FLOOR_MBPS = 10.0         # below this, tolerances are taken relative to 10 Mbps
SCALES = (8.0, 1 / 8, 1000.0, 1e-3, 2.0, 0.5)
KINDS = ("none", "zero", "scale", "noise", "swap", "router")
COUNTER_KINDS = (("zero", 0.3), ("scale", 0.3), ("noise", 0.25), ("swap", 0.15))


@dataclass(frozen=True)
class Corrupted:
    observed: Counters
    bad_tx: np.ndarray    # [interfaces] bool: reported tx outside tolerance of the truth
    bad_rx: np.ndarray
    kind_tx: np.ndarray   # [interfaces] int, index into KINDS of the fault applied (0: none)
    kind_rx: np.ndarray
    faulty_routers: tuple[int, ...]


def within(value: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """True where value is within the tolerance of truth."""
    return np.abs(value - truth) <= TOLERANCE * np.maximum(np.abs(truth), FLOOR_MBPS)


def _counter_faults(tx, rx, kind_tx, kind_rx, rate, rng) -> None:
    n = len(tx)
    names = [k for k, _ in COUNTER_KINDS]
    p = np.array([w for _, w in COUNTER_KINDS])
    for values, kinds in ((tx, kind_tx), (rx, kind_rx)):
        for i in np.flatnonzero(rng.random(n) < rate):
            kind = names[int(rng.choice(len(names), p=p / p.sum()))]
            if kind == "swap":
                tx[i], rx[i] = rx[i], tx[i]
                kind_tx[i] = kind_rx[i] = KINDS.index("swap")
                continue
            if kind == "zero":
                values[i] = 0.0
            elif kind == "scale":
                values[i] *= SCALES[int(rng.integers(len(SCALES)))]
            else:
                values[i] *= 1 + rng.choice((-1, 1)) * rng.uniform(0.1, 0.5)
            kinds[i] = KINDS.index(kind)


def _router_faults(topo: Topology, tx, rx, kind_tx, kind_rx, count, rng) -> tuple[int, ...]:
    routers = np.flatnonzero(topo.is_router)
    chosen = tuple(sorted(int(r) for r in rng.choice(routers, size=min(count, len(routers)), replace=False)))
    for r in chosen:
        ifaces = np.flatnonzero(topo.node == r)
        mode = int(rng.integers(3))
        factor = SCALES[int(rng.integers(len(SCALES)))]  # one factor for the whole agent (mode 1)
        for values in (tx, rx):
            if mode == 0:
                values[ifaces] = 0.0
            elif mode == 1:
                values[ifaces] *= factor
            else:
                values[ifaces] *= rng.uniform(0.55, 0.85, len(ifaces))
        kind_tx[ifaces] = kind_rx[ifaces] = KINDS.index("router")
    return chosen


def corrupt(topo: Topology, truth: Counters, fault_rate: float, router_faults: int,
            rng: np.random.Generator) -> Corrupted:
    tx = truth.tx * (1 + NOISE_SIGMA * rng.standard_normal(topo.n_ifaces))
    rx = truth.rx * (1 + NOISE_SIGMA * rng.standard_normal(topo.n_ifaces))
    kind_tx = np.zeros(topo.n_ifaces, dtype=np.int64)
    kind_rx = np.zeros(topo.n_ifaces, dtype=np.int64)
    _counter_faults(tx, rx, kind_tx, kind_rx, fault_rate, rng)
    routers = _router_faults(topo, tx, rx, kind_tx, kind_rx, router_faults, rng)
    return Corrupted(Counters(tx, rx), ~within(tx, truth.tx), ~within(rx, truth.rx), kind_tx, kind_rx, routers)
