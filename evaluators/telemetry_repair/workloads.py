"""telemetry_repair workload ids: a generated topology, its traffic over several measurement intervals, and
the corrupted counters of each interval. The ground truth never leaves the trusted side.

    wan:seed<N>:routers<R>[:faults<P>][:routerfaults<K>][:intervals<T>]
    clos:seed<N>:spines<S>:leaves<L>[:hosts<H>][:faults<P>][:routerfaults<K>][:intervals<T>]

faults: probability that a counter gets an independent fault (default 0.08); routerfaults: routers per
interval whose agent corrupts all their counters (default 1); intervals: measurement intervals (default 4);
hosts: hosts per leaf (default 4).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from evaluators.base import ConfigError
from evaluators.telemetry_repair import topology as topo_mod
from evaluators.telemetry_repair.faults import Corrupted, corrupt
from evaluators.telemetry_repair.topology import Topology
from evaluators.telemetry_repair.traffic import Counters, Router, gravity, interval_demand, scale_to_capacity

DEFAULTS = {"faults": 0.08, "routerfaults": 1, "intervals": 4, "hosts": 4}
REQUIRED = {"wan": ("seed", "routers"), "clos": ("seed", "spines", "leaves")}
OPTIONAL = {"wan": ("faults", "routerfaults", "intervals"), "clos": ("hosts", "faults", "routerfaults", "intervals")}
RANGES = {"routers": (4, 400), "spines": (1, 64), "leaves": (2, 256), "hosts": (1, 64), "faults": (0.0, 0.5),
          "routerfaults": (0, 16), "intervals": (1, 64), "seed": (0, 2 ** 32 - 1)}


@dataclass(frozen=True)
class Interval:
    truth: Counters          # trusted side only
    corrupted: Corrupted     # .observed is what the candidate sees


@dataclass(frozen=True)
class Workload:
    id: str
    topology: Topology
    intervals: tuple[Interval, ...]


def parse(wid: str) -> tuple[str, dict[str, float]]:
    parts = wid.split(":")
    kind = parts[0]
    if kind not in REQUIRED:
        raise ConfigError(f"workload id '{wid}': unknown topology '{kind}' (known: clos, wan)")
    fields: dict[str, float] = {}
    for tok in parts[1:]:
        m = re.fullmatch(r"([a-z]+)([0-9]+(?:\.[0-9]+)?)", tok)
        if not m or m.group(1) not in REQUIRED[kind] + OPTIONAL[kind]:
            raise ConfigError(f"workload id '{wid}': bad part '{tok}' (expected "
                              f"{', '.join(k + '<N>' for k in REQUIRED[kind])}, optionally "
                              f"{', '.join(k + '<N>' for k in OPTIONAL[kind])})")
        if m.group(1) in fields:
            raise ConfigError(f"workload id '{wid}': '{m.group(1)}' given twice")
        fields[m.group(1)] = float(m.group(2))
    for req in REQUIRED[kind]:
        if req not in fields:
            raise ConfigError(f"workload id '{wid}': missing {req}<value>")
    for k, v in fields.items():
        lo, hi = RANGES[k]
        if not lo <= v <= hi or (k != "faults" and v != int(v)):
            raise ConfigError(f"workload id '{wid}': {k} must be {'a number' if k == 'faults' else 'an integer'} "
                              f"in [{lo}, {hi}], got {v:g}")
    return kind, {**DEFAULTS, **fields}


def build(wid: str) -> Workload:
    kind, f = parse(wid)
    rng = np.random.default_rng(int(f["seed"]))
    if kind == "wan":
        topo = topo_mod.wan(int(f["routers"]), rng)
    else:
        topo = topo_mod.clos(int(f["spines"]), int(f["leaves"]), int(f["hosts"]), rng)
    router = Router(topo)
    peak = scale_to_capacity(router, gravity(len(router.hosts), rng))
    intervals = []
    for _ in range(int(f["intervals"])):
        truth = router.route(interval_demand(peak, float(rng.uniform(0.5, 1.0)), rng))
        intervals.append(Interval(truth, corrupt(topo, truth, f["faults"], int(f["routerfaults"]), rng)))
    return Workload(wid, topo, tuple(intervals))
