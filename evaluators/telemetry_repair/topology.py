"""Network topologies for telemetry repair: routers and hosts joined by links, each link end an interface.

Two generators (networkx builds the graphs):
- wan: a small-world mesh of routers (Watts-Strogatz, degree about 4), one or two hosts (customer sites,
  traffic sources and sinks) on every router; router links 100 Gbps, host links 10 or 40 Gbps.
- clos: a leaf-spine data centre fabric: every leaf connects to every spine (100 Gbps), hosts hang off
  leaves (25 Gbps); traffic between leaves spreads over all spines (ECMP).
Interface i sits on node `node[i]`; `peer[i]` is the interface at the other end of its link.
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

ROUTER_LINK_MBPS = 100_000.0


@dataclass(frozen=True)
class Topology:
    names: tuple[str, ...]       # node names
    is_router: np.ndarray        # [nodes] bool; hosts are the rest
    node: np.ndarray             # [interfaces] int64, the node an interface sits on
    peer: np.ndarray             # [interfaces] int64, the interface at the other end of the link
    capacity: np.ndarray         # [interfaces] float64, link speed in Mbps

    @property
    def n_nodes(self) -> int:
        return len(self.names)

    @property
    def n_ifaces(self) -> int:
        return len(self.node)

    def graph(self) -> nx.Graph:
        g = nx.Graph()
        g.add_nodes_from(range(self.n_nodes))
        g.add_edges_from((int(self.node[i]), int(self.node[self.peer[i]])) for i in range(self.n_ifaces))
        return g

    def as_candidate_input(self) -> dict:
        """What the candidate sees of the topology (fresh copies)."""
        return {"node_names": list(self.names), "is_router": self.is_router.copy(),
                "iface_node": self.node.copy(), "iface_peer": self.peer.copy(),
                "iface_capacity_mbps": self.capacity.copy()}


def _build(names: list[str], is_router: list[bool], edges: list[tuple[int, int, float]]) -> Topology:
    node, peer, cap = [], [], []
    for u, v, c in edges:
        i = len(node)
        node += [u, v]
        peer += [i + 1, i]
        cap += [c, c]
    return Topology(tuple(names), np.asarray(is_router, dtype=bool), np.asarray(node, dtype=np.int64),
                    np.asarray(peer, dtype=np.int64), np.asarray(cap, dtype=np.float64))


def _add_hosts(names, is_router, edges, router_ids, per_router, rng, speeds) -> None:
    for r, k in zip(router_ids, per_router):
        for j in range(int(k)):
            names.append(f"{names[r]}-h{j}")
            is_router.append(False)
            edges.append((r, len(names) - 1, float(rng.choice(speeds))))


def wan(routers: int, rng: np.random.Generator) -> Topology:
    g = nx.connected_watts_strogatz_graph(routers, 4, 0.3, seed=int(rng.integers(1 << 31)))
    names = [f"r{i}" for i in range(routers)]
    is_router = [True] * routers
    edges = [(min(u, v), max(u, v), ROUTER_LINK_MBPS) for u, v in sorted(g.edges())]
    per = 1 + (rng.random(routers) < 0.3)
    _add_hosts(names, is_router, edges, range(routers), per, rng, (10_000.0, 40_000.0))
    return _build(names, is_router, edges)


def clos(spines: int, leaves: int, hosts_per_leaf: int, rng: np.random.Generator) -> Topology:
    names = [f"spine{i}" for i in range(spines)] + [f"leaf{i}" for i in range(leaves)]
    is_router = [True] * (spines + leaves)
    edges = [(s, spines + l, ROUTER_LINK_MBPS) for l in range(leaves) for s in range(spines)]
    _add_hosts(names, is_router, edges, range(spines, spines + leaves), [hosts_per_leaf] * leaves, rng, (25_000.0,))
    return _build(names, is_router, edges)
