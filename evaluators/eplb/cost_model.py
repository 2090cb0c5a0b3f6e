"""Score a placement on the sampled steps of the next window: vLLM balancedness and a modelled MoE layer time.

Per step s, layer l, GPU g (problems/eplb/README.md lists every assumption and where its figure comes from):
  compute  p = fixed_s * active replicas + per_token_s * tokens          (per micro-batch)
           fixed_s = t0 + weights / (HBM * 0.94); per_token_s = flops / (peak * 0.80) + act_bytes / (HBM * 0.94)
  dispatch d and combine b (per micro-batch, DeepEP):
    normal kernels   a token crosses RDMA once per destination node other than its own and NVLink once
                     per destination GPU of that node, RDMA and NVLink running concurrently:
                     d = max(RDMA bytes / rdma_bw, NVLink bytes / nvlink_bw), RDMA bytes = max(sent, received)
    low_latency      one message per (token, expert) pair to the replica's GPU: RDMA if on another node,
                     NVLink within the node; d = max over the two links of max(sent, received) / bw
    b moves the same tokens back in BF16 (twice the FP8 bytes of d).
  two micro-batches overlap (DeepSeek's dual micro-batch): d1, [p1 | d2], [b1 | p2], b2 gives
           T = d + max(p, d) + max(p, b) + b;   one micro-batch: T = d + p + b.
  layer time = max over GPUs of T, averaged over the sampled steps.
The ideal is a lower bound: every GPU at the mean tokens with the fewest active replicas any placement can
have, and free communication, so ideal / layer time lies in (0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluators.eplb.replica_routing import slot_tokens
from evaluators.eplb.settings import ExpertShape, Hardware, Setting
from evaluators.eplb.steps import WindowSample


@dataclass(frozen=True)
class Coefficients:
    """Compute per micro-batch = fixed_s * active replicas + per_token_s * tokens; link times per token."""

    fixed_s: float
    per_token_s: float
    rdma_s: float        # one token's FP8 dispatch over RDMA
    nvlink_s: float      # ... over NVLink
    combine_ratio: float  # combine bytes / dispatch bytes (BF16 / FP8 = 2)

    @staticmethod
    def of(shape: ExpertShape, hw: Hardware) -> "Coefficients":
        fixed = hw.t0_s + shape.weight_bytes / (hw.hbm_bytes_per_s * hw.memory_eff)
        compute = shape.flops_per_token / (hw.peak_flops * hw.compute_eff)
        memory = shape.act_bytes_per_token / (hw.hbm_bytes_per_s * hw.memory_eff)
        return Coefficients(fixed, compute + memory, shape.dispatch_bytes / hw.rdma_bytes_per_s,
                            shape.dispatch_bytes / hw.nvlink_bytes_per_s, shape.combine_bytes / shape.dispatch_bytes)


@dataclass(frozen=True)
class Model:
    """The evaluator's modelling choices (evaluator params) that the cost model needs."""

    routing: str = "even"
    micro_batches: int = 2
    top_k: int = 8


@dataclass(frozen=True)
class WindowScore:
    """Sums over the layers of one window, averaged over its sampled steps (sums aggregate by adding)."""

    mean_gpu_load: float
    max_gpu_load: float
    layer_time_s: float   # sum over layers of the max GPU time
    ideal_time_s: float   # sum over layers of the lower bound
    comm_time_s: float    # sum over layers of the slowest GPU's dispatch + combine
    nodes_per_token: float  # mean nodes one token's experts span (sampled routes)
    layers: int


def score_window(phy2log: np.ndarray, logcnt: np.ndarray, slots: np.ndarray, sample: WindowSample,
                 setting: Setting, coef: Coefficients, model: Model) -> WindowScore:
    """phy2log/logcnt come validated, slots is the derived log2phy; sample holds the NEXT window's steps."""
    S, L, _ = sample.counts.shape
    G, per_gpu, mb = setting.num_gpus, setting.slots_per_gpu, model.micro_batches
    tokens = slot_tokens(sample.counts, phy2log, logcnt, slots, per_gpu, model.routing)   # [S, L, R]
    gpu_load = tokens.reshape(S, L, G, per_gpu).sum(axis=3)                              # [S, L, G]
    active = (tokens > 0).reshape(S, L, G, per_gpu).sum(axis=3)
    p = coef.fixed_s * active + coef.per_token_s * gpu_load / mb
    gpu_of_pick, nodes = _picks(tokens, logcnt, slots, sample, setting, model.routing)
    if setting.kernels == "normal":
        d = np.broadcast_to(_normal_dispatch(gpu_of_pick, setting, coef, mb), p.shape)
    else:
        d = _low_latency_dispatch(gpu_load, setting, coef, mb, model.top_k)
    b = coef.combine_ratio * d
    t = d + p + b if mb == 1 else d + np.maximum(p, d) + np.maximum(p, b) + b
    slowest = t.argmax(axis=2)[..., None]
    comm = np.take_along_axis(d + b, slowest, axis=2)[..., 0]
    fewest = _fewest_active(sample.counts, logcnt, model.routing)
    ideal = mb * (coef.fixed_s * fewest / G + coef.per_token_s * sample.counts.sum(axis=2) / G / mb)
    per_step = lambda x: float(x.sum() / S)  # noqa: E731 - sum over layers, mean over steps
    return WindowScore(per_step(gpu_load.mean(axis=2)), per_step(gpu_load.max(axis=2)), per_step(t.max(axis=2)),
                       per_step(ideal), per_step(comm), float(nodes), L)


