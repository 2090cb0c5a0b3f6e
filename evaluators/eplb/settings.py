"""Named EPLB settings (cluster shape, step size, DeepEP kernel mode) and the hardware/model figures the
cost model uses.

Figures are published ones: the DeepSeek-V3 expert shape and routing, NVIDIA H100 SXM specifications, DeepEP's
kernel modes and bandwidths (REFERENCE.md; DeepEP's README).
"""
from __future__ import annotations

from dataclasses import dataclass

from evaluators.base import ConfigError


@dataclass(frozen=True)
class Setting:
    """One expert-parallel deployment: what the candidate is told, plus the step size the cost model uses."""

    name: str
    num_experts: int       # logical routed experts per MoE layer
    num_replicas: int      # physical expert slots per layer (all GPUs together)
    num_groups: int        # expert groups (DeepSeek-V3: 8 groups of 32)
    num_nodes: int
    num_gpus: int
    step_tokens: int       # tokens in one forward step across the whole EP group (sets the roofline regime)
    kernels: str           # DeepEP kernel mode: "normal" (prefill) or "low_latency" (decode)
    description: str = ""

    @property
    def slots_per_gpu(self) -> int:
        return self.num_replicas // self.num_gpus

    @property
    def gpus_per_node(self) -> int:
        return self.num_gpus // self.num_nodes

    def check(self) -> None:
        """The shape rules every EPLB algorithm (and vLLM) assumes."""
        if self.num_replicas % self.num_gpus or self.num_gpus % self.num_nodes:
            raise ConfigError(f"setting {self.name}: replicas must split evenly over GPUs, GPUs over nodes")
        if self.num_replicas < self.num_experts:
            raise ConfigError(f"setting {self.name}: fewer slots ({self.num_replicas}) than experts")
        if self.num_experts % self.num_groups or self.num_groups % self.num_nodes:
            raise ConfigError(f"setting {self.name}: experts must split evenly over groups, groups over nodes")
        if self.kernels not in KERNELS:
            raise ConfigError(f"setting {self.name}: kernels must be one of {', '.join(KERNELS)}")


# DeepEP's two kernel families. normal: a token crosses RDMA once per destination NODE (to the GPU with its
# own local index there), then NVLink to each destination GPU of that node (prefill/training).
# low_latency: one message per (token, expert) pair straight to the expert's GPU (decode).
KERNELS = ("normal", "low_latency")


SETTINGS: dict[str, Setting] = {
    # The ADRS setting: 9 slots per GPU, 32 spare slots. Prefill-sized steps (4096 tokens per GPU, DeepEP's
    # normal-kernel test size): compute-bound expert GEMMs and RDMA-bound dispatch, so both the GPU balance
    # and how many nodes a token's experts span count (DeepSeek's case for its hierarchical policy).
    "ep32": Setting("ep32", 256, 288, 8, 4, 32, step_tokens=32 * 4096, kernels="normal",
                    description="prefill EP over 32 GPUs on 4 nodes, 288 slots (9 per GPU)"),
    # Decode-style EP over 64 GPUs: 5 slots per GPU, 64 spare slots, 128 tokens per GPU per step (DeepEP's
    # low-latency test size). Experts sit near the roofline ridge, so an extra replica's weight read is a
    # real cost; low-latency kernels send every (token, expert) pair, so only the balance counts (DeepSeek's
    # case for its global policy).
    "ep64": Setting("ep64", 256, 320, 8, 8, 64, step_tokens=64 * 128, kernels="low_latency",
                    description="decode EP over 64 GPUs on 8 nodes, 320 slots (5 per GPU)"),
}


def get_setting(name: str) -> Setting:
    if name not in SETTINGS:
        raise ConfigError(f"unknown setting '{name}' (known: {', '.join(sorted(SETTINGS))})")
    return SETTINGS[name]


@dataclass(frozen=True)
class ExpertShape:
    """DeepSeek-V3 routed expert: gate+up (hidden -> 2*inter) and down (inter -> hidden), bf16 weights."""

    hidden: int = 7168
    intermediate: int = 2048
    top_k: int = 8
    groups_per_token: int = 4            # group-limited routing: a token's top-8 lie in at most 4 groups
    weight_bytes_per_param: int = 2      # bf16
    act_bytes: int = 2                   # bf16 activations in/out of the expert GEMMs
    dispatch_bytes_per_elem: float = 1.0  # DeepEP dispatches FP8 ...
    combine_bytes_per_elem: float = 2.0   # ... and combines BF16

    @property
    def params(self) -> int:
        return 3 * self.hidden * self.intermediate  # 44 M

    @property
    def flops_per_token(self) -> float:
        return 2.0 * self.params

    @property
    def act_bytes_per_token(self) -> float:
        # read x, write/read the gated intermediate, write y
        return self.act_bytes * (2 * self.hidden + 3 * self.intermediate)

    @property
    def weight_bytes(self) -> float:
        return self.params * self.weight_bytes_per_param

    @property
    def dispatch_bytes(self) -> float:
        return self.hidden * self.dispatch_bytes_per_elem

    @property
    def combine_bytes(self) -> float:
        return self.hidden * self.combine_bytes_per_elem


@dataclass(frozen=True)
class Hardware:
    """H100 SXM with the step-time model t = t0 + T_compute/0.80 + T_memory/0.94 (REFERENCE.md)."""

    peak_flops: float = 989e12
    hbm_bytes_per_s: float = 3.35e12
    compute_eff: float = 0.80
    memory_eff: float = 0.94
    t0_s: float = 2e-6            # fixed cost per active expert in a grouped GEMM (launch/tile setup share)
    nvlink_bytes_per_s: float = 155e9   # DeepEP normal kernels: 153-158 GB/s NVLink bottleneck (H800)
    rdma_bytes_per_s: float = 50e9      # DeepEP: 43-58 GB/s RDMA bottleneck (CX7 400 Gb/s, ~50 GB/s peak)
