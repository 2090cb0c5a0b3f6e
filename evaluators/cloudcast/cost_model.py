"""The cost of a validated plan: egress for the data each edge carries plus VM-hours for the transfer time.

- Egress: every partition that crosses edge e pays partition_gb x price_e, once per partition however many
  destinations' paths share the edge (a relay receives a partition once and forwards copies).
- Transfer time (fluid model, relays stream chunks as Skyplane's do): with V_e the gigabits edge e carries,
  the rates x_e = V_e / T are feasible iff no edge exceeds its throughput and no region exceeds its egress
  (sum over its out-edges) or ingress (sum over its in-edges) cap, so the shortest time is
      T = max( max_e V_e / tput_e,  max_r sum_out V / egress_r,  max_r sum_in V / ingress_r ).
- Instances: every region the plan touches (source, relays, destinations) runs its VMs for T.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluators.cloudcast.graph import Graph, Transfer

GBIT_PER_GB = 8.0


@dataclass(frozen=True)
class Cost:
    egress_usd: float
    instance_usd: float
    transfer_s: float
    regions_used: int
    bottleneck: str      # what sets the transfer time, in words

    @property
    def total_usd(self) -> float:
        return self.egress_usd + self.instance_usd


def plan_cost(graph: Graph, t: Transfer, partitions_per_edge: np.ndarray) -> Cost:
    n = np.asarray(partitions_per_edge, dtype=np.float64)
    gb = n * t.partition_gb
    egress = float(gb @ graph.price_per_gb)
    gbit = gb * GBIT_PER_GB
    used = n > 0
    edge_t = np.where(used, gbit / graph.throughput_gbps, 0.0)
    out_t = np.bincount(graph.edge_src, gbit, graph.size) / graph.egress_gbps
    in_t = np.bincount(graph.edge_dst, gbit, graph.size) / graph.ingress_gbps
    terms = {"edge": edge_t, "egress cap": out_t, "ingress cap": in_t}
    kind, arr = max(terms.items(), key=lambda kv: float(kv[1].max(initial=0.0)))
    T = float(arr.max(initial=0.0))
    if kind == "edge":
        e = int(arr.argmax())
        where = f"edge {graph.names[graph.edge_src[e]]} -> {graph.names[graph.edge_dst[e]]} " \
                f"({graph.throughput_gbps[e]:g} Gbps)"
    else:
        r = int(arr.argmax())
        cap = graph.egress_gbps[r] if kind == "egress cap" else graph.ingress_gbps[r]
        where = f"{kind} of {graph.names[r]} ({cap:g} Gbps)"
    regions = np.zeros(graph.size, dtype=bool)
    regions[graph.edge_src[used]] = regions[graph.edge_dst[used]] = True
    per_hour = float((graph.vms * graph.usd_per_vm_hour)[regions].sum())
    return Cost(egress, per_hour * T / 3600.0, T, int(regions.sum()), where)
