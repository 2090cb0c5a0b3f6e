"""MoE layer microbenchmark for an expert placement: the expert GEMMs each simulated GPU would run, timed on
the one real device.

For a placement (EPLB's phy2log/logcnt, validated by evaluators/eplb/validate.py) and a load window, one
forward step's expert assignments are the window's load shares times step_tokens * top_k (their expected
values, so the benchmark is deterministic), split over each expert's replicas as the EPLB cost model splits
them (evaluators/eplb/replica_routing.py, `even` routing). Simulated GPU g holds slots
g*per_gpu .. (g+1)*per_gpu - 1; its time is that of running, for each local slot with tokens, the expert's
gate/up GEMM, SiLU-and-multiply and down GEMM on its own tokens (random weights: DeepSeek-V3 expert shapes
in bf16 on a GPU, tiny ones on the CPU). Layer time = the maximum over simulated GPUs; the ideal is one GPU
with the mean tokens spread over the fewest experts any placement could leave it (the EPLB cost model's
lower bound, measured the same way), and score = sum of ideals / sum of layer times over the sampled layers,
in (0, 1] (a measured layer faster than its ideal, within noise, is capped at 1).

Only expert compute is measured: dispatch and combine (DeepEP) need the real multi-node cluster. The EPLB
cost model's compute term for the same tokens is reported beside each layer, so its error can be read off.
Simplification: one cuBLAS GEMM per local expert (a grouped GEMM such as DeepGEMM would fuse them).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from evaluators.eplb.cost_model import Coefficients
from evaluators.eplb.replica_routing import slot_tokens
from evaluators.eplb.settings import ExpertShape
from evaluators.eplb.validate import replica_slots, validate
from evaluators.gpu.bench import Bench

TINY_EXPERT = ExpertShape(hidden=256, intermediate=128)
VERIFY_BUDGET_S = 50.0   # layers are sampled until one verification would pass this


@dataclass(frozen=True)
class Deployment:
    """What the benchmark needs of an EPLB setting."""

    num_gpus: int
    slots_per_gpu: int
    step_tokens: int       # tokens of one forward step across the EP group
    top_k: int

    @staticmethod
    def of(setting: Any, top_k: int) -> "Deployment":
        return Deployment(setting.num_gpus, setting.slots_per_gpu, setting.step_tokens, top_k)


def step_slot_tokens(load: np.ndarray, phy2log: np.ndarray, logcnt: np.ndarray, dep: Deployment) -> np.ndarray:
    """[L, R] whole tokens each physical slot serves in one step at the window's load shares."""
    load = np.asarray(load, dtype=np.float64)
    total = load.sum(axis=1, keepdims=True)
    share = np.divide(load, total, out=np.full_like(load, 1.0 / load.shape[1]), where=total > 0)
    counts = dep.step_tokens * dep.top_k * share
    tokens = slot_tokens(counts[None], phy2log, logcnt, replica_slots(phy2log, logcnt), dep.slots_per_gpu, "even")[0]
    return np.rint(tokens).astype(np.int64)


