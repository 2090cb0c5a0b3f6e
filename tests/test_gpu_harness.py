"""The measuring harness (evaluators/gpu): adaptive repeats, cache flush, drift detection, device readings.

The logic is tested with a fake timer (each fake operation returns the seconds it "took"), so the
assertions are exact whatever the machine's load; a few tests run the real CPU backend at tiny sizes,
and the CUDA-only ones skip, saying so, where there is no GPU.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluators.gpu.bench import Bench
from evaluators.gpu.drift import check_drift
from evaluators.gpu.timing import RepeatPolicy, measure, relative_spread
from evaluators.gpu.backend import cuda_available, torch_available

needs_torch = pytest.mark.skipif(not torch_available(), reason="PyTorch is not installed (pip install -e '.[gpu]'): "
                                 "this test times real work on the CPU")
needs_cuda = pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU (run bench/gpu_calibrate.sh on one)")

ROOT = Path(__file__).resolve().parent.parent
POLICY = RepeatPolicy(warmup=2, min_repeats=5, max_repeats=20, target_spread=0.05)


def fake_timer(fn):
    return fn()   # a fake operation returns its own duration


def scripted(values):
    """An operation whose n-th run 'takes' values[n] seconds (the last value repeats)."""
    calls = []

    def fn():
        calls.append(1)
        return values[min(len(calls) - 1, len(values) - 1)]
    fn.calls = calls
    return fn


def test_constant_timings_stop_at_the_minimum_repeats():
    fn = scripted([1.0])
    t = measure(fn, fake_timer, POLICY)
    assert t.repeats == POLICY.min_repeats and t.converged and t.median_s == 1.0 and t.spread == 0.0
    assert len(fn.calls) == POLICY.warmup + POLICY.min_repeats


def test_warmup_runs_are_not_counted():
    fn = scripted([50.0, 50.0, 1.0])
    t = measure(fn, fake_timer, POLICY)
    assert 50.0 not in t.samples_s and t.median_s == 1.0


def test_repeats_continue_until_the_spread_is_met():
    noisy = [1.0, 1.6, 0.7, 1.4, 0.8]          # after warm-up: spread well above 5%
    fn = scripted([1.0, 1.0] + noisy + [1.0])  # then steady at 1.0
    t = measure(fn, fake_timer, POLICY)
    assert t.converged and POLICY.min_repeats < t.repeats < POLICY.max_repeats
    assert t.spread <= POLICY.target_spread
    # it stopped at the first count where the spread was met, not later
    assert relative_spread(list(t.samples_s[:-1])) > POLICY.target_spread
    assert t.median_s == 1.0


def test_spread_never_met_stops_at_the_cap_and_says_so():
    fn = scripted([1.0, 2.0] * 50)
    t = measure(fn, fake_timer, POLICY)
    assert t.repeats == POLICY.max_repeats and not t.converged and t.spread > POLICY.target_spread


def test_the_cache_is_flushed_before_every_run():
    flushes = []
    fn = scripted([1.0])
    t = measure(fn, fake_timer, POLICY, flush=lambda: flushes.append(len(fn.calls)))
    assert len(flushes) == POLICY.warmup + t.repeats
    assert flushes == list(range(len(flushes)))   # each flush comes before the next run


def test_a_bad_policy_is_refused():
    with pytest.raises(ValueError, match="min_repeats"):
        measure(scripted([1.0]), fake_timer, RepeatPolicy(min_repeats=5, max_repeats=2))


class FakeGpu:
    """A reference GEMM whose speed the test controls: `slowdown` multiplies its time from now on."""

    def __init__(self):
        self.slowdown = 1.0
        self.reference_runs = 0

    def reference(self):
        self.reference_runs += 1
        return 1e-3 * self.slowdown


def test_a_steady_device_is_not_flagged():
    gpu = FakeGpu()
    bench = Bench(fake_timer, POLICY, reference=gpu.reference, reference_policy=POLICY, drift_tolerance=0.05)
    rec = bench.measure("op", {"a": scripted([2.0]), "b": scripted([3.0])})
    assert rec.median("a") == 2.0 and rec.median("b") == 3.0
    assert rec.drift is not None and not rec.flagged and rec.drift.change == 0.0


def test_an_injected_slowdown_is_flagged():
    gpu = FakeGpu()
    bench = Bench(fake_timer, POLICY, reference=gpu.reference, reference_policy=POLICY, drift_tolerance=0.05)
    bench.measure("first", {"x": scripted([1.0])})

    def slows_the_device():   # the device slows down (thermal throttling) while this one is measured
        gpu.slowdown = 1.15
        return 1.0
    rec = bench.measure("throttled", {"x": slows_the_device})
    assert rec.flagged and rec.drift.change == pytest.approx(0.15)
    assert "slowed by 15.0%" in rec.drift.reason
    assert bench.summary()["drift_flagged"] == ["throttled"]
    # the next measurement is steady across itself but still slower than the session's start
    later = bench.measure("later", {"x": scripted([1.0])})
    assert later.drift.change == 0.0 and later.flagged and "session's start" in later.drift.reason


def test_a_small_wobble_within_tolerance_is_not_flagged():
    d = check_drift(1.00e-3, 1.03e-3, 1.0e-3, tolerance=0.05)
    assert not d.flagged and d.reason is None
    assert check_drift(1.0e-3, 0.9e-3, 1.0e-3, tolerance=0.05).reason.startswith("reference GEMM sped up")


def test_the_reference_after_one_measurement_serves_as_the_next_ones_before():
    gpu = FakeGpu()
    pol = RepeatPolicy(warmup=0, min_repeats=1, max_repeats=1, target_spread=1.0)
    bench = Bench(fake_timer, pol, reference=gpu.reference, reference_policy=pol)
    for i in range(4):
        bench.measure(f"m{i}", {"x": scripted([1.0])})
    assert gpu.reference_runs == 4 + 1


def test_records_are_plain_json():
    bench = Bench(fake_timer, POLICY, reference=FakeGpu().reference, reference_policy=POLICY)
    rec = bench.measure("op", {"a": scripted([1.0])}, grid="decode", batch=4)
    back = json.loads(json.dumps(rec.as_dict()))
    assert back["meta"] == {"grid": "decode", "batch": 4} and back["timings"]["a"]["repeats"] == POLICY.min_repeats


def test_nothing_in_the_harness_imports_torch_until_a_backend_is_opened():
    code = ("import sys, evaluators.gpu.bench, evaluators.gpu.backend, evaluators.gpu.device_info, "
            "evaluators.gpu.drift, evaluators.gpu.transformer, evaluators.gpu.serving_profile, "
            "evaluators.gpu.moe_bench, evaluators.gpu.calibrate, evaluators.gpu.figures; "
            "assert 'torch' not in sys.modules, 'torch imported eagerly'")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_a_missing_torch_is_named_with_the_install_command(monkeypatch):
    from evaluators.gpu import backend
    monkeypatch.setitem(sys.modules, "torch", None)   # import torch now raises ImportError
    with pytest.raises(backend.TorchMissing, match=r"pip install -e '\.\[gpu\]'"):
        backend.open_backend("cpu")
    assert not backend.torch_available()




@needs_torch
def test_the_cpu_backend_measures_a_tiny_gemm_with_device_readings():
    import torch
    from evaluators.gpu.backend import open_backend
    from evaluators.gpu.timing import RepeatPolicy
    b = open_backend("cpu", flush_bytes=1 << 20)
    bench = Bench.on(b, RepeatPolicy(warmup=1, min_repeats=3, max_repeats=5, target_spread=0.5), reference_n=64)
    x = b.randn(64, 64)
    rec = bench.measure("gemm", {"mm": lambda: x @ x})
    assert rec.median("mm") > 0 and rec.drift is not None and rec.drift.before_s > 0
    assert bench.device.kind == "cpu" and bench.device.name and bench.device.torch == torch.__version__
    assert rec.before is not None and rec.before.time_s <= rec.after.time_s and bench.device.name in rec.device
    json.dumps(rec.as_dict())


@needs_torch
def test_opening_cuda_without_a_gpu_says_so():
    from evaluators.gpu.backend import open_backend
    if cuda_available():
        pytest.skip("a CUDA device is present: the refusal cannot be seen here")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        open_backend("cuda")


@needs_cuda
def test_cuda_events_time_a_gemm_and_the_device_is_read():
    from evaluators.gpu.backend import open_backend
    b = open_backend("cuda")
    bench = Bench.on(b)
    x = b.randn(4096, 4096)
    rec = bench.measure("gemm", {"mm": lambda: x @ x})
    tflops = 2 * 4096 ** 3 / rec.median("mm") / 1e12
    assert 50 < tflops < 1500, tflops
    assert bench.device.kind == "cuda" and bench.device.l2_bytes and rec.before.sm_clock_mhz
