"""EPLB cost model and algorithms: DeepSeek's reference output, hand-computed costs, DeepSeek's placement
guidance, sampled steps, least-loaded routing, migration, the MoETuner-style baseline."""
from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from evaluators.eplb import make_evaluator
from evaluators.eplb.cost_model import Coefficients, Model, score_window
from evaluators.eplb.migration import fetched_pairs
from evaluators.eplb.replica_routing import slot_tokens
from evaluators.eplb.settings import Setting
from evaluators.eplb.steps import WindowSample
from evaluators.eplb.validate import replica_slots, validate

PROBLEM = Path(__file__).resolve().parent.parent / "problems" / "eplb"
README_WEIGHT = np.array([[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                          [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]])
# the phy2log DeepSeek's EPLB README prints for README_WEIGHT (16 replicas, 4 groups, 2 nodes, 8 GPUs)
README_PHY2LOG = [[5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
                  [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1]]


def program(name: str):
    path = PROBLEM / ("initial.py" if name == "initial" else f"baselines/{name}.py")
    spec = importlib.util.spec_from_file_location(f"eplb_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.rebalance_experts


@pytest.fixture(scope="module")
def ev():
    return make_evaluator({"runtime_weight": 0.0}, PROBLEM)


# ---------------------------------------------------------------- DeepSeek's algorithm, loops and vectorised

@pytest.mark.parametrize("name", ["initial", "deepseek_hierarchical"])
def test_deepseek_readme_example(name):
    phy2log, logcnt = program(name)(README_WEIGHT, 16, 4, 2, 8)
    assert phy2log.tolist() == README_PHY2LOG
    assert logcnt.tolist() == np.stack([np.bincount(r, minlength=12) for r in README_PHY2LOG]).tolist()


@pytest.mark.parametrize("shape", [(288, 8, 4, 32), (320, 8, 8, 64), (288, 3, 4, 32), (64, 4, 2, 8)])
def test_loop_initial_equals_vectorised_deepseek(shape):
    weight = np.random.default_rng(sum(shape)).integers(0, 5000, size=(6, 256 if shape[0] > 64 else 32))
    a, b = program("initial")(weight, *shape), program("deepseek_hierarchical")(weight, *shape)
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0])


# ---------------------------------------------------------------- the cost model by hand

def tiny(kernels: str) -> Setting:
    """4 experts, 4 slots, 2 nodes x 2 GPUs, one slot per GPU; 100 tokens per step."""
    return Setting("tiny", 4, 4, 2, 2, 4, step_tokens=100, kernels=kernels)


COEF = Coefficients(fixed_s=1.0, per_token_s=0.1, rdma_s=1.0, nvlink_s=0.5, combine_ratio=2.0)
PHY2LOG, LOGCNT = np.array([[0, 1, 2, 3]]), np.ones((1, 4), dtype=np.int64)


def sample(routes=((0, 2), (0, 1))) -> WindowSample:
    r = np.array([routes])
    return WindowSample(np.array([[[10.0, 20.0, 30.0, 40.0]]]), r, np.zeros(r.shape))


def layer_time(setting, coef=COEF, mb=2, top_k=1, smp=None):
    smp = smp or sample()
    return score_window(PHY2LOG, LOGCNT, replica_slots(PHY2LOG, LOGCNT), smp, setting, coef,
                        Model("even", mb, top_k))


def test_low_latency_kernels_by_hand():
    # per micro-batch: compute 1 + 0.1*load/2 = [1.5, 2, 2.5, 3]; each GPU sends 12.5 messages and
    # receives load/2 = [5, 10, 15, 20]; a message costs max(2/4 * 1 (RDMA), 1/4 * 0.5 (NVLink)) = 0.5
    # d = 0.5 * max(12.5, recv) = [6.25, 6.25, 7.5, 10], b = 2d; GPU 3: 10 + max(3, 10) + max(3, 20) + 20 = 60
    w = layer_time(tiny("low_latency"))
    assert w.layer_time_s == pytest.approx(60.0)
    assert w.comm_time_s == pytest.approx(30.0)
    assert w.ideal_time_s == pytest.approx(2 * (1.0 + 0.1 * 100 / 4 / 2))  # free comm, mean load, 1 replica/GPU
    # one micro-batch: d = 0.5 * max(25, [10, 20, 30, 40]), T = d + p + b; GPU 3: 20 + (1 + 4) + 40 = 65
    assert layer_time(tiny("low_latency"), mb=1).layer_time_s == pytest.approx(65.0)
    assert w.max_gpu_load == 40.0 and w.mean_gpu_load == 25.0


def test_normal_kernels_by_hand():
    # tokens: (experts 0, 2) spans both nodes, (0, 1) only node 0: P(node) = [1, .5], P(gpu) = [1, .5, .5, 0].
    # 12.5 tokens per GPU per micro-batch. RDMA: node 0 sends 12.5*.5, receives 12.5*1; node 1 sends 12.5*1,
    # receives 12.5*.5 -> 12.5 everywhere. NVLink forwarded = 12.5*4*P(gpu)/2 = [25, 12.5, 12.5, 0] (1 s/token)
    # d = [25, 12.5, 12.5, 12.5]; compute [1.5, 2, 2.5, 3]; GPU 0: 25 + 25 + 50 + 50 = 150
    w = layer_time(tiny("normal"), coef=dataclasses.replace(COEF, nvlink_s=1.0), top_k=2)
    assert w.layer_time_s == pytest.approx(150.0)
    assert w.nodes_per_token == pytest.approx(1.5)
    # experts of a token on one node: nothing crosses RDMA from node 1's point of view, less from node 0's
    local = layer_time(tiny("normal"), coef=dataclasses.replace(COEF, nvlink_s=1.0), top_k=2,
                       smp=sample(((0, 1), (0, 1))))
    assert local.nodes_per_token == 1.0 and local.layer_time_s <= w.layer_time_s


def test_overlap_hides_the_shorter_of_compute_and_communication():
    s = tiny("low_latency")
    no_comm = dataclasses.replace(COEF, rdma_s=0.0, nvlink_s=0.0)
    assert layer_time(s, coef=no_comm).layer_time_s == pytest.approx(layer_time(s, coef=no_comm, mb=1).layer_time_s + 1)
    # with communication, two micro-batches are never slower than the sum (the +1: weights read twice)
    assert layer_time(s).layer_time_s <= layer_time(s, mb=1).layer_time_s


# ---------------------------------------------------------------- DeepSeek's guidance on its two policies

def times(ev, wid, kernels=None):
    """Layer time (us) of DeepSeek's two policies on a workload, optionally under the other kernel mode."""
    w = ev.workload(wid)
    setting = dataclasses.replace(w.setting, kernels=kernels or w.setting.kernels)
    out = {}
    for name in ("deepseek_hierarchical", "deepseek_global"):
        total = 0.0
        for i, smp in enumerate(ev.samples(wid)):
            p = validate(program(name)(w.loads[i], setting.num_replicas, setting.num_groups, setting.num_nodes,
                                       setting.num_gpus), w.loads.shape[1], setting.num_experts, setting.num_replicas)
            total += score_window(p.phy2log, p.logcnt, replica_slots(p.phy2log, p.logcnt), smp, setting, ev.coef,
                                  ev.model).layer_time_s
        out[name] = total
    return out


def test_hierarchical_wins_prefill_on_few_nodes_global_wins_decode_at_large_ep(ev):
    """DeepSeek: hierarchical for prefill with a smaller EP size, global for decode with a larger one."""
    prefill = times(ev, "ep32:skew3:seed100:drift0.25:layers16:win3")
    assert prefill["deepseek_hierarchical"] < prefill["deepseek_global"]
    decode = times(ev, "ep64:skew2:seed102:layers16:win3")
    assert decode["deepseek_global"] < decode["deepseek_hierarchical"]
    # the reason is the dispatch: the same prefill placements under per-pair (low-latency) kernels swap order
    same = times(ev, "ep32:skew3:seed100:drift0.25:layers16:win3", kernels="low_latency")
    assert same["deepseek_global"] < same["deepseek_hierarchical"]


# ---------------------------------------------------------------- sampled steps, routing, migration

def test_balanced_on_average_pays_on_sampled_steps(ev):
    wid = "ep64:skew3:seed5:layers8:win2"
    w, smp = ev.workload(wid), ev.samples(wid)[0]
    s = w.setting
    p = validate(program("deepseek_global")(w.loads[1], s.num_replicas, s.num_groups, s.num_nodes, s.num_gpus),
                 8, 256, s.num_replicas)  # placed on the very loads it is scored on: balanced on average
    mean = smp.counts.mean(axis=0, keepdims=True)
    expected = dataclasses.replace(smp, counts=(w.loads[1] / w.loads[1].sum(1, keepdims=True)
                                                * s.step_tokens * 8)[None])
    slots = replica_slots(p.phy2log, p.logcnt)
    on_steps = score_window(p.phy2log, p.logcnt, slots, smp, s, ev.coef, ev.model)
    on_average = score_window(p.phy2log, p.logcnt, slots, expected, s, ev.coef, ev.model)
    assert on_steps.layer_time_s > on_average.layer_time_s
    assert on_steps.mean_gpu_load / on_steps.max_gpu_load < on_average.mean_gpu_load / on_average.max_gpu_load
    assert mean.sum() == pytest.approx(smp.counts[0].sum())  # every step routes the same number of tokens


def test_least_loaded_routing_by_hand():
    phy2log = np.array([[0, 2, 0, 1, 1, 3]])      # 3 GPUs x 2 slots; experts 0 and 1 have two replicas
    logcnt = np.array([[2, 2, 1, 1]])
    counts = np.array([[[100.0, 60.0, 10.0, 20.0]]])
    slots = replica_slots(phy2log, logcnt)
    even = slot_tokens(counts, phy2log, logcnt, slots, 2, "even").reshape(3, 2).sum(axis=1)
    ll = slot_tokens(counts, phy2log, logcnt, slots, 2, "least_loaded")
    assert even.tolist() == [60, 80, 50]
    # two water-filling rounds (expert 0 then 1): [65, 62.5, 62.5]; the optimum is 63.3 each
    assert ll.reshape(3, 2).sum(axis=1).tolist() == pytest.approx([65.0, 62.5, 62.5])
    assert ll.sum() == pytest.approx(counts.sum())


def test_least_loaded_routing_never_raises_a_steps_max(ev):
    wid = "ep32:skew6:seed101:layers6:win2"
    w, smp = ev.workload(wid), ev.samples(wid)[0]
    s = w.setting
    p = validate(program("greedy_lpt")(w.loads[0], s.num_replicas, s.num_groups, s.num_nodes, s.num_gpus),
                 6, 256, s.num_replicas)
    slots = replica_slots(p.phy2log, p.logcnt)
    even = slot_tokens(smp.counts, p.phy2log, p.logcnt, slots, s.slots_per_gpu, "even")
    ll = slot_tokens(smp.counts, p.phy2log, p.logcnt, slots, s.slots_per_gpu, "least_loaded")
    gpu = lambda t: t.reshape(*t.shape[:2], s.num_gpus, -1).sum(axis=3)  # noqa: E731
    assert (gpu(ll).max(axis=2) <= gpu(even).max(axis=2) + 1e-6).all()
    assert (gpu(ll).max(axis=2) < gpu(even).max(axis=2) - 1).any()
    assert np.allclose(ll.sum(axis=2), smp.counts.sum(axis=2))


def test_fetched_pairs_by_hand():
    old = np.array([[0, 1, 2, 3]])                 # 2 GPUs x 2 slots
    assert fetched_pairs(old, old, 4, 2) == 0
    assert fetched_pairs(old, np.array([[1, 0, 3, 2]]), 4, 2) == 0   # moves within a GPU are free
    assert fetched_pairs(old, np.array([[2, 1, 0, 3]]), 4, 2) == 2   # 2 to GPU 0, 0 to GPU 1


def test_migration_is_reported_and_weighted():
    wid = "ep32:skew4:seed9:layers4:win4"
    plain = make_evaluator({"runtime_weight": 0.0}, PROBLEM)
    weighted = make_evaluator({"runtime_weight": 0.0, "migration_weight": 0.5}, PROBLEM)
    from tests.inprocess import InProcessCandidate
    greedy = InProcessCandidate.from_file(PROBLEM / "baselines/greedy_lpt.py")
    a, b = plain.evaluate(greedy, wid).metrics, weighted.evaluate(greedy, wid).metrics
    assert a["migration_gb"] > 0 and 0 < a["moved_share"] <= 1
    assert a["score"] == a["time_efficiency"]
    assert b["score"] == pytest.approx(a["score"] * (1 - 0.5 * a["moved_share"]))
    still = plain.evaluate(InProcessCandidate.from_file(PROBLEM / "baselines/contiguous.py"), wid).metrics
    assert still["migration_gb"] == 0 and still["moved_share"] == 0


# ---------------------------------------------------------------- the MoETuner-style baseline

@pytest.mark.parametrize("use_ilp", [True, False])
def test_moetuner_is_valid_and_keeps_groups_together(use_ilp, monkeypatch):
    spec = importlib.util.spec_from_file_location("moetuner", PROBLEM / "baselines/moetuner.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if use_ilp:
        pytest.importorskip("scipy")
    else:
        monkeypatch.setattr(mod, "milp", None)
    weight = make_evaluator({}, PROBLEM).workload("ep32:skew6:seed3:layers4:win2").loads[0]
    phy2log, logcnt = mod.rebalance_experts(weight, 288, 8, 4, 32)
    validate((phy2log, logcnt), 4, 256, 288)
    groups_per_node = [len(set((phy2log[l, n * 72:(n + 1) * 72] // 32).tolist())) for l in range(4) for n in range(4)]
    assert np.mean(groups_per_node) < 4  # far fewer than a group-blind placement (all 8 on every node)
