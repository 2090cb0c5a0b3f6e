"""First fit: each model, in index order, onto the lowest-numbered GPU that still has room for it
(load-oblivious: it fills GPUs with models and leaves the rest idle)."""


def place_models(gpu_num, gpu_mem_gb, size_gb, req_rate, slo):
    used = [0.0] * gpu_num
    placement = [[] for _ in range(gpu_num)]
    for i, size in enumerate(size_gb):
        g = next((g for g in range(gpu_num) if used[g] + size < gpu_mem_gb), None)
        if g is None:
            raise ValueError(f"model {i} ({size:.1f} GB) fits on no GPU")
        placement[g].append(i)
        used[g] += size
    return placement