def _fewest_active(counts: np.ndarray, logcnt: np.ndarray, routing: str) -> np.ndarray:
    """[S, L] fewest replicas with tokens any placement can have: every slot when each replica of an expert
    with tokens works (even split) and every expert has tokens; one per expert with tokens otherwise."""
    nonzero = (counts > 0).sum(axis=2)
    if routing == "even":
        return np.where(nonzero == counts.shape[2], logcnt.sum(axis=1)[None], nonzero)
    return nonzero


def _picks(tokens: np.ndarray, logcnt: np.ndarray, slots: np.ndarray, sample: WindowSample, setting: Setting,
           routing: str):
    """The GPU of every sampled (token, expert) pick, and the mean number of nodes a token spans. A pick
    goes to a replica in proportion to the tokens it serves over the window's steps (uniform when even)."""
    L, K, _ = sample.routes.shape
    rows = np.arange(L)[:, None, None]
    replicas = logcnt[rows, sample.routes]                                       # [L, K, k]
    if routing == "even":
        replica = (sample.pick_u * replicas).astype(np.int64)
    else:
        served = tokens.sum(axis=0)                                              # [L, R]
        share = np.where(slots >= 0, served[np.arange(L)[:, None, None], np.maximum(slots, 0)], 0.0)
        cum = np.cumsum(share, axis=2)
        total = cum[:, :, -1:]
        cum = np.divide(cum, total, out=np.ones_like(cum), where=total > 0)      # no tokens at all: replica 0
        replica = (cum[rows, sample.routes] <= sample.pick_u[..., None]).sum(axis=3)
    replica = np.minimum(replica, replicas - 1)
    gpu = slots[rows, sample.routes, replica] // setting.slots_per_gpu
    node = gpu // setting.gpus_per_node
    spans = np.zeros((L, K, setting.num_nodes), dtype=bool)
    spans[rows, np.arange(K)[None, :, None], node] = True
    return gpu, spans.sum(axis=2).mean()


def _normal_dispatch(gpu_of_pick: np.ndarray, setting: Setting, coef: Coefficients, mb: int) -> np.ndarray:
    """[L, G] per-GPU dispatch time of one micro-batch with DeepEP's normal kernels."""
    L, K, _ = gpu_of_pick.shape
    G, N, per_node = setting.num_gpus, setting.num_nodes, setting.gpus_per_node
    rows, toks = np.arange(L)[:, None, None], np.arange(K)[None, :, None]
    on_gpu = np.zeros((L, K, G), dtype=bool)
    on_gpu[rows, toks, gpu_of_pick] = True
    on_node = on_gpu.reshape(L, K, N, per_node).any(axis=3)
    p_node = on_node.mean(axis=1)                        # [L, N] chance a token needs node n
    p_gpu = on_gpu.mean(axis=1)                          # [L, G] chance a token needs GPU g
    tokens = setting.step_tokens / G / mb                # tokens each GPU starts with, per micro-batch
    node_of = np.arange(G) // per_node
    own = p_node[:, node_of]                             # [L, G]
    sent = tokens * (p_node.sum(axis=1, keepdims=True) - own)   # to the other nodes' same-index GPUs
    received = tokens * (N - 1) * own                    # from the same-index GPUs of the other nodes
    forwarded = tokens * G * p_gpu * (per_node - 1) / per_node  # relayed to g by the other GPUs of its node
    return np.maximum(np.maximum(sent, received) * coef.rdma_s, forwarded * coef.nvlink_s)


def _low_latency_dispatch(gpu_load: np.ndarray, setting: Setting, coef: Coefficients, mb: int,
                          top_k: int) -> np.ndarray:
    """[S, L, G] per-GPU dispatch time of one micro-batch with DeepEP's low-latency kernels: every pick is
    a message, senders spread evenly, so a GPU's traffic is the larger of what it sends and receives."""
    G, per_node = setting.num_gpus, setting.gpus_per_node
    sent = setting.step_tokens / G / mb * top_k
    pairs = np.maximum(gpu_load / mb, sent)
    return pairs * np.maximum((G - per_node) / G * coef.rdma_s, (per_node - 1) / G * coef.nvlink_s)
