"""Steiner overlay: one tree from the source to every destination, shared by all partitions.

networkx's Steiner-tree approximation (Mehlhorn, within 2x of the optimum) works on undirected graphs, so a
link's weight is the mean of its two directions' prices; the tree is then oriented away from the source,
and a tree hop whose direction has no edge is replaced by the cheapest directed path."""
import networkx as nx
from networkx.algorithms.approximation import steiner_tree


def _digraph(graph):
    g = nx.DiGraph()
    g.add_nodes_from(range(len(graph["names"])))
    g.add_weighted_edges_from(zip(graph["edge_src"].tolist(), graph["edge_dst"].tolist(),
                                  graph["price_per_gb"].tolist()), weight="price")
    return g


def _undirected(g):
    u = nx.Graph()
    for a, b, price in g.edges(data="price"):
        back = g.edges[b, a]["price"] if g.has_edge(b, a) else price
        u.add_edge(a, b, weight=(price + back) / 2)
    return u


def search_algorithm(src, dsts, graph, num_partitions):
    g = _digraph(graph)
    tree = steiner_tree(_undirected(g), [src, *dsts], weight="weight", method="mehlhorn")
    overlay = nx.DiGraph()
    for a, b in nx.bfs_edges(tree, src):  # orient away from the source
        hop = [a, b] if g.has_edge(a, b) else nx.dijkstra_path(g, a, b, weight="price")
        nx.add_path(overlay, hop)
    for a, b in overlay.edges:
        overlay.edges[a, b]["price"] = g.edges[a, b]["price"]
    return [[nx.dijkstra_path(overlay, src, d, weight="price")] * num_partitions for d in dsts]
