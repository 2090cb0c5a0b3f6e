"""The serving step profiler (evaluators/gpu/serving_profile.py, transformer.py): step features as the engine
counts them, the held-out split, profile files the simulator loads, and a real CPU profile at tiny shapes
whose fitted step times predict held-out steps."""
from __future__ import annotations

import json

import numpy as np
import pytest

from evaluators.gpu import serving_profile as sp
from evaluators.gpu.transformer import StepShape
from evaluators.serving.gpu import StepCost
from evaluators.serving.profile import FORMAT, load_profile
from evaluators.gpu.backend import cuda_available, torch_available

needs_torch = pytest.mark.skipif(not torch_available(), reason="PyTorch is not installed (pip install -e '.[gpu]'): "
                                 "this test times real work on the CPU")
needs_cuda = pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU (run bench/gpu_calibrate.sh on one)")

# Stated bound for the CPU test: held-out MAPE of a profile measured on a shared 2-core machine at tiny
# shapes (3 rounds, fastest kept). Measured 10-28% at load averages 3-5 (predicting every step by the train
# median: 90-170%); a lent GPU's goal is 10%. The bound leaves room for a busier machine.
CPU_HELDOUT_MAPE = 0.45


def test_step_features_are_the_engines():
    # a chunk of c after p cached: c tokens, c*p + c(c+1)/2 pairs, p read; it samples once (its last chunk)
    assert StepShape(chunk=4, prefix=10).features() == {"tokens": 4, "sampled": 1, "pairs": 40 + 10, "kv_read": 10}
    # m decodes over s cached tokens each: m tokens and samples, m(s+1) pairs, m*s read
    assert StepShape(decodes=3, context=7).features() == {"tokens": 3, "sampled": 3, "pairs": 24, "kv_read": 21}
    mixed = StepShape(chunk=4, prefix=10, decodes=3, context=7)
    assert mixed.features() == {"tokens": 7, "sampled": 4, "pairs": 74, "kv_read": 31} and mixed.kind == "mixed"


@pytest.mark.parametrize("grid", [sp.cpu_grid, sp.gpu_grid])
def test_held_out_points_are_disjoint_and_every_kind_is_fitted(grid):
    steps = grid()
    train, held = sp.split_heldout(steps)
    assert sorted(map(repr, train + held)) == sorted(map(repr, steps)) and not set(train) & set(held)
    for kind in ("prefill", "decode", "mixed"):
        assert any(s.kind == kind for s in train)
    assert 0.15 <= len(held) / len(steps) <= 0.35
    # held-out points lie inside the grid, never at its smallest corner
    assert min(s.features()["tokens"] for s in train) <= min(s.features()["tokens"] for s in held)


def _synthetic(cost: StepCost, steps):
    return [sp.StepPoint(s, 0.0, 0.0, cost.time(**s.features()), False) for s in steps]


def test_a_written_profile_loads_and_the_simulator_refits_it(tmp_path):
    truth = StepCost(fixed_s=2e-3, token_s=3e-5, sampled_s=1e-5, pair_s=2e-9, kv_read_s=4e-8)
    train, held = sp.split_heldout(sp.cpu_grid())
    res = sp.write_profile(tmp_path, "h100", "llama-3-8b", _synthetic(truth, train), _synthetic(truth, held),
                           "python -m evaluators.gpu.calibrate --out x", 0.0, {"timed_shape": "tiny"})
    body = json.loads((tmp_path / "profile.json").read_text())
    assert body["format"] == FORMAT and len(body["table"]["rows"]) == len(train)   # held-out rows stay out
    prof = load_profile(tmp_path / "profile.json")
    g = prof.gpu()
    for name in ("fixed_s", "token_s", "sampled_s", "pair_s", "kv_read_s"):
        assert getattr(g.step, name) == pytest.approx(getattr(truth, name), rel=1e-6)
    assert res.heldout_mape < 1e-9 and res.analytic_heldout_mape is None
    report = json.loads((tmp_path / "profile_report.json").read_text())
    assert len(report["held_out"]) == len(held) and report["heldout_mape"] == res.heldout_mape


