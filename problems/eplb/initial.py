"""Initial EPLB program: DeepSeek's hierarchical load balancer, written with plain Python loops.

This is where the ADRS paper's search started (DeepSeek's EPLB, ~540 ms per rebalance); it balances well but
is slow. Per layer: 1. pack expert groups onto nodes (equal groups per node, balanced group load); 2. inside
each node, give every spare slot to the expert with the highest load per replica; 3. pack each node's
replicas onto its GPUs (equal replicas per GPU, heaviest first onto the lightest GPU with room).
"""
import numpy as np


# EVOLVE-BLOCK-START
def balanced_packing(weights, num_packs):
    """Pack items into num_packs packs of equal item count, heaviest item first onto the lightest pack
    that still has room. Returns (pack of each item, rank of each item inside its pack)."""
    n = len(weights)
    capacity = n // num_packs
    if capacity == 1:  # one item per pack: keep the items in order
        return list(range(n)), [0] * n
    order = sorted(range(n), key=lambda i: -weights[i])
    pack_load = [0.0] * num_packs
    pack_items = [0] * num_packs
    pack = [0] * n
    rank = [0] * n
    for item in order:
        best = -1
        for p in range(num_packs):
            if pack_items[p] < capacity and (best < 0 or pack_load[p] < pack_load[best]):
                best = p
        pack[item] = best
        rank[item] = pack_items[best]
        pack_load[best] += weights[item]
        pack_items[best] += 1
    return pack, rank


def replicate_experts(loads, num_slots):
    """Give each of the num_slots - len(loads) spare slots to the expert with the highest load per
    replica. Returns (expert of each slot, replica count of each expert)."""
    count = [1] * len(loads)
    slot_expert = list(range(len(loads)))
    for _ in range(num_slots - len(loads)):
        best = 0
        for e in range(1, len(loads)):
            if loads[e] / count[e] > loads[best] / count[best]:
                best = e
        slot_expert.append(best)
        count[best] += 1
    return slot_expert, count


def place_layer(load, num_replicas, num_groups, num_nodes, num_gpus):
    """One layer: returns (expert of each physical slot, replica count of each expert)."""
    num_experts = len(load)
    group_size = num_experts // num_groups
    groups_per_node = num_groups // num_nodes
    slots_per_node = num_replicas // num_nodes
    gpus_per_node = num_gpus // num_nodes
    slots_per_gpu = num_replicas // num_gpus
    # 1. groups -> nodes
    group_load = [sum(load[g * group_size:(g + 1) * group_size]) for g in range(num_groups)]
    group_node, group_rank = balanced_packing(group_load, num_nodes)
    node_experts = [[0] * (groups_per_node * group_size) for _ in range(num_nodes)]
    for g in range(num_groups):
        for j in range(group_size):
            node_experts[group_node[g]][group_rank[g] * group_size + j] = g * group_size + j
    phy2log = [0] * num_replicas
    logcnt = [0] * num_experts
    for node in range(num_nodes):
        experts = node_experts[node]
        # 2. replicate inside the node
        slot_expert, count = replicate_experts([load[e] for e in experts], slots_per_node)
        for i, e in enumerate(experts):
            logcnt[e] = count[i]
        # 3. replicas -> the node's GPUs
        replica_load = [load[experts[m]] / count[m] for m in slot_expert]
        gpu, rank = balanced_packing(replica_load, gpus_per_node)
        for r, m in enumerate(slot_expert):
            phy2log[node * slots_per_node + gpu[r] * slots_per_gpu + rank[r]] = experts[m]
    return phy2log, logcnt


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    rows = np.asarray(weight, dtype=np.float64).tolist()
    num_experts = len(rows[0])
    if num_groups % num_nodes or num_experts % num_groups:
        num_groups, num_nodes = 1, 1  # DeepSeek's global policy: one group, one node
    phy2log, logcnt = [], []
    for load in rows:
        p, c = place_layer(load, num_replicas, num_groups, num_nodes, num_gpus)
        phy2log.append(p)
        logcnt.append(c)
    return np.array(phy2log, dtype=np.int64), np.array(logcnt, dtype=np.int64)
# EVOLVE-BLOCK-END
