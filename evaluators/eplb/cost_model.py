"""Score a placement on the next window's loads: vLLM balancedness and a modelled MoE layer time.

Model (per layer, per GPU g), all vectorised over layers:
  a replica serves an equal share of its expert's tokens (load_e / logcnt_e), as vLLM's EPLB assumes;
  expert time per active replica = t0 + weights/(HBM*0.94) + tokens*(flops/(peak*0.80) + act_bytes/(HBM*0.94))
  (the additive step model of REFERENCE.md, H100 figures); replicas with no tokens cost nothing;
  dispatch+combine: tokens start spread evenly over the GPUs, so of the tokens a GPU receives a share
  (gpus_per_node-1)/num_gpus crosses NVLink and (num_gpus-gpus_per_node)/num_gpus crosses RDMA;
  GPU time = expert time + dispatch time; layer time = max over GPUs.
The ideal layer time is a lower bound: every GPU at the mean token count with the fewest active replicas
any placement can have, so ideal/actual lies in (0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluators.eplb.settings import ExpertShape, Hardware, Setting


@dataclass(frozen=True)
class Coefficients:
    """GPU time = fixed_s * active replicas + per_token_s * tokens received."""

    fixed_s: float
    per_token_s: float

    @staticmethod
    def of(setting: Setting, shape: ExpertShape, hw: Hardware) -> "Coefficients":
        weights = shape.params * shape.weight_bytes_per_param
        fixed = hw.t0_s + weights / (hw.hbm_bytes_per_s * hw.memory_eff)
        compute = shape.flops_per_token / (hw.peak_flops * hw.compute_eff)
        memory = shape.act_bytes_per_token / (hw.hbm_bytes_per_s * hw.memory_eff)
        G, per_node = setting.num_gpus, setting.gpus_per_node
        wire = shape.wire_bytes_per_token * ((per_node - 1) / G / hw.nvlink_bytes_per_s
                                             + (G - per_node) / G / hw.rdma_bytes_per_s)
        return Coefficients(fixed, compute + memory + wire)


@dataclass(frozen=True)
class WindowScore:
    """Sums over the layers of one window (sums, so windows aggregate by adding)."""

    mean_gpu_load: float
    max_gpu_load: float
    layer_time_s: float   # sum over layers of the max GPU time
    ideal_time_s: float   # sum over layers of the lower bound
    layers: int


def score_window(phy2log: np.ndarray, logcnt: np.ndarray, load: np.ndarray, setting: Setting,
                 coef: Coefficients, top_k: int) -> WindowScore:
    """phy2log/logcnt come validated; load is the NEXT window's [L, E] expert load."""
    L, R = phy2log.shape
    G = setting.num_gpus
    load = load.astype(np.float64, copy=False)
    rows = np.arange(L)[:, None]
    slot_load = load[rows, phy2log] / logcnt[rows, phy2log]
    gpu_load = slot_load.reshape(L, G, R // G).sum(axis=2)
    total = load.sum(axis=1)
    # turn the window's load into one forward step's tokens: step_tokens * top_k assignments per layer
    scale = np.divide(setting.step_tokens * top_k, total, out=np.zeros(L), where=total > 0)
    active = (slot_load > 0).reshape(L, G, R // G).sum(axis=2)
    gpu_time = coef.fixed_s * active + coef.per_token_s * gpu_load * scale[:, None]
    nonzero = (load > 0).sum(axis=1)
    fewest_active = np.where(nonzero == load.shape[1], R, nonzero)
    ideal = (coef.fixed_s * fewest_active + coef.per_token_s * total * scale) / G
    return WindowScore(float(gpu_load.mean(axis=1).sum()), float(gpu_load.max(axis=1).sum()),
                       float(gpu_time.max(axis=1).sum()), float(ideal.sum()), L)