def fewest_per_gpu(load: np.ndarray, logcnt: np.ndarray, num_gpus: int) -> np.ndarray:
    """[L] experts the ideal GPU runs: the fewest active replicas any placement can have (every slot when all
    experts have load, as the cost model's even-routing bound), over the GPUs, rounded up."""
    nonzero = (np.asarray(load) > 0).sum(axis=1)
    active = np.where(nonzero == load.shape[1], logcnt.sum(axis=1), nonzero)
    return np.maximum(1, -(-active // num_gpus))


def sample_layers(num_layers: int, count: int) -> list[int]:
    """`count` layers spread evenly over the stack (first and last included), deterministic."""
    if count >= num_layers:
        return list(range(num_layers))
    return sorted({int(round(x)) for x in np.linspace(0, num_layers - 1, count)})


class ExpertPool:
    """One simulated GPU's worth of expert weights and an input buffer, reused for every simulated GPU: each
    expert's weights (88 MB at DeepSeek-V3 shapes) and tokens are far larger than the L2 and the cache is
    flushed between runs, so reuse does not flatter the timing."""

    def __init__(self, backend: Any, shape: ExpertShape, slots_per_gpu: int, max_tokens: int) -> None:
        self.b, self.shape = backend, shape
        h, i = shape.hidden, shape.intermediate
        self.gate_up = [backend.randn(h, 2 * i, scale=h ** -0.5) for _ in range(slots_per_gpu)]
        self.down = [backend.randn(i, h, scale=i ** -0.5) for _ in range(slots_per_gpu)]
        self.x = backend.randn(max(int(max_tokens), 1), h)

    def gpu_fn(self, tokens: np.ndarray):
        """The work of one simulated GPU whose local slots serve `tokens` (one entry per slot)."""
        F = self.b.torch.nn.functional
        starts = np.concatenate([[0], np.cumsum(tokens)[:-1]])
        work = [(j, int(s), int(t)) for j, (s, t) in enumerate(zip(starts, tokens)) if t > 0]

        def run() -> None:
            for j, s, t in work:
                gate, up = (self.x[s:s + t] @ self.gate_up[j]).chunk(2, dim=-1)
                (F.silu(gate) * up) @ self.down[j]
        return self.b.graphed(run, f"experts {tokens.tolist()}") if work else run


@dataclass(frozen=True)
class LayerResult:
    layer: int
    gpu_s: list[float]             # measured per simulated GPU
    layer_s: float                 # max over GPUs
    ideal_s: float
    model_gpu_s: list[float]       # the EPLB cost model's compute term for the same tokens
    model_layer_s: float
    model_ideal_s: float
    tokens: list[int]              # per simulated GPU
    active: list[int]
    flagged: bool


@dataclass(frozen=True)
class PlacementResult:
    name: str
    score: float                   # sum ideal / sum layer time, capped at 1
    raw_ratio: float               # before the cap
    model_score: float             # the cost model's compute-only ideal / layer time for the same layers
    layer_time_s: float            # mean over the measured layers
    model_layer_time_s: float
    model_layer_error: float       # mean |model - measured| / measured over layers
    layers: list[LayerResult] = field(default_factory=list)
    elapsed_s: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def model_compute(tokens: np.ndarray, active: np.ndarray, coef: Coefficients) -> np.ndarray:
    """The EPLB cost model's compute time of whole steps (one micro-batch): fixed per active replica plus
    per-token work."""
    return coef.fixed_s * active + coef.per_token_s * tokens


def measure_placement(bench: Bench, pool: ExpertPool, name: str, phy2log: Any, logcnt: Any, load: np.ndarray,
                      dep: Deployment, coef: Coefficients, layers: int = 8,
                      budget_s: float = VERIFY_BUDGET_S) -> PlacementResult:
    """Validate the placement, then time `layers` sampled layers (fewer if the budget runs out)."""
    load = np.asarray(load, dtype=np.float64)
    L, E = load.shape
    placement = validate((phy2log, logcnt), L, E, dep.num_gpus * dep.slots_per_gpu)
    slot = step_slot_tokens(load, placement.phy2log, placement.logcnt, dep)
    fewest = fewest_per_gpu(load, placement.logcnt, dep.num_gpus)
    t0 = time.perf_counter()
    results: list[LayerResult] = []
    for layer in sample_layers(L, layers):
        if results and time.perf_counter() - t0 > budget_s:
            break
        results.append(_measure_layer(bench, pool, name, layer, slot[layer], int(fewest[layer]), dep, coef))
    measured = np.array([r.layer_s for r in results])
    modelled = np.array([r.model_layer_s for r in results])
    ideal = sum(r.ideal_s for r in results)
    raw = ideal / measured.sum()
    return PlacementResult(name, min(1.0, raw), raw, sum(r.model_ideal_s for r in results) / modelled.sum(),
                           float(measured.mean()), float(modelled.mean()),
                           float(np.mean(np.abs(modelled - measured) / measured)), results,
                           time.perf_counter() - t0)


def _measure_layer(bench: Bench, pool: ExpertPool, name: str, layer: int, slot: np.ndarray, fewest: int,
                   dep: Deployment, coef: Coefficients) -> LayerResult:
    per_gpu = slot.reshape(dep.num_gpus, dep.slots_per_gpu)
    tokens, active = per_gpu.sum(axis=1), (per_gpu > 0).sum(axis=1)
    mean_tokens = int(round(per_gpu.sum() / dep.num_gpus))
    ideal_tokens = np.full(min(fewest, dep.slots_per_gpu), mean_tokens // min(fewest, dep.slots_per_gpu))
    fns = {f"gpu{g}": pool.gpu_fn(per_gpu[g]) for g in range(dep.num_gpus)}
    fns["ideal"] = pool.gpu_fn(ideal_tokens)
    rec = bench.measure(f"moe {name} layer {layer}", fns, placement=name, layer=layer)
    gpu_s = [rec.median(f"gpu{g}") for g in range(dep.num_gpus)]
    model = model_compute(tokens, active, coef)
    model_ideal = float(model_compute(np.array([ideal_tokens.sum()]), np.array([len(ideal_tokens)]), coef)[0])
    return LayerResult(layer, gpu_s, max(gpu_s), rec.median("ideal"), model.tolist(), float(model.max()),
                       model_ideal, tokens.tolist(), active.tolist(), rec.flagged)


def max_gpu_tokens(load: np.ndarray, placements: list[tuple[Any, Any]], dep: Deployment) -> int:
    """The largest token count any simulated GPU gets under any of the placements (sizes the input buffer)."""
    most = 0
    for phy2log, logcnt in placements:
        slot = step_slot_tokens(load, np.asarray(phy2log), np.asarray(logcnt), dep)
        most = max(most, int(slot.reshape(slot.shape[0], dep.num_gpus, dep.slots_per_gpu).sum(axis=2).max()))
    return most
