"""MoETuner-style placement: balance the load AND keep each group's tokens on few nodes, as an integer program.

MoETuner (Go & Mahajan, 2025) places experts with an ILP that trades GPU load balance against token traffic
between GPUs. Only per-expert loads are seen here, and DeepSeek-V3 routes a token inside at most 4 groups, so
the traffic a placement causes grows with how many nodes each group is spread over. Per layer:
1. replicate: each spare slot to the expert with the highest load per replica (DeepSeek's rule, cluster-wide);
2. node ILP (scipy.optimize.milp, HiGHS) over c[g, n] = replicas of group g on node n:
     minimise  M + SPREAD * mean_node_load * sum_{g,n} u[g, n] * (share of load in group g) * num_groups / num_nodes
     s.t.      sum_n c[g, n] = replicas of g;  sum_g c[g, n] = slots per node;  c[g, n] <= replicas(g) * u[g, n]
               sum_g c[g, n] * (load of g / replicas of g) <= M            (u binary, c integer)
   Instances with more than ILP_MAX_CELLS (group, node) cells, or without scipy, use the greedy instead:
   groups to nodes by balanced packing, replicas spilled to the least loaded node with room;
3. each group's replicas go to its nodes' quotas heaviest first (onto the lighter node), then every node's
   replicas are packed onto its GPUs heaviest first onto the lightest GPU with room.
"""
import numpy as np

SPREAD = 0.05          # load-units cost of spreading a group over one more node, relative to the mean node load
ILP_MAX_CELLS = 32     # groups * nodes: ep32 (8 x 4) is solved as an ILP, ep64 (8 x 8) by the greedy
ILP_TIME_LIMIT_S = 0.01    # per layer, so 58 layers stay well inside the 3 s call limit
ILP_GAP = 0.01

try:
    from scipy.optimize import Bounds, LinearConstraint, milp
except ImportError:  # the sandbox image may not ship scipy: the greedy is used then
    milp = None


def _replicate(load, num_slots):
    count = np.ones(len(load), dtype=np.int64)
    for _ in range(num_slots - len(load)):
        count[np.argmax(load / count)] += 1
    return count


def _node_quota_ilp(group_load, group_reps, slots_per_node):
    """c[g, n] from the ILP above, or None when the solver finds nothing in time."""
    G, N = len(group_load), slots_per_node.size
    nv = 2 * G * N + 1                                   # c (G*N), u (G*N), M
    per_rep = group_load / group_reps
    mean_node = group_load.sum() / N
    cost = np.zeros(nv)
    cost[G * N:2 * G * N] = SPREAD * mean_node * np.repeat(group_load / max(group_load.sum(), 1e-12), N) * G / N
    cost[-1] = 1.0
    rows, lo, hi = [], [], []

    def row():
        r = np.zeros(nv)
        rows.append(r)
        return r

    for g in range(G):
        r = row()
        r[g * N:(g + 1) * N] = 1
        lo.append(group_reps[g])
        hi.append(group_reps[g])
        for n in range(N):
            r = row()
            r[g * N + n], r[G * N + g * N + n] = 1, -group_reps[g]
            lo.append(-np.inf)
            hi.append(0)
    for n in range(N):
        r = row()
        r[n:G * N:N] = 1
        lo.append(slots_per_node[n])
        hi.append(slots_per_node[n])
        r = row()
        r[n:G * N:N] = per_rep
        r[-1] = -1
        lo.append(-np.inf)
        hi.append(0)
    upper = np.concatenate([np.repeat(group_reps, N), np.ones(G * N), [np.inf]])
    res = milp(cost, constraints=LinearConstraint(np.array(rows), lo, hi), integrality=np.r_[np.ones(2 * G * N), 0],
               bounds=Bounds(np.zeros(nv), upper), options={"time_limit": ILP_TIME_LIMIT_S, "mip_rel_gap": ILP_GAP})
    if res.x is None:
        return None
    return np.rint(res.x[:G * N]).astype(np.int64).reshape(G, N)


def _node_quota_greedy(group_load, group_reps, slots_per_node):
    """Groups to nodes by balanced packing (equal groups per node when they divide), then each group's
    replicas on its home node while it has room, the rest on the least loaded node with room."""
    G, N = len(group_load), slots_per_node.size
    home, node_load, node_groups = np.zeros(G, dtype=np.int64), np.zeros(N), np.zeros(N, dtype=np.int64)
    cap = G // N if G % N == 0 else G
    for g in np.argsort(-group_load, kind="stable"):
        n = int(np.argmin(np.where(node_groups < cap, node_load, np.inf)))
        home[g], node_load[n], node_groups[n] = n, node_load[n] + group_load[g], node_groups[n] + 1
    quota, room, load = np.zeros((G, N), dtype=np.int64), slots_per_node.copy(), np.zeros(N)
    for g in np.argsort(-group_load / group_reps, kind="stable"):
        for _ in range(group_reps[g]):
            n = home[g] if room[home[g]] > 0 else int(np.argmin(np.where(room > 0, load, np.inf)))
            quota[g, n] += 1
            room[n] -= 1
            load[n] += group_load[g] / group_reps[g]
    return quota


def _pack(weights, bins, capacity):
    """Heaviest first onto the lightest bin with room; returns the bin of each item."""
    where, load, used = np.zeros(len(weights), dtype=np.int64), np.zeros(bins), np.zeros(bins, dtype=np.int64)
    for i in np.argsort(-weights, kind="stable"):
        b = int(np.argmin(np.where(used < capacity, load, np.inf)))
        where[i], load[b], used[b] = b, load[b] + weights[i], used[b] + 1
    return where


def _layer(load, num_replicas, num_groups, num_nodes, num_gpus):
    E = len(load)
    size, per_node, per_gpu = E // num_groups, num_replicas // num_nodes, num_replicas // num_gpus
    count = _replicate(load, num_replicas)
    group_load = load.reshape(num_groups, size).sum(axis=1)
    group_reps = count.reshape(num_groups, size).sum(axis=1)
    slots = np.full(num_nodes, per_node, dtype=np.int64)
    quota = None
    if milp is not None and num_groups * num_nodes <= ILP_MAX_CELLS:
        quota = _node_quota_ilp(group_load, group_reps, slots)
    if quota is None:
        quota = _node_quota_greedy(group_load, group_reps, slots)
    node_items = [[] for _ in range(num_nodes)]
    node_load = np.zeros(num_nodes)
    for g in range(num_groups):
        experts = np.arange(g * size, (g + 1) * size)
        reps = np.repeat(experts, count[experts])
        share = load[reps] / count[reps]
        left = quota[g].copy()
        for r in np.argsort(-share, kind="stable"):
            n = int(np.argmin(np.where(left > 0, node_load, np.inf)))
            node_items[n].append((reps[r], share[r]))
            node_load[n] += share[r]
            left[n] -= 1
    phy2log = np.empty(num_replicas, dtype=np.int64)
    gpus_per_node = num_gpus // num_nodes
    for n, items in enumerate(node_items):
        experts = np.array([e for e, _ in items], dtype=np.int64)
        gpu = _pack(np.array([w for _, w in items]), gpus_per_node, per_gpu)
        for b in range(gpus_per_node):
            start = n * per_node + b * per_gpu
            phy2log[start:start + per_gpu] = experts[gpu == b]
    return phy2log, count


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    weight = np.asarray(weight, dtype=np.float64)
    if weight.shape[1] % num_groups:
        num_groups = 1
    out = [_layer(row, num_replicas, num_groups, num_nodes, num_gpus) for row in weight]
    return np.stack([p for p, _ in out]), np.stack([c for _, c in out])
