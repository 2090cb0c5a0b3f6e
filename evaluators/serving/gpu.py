"""GPU step-time and KV-capacity model for serving one model instance (one GPU or one tensor-parallel group).

Step time: the additive roofline of REFERENCE.md, fitted to Vidur's H100 GEMM profile to 5.2% MAPE,
    t = t0 + T_compute / 0.80 + T_memory / 0.94   (+ all-reduce time under tensor parallelism)
A serving step is a sequence of kernels; the additive form sums kernel by kernel, so a whole step's time is
LINEAR in four batch features (a `StepCost`):
    tokens    every token in the step (prefill chunk tokens + one per decoding sequence): the linear layers'
              FLOPs (2 per weight), their activation traffic, the KV written, the all-reduced hidden state;
    sampled   tokens that produce logits (decodes, and the last chunk of a prefill): the LM head;
    pairs     attention (query, key) pairs: a decode over L cached tokens has L + 1, a chunk of c tokens
              after p cached ones has c*p + c*(c+1)/2 (causal);
    kv_read   cached KV tokens read from HBM (L per decode, p per chunk; a chunk's own keys stay on chip);
plus a fixed part: t0, the weights read once per step, and the all-reduce latency.
Linearity is what lets the engine sum a run of alike decode steps in closed form (evaluators/serving/engine.py).

Tensor parallelism over TP GPUs divides FLOPs, weight bytes, KV bytes and activation bytes per GPU by TP and
adds two all-reduces of the hidden state per layer (after attention and after the MLP), as Megatron-style TP
does: ring time 2(TP-1)/TP * bytes / bus bandwidth, plus a fixed latency each.

Constants and their sources (see README.md in this folder): H100/H200 peak figures and the efficiency
constants from REFERENCE.md; model shapes from REFERENCE.md plus the published Llama-3 configs (FFN width,
head count, vocabulary); t0 per kernel is the 2 us the EPLB cost model uses, times an assumed 10 kernels per
layer, plus an assumed 0.5 ms of host work per step; all-reduce: NVLink 4's 450 GB/s per direction at an
assumed 80% bus efficiency and an assumed 10 us latency per all-reduce. A profile file replaces them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from evaluators.base import ConfigError

GIB = 1 << 30
BLOCK_TOKENS = 16  # paged KV cache block size (vLLM's default), fixed for the whole simulator


@dataclass(frozen=True)
class Hardware:
    """One GPU and the constants of the step-time model."""

    name: str
    peak_flops: float            # dense BF16 FLOP/s
    hbm_bytes_per_s: float
    memory_bytes: float          # HBM capacity
    compute_eff: float = 0.80    # REFERENCE.md additive fit
    memory_eff: float = 0.94
    t0_kernel_s: float = 2e-6    # fixed cost per kernel (the EPLB model's figure)
    kernels_per_layer: int = 10  # assumed: norms, QKV, rotary, attention, O, gate/up, act, down, adds
    step_overhead_s: float = 5e-4  # assumed host-side work per step (scheduling, sampling launch)
    allreduce_bytes_per_s: float = 360e9  # assumed: 80% of NVLink 4's 450 GB/s per direction
    allreduce_latency_s: float = 10e-6    # assumed per all-reduce of a small message


HARDWARE: dict[str, Hardware] = {
    # REFERENCE.md: 989 TFLOP/s dense BF16, 3.35 TB/s HBM3, 80 GB. Capacities read as GiB, as the
    # marketing figures round them (tools report a little less usable memory).
    "h100": Hardware("H100 SXM", 989e12, 3.35e12, 80 * GIB),
    # REFERENCE.md: same compute, 4.8 TB/s, 141 GB.
    "h200": Hardware("H200", 989e12, 4.8e12, 141 * GIB),
}


@dataclass(frozen=True)
class ModelShape:
    """A dense decoder-only transformer (Llama-3 shapes)."""

    name: str
    layers: int
    d_model: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab: int
    default_tp: int
    bytes_per_param: int = 2  # bf16 weights, activations and KV

    @property
    def layer_params(self) -> int:
        """Weights of the linear layers of one block: Q, K, V, O and the gated MLP (norms are negligible)."""
        q = self.heads * self.head_dim
        kv = self.kv_heads * self.head_dim
        return self.d_model * (2 * q + 2 * kv) + 3 * self.d_model * self.ffn

    @property
    def params(self) -> int:
        """All parameters: blocks, input embedding and (untied) LM head."""
        return self.layers * self.layer_params + 2 * self.vocab * self.d_model

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V of every layer for one token, whole model (REFERENCE.md: 128 KiB for Llama-3-8B)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.bytes_per_param

    @property
    def act_bytes_per_token(self) -> int:
        """Activation traffic of the linear layers per token: each GEMM reads its input and writes its output."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        per_layer = (self.d_model + q + 2 * kv) + (q + self.d_model) + (self.d_model + 2 * self.ffn) \
            + (self.ffn + self.d_model)
        return self.layers * per_layer * self.bytes_per_param

    def activation_reserve_bytes(self, token_budget: int, max_running: int) -> float:
        """Memory kept free for one step's activations at the full token budget (the widest live tensors:
        the MLP's gate/up output and its input, the QKV output) and fp32 logits of every running sequence,
        plus an assumed 1 GiB for the CUDA context, graphs and allocator slack."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        widest = max(2 * self.ffn + self.d_model, q + 2 * kv + self.d_model)
        return token_budget * widest * self.bytes_per_param + max_running * self.vocab * 4 + GIB


MODELS: dict[str, ModelShape] = {
    # REFERENCE.md: 32 layers, d 4096, 8 KV heads of 128, 8.03 B params; FFN 14336, 32 heads, vocabulary
    # 128256 from the published config.
    "llama-3-8b": ModelShape("Llama-3-8B", 32, 4096, 32, 8, 128, 14336, 128256, default_tp=1),
    # REFERENCE.md: 80 layers, d 8192, 8 KV heads, 70.6 B params; FFN 28672, 64 heads from the config.
    "llama-3-70b": ModelShape("Llama-3-70B", 80, 8192, 64, 8, 128, 28672, 128256, default_tp=4),
}


@dataclass(frozen=True)
class StepCost:
    """A serving step's time, linear in the batch features (see the module docstring)."""

    fixed_s: float
    token_s: float
    sampled_s: float
    pair_s: float
    kv_read_s: float

    def time(self, tokens: float, sampled: float, pairs: float, kv_read: float) -> float:
        return (self.fixed_s + self.token_s * tokens + self.sampled_s * sampled + self.pair_s * pairs
                + self.kv_read_s * kv_read)

    def check(self, where: str) -> None:
        for name in ("fixed_s", "token_s", "sampled_s", "pair_s", "kv_read_s"):
            value = getattr(self, name)
            if not (value >= 0 and value < 10):  # also refuses NaN
                raise ConfigError(f"{where}: step cost '{name}' = {value!r} must be a number of seconds in [0, 10)")
        if self.fixed_s <= 0 and self.token_s <= 0:
            raise ConfigError(f"{where}: a step must take time (fixed_s or token_s > 0)")


