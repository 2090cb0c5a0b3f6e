"""The multi-cloud graph and the transfer to run over it (the trusted side's copy; the candidate gets a view).

A region runs `vms` VMs; its ingress/egress caps are vms x the per-VM limits. An edge u -> v has a price
(USD/GB, paid by the sender) and a throughput per VM pair, so the edge carries at most
min(vms of its ends) x that (`throughput_gbps` here is already that total).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from evaluators.base import ConfigError


@dataclass(frozen=True)
class Graph:
    names: tuple[str, ...]
    providers: tuple[str, ...]
    ingress_gbps: np.ndarray      # [R] per region, all its VMs together
    egress_gbps: np.ndarray       # [R]
    vms: np.ndarray               # [R] int
    usd_per_vm_hour: np.ndarray   # [R]
    edge_src: np.ndarray          # [E] int64
    edge_dst: np.ndarray          # [E] int64
    price_per_gb: np.ndarray      # [E]
    throughput_gbps: np.ndarray   # [E] all the VM pairs of the two regions together
    edge_index: dict[tuple[int, int], int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for a in (self.ingress_gbps, self.egress_gbps, self.vms, self.usd_per_vm_hour, self.edge_src,
                  self.edge_dst, self.price_per_gb, self.throughput_gbps):
            a.setflags(write=False)
        index = {(int(u), int(v)): i for i, (u, v) in enumerate(zip(self.edge_src, self.edge_dst))}
        if len(index) != len(self.edge_src):
            raise ConfigError("graph: an edge is listed twice")
        self.edge_index.update(index)

    @property
    def size(self) -> int:
        return len(self.names)

    def index_of(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ConfigError(f"unknown region '{name}'") from None

    def to_networkx(self) -> nx.DiGraph:
        """Regions as nodes 0..R-1, edges weighted by `price` (USD/GB)."""
        g = nx.DiGraph()
        g.add_nodes_from(range(self.size))
        g.add_weighted_edges_from(zip(self.edge_src.tolist(), self.edge_dst.tolist(), self.price_per_gb.tolist()),
                                  weight="price")
        return g

    def price_matrix(self) -> np.ndarray:
        """[R, R] price of u -> v, inf where there is no edge, 0 on the diagonal."""
        m = np.full((self.size, self.size), np.inf)
        m[self.edge_src, self.edge_dst] = self.price_per_gb
        np.fill_diagonal(m, 0.0)
        return m


@dataclass(frozen=True)
class Transfer:
    source: int
    destinations: tuple[int, ...]
    data_gb: float
    partitions: int

    @property
    def partition_gb(self) -> float:
        return self.data_gb / self.partitions


@dataclass(frozen=True)
class Workload:
    workload_id: str
    graph: Graph
    transfer: Transfer


def check_transfer(graph: Graph, t: Transfer, where: str) -> None:
    """The rules every workload obeys: distinct destinations, none the source, all reachable."""
    if not t.destinations:
        raise ConfigError(f"{where}: no destinations")
    if len(set(t.destinations)) != len(t.destinations) or t.source in t.destinations:
        raise ConfigError(f"{where}: destinations must be distinct and exclude the source")
    if not (t.data_gb > 0 and np.isfinite(t.data_gb)) or not 1 <= t.partitions <= 1000:
        raise ConfigError(f"{where}: data_gb must be > 0 and partitions in [1, 1000]")
    reach = nx.descendants(graph.to_networkx(), t.source)
    for d in t.destinations:
        if d not in reach:
            raise ConfigError(f"{where}: destination {graph.names[d]} is unreachable from {graph.names[t.source]}")


def candidate_view(w: Workload) -> dict[str, Any]:
    """What the candidate is sent: copies, so nothing it does reaches the trusted graph."""
    g = w.graph
    return {
        "names": list(g.names), "providers": list(g.providers),
        "ingress_gbps": g.ingress_gbps.copy(), "egress_gbps": g.egress_gbps.copy(),
        "vms": g.vms.copy(), "usd_per_vm_hour": g.usd_per_vm_hour.copy(),
        "edge_src": g.edge_src.copy(), "edge_dst": g.edge_dst.copy(),
        "price_per_gb": g.price_per_gb.copy(), "throughput_gbps": g.throughput_gbps.copy(),
        "data_gb": float(w.transfer.data_gb),
    }
