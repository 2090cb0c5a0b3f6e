"""The GPU step-time model's presets against REFERENCE.md's figures, and profile files."""
from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest

from evaluators.base import ConfigError
from evaluators.serving.gpu import GIB, HARDWARE, MODELS, StepCost, get_model, gpu_model, roofline_cost
from evaluators.serving.predictor import kendall_tau_lognormal, predict_output
from evaluators.serving.profile import FORMAT, load_profile


def test_model_shapes_match_the_published_sizes():
    small, big = MODELS["llama-3-8b"], MODELS["llama-3-70b"]
    assert small.params / 1e9 == pytest.approx(8.03, abs=0.01)
    assert big.params / 1e9 == pytest.approx(70.6, abs=0.1)
    assert small.kv_bytes_per_token == 128 * 1024
    assert big.kv_bytes_per_token == 320 * 1024


def test_kv_capacity_is_memory_left_after_weights_and_reserve():
    g = gpu_model("h100", "llama-3-8b")
    # 80 GiB * 0.9 - 16 GB of weights - ~1.7 GiB reserve, at 128 KiB a token: a few 10^5 tokens
    assert 3e5 < g.kv_tokens < 5e5
    expected = (80 * GIB * 0.9 - 8.03e9 * 2 - get_model("llama-3-8b").activation_reserve_bytes(8192, 256)) / 131072
    assert g.kv_tokens == pytest.approx(expected, rel=0.001)
    # 70B on four H100s: each holds a quarter of the weights and a quarter of each token's KV
    big = gpu_model("h100", "llama-3-70b")
    assert big.name.startswith("Llama-3-70B TP4")
    assert 3e5 < big.kv_tokens < 6e5
    assert gpu_model("h200", "llama-3-8b").kv_tokens > 1.9 * g.kv_tokens   # 141 vs 80 GB
    with pytest.raises(ConfigError, match="no memory for the KV cache"):
        gpu_model("h100", "llama-3-70b", tp=1)
    with pytest.raises(ConfigError, match="does not split 8 KV heads"):
        gpu_model("h100", "llama-3-70b", tp=3)


def test_step_times_follow_the_roofline():
    cost = gpu_model().step
    hw, m = HARDWARE["h100"], MODELS["llama-3-8b"]
    # a decode step of one token is bound by reading the weights once (~15 GB at 3.35 TB/s * 0.94)
    weights_s = (m.params - m.vocab * m.d_model) * 2 / (hw.hbm_bytes_per_s * 0.94)
    one = cost.time(1, 1, 1001, 1000)
    assert weights_s < one < weights_s + 2e-3
    # a long prefill is bound by compute: ~2 FLOPs per weight per token at 989 TFLOP/s * 0.80
    prefill = cost.time(8192, 1, 8192 * 8193 / 2, 0)
    flops = 2 * m.layers * m.layer_params * 8192 + 4 * m.layers * m.heads * m.head_dim * 8192 * 8193 / 2
    assert flops / (hw.peak_flops * 0.8) < prefill < 1.3 * flops / (hw.peak_flops * 0.8)
    # more decodes cost more, and H200's faster memory makes decode faster
    assert cost.time(64, 64, 64 * 1001, 64000) > one
    assert gpu_model("h200").step.time(1, 1, 1001, 1000) < one
    # tensor parallelism adds all-reduce latency and bandwidth terms
    big = MODELS["llama-3-70b"]
    tp4 = roofline_cost(hw, big, 4)
    no_wire = roofline_cost(replace(hw, allreduce_latency_s=0.0, allreduce_bytes_per_s=float("inf")), big, 4)
    assert tp4.fixed_s - no_wire.fixed_s == pytest.approx(2 * 80 * 10e-6)          # 2 all-reduces a layer
    assert tp4.token_s - no_wire.token_s == pytest.approx(2 * 80 * 1.5 * 8192 * 2 / 360e9)  # ring: 2(TP-1)/TP
    assert roofline_cost(hw, big, 8).token_s < tp4.token_s


def _write(tmp_path, body) -> str:
    path = tmp_path / "profile.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return str(path)


BASE = {"format": FORMAT, "device": "h100", "model": "llama-3-8b", "date": "2025-06-01",
        "command": "python bench/gpu_profile.py --device h100"}