def roofline_cost(hw: Hardware, model: ModelShape, tp: int) -> StepCost:
    """The analytic StepCost of `model` on `tp` GPUs of kind `hw`."""
    if tp < 1 or model.kv_heads % tp:
        raise ConfigError(f"tensor parallelism {tp} does not split {model.kv_heads} KV heads evenly")
    flops_s = hw.peak_flops * hw.compute_eff * tp       # per GPU share: FLOPs / TP, at the fitted efficiency
    bytes_s = hw.hbm_bytes_per_s * hw.memory_eff * tp
    bpp = model.bytes_per_param
    lm_head = model.vocab * model.d_model
    weights = (model.layers * model.layer_params + lm_head) * bpp
    fixed = hw.step_overhead_s + hw.t0_kernel_s * hw.kernels_per_layer * model.layers + weights / bytes_s
    token = 2 * model.layers * model.layer_params / flops_s \
        + (model.act_bytes_per_token + model.kv_bytes_per_token) / bytes_s   # activations, KV written
    if tp > 1:
        allreduces = 2 * model.layers
        fixed += allreduces * hw.allreduce_latency_s
        token += allreduces * 2 * (tp - 1) / tp * model.d_model * bpp / hw.allreduce_bytes_per_s
    sampled = 2 * lm_head / flops_s + model.vocab * 4 / bytes_s   # LM head GEMM, fp32 logits written
    pair = 4 * model.layers * model.heads * model.head_dim / flops_s   # QK^T and PV
    kv_read = model.kv_bytes_per_token / bytes_s
    return StepCost(fixed, token, sampled, pair, kv_read)


