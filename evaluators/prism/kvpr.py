"""KV-cache pressure of a placement, and a lower bound on the best maximum any placement can reach.

KVPR of a GPU = sum of req_rate/slo of its models / its free memory (GPU memory - sum of model sizes);
an empty GPU has KVPR 0. The objective is the maximum over GPUs.

Lower bound (every model placed, every GPU's free memory > 0): with W_g the numerator and F_g the free
memory of GPU g, sum W_g = sum (W_g / F_g) F_g <= max KVPR * sum F_g, and sum F_g = gpu_num * memory -
sum of sizes whatever the placement; so max KVPR >= total weight / total free memory. Also the GPU that
holds model i has KVPR >= w_i / (memory - size_i). The bound is the larger of the two.
"""
from __future__ import annotations

import numpy as np

from evaluators.prism.workloads import Case


def gpu_kvpr(case: Case, gpu_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(KVPR per GPU, free GB per GPU) of a validated assignment gpu_of[model] -> GPU."""
    used = np.bincount(gpu_of, weights=case.size_gb, minlength=case.gpu_num)
    load = np.bincount(gpu_of, weights=case.weight, minlength=case.gpu_num)
    free = case.gpu_mem_gb - used
    return np.divide(load, free, out=np.zeros(case.gpu_num), where=load > 0), free


def lower_bound(case: Case) -> float:
    pooled = case.weight.sum() / (case.gpu_num * case.gpu_mem_gb - case.size_gb.sum())
    alone = (case.weight / (case.gpu_mem_gb - case.size_gb)).max()
    return float(max(pooled, alone))