def test_profile_coefficients_replace_the_analytic_step_cost(tmp_path):
    coef = {"fixed_s": 0.005, "token_s": 2e-5, "sampled_s": 1e-6, "pair_s": 1e-9, "kv_read_s": 5e-8}
    prof = load_profile(_write(tmp_path, {**BASE, "coefficients": coef}))
    g = prof.gpu()
    assert g.step == StepCost(**coef)
    assert g.kv_blocks == gpu_model().kv_blocks
    assert "profile profile.json, 2025-06-01" in g.name and prof.command.startswith("python bench")


def test_profile_constants_rebuild_the_roofline(tmp_path):
    prof = load_profile(_write(tmp_path, {**BASE, "constants": {"hbm_bytes_per_s": 3.0e12, "memory_bytes": 96 * GIB}}))
    g = prof.gpu()
    assert g.step.fixed_s > gpu_model().step.fixed_s          # slower memory: the weight read takes longer
    assert g.kv_blocks > gpu_model().kv_blocks                 # more memory: a bigger cache


def test_profile_table_is_fitted_to_a_linear_step_cost(tmp_path):
    truth = StepCost(0.004, 2e-5, 1e-6, 7e-10, 4e-8)
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(40):
        tokens = int(rng.integers(1, 4096))
        sampled = int(rng.integers(1, min(tokens, 256) + 1))
        pairs, kv = int(rng.integers(tokens, tokens * 3000)), int(rng.integers(0, 500_000))
        rows.append([tokens, sampled, pairs, kv, truth.time(tokens, sampled, pairs, kv) * (1 + rng.normal(0, 0.01))])
    table = {"columns": ["tokens", "sampled", "pairs", "kv_read", "step_s"], "rows": rows}
    prof = load_profile(_write(tmp_path, {**BASE, "table": table}))
    assert prof.fit_mape < 0.02
    assert prof.step.fixed_s == pytest.approx(truth.fixed_s, rel=0.1)
    assert prof.step.token_s == pytest.approx(truth.token_s, rel=0.1)


@pytest.mark.parametrize("body,field", [
    ("{not json", r"not JSON \(line 1"),
    ({**BASE, "format": "v0", "coefficients": {}}, "field 'format'"),
    ({k: v for k, v in BASE.items() if k != "date"} | {"constants": {"compute_eff": 0.7}}, "field 'date'"),
    ({**BASE, "device": "a100", "constants": {"compute_eff": 0.7}}, "field 'device': unknown device 'a100'"),
    ({**BASE, "tp": 0, "constants": {"compute_eff": 0.7}}, "field 'tp'"),
    (BASE, "needs exactly one of constants, coefficients, table"),
    ({**BASE, "constants": {"warp_speed": 1}}, "field 'constants.warp_speed' is not a hardware constant"),
    ({**BASE, "constants": {"compute_eff": -1}}, "field 'constants.compute_eff' must be a non-negative number"),
    ({**BASE, "coefficients": {"fixed_s": 0.005}}, "field 'coefficients' needs exactly"),
    ({**BASE, "coefficients": {"fixed_s": 1e-3, "token_s": "fast", "sampled_s": 0, "pair_s": 0, "kv_read_s": 0}},
     "field 'coefficients.token_s'"),
    ({**BASE, "table": {"columns": ["tokens", "step_s"], "rows": []}}, "field 'table.columns'"),
    ({**BASE, "table": {"columns": ["tokens", "sampled", "pairs", "kv_read", "step_s"], "rows": [[1, 1, 1, 1, 1]] * 7
                                                                                               + [[1, 1]]}},
     r"field 'table.rows\[7\]'"),
])
def test_a_malformed_profile_names_the_file_and_the_field(tmp_path, body, field):
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError, match=rf"profile {re.escape(path)}: .*{field}"):
        load_profile(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_profile(tmp_path / "missing.json")


def test_predictor_noise_is_seeded_and_has_the_stated_spread():
    out = np.rint(np.random.default_rng(0).lognormal(5.02, 0.86, 20000)).astype(np.int64) + 1
    a, b = predict_output(out, 0.7, seed=3), predict_output(out, 0.7, seed=3)
    assert (a == b).all() and not (a == predict_output(out, 0.7, seed=4)).all()
    assert np.log(a / out).std() == pytest.approx(0.7, rel=0.05)
    assert (predict_output(out, 0.0) == out).all()
    assert kendall_tau_lognormal(0.86, 0.7) == pytest.approx(0.57, abs=0.01)
