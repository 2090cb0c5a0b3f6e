"""The MoE placement microbenchmark (evaluators/gpu/moe_bench.py): tokens per slot and per simulated GPU, the
ideal, validation of the placement, and a real CPU measurement at tiny shapes where a balanced placement
runs faster than a skewed one."""
from __future__ import annotations

import numpy as np
import pytest

from evaluators.base import InvalidOutput
from evaluators.gpu import moe_bench as mb
from evaluators.gpu.backend import cuda_available, torch_available

needs_torch = pytest.mark.skipif(not torch_available(), reason="PyTorch is not installed (pip install -e '.[gpu]'): "
                                 "this test times real work on the CPU")
needs_cuda = pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU (run bench/gpu_calibrate.sh on one)")

# 8 experts, 4 simulated GPUs of 3 slots: 4 spare slots. Two layers with different hot experts.
LOAD = np.array([[40, 30, 20, 10, 10, 10, 10, 10],
                 [10, 40, 10, 30, 10, 20, 10, 10]], dtype=float)
DEP = mb.Deployment(num_gpus=4, slots_per_gpu=3, step_tokens=1024, top_k=2)


def balanced(load):
    """Replicate the 4 hottest experts, then longest-processing-time first onto the least loaded GPU."""
    L, E = load.shape
    phy2log, logcnt = [], []
    for row in load:
        cnt = np.ones(E, dtype=np.int64)
        cnt[np.argsort(-row)[:4]] += 1
        reps = sorted(((row[e] / cnt[e], e) for e in range(E) for _ in range(cnt[e])), reverse=True)
        gpus = [[] for _ in range(DEP.num_gpus)]
        for share, e in reps:
            g = min((g for g in range(DEP.num_gpus) if len(gpus[g]) < DEP.slots_per_gpu),
                    key=lambda g: sum(s for s, _ in gpus[g]))
            gpus[g].append((share, e))
        phy2log.append([e for g in gpus for _, e in g])
        logcnt.append(cnt)
    return np.array(phy2log), np.array(logcnt)


def skewed(load):
    """The three hottest experts together on GPU 0, and the spare slots spent on the coldest experts."""
    phy2log = []
    for row in load:
        order = np.argsort(-row, kind="stable")
        phy2log.append(np.concatenate([order, order[-4:]]))
    phy2log = np.array(phy2log)
    return phy2log, np.array([np.bincount(r, minlength=load.shape[1]) for r in phy2log])


def test_slot_tokens_add_up_to_the_steps_assignments_split_evenly_over_replicas():
    phy2log, logcnt = balanced(LOAD)
    slot = mb.step_slot_tokens(LOAD, phy2log, logcnt, DEP)
    assert slot.shape == (2, 12)
    assert np.all(np.abs(slot.sum(axis=1) - DEP.step_tokens * DEP.top_k) <= 12)   # rounding, one per slot
    hottest = 0  # layer 0's expert 0 has 40/140 of 2048 assignments over its 2 replicas
    mine = slot[0][phy2log[0] == hottest]
    assert len(mine) == 2 and np.all(np.abs(mine - 2048 * 40 / 140 / 2) <= 0.5)


def test_the_skewed_placement_loads_one_gpu_far_more():
    for place, lo, hi in ((balanced, 1.0, 1.15), (skewed, 2.0, 4.0)):
        slot = mb.step_slot_tokens(LOAD, *place(LOAD), DEP)
        per_gpu = slot.reshape(2, 4, 3).sum(axis=2)
        ratio = per_gpu.max(axis=1) / per_gpu.mean(axis=1)
        assert np.all((lo <= ratio) & (ratio <= hi)), (place.__name__, ratio)


def test_the_ideal_gpu_runs_the_fewest_experts_any_placement_allows():
    phy2log, logcnt = balanced(LOAD)
    assert mb.fewest_per_gpu(LOAD, logcnt, 4).tolist() == [3, 3]        # every expert busy: every slot works
    sparse = LOAD.copy()
    sparse[:, 4:] = 0
    assert mb.fewest_per_gpu(sparse, logcnt, 4).tolist() == [1, 1]      # 4 busy experts over 4 GPUs


def test_sampled_layers_are_spread_and_deterministic():
    assert mb.sample_layers(58, 6) == [0, 11, 23, 34, 46, 57] == mb.sample_layers(58, 6)
    assert mb.sample_layers(3, 8) == [0, 1, 2]


