"""Consistency-based repair in the style of HODOR (Krentsel et al., "The Case for Validating Inputs in
Software-Defined WANs", HotNets'24). Every link direction is measured twice (tx at one end, rx at the
other); pairs that agree within 2% are hardened. A router whose directions nearly all disagree with its
peers has a broken agent: its peers are believed. Other disagreements are settled by flow conservation at
the routers on both ends (the witness that balances them wins), and a direction that is the only open one
at a consistent router is solved from that router's conservation when neither witness balances it.
Repaired counters are flagged as suspect."""
import numpy as np

# EVOLVE-BLOCK-START
TAU = 0.02          # hardening threshold: witnesses within 2% agree
FLOOR = 10.0        # Mbps: tolerances below this are taken relative to 10 Mbps
BROKEN = 0.75       # a router whose directions disagree at least this often has a broken agent
SWEEPS = 3


def _close(a, b):
    return np.abs(a - b) <= TAU * np.maximum(np.maximum(np.abs(a), np.abs(b)), FLOOR)


def _residual(v, node, peer, n_nodes):
    """Per node: traffic in minus traffic out, and the larger of the two (v[i]: Mbps out of interface i)."""
    out = np.bincount(node, weights=v, minlength=n_nodes)
    inn = np.bincount(node, weights=v[peer], minlength=n_nodes)
    return inn - out, np.maximum(np.maximum(inn, out), FLOOR)


def _broken_routers(agree, node, peer, is_router, n_nodes):
    """Routers whose link directions (in and out) mostly disagree with the other end."""
    bad = (~agree).astype(float) + (~agree[peer]).astype(float)
    share = np.bincount(node, weights=bad, minlength=n_nodes) / np.maximum(2 * np.bincount(node, minlength=n_nodes), 1)
    return is_router & (share >= BROKEN)


def _by_conservation(d, a, b, v, node, peer, usable, n_nodes):
    """The witness of direction d that leaves the usable routers at its two ends most balanced."""
    ends = [n for n in (node[d], node[peer[d]]) if usable[n]]
    if not ends:
        return v[d]
    best, best_cost = v[d], np.inf
    for x in (a[d], b[d]):
        v[d] = x
        res, scale = _residual(v, node, peer, n_nodes)
        cost = sum(abs(res[n]) / scale[n] for n in ends)
        if cost < best_cost:
            best, best_cost = x, cost
    return best


def _solve(d, v, node, peer, usable, open_count, n_nodes):
    """Give d the value that balances a usable router at either end where d is the only open direction."""
    res, scale = _residual(v, node, peer, n_nodes)
    for n, sign in ((node[d], 1.0), (node[peer[d]], -1.0)):  # d leaves node[d] and enters node[peer[d]]
        if usable[n] and open_count[n] == 1 and abs(res[n]) > TAU * scale[n] and v[d] + sign * res[n] >= 0:
            return v[d] + sign * res[n]
    return v[d]


def repair(topology, counters):
    node = np.asarray(topology["iface_node"])
    peer = np.asarray(topology["iface_peer"])
    is_router = np.asarray(topology["is_router"], dtype=bool)
    n_nodes = len(is_router)
    tx = np.asarray(counters["tx"], dtype=float)
    rx = np.asarray(counters["rx"], dtype=float)
    a, b = tx, rx[peer]                   # the two witnesses of the direction out of each interface
    agree = _close(a, b)
    broken = _broken_routers(agree, node, peer, is_router, n_nodes)
    usable = is_router & ~broken
    # a broken agent's witness loses to its peer's; otherwise start from the sender's reading
    v = np.where(agree, (a + b) / 2, np.where(broken[node] & ~broken[node[peer]], b, a))
    settled = agree | (broken[node] != broken[node[peer]])
    doubtful = np.flatnonzero(~agree)
    open_count = np.bincount(node[doubtful], minlength=n_nodes) + np.bincount(node[peer[doubtful]], minlength=n_nodes)
    # settle the directions at the least disputed routers first: their conservation is the most telling
    open_dirs = np.flatnonzero(~settled)
    open_dirs = open_dirs[np.argsort(open_count[node[open_dirs]] + open_count[node[peer[open_dirs]]], kind="stable")]
    for _ in range(SWEEPS):
        for d in open_dirs:
            v[d] = _by_conservation(d, a, b, v, node, peer, usable, n_nodes)
    for d in doubtful:
        v[d] = _solve(d, v, node, peer, usable, open_count, n_nodes)
    new_tx, new_rx = v, v[peer]
    return {"tx": new_tx, "rx": new_rx,
            "suspect_tx": np.where(~_close(new_tx, tx), 1.0, np.where(agree, 0.0, 0.2)),
            "suspect_rx": np.where(~_close(new_rx, rx), 1.0, np.where(agree[peer], 0.0, 0.2))}
# EVOLVE-BLOCK-END
