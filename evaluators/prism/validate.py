"""Check a placement: one list of model indices per GPU, every model exactly once, memory left on every GPU."""
from __future__ import annotations

from typing import Any

import numpy as np

from evaluators.base import InvalidOutput
from evaluators.prism.workloads import Case

SHOWN = 5  # how many models a message lists


def validate(result: Any, case: Case) -> np.ndarray:
    """Return gpu_of[model] (int64), or raise InvalidOutput naming the model or GPU that breaks a rule."""
    G, M = case.gpu_num, case.models
    if not isinstance(result, (list, tuple)) or len(result) != G:
        got = f"{type(result).__name__} of length {len(result)}" if isinstance(result, (list, tuple)) \
            else type(result).__name__
        raise InvalidOutput(f"place_models must return a list of {G} lists (one per GPU) of model indices, got {got}")
    gpu_of = np.full(M, -1, dtype=np.int64)
    for g, models in enumerate(result):
        for i in _indices(models, g):
            if not 0 <= i < M:
                raise InvalidOutput(f"GPU {g}: {i} is not a model index in [0, {M})")
            if gpu_of[i] >= 0:
                where = "twice on GPU" if gpu_of[i] == g else f"on GPU {gpu_of[i]} and GPU"
                raise InvalidOutput(f"model {i} is placed {where} {g}; every model goes on exactly one GPU")
            gpu_of[i] = g
    missing = np.flatnonzero(gpu_of < 0)
    if len(missing):
        shown = ", ".join(map(str, missing[:SHOWN])) + (f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else "")
        raise InvalidOutput(f"model{'s' if len(missing) > 1 else ''} {shown} on no GPU; every model must be placed")
    _check_memory(case, gpu_of)
    return gpu_of


def _indices(models: Any, g: int) -> list[int]:
    if isinstance(models, np.ndarray):
        if models.ndim != 1 or models.dtype == np.bool_ or not np.issubdtype(models.dtype, np.integer):
            raise InvalidOutput(f"GPU {g}: models must be a 1-D integer array, got shape {models.shape} {models.dtype}")
        return models.tolist()
    if not isinstance(models, (list, tuple)):
        raise InvalidOutput(f"GPU {g}: expected a list of model indices, got {type(models).__name__}")
    for i in models:
        if isinstance(i, bool) or not isinstance(i, int):
            text = repr(i)
            raise InvalidOutput(f"GPU {g}: {text[:40]} is not an integer model index")
    return list(models)


def _check_memory(case: Case, gpu_of: np.ndarray) -> None:
    used = np.bincount(gpu_of, weights=case.size_gb, minlength=case.gpu_num)
    over = np.flatnonzero(used >= case.gpu_mem_gb)
    if len(over):
        g = int(over[0])
        models = np.flatnonzero(gpu_of == g)
        listed = ", ".join(map(str, models[:2 * SHOWN])) + (f" and {len(models) - 2 * SHOWN} more"
                                                            if len(models) > 2 * SHOWN else "")
        raise InvalidOutput(f"GPU {g} holds models {listed} ({used[g]:.2f} GB), not less than "
                            f"its {case.gpu_mem_gb:g} GB; a GPU must keep free memory for the KV cache")
