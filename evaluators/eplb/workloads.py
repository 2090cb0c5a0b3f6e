"""EPLB workloads: per-window, per-layer expert loads, generated from an id or loaded from a JSON trace.

Ids (see problems/eplb/README.md for the meaning of every parameter):
    <setting>:skew<S>:seed<N>[:drift<D>][:shift<P>][:win<W>][:layers<L>]   synthetic
    <setting>:file:<path relative to the problem folder>                   vLLM-style load_history JSON
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from evaluators.base import ConfigError
from evaluators.eplb.settings import Setting, get_setting

SKEW_RANGE = (1.2, 16.0)    # accepted hottest/mean targets (the bundled workloads sweep 2-8)
LAYER_JITTER = 0.2          # per-layer skew = S * exp(U(-j, j)), i.e. within [0.82 S, 1.22 S]
LAYER_SHARED = 0.3          # share of the log-popularity variance common to all layers
GROUP_WEIGHT = 0.5          # std of a per-(layer, group) log-popularity offset: groups run hot together
SHIFT_SWAPS = 4             # a popularity shift swaps this many (hot, random) expert pairs in one layer
HOT_POOL = 16               # the hot side of a swap is drawn from this many hottest experts


@dataclass(frozen=True)
class GenParams:
    """Everything a synthetic workload depends on; the id plus evaluator params fix it completely."""

    skew: float          # target hottest/mean expert load ratio of a layer
    seed: int
    drift: float         # std of the per-window multiplicative (log-normal) drift of each expert's popularity
    shift: float         # probability per layer and window of a popularity shift (hot experts swap places)
    windows: int         # rebalance windows (the candidate is called windows-1 times)
    layers: int          # MoE layers
    window_tokens: int   # tokens per window; each is routed to top_k experts (sets the sampling noise)


@dataclass(frozen=True)
class Workload:
    id: str
    setting: Setting
    loads: np.ndarray    # [windows, layers, experts], int64 token-assignment counts (float64 from a file)


@dataclass(frozen=True)
class Defaults:
    drift: float = 0.15
    shift: float = 0.1
    windows: int = 6
    layers: int = 58          # DeepSeek-V3: 61 layers, the first 3 dense
    window_tokens: int = 1 << 16


_OPTIONAL = {"drift": float, "shift": float, "win": int, "layers": int}


def parse_id(wid: str, defaults: Defaults) -> tuple[Setting, GenParams | str]:
    """Return the setting and either the generator parameters or the trace path; ConfigError if malformed."""
    parts = wid.split(":")
    if len(parts) < 2:
        raise ConfigError(f"workload id '{wid}' must look like 'ep32:skew4:seed0' or 'ep32:file:traces/x.json'")
    setting = get_setting(parts[0])
    if parts[1] == "file":
        rel = ":".join(parts[2:])
        if not rel:
            raise ConfigError(f"workload id '{wid}': no file path after 'file:'")
        return setting, rel
    fields: dict[str, str] = {}
    for tok in parts[1:]:
        m = re.fullmatch(r"([a-z]+)([0-9]+(?:\.[0-9]+)?)", tok)
        if not m or m.group(1) not in {"skew", "seed", *_OPTIONAL}:
            raise ConfigError(f"workload id '{wid}': bad part '{tok}' (expected skew<S>, seed<N>, drift<D>, "
                              f"shift<P>, win<W>, layers<L>)")
        if m.group(1) in fields:
            raise ConfigError(f"workload id '{wid}': '{m.group(1)}' given twice")
        fields[m.group(1)] = m.group(2)
    for req in ("skew", "seed"):
        if req not in fields:
            raise ConfigError(f"workload id '{wid}': missing {req}<value>")
    try:
        p = GenParams(skew=float(fields["skew"]), seed=int(fields["seed"]),
                      drift=float(fields.get("drift", defaults.drift)), shift=float(fields.get("shift", defaults.shift)),
                      windows=int(fields.get("win", defaults.windows)), layers=int(fields.get("layers", defaults.layers)),
                      window_tokens=defaults.window_tokens)
    except ValueError as e:
        raise ConfigError(f"workload id '{wid}': {e}") from None
    _check_params(wid, p, setting)
    return setting, p


def _check_params(wid: str, p: GenParams, setting: Setting) -> None:
    lo, hi = SKEW_RANGE
    if not lo <= p.skew <= hi:
        raise ConfigError(f"workload id '{wid}': skew {p.skew} outside [{lo}, {hi}]")
    if p.skew * math.exp(LAYER_JITTER) >= setting.num_experts:
        raise ConfigError(f"workload id '{wid}': skew too large for {setting.num_experts} experts")
    if not 0 <= p.drift <= 2 or not 0 <= p.shift <= 1:
        raise ConfigError(f"workload id '{wid}': drift must be in [0, 2] and shift in [0, 1]")
    if not 2 <= p.windows <= 1000 or not 1 <= p.layers <= 256:
        raise ConfigError(f"workload id '{wid}': win must be in [2, 1000] and layers in [1, 256]")


def generate(wid: str, setting: Setting, p: GenParams) -> Workload:
    """Skewed, group-correlated, layer-varying expert loads that drift from window to window."""
    rng = np.random.default_rng(p.seed)
    L, E, G = p.layers, setting.num_experts, setting.num_groups
    shared = rng.standard_normal(E)
    z = math.sqrt(LAYER_SHARED) * shared + math.sqrt(1 - LAYER_SHARED) * rng.standard_normal((L, E))
    z += GROUP_WEIGHT * np.repeat(rng.standard_normal((L, G)), E // G, axis=1)
    layer_skew = p.skew * np.exp(rng.uniform(-LAYER_JITTER, LAYER_JITTER, L))
    assignments = p.window_tokens * 8  # top-8 routing
    loads = np.empty((p.windows, L, E), dtype=np.int64)
    for w in range(p.windows):
        if w:
            z = z + p.drift * rng.standard_normal((L, E))
            _shift(z, rng, p.shift)
        pop = _popularity(z, layer_skew)
        loads[w] = rng.poisson(assignments * pop)
    return Workload(wid, setting, loads)


def _shift(z: np.ndarray, rng: np.random.Generator, prob: float) -> None:
    """In some layers, hot experts swap popularity with random ones (a topic change in the traffic)."""
    for layer in np.flatnonzero(rng.random(z.shape[0]) < prob):
        hot = np.argsort(-z[layer])[:HOT_POOL]
        a = rng.choice(hot, SHIFT_SWAPS, replace=False)
        b = rng.choice(z.shape[1], SHIFT_SWAPS, replace=False)
        z[layer, a], z[layer, b] = z[layer, b].copy(), z[layer, a].copy()


def _popularity(z: np.ndarray, skew: np.ndarray) -> np.ndarray:
    """Rows exp(sigma*z) normalised to sum 1, sigma per row bisected so max/mean hits that row's skew.
    max/mean of exp(sigma*z) grows monotonically with sigma, from 1 at sigma=0."""
    d = z - z.max(axis=1, keepdims=True)  # <= 0
    lo, hi = np.zeros(len(z)), np.full(len(z), 50.0)
    for _ in range(40):
        mid = (lo + hi) / 2
        ratio = 1.0 / np.exp(mid[:, None] * d).mean(axis=1)
        too_high = ratio > skew
        hi = np.where(too_high, mid, hi)
        lo = np.where(too_high, lo, mid)
    pop = np.exp(((lo + hi) / 2)[:, None] * d)
    return pop / pop.sum(axis=1, keepdims=True)


def load_trace(wid: str, setting: Setting, rel: str, problem_dir: Path) -> Workload:
    """vLLM-style expert-load history: {"load_history": [{"logical_expert_load": [[per expert] per layer]}]}."""
    path = (problem_dir / rel).resolve()
    if not path.is_file():
        raise ConfigError(f"workload id '{wid}': trace file not found: {path}")
    try:
        raw = json.loads(path.read_text())
        windows = [entry["logical_expert_load"] for entry in raw["load_history"]]
        loads = np.asarray(windows, dtype=np.float64)
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"workload id '{wid}': {path.name} is not a load_history trace: {e}") from None
    if loads.ndim != 3 or loads.shape[0] < 2:
        raise ConfigError(f"workload id '{wid}': need >= 2 windows of [layers][experts] loads, got shape {loads.shape}")
    if not np.isfinite(loads).all() or (loads < 0).any():
        raise ConfigError(f"workload id '{wid}': loads must be finite and non-negative")
    E = loads.shape[2]
    if E % setting.num_groups or E > setting.num_replicas:
        raise ConfigError(f"workload id '{wid}': {E} experts do not fit setting {setting.name} "
                          f"({setting.num_groups} groups, {setting.num_replicas} slots)")
    if np.array_equal(loads, np.round(loads)):
        loads = loads.astype(np.int64)
    return Workload(wid, replace(setting, num_experts=E), loads)


def build(wid: str, defaults: Defaults, problem_dir: Path) -> Workload:
    setting, what = parse_id(wid, defaults)
    setting.check()
    if isinstance(what, str):
        return load_trace(wid, setting, what, problem_dir)
    return generate(wid, setting, what)
