"""Prism's greedy placement: heaviest req_rate/slo first, each model onto the GPU (with room) whose KVPR
after placing it is lowest."""
import numpy as np


def place_models(gpu_num, gpu_mem_gb, size_gb, req_rate, slo):
    weight = np.asarray(req_rate, dtype=float) / np.asarray(slo, dtype=float)
    size = np.asarray(size_gb, dtype=float)
    free = np.full(gpu_num, float(gpu_mem_gb))
    load = np.zeros(gpu_num)
    placement = [[] for _ in range(gpu_num)]
    for i in sorted(range(len(size)), key=lambda i: (-weight[i], i)):
        after = free - size[i]
        kvpr = np.where(after > 0, (load + weight[i]) / np.where(after > 0, after, 1.0), np.inf)
        g = int(np.argmin(kvpr))
        if not np.isfinite(kvpr[g]):
            raise ValueError(f"model {i} ({size[i]:.1f} GB) fits on no GPU")
        placement[g].append(i)
        free[g] -= size[i]
        load[g] += weight[i]
    return placement