@dataclass(frozen=True)
class GpuModel:
    """What the engine needs of the hardware: a step cost, a KV cache size in blocks, and the KV bytes of one
    token over the whole instance (what migrating a request moves; default Llama-3-8B's 128 KiB)."""

    name: str
    step: StepCost
    kv_blocks: int
    kv_bytes_per_token: int = 131072

    @property
    def kv_tokens(self) -> int:
        return self.kv_blocks * BLOCK_TOKENS


def kv_blocks(hw: Hardware, model: ModelShape, tp: int, memory_utilization: float, token_budget: int,
              max_running: int) -> int:
    """KV blocks per instance: (GPU memory * utilisation - weights/TP - activation reserve) / KV bytes per
    token per GPU, in whole blocks. Every GPU of the group holds 1/TP of each token's KV."""
    if not 0 < memory_utilization <= 1:
        raise ConfigError(f"memory utilisation {memory_utilization} must be in (0, 1]")
    free = hw.memory_bytes * memory_utilization - model.params * model.bytes_per_param / tp \
        - model.activation_reserve_bytes(token_budget, max_running)
    tokens = free / (model.kv_bytes_per_token / tp)
    if tokens < BLOCK_TOKENS:
        raise ConfigError(f"{model.name} on {tp} x {hw.name} leaves no memory for the KV cache "
                          f"({free / GIB:.1f} GiB free per GPU)")
    return int(tokens // BLOCK_TOKENS)


def get_hardware(name: str) -> Hardware:
    if name.lower() not in HARDWARE:
        raise ConfigError(f"unknown device '{name}' (known: {', '.join(sorted(HARDWARE))})")
    return HARDWARE[name.lower()]


def get_model(name: str) -> ModelShape:
    if name.lower() not in MODELS:
        raise ConfigError(f"unknown model '{name}' (known: {', '.join(sorted(MODELS))})")
    return MODELS[name.lower()]


def gpu_model(device: str = "h100", model: str = "llama-3-8b", tp: int | None = None,
              memory_utilization: float = 0.9, token_budget: int = 8192, max_running: int = 256,
              hardware_overrides: dict | None = None, step: StepCost | None = None) -> GpuModel:
    """Resolve presets into a GpuModel. `hardware_overrides` replaces Hardware fields (a profile's
    constants); `step` replaces the analytic step cost (a profile's coefficients or fitted table)."""
    hw, shape = get_hardware(device), get_model(model)
    if hardware_overrides:
        hw = replace(hw, **hardware_overrides)
    tp = shape.default_tp if tp is None else tp
    cost = step if step is not None else roofline_cost(hw, shape, tp)
    cost.check(f"{shape.name} on {tp} x {hw.name}")
    blocks = kv_blocks(hw, shape, tp, memory_utilization, token_budget, max_running)
    return GpuModel(f"{shape.name} TP{tp} on {hw.name}", cost, blocks, shape.kv_bytes_per_token)
