"""A lower bound on the cost of any valid plan; the score is bound / cost, so it lies in (0, 1].

Egress: each partition's paths contain an arborescence from the source spanning the destinations, so a
partition pays at least partition_gb x (cheapest directed Steiner arborescence price). That price is computed
exactly (Dreyfus-Wagner over the metric closure: 3^k subset splits, k destinations) for up to
EXACT_MAX_DESTINATIONS destinations; beyond, the bound falls back to max(cheapest path to any destination,
sum over destinations of their cheapest in-edge), both valid.
Instances: the source and every destination run for at least T_lb, where the whole dataset must leave the
source and enter each destination within their caps (and within the throughput of their edges).
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from evaluators.cloudcast.cost_model import GBIT_PER_GB
from evaluators.cloudcast.graph import Graph, Transfer

EXACT_MAX_DESTINATIONS = 10


@dataclass(frozen=True)
class Bound:
    tree_price_per_gb: float  # cheapest overlay for one byte to reach every destination (USD/GB)
    exact: bool               # True when tree_price_per_gb is the optimum, not only a bound
    egress_usd: float
    instance_usd: float
    transfer_s: float

    @property
    def total_usd(self) -> float:
        return self.egress_usd + self.instance_usd


def closure(graph: Graph) -> np.ndarray:
    """[R, R] cheapest path price u -> v (inf where unreachable)."""
    return np.asarray(nx.floyd_warshall_numpy(graph.to_networkx(), nodelist=range(graph.size), weight="price"))


def steiner_price(dist: np.ndarray, source: int, terminals: tuple[int, ...]) -> float:
    """Dreyfus-Wagner: dp[S][v] = cheapest arborescence rooted at v reaching the terminals in S."""
    k = len(terminals)
    full = (1 << k) - 1
    dp = np.full((full + 1, dist.shape[0]), np.inf)
    for i, t in enumerate(terminals):
        dp[1 << i] = dist[:, t]
    for S in range(1, full + 1):
        if S & (S - 1) == 0:
            continue
        low = S & -S
        merged = np.full(dist.shape[0], np.inf)
        A = (S - 1) & S
        while A:
            if A & low:  # each split once: the part holding S's lowest terminal
                np.minimum(merged, dp[A] + dp[S ^ A], out=merged)
            A = (A - 1) & S
        dp[S] = (dist + merged[None, :]).min(axis=1)
    return float(dp[full, source])


def _fallback_price(graph: Graph, dist: np.ndarray, t: Transfer) -> float:
    cheapest_in = [float(graph.price_per_gb[graph.edge_dst == d].min()) for d in t.destinations]
    return max(max(dist[t.source, d] for d in t.destinations), sum(cheapest_in))


def _min_time_s(graph: Graph, t: Transfer) -> float:
    gbit = t.data_gb * GBIT_PER_GB
    out_cap = min(graph.egress_gbps[t.source], graph.throughput_gbps[graph.edge_src == t.source].sum())
    worst = min(min(graph.ingress_gbps[d], graph.throughput_gbps[graph.edge_dst == d].sum()) for d in t.destinations)
    return gbit / min(out_cap, worst)


def lower_bound(graph: Graph, t: Transfer) -> Bound:
    dist = closure(graph)
    exact = len(t.destinations) <= EXACT_MAX_DESTINATIONS
    price = steiner_price(dist, t.source, t.destinations) if exact else _fallback_price(graph, dist, t)
    T = _min_time_s(graph, t)
    always = [t.source, *t.destinations]
    per_hour = float((graph.vms * graph.usd_per_vm_hour)[always].sum())
    return Bound(price, exact, t.data_gb * price, per_hour * T / 3600.0, T)
