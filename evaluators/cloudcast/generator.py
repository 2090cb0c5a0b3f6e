"""A seeded multi-cloud graph (REFERENCE.md: 71 regions of 3 providers) and a transfer over it.

Each provider places its regions in a seeded subset of the metro catalogue (at least two each in North
America, Europe and Asia, where every provider has several). Edges: a provider's regions form a full mesh
(its private backbone); across providers each region links to its `neighbours` nearest regions of each other
provider, both ways (a modelling choice: it keeps the graph sparse, ~3.5k edges at 71 regions, so that which
edges exist matters, as in a profiled grid with gaps). Prices and limits come from regions.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluators.cloudcast import regions as rg
from evaluators.cloudcast.graph import Graph, Transfer, Workload, check_transfer

ANCHOR_CONTINENTS = ("NA", "EU", "AS")
MODES = ("inter", "intra", *(f"intra-{p}" for p in rg.PROVIDERS))


@dataclass(frozen=True)
class GenParams:
    seed: int
    mode: str = "inter"        # destinations across providers, or all in the source's provider
    regions: int = 71
    destinations: int = 6
    partitions: int = 10
    data_gb: float = 300.0
    neighbours: int = 8        # inter-provider links per region and other provider


def provider_counts(total: int) -> list[int]:
    base, extra = divmod(total, len(rg.PROVIDERS))
    return [base + (i < extra) for i in range(len(rg.PROVIDERS))]


def _pick_metros(rng: np.random.Generator, count: int) -> list[rg.Metro]:
    chosen: list[int] = []
    for cont in ANCHOR_CONTINENTS:
        pool = [i for i, m in enumerate(rg.METROS) if m.continent == cont]
        chosen += rng.choice(pool, 2, replace=False).tolist()
    rest = [i for i in range(len(rg.METROS)) if i not in chosen]
    chosen += rng.choice(rest, count - len(chosen), replace=False).tolist()
    return [rg.METROS[i] for i in sorted(chosen)]


def build_graph(p: GenParams, rng: np.random.Generator, tput: rg.ThroughputModel = rg.ThroughputModel()) -> Graph:
    sites: list[tuple[str, rg.Metro]] = []
    for prov, n in zip(rg.PROVIDERS, provider_counts(p.regions)):
        sites += [(prov, m) for m in _pick_metros(rng, n)]
    R = len(sites)
    km = np.array([[rg.distance_km(a[1], b[1]) for b in sites] for a in sites])
    prov = np.array([s[0] for s in sites])
    pairs = _edge_pairs(prov, km, p.neighbours)
    src, dst = pairs[:, 0], pairs[:, 1]
    same = prov[src] == prov[dst]
    mean = np.array([tput.mean(km[u, v], bool(s)) for u, v, s in zip(src, dst, same)])
    per_pair = np.clip(mean * rng.lognormal(0.0, tput.noise_sigma, len(mean)), tput.floor, tput.ceil)
    vms = np.full(R, rg.VMS_PER_REGION, dtype=np.int64)
    price = np.array([rg.price(sites[u][0], sites[u][1].continent, sites[v][0], sites[v][1].continent)
                      for u, v in zip(src, dst)])
    return Graph(
        names=tuple(f"{pv}:{m.name}" for pv, m in sites), providers=tuple(prov.tolist()),
        ingress_gbps=vms * np.array([rg.VM_LIMITS[s[0]].ingress_gbps for s in sites]),
        egress_gbps=vms * np.array([rg.VM_LIMITS[s[0]].egress_gbps for s in sites]),
        vms=vms, usd_per_vm_hour=np.full(R, rg.USD_PER_VM_HOUR),
        edge_src=src.astype(np.int64), edge_dst=dst.astype(np.int64), price_per_gb=price,
        throughput_gbps=np.round(per_pair * vms[src].clip(max=vms[dst]), 3))


def _edge_pairs(prov: np.ndarray, km: np.ndarray, neighbours: int) -> np.ndarray:
    """Sorted (u, v) pairs: the full mesh inside each provider, k nearest of each other provider both ways."""
    R = len(prov)
    adj = (prov[:, None] == prov[None, :])
    for u in range(R):
        for other in rg.PROVIDERS:
            if other == prov[u]:
                continue
            cand = np.flatnonzero(prov == other)
            near = cand[np.argsort(km[u, cand], kind="stable")[:neighbours]]
            adj[u, near] = adj[near, u] = True
    np.fill_diagonal(adj, False)
    return np.argwhere(adj)


def pick_transfer(p: GenParams, g: Graph, rng: np.random.Generator) -> Transfer:
    prov = np.array(g.providers)
    if p.mode.startswith("intra"):
        name = p.mode.split("-", 1)[1] if "-" in p.mode else rg.PROVIDERS[int(rng.integers(len(rg.PROVIDERS)))]
        pool = np.flatnonzero(prov == name)
        source = int(rng.choice(pool))
        dsts = rng.choice(pool[pool != source], p.destinations, replace=False).tolist()
    else:
        source = int(rng.integers(g.size))
        order = rng.permutation(len(rg.PROVIDERS))
        dsts = []
        for k in range(p.destinations):  # spread round robin over the providers
            pool = [int(i) for i in np.flatnonzero(prov == rg.PROVIDERS[order[k % len(order)]])
                    if i != source and i not in dsts]
            dsts.append(int(rng.choice(pool)))
    return Transfer(source, tuple(int(d) for d in dsts), float(p.data_gb), int(p.partitions))


def generate(workload_id: str, p: GenParams) -> Workload:
    rng = np.random.default_rng(p.seed)
    g = build_graph(p, rng)
    t = pick_transfer(p, g, rng)
    check_transfer(g, t, f"workload id '{workload_id}'")
    return Workload(workload_id, g, t)
