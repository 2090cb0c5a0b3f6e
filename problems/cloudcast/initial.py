"""Initial cloudcast program: every destination on its own, by a direct edge or one relay."""
import numpy as np


# EVOLVE-BLOCK-START
def search_algorithm(src, dsts, graph, num_partitions):
    price = {(int(u), int(v)): float(c)
             for u, v, c in zip(graph["edge_src"], graph["edge_dst"], graph["price_per_gb"])}
    out_of = {}
    for u, v in price:
        out_of.setdefault(u, []).append(v)
    plan = []
    for d in dsts:
        # the direct edge if there is one, else the cheapest relay r with src -> r -> d
        best, best_cost = None, np.inf
        if (src, d) in price:
            best, best_cost = [src, d], price[(src, d)]
        for r in out_of.get(src, []):
            if r != d and (r, d) in price:
                cost = price[(src, r)] + price[(r, d)]
                if cost < 0.5 * best_cost:  # a relay must halve the price to be worth the extra hop
                    best, best_cost = [src, r, d], cost
        if best is None:
            raise ValueError(f"no path of at most two hops to region {d}")
        plan.append([best] * num_partitions)
    return plan
# EVOLVE-BLOCK-END