@pytest.mark.parametrize("broken, rule", [
    (lambda p, c: (p[:, :-1], c), "phy2log shape"),
    (lambda p, c: (np.where(p == 7, 0, p), c), "has no replica"),
    (lambda p, c: (p, c + 1), "logcnt"),
])
def test_a_broken_placement_is_refused_before_anything_is_timed(broken, rule):
    class NoBench:
        def measure(self, *a, **k):
            raise AssertionError("timed an invalid placement")
    phy2log, logcnt = broken(*balanced(LOAD))
    with pytest.raises(InvalidOutput, match=rule):
        mb.measure_placement(NoBench(), None, "broken", phy2log, logcnt, LOAD, DEP, coef=None)




def _measure(place_fns, layers=2):
    import torch
    from evaluators.eplb.cost_model import Coefficients
    from evaluators.eplb.settings import Hardware
    from evaluators.gpu.backend import open_backend
    from evaluators.gpu.bench import Bench
    from evaluators.gpu.timing import RepeatPolicy
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        b = open_backend("cpu", flush_bytes=1 << 20)
        bench = Bench.on(b, RepeatPolicy(warmup=1, min_repeats=5, max_repeats=9, target_spread=0.1), reference_n=96)
        places = {f.__name__: f(LOAD) for f in place_fns}
        pool = mb.ExpertPool(b, mb.TINY_EXPERT, DEP.slots_per_gpu, mb.max_gpu_tokens(LOAD, list(places.values()), DEP))
        coef = Coefficients.of(mb.TINY_EXPERT, Hardware())
        return {name: mb.measure_placement(bench, pool, name, p, c, LOAD, DEP, coef, layers)
                for name, (p, c) in places.items()}, bench
    finally:
        torch.set_num_threads(threads)


@needs_torch
def test_a_balanced_placement_measures_faster_than_a_skewed_one_on_the_cpu():
    res, bench = _measure([balanced, skewed])
    bal, skew = res["balanced"], res["skewed"]
    # the skewed placement's busiest GPU runs ~2.6x the tokens: a margin no contention on a shared
    # machine closes (each GPU's time is a median of repeats)
    assert bal.layer_time_s < skew.layer_time_s
    assert 0 < skew.score < bal.score <= 1 and skew.score == min(1.0, skew.raw_ratio)
    for r in (bal, skew):
        assert [x.layer for x in r.layers] == [0, 1]
        for x in r.layers:
            assert x.layer_s == max(x.gpu_s) and len(x.gpu_s) == DEP.num_gpus
            assert sum(x.tokens) == pytest.approx(DEP.step_tokens * DEP.top_k, abs=12)
    # the slowest GPU of the skewed placement is the one holding the hot experts
    assert all(int(np.argmax(x.gpu_s)) == 0 for x in skew.layers)
    # the cost model's compute term orders them the same way
    assert bal.model_layer_time_s < skew.model_layer_time_s
    assert len(bench.records) == 4 and all(r.drift is not None for r in bench.records)


@needs_torch
def test_the_layer_budget_cuts_sampling_short_but_keeps_one_layer():
    from evaluators.eplb.cost_model import Coefficients
    from evaluators.eplb.settings import Hardware
    from evaluators.gpu.backend import open_backend
    from evaluators.gpu.bench import Bench
    from evaluators.gpu.timing import RepeatPolicy
    b = open_backend("cpu", flush_bytes=1 << 16)
    bench = Bench.on(b, RepeatPolicy(warmup=0, min_repeats=1, max_repeats=1, target_spread=1.0), reference_n=32)
    p, c = balanced(LOAD)
    pool = mb.ExpertPool(b, mb.TINY_EXPERT, 3, mb.max_gpu_tokens(LOAD, [(p, c)], DEP))
    r = mb.measure_placement(bench, pool, "b", p, c, LOAD, DEP, Coefficients.of(mb.TINY_EXPERT, Hardware()),
                             layers=2, budget_s=0.0)
    assert len(r.layers) == 1 and 0 < r.score <= 1


@needs_cuda
def test_one_deepseek_v3_layer_is_timed_on_the_gpu():
    from evaluators.eplb.cost_model import Coefficients
    from evaluators.eplb.settings import ExpertShape, Hardware
    from evaluators.gpu.backend import open_backend
    from evaluators.gpu.bench import Bench
    b = open_backend("cuda")
    bench = Bench.on(b)
    dep = mb.Deployment(num_gpus=4, slots_per_gpu=3, step_tokens=4 * 4096, top_k=8)
    p, c = balanced(LOAD)
    pool = mb.ExpertPool(b, ExpertShape(), 3, mb.max_gpu_tokens(LOAD, [(p, c)], dep))
    r = mb.measure_placement(bench, pool, "b", p, c, LOAD, dep, Coefficients.of(ExpertShape(), Hardware()), layers=1)
    assert 0 < r.score <= 1 and r.model_layer_error < 1.0
