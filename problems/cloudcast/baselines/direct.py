"""Direct: each destination gets its own cheapest path (Dijkstra on the egress price); every partition
follows it. Paths that happen to share a prefix share those edges, but nothing is done to make them."""
import networkx as nx


def _digraph(graph):
    g = nx.DiGraph()
    g.add_nodes_from(range(len(graph["names"])))
    g.add_weighted_edges_from(zip(graph["edge_src"].tolist(), graph["edge_dst"].tolist(),
                                  graph["price_per_gb"].tolist()), weight="price")
    return g


def search_algorithm(src, dsts, graph, num_partitions):
    g = _digraph(graph)
    return [[nx.dijkstra_path(g, src, d, weight="price")] * num_partitions for d in dsts]