def test_the_analytic_roofline_is_compared_only_at_the_models_own_shapes(tmp_path):
    truth = StepCost(fixed_s=5e-3, token_s=1e-5, sampled_s=1e-6, pair_s=1e-10, kv_read_s=1e-8)
    train, held = sp.split_heldout(sp.gpu_grid())
    res = sp.write_profile(tmp_path, "h200", "llama-3-8b", _synthetic(truth, train), _synthetic(truth, held),
                           "cmd", 5e-4, {"timed_shape": "llama-3-8b"})
    assert res.analytic_heldout_mape is not None and res.analytic_heldout_mape > 0.05




@needs_torch
def test_chunk_attention_is_causal_from_the_end_of_the_cache():
    """A chunk's query i sits at position prefix+i: it sees every cached key and the chunk's keys up to i."""
    import torch
    from evaluators.gpu.backend import open_backend
    from evaluators.gpu.transformer import TINY, LayerStack
    b = open_backend("cpu", flush_bytes=1 << 16)
    stack = LayerStack(b, TINY, 1)
    torch.manual_seed(0)
    c, p, H, KV, D = 3, 5, TINY.heads, TINY.kv_heads, TINY.head_dim
    q, k, v = torch.randn(1, H, c, D), torch.randn(1, KV, p + c, D), torch.randn(1, KV, p + c, D)
    got = stack._attend(q, k, v, causal=True)
    kk, vv = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
    scores = q @ kk.transpose(-1, -2) / D ** 0.5
    allowed = torch.arange(p + c)[None, :] <= (p + torch.arange(c))[:, None]
    want = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ vv
    assert torch.allclose(got, want, atol=1e-5)


@needs_torch
def test_a_cpu_profile_predicts_held_out_steps():
    import torch
    from evaluators.gpu.backend import open_backend
    from evaluators.gpu.bench import Bench
    from evaluators.gpu.timing import RepeatPolicy
    from evaluators.gpu.transformer import TINY, LayerStack
    import tempfile
    from pathlib import Path
    threads = torch.get_num_threads()
    torch.set_num_threads(1)    # one core of a shared two: steadier timings
    try:
        b = open_backend("cpu", flush_bytes=1 << 20)
        bench = Bench.on(b, RepeatPolicy(warmup=1, min_repeats=5, max_repeats=9, target_spread=0.1), reference_n=96)
        stack = LayerStack(b, TINY, 2)
        train_steps, held_steps = sp.split_heldout(sp.cpu_grid())
        points = sp.profile_steps(bench, stack, train_steps + held_steps, TINY.layers, rounds=3)
    finally:
        torch.set_num_threads(threads)
    train, held = points[:len(train_steps)], points[len(train_steps):]
    assert all(len(p.rounds_s) == 3 and p.step_s == min(p.rounds_s) for p in points)
    with tempfile.TemporaryDirectory() as d:
        res = sp.write_profile(Path(d), "h100", "llama-3-8b", train, held, "test", 0.0, {"timed_shape": "tiny"})
        g = load_profile(Path(d) / "profile.json").gpu()
    meas = np.array([p.step_s for p in held])
    pred = np.array([g.step.time(**p.step.features()) for p in held])
    heldout = float(np.mean(np.abs(pred - meas) / meas))
    trivial = float(np.mean(np.abs(np.median([p.step_s for p in train]) - meas) / meas))
    assert heldout == pytest.approx(res.heldout_mape)
    assert heldout <= CPU_HELDOUT_MAPE, (heldout, res)
    assert heldout <= 0.5 * trivial, (heldout, trivial)   # the fit explains the steps, not just their scale
    # bigger steps take longer: the fitted model is not flat
    assert g.step.token_s > 0 and g.step.time(256, 1, 256 * 257 // 2, 0) > 3 * g.step.time(16, 1, 136, 0)


@needs_cuda
def test_a_llama_3_8b_step_runs_on_the_gpu():
    from evaluators.gpu.backend import open_backend
    from evaluators.gpu.transformer import LayerStack
    from evaluators.serving.gpu import MODELS
    b = open_backend("cuda")
    stack = LayerStack(b, MODELS["llama-3-8b"], 1)
    for step in (StepShape(chunk=512, prefix=1024), StepShape(decodes=8, context=2048),
                 StepShape(chunk=256, prefix=0, decodes=4, context=512)):
        p = stack.prepare(step)
        assert stack.run_layers(p).shape == (step.chunk + step.decodes, 4096)
        assert stack.run_head(p).shape == (step.features()["sampled"], 128256)
    assert not stack.expand_kv, "SDPA refused grouped K/V: the profile times an extra K/V copy"
