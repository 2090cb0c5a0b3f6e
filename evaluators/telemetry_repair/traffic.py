"""True interface counters: a gravity-model demand matrix between hosts, routed hop by hop over equal-cost
shortest paths (each router splits what it forwards toward a destination evenly over its next hops, as ECMP
does), then read off every interface. By construction a link's tx at one end equals the rx at the other,
and every router forwards all it receives (sum of rx = sum of tx over its interfaces); hosts are the
sources and sinks."""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from evaluators.telemetry_repair.topology import Topology

PEAK_UTILISATION = 0.6   # the busiest link direction runs at this share of its capacity at full demand
GRAVITY_SIGMA = 1.0      # lognormal spread of host weights (some sites are much bigger than others)
PAIR_JITTER = 0.25       # lognormal per-pair, per-interval variation around the gravity model


@dataclass(frozen=True)
class Counters:
    tx: np.ndarray   # [interfaces] Mbps sent out of the interface
    rx: np.ndarray   # [interfaces] Mbps received on it


class Router:
    """Per-destination ECMP next-hop splits, computed once per topology."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        g = topo.graph()
        self.hosts = np.flatnonzero(~topo.is_router)
        self.iface_of = {(int(topo.node[i]), int(topo.node[topo.peer[i]])): i for i in range(topo.n_ifaces)}
        self.plans = [self._plan(g, int(d)) for d in self.hosts]

    def _plan(self, g: nx.Graph, dest: int) -> list[tuple[int, list[int]]]:
        """(node, out-interfaces toward dest) for every node, farthest first. Hosts hang off one router, so
        they are never anyone's next hop but the destination's."""
        dist = nx.single_source_shortest_path_length(g, dest)
        plan = []
        for u in sorted(dist, key=lambda x: (-dist[x], x)):
            if u == dest:
                continue
            nxt = [v for v in sorted(g.neighbors(u)) if dist.get(v, -1) == dist[u] - 1]
            plan.append((u, [self.iface_of[(u, v)] for v in nxt]))
        return plan

    def route(self, demand: np.ndarray) -> Counters:
        """demand[a, b]: Mbps from host a to host b (indices into self.hosts)."""
        topo = self.topo
        load = np.zeros(topo.n_ifaces)  # Mbps leaving each interface
        for k, plan in enumerate(self.plans):
            inflow = np.zeros(topo.n_nodes)
            inflow[self.hosts] = demand[:, k]
            for u, out in plan:
                if inflow[u] == 0.0:
                    continue
                share = inflow[u] / len(out)
                for i in out:
                    load[i] += share
                    inflow[topo.node[topo.peer[i]]] += share
        return Counters(tx=load.copy(), rx=load[topo.peer].copy())


def gravity(n_hosts: int, rng: np.random.Generator) -> np.ndarray:
    """Relative demand between hosts: w_a * w_b, no self-traffic."""
    w = rng.lognormal(0.0, GRAVITY_SIGMA, n_hosts)
    d = np.outer(w, w)
    np.fill_diagonal(d, 0.0)
    return d / d.sum()


def scale_to_capacity(router: Router, base: np.ndarray) -> np.ndarray:
    """The demand matrix scaled so its busiest interface runs at PEAK_UTILISATION."""
    c = router.route(base)
    util = np.max(c.tx / router.topo.capacity)
    return base * (PEAK_UTILISATION / util)


def interval_demand(peak: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """One measurement interval: the peak matrix at a diurnal `level` with per-pair jitter."""
    jitter = rng.lognormal(-PAIR_JITTER ** 2 / 2, PAIR_JITTER, peak.shape)
    return peak * level * jitter
