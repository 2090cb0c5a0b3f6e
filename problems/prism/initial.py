"""Initial placement: balance request weight only. Models in index order, each onto the GPU with room
whose summed req_rate/slo is smallest so far; memory is only checked, never weighed."""


# EVOLVE-BLOCK-START
def place_models(gpu_num, gpu_mem_gb, size_gb, req_rate, slo):
    placement = [[] for _ in range(gpu_num)]
    load = [0.0] * gpu_num
    used = [0.0] * gpu_num
    for i in range(len(size_gb)):
        weight = req_rate[i] / slo[i]
        room = [g for g in range(gpu_num) if used[g] + size_gb[i] < gpu_mem_gb - 1.0]
        g = min(room, key=lambda g: load[g] + 0.0 * used[g])
        placement[g].append(i)
        load[g] += weight
        used[g] += size_gb[i]
    return placement
# EVOLVE-BLOCK-END
