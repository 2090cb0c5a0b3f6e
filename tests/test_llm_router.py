"""The llm_router problem: the orderings the routing literature reports (on held-out workloads), the attack
set through the real sandbox, workload ids and a trace file."""
from __future__ import annotations

import dataclasses

import pytest

from evaluators.base import ConfigError
from evaluators.llm_router import make_evaluator
from evolve import problem
from evolve.run.scoring import ProgramScorer
from sandbox.base import Limits
from sandbox.inprocess import InProcessSandbox
from sandbox.local import LocalSandbox
from tests.conftest import ROOT

PROBLEM = ROOT / "problems" / "llm_router"
ENTRIES = ("init", "route")


def _source(name: str) -> str:
    return (PROBLEM / "baselines" / f"{name}.py").read_text()


def _evaluate(source: str, workload: str) -> dict[str, float]:
    with InProcessSandbox().start(source, Limits(), ENTRIES) as cand:
        return make_evaluator({}, PROBLEM).evaluate(cand, workload).metrics


@pytest.fixture(scope="module")
def held_out():
    spec = problem.load(PROBLEM)
    pick = {"sharegpt": ("round_robin", "least_requests", "cache_aware"),
            "azure-conv": ("round_robin", "least_requests", "cache_aware"),
            "mooncake": ("consistent_hash", "dualmap")}
    out = {}
    for w in spec.workloads.held_out:
        if w.startswith("mooncake") and "hotburst=" not in w:
            continue   # the hot-burst variant is the one the ordering names
        names = pick.get(w.split(":", 1)[0], ())
        out[w] = {b: _evaluate(_source(b), w) for b in names}
        if w.startswith("mooncake"):
            out[w]["consistent_hash_unbounded"] = _evaluate(
                _source("consistent_hash").replace("BOUND = 1.25", "BOUND = None"), w)
    return out


def _one(held_out, prefix: str, half: bool = False) -> dict:
    return next(v for k, v in held_out.items() if k.startswith(prefix) and ("/half=" in k) == half)


@pytest.mark.slow
def test_with_shared_prefixes_cache_aware_beats_round_robin_and_least_requests(held_out):
    by = _one(held_out, "sharegpt")
    for other in ("round_robin", "least_requests"):
        assert by["cache_aware"]["mean_ttft_s"] < by[other]["mean_ttft_s"], other
        assert by["cache_aware"]["prefix_hit"] > 1.5 * by[other]["prefix_hit"], other


@pytest.mark.slow
def test_without_sharing_cache_aware_is_least_requests(held_out):
    by = _one(held_out, "azure-conv")
    assert by["cache_aware"]["prefix_hit"] == 0
    assert by["cache_aware"]["mean_ttft_s"] == pytest.approx(by["least_requests"]["mean_ttft_s"], rel=0.02)


@pytest.mark.slow
def test_round_robin_loses_to_least_requests_when_one_instance_runs_at_half_speed(held_out):
    by = _one(held_out, "azure-conv", half=True)
    assert by["round_robin"]["slo_attainment"] < by["least_requests"]["slo_attainment"] - 0.05
    assert by["round_robin"]["p99_ttft_s"] > 2 * by["least_requests"]["p99_ttft_s"]


@pytest.mark.slow
def test_pure_prefix_affinity_collapses_on_a_hot_prefix_burst_and_bounded_loads_or_dualmap_avoid_it(held_out):
    """In the middle third of the workload 80% of the requests open with one new document."""
    by = _one(held_out, "mooncake")
    assert by["consistent_hash_unbounded"]["imbalance"] > 3.5   # one of four instances serves almost everything
    for name in ("consistent_hash", "dualmap"):
        assert by[name]["imbalance"] < 2.0, name
        assert by[name]["score"] > by["consistent_hash_unbounded"]["score"] + 0.3, name


# ---------------------------------------------------------------- attacks, through the real sandbox

HEADER = "def init(config):\n    pass\n\n"
ATTACKS = {
    "out_of_range": (HEADER + "def route(state):\n    return 99\n", "rule 'instance'"),
    "not_an_integer": (HEADER + "def route(state):\n    return 1.0\n", "rule 'instance'"),
    "claims_its_own_latency": (HEADER + "def route(state):\n    return {'instance': 0, 'mean_ttft_s': 0.0}\n",
                               "rule 'instance'"),
    "spins": (HEADER + "def route(state):\n    while True:\n        pass\n", "timeout"),
    "reads_files": (HEADER + "def route(state):\n    return len(open('/etc/passwd').read())\n", None),
}


@pytest.fixture(scope="module")
def attack_spec():
    spec = problem.load(PROBLEM)
    return dataclasses.replace(spec, limits=dataclasses.replace(spec.limits, call_timeout_s=0.5,
                                                                 workload_timeout_s=10))


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_are_recorded_with_a_reason(attack_spec, name):
    source, expected = ATTACKS[name]
    box = LocalSandbox()
    try:
        out = ProgramScorer(attack_spec, box).score(source, [("quick", attack_spec.workloads.quick)])
    finally:
        box.close()
    assert out.status == "failed", (name, out.reason, out.message)
    if expected is None:
        assert out.reason in ("exception", "invalid_output", "timeout"), out.message
    elif expected == "timeout":
        assert out.reason == "timeout", out.message
    else:
        assert out.reason == "invalid_output" and expected in out.message, (out.reason, out.message)
        assert "request " in out.message


def test_an_honest_router_scores_the_same_in_and_out_of_the_sandbox(attack_spec):
    wid = attack_spec.workloads.quick[0]
    box = LocalSandbox()
    try:
        with box.start(_source("least_requests"), Limits(), ENTRIES) as cand:
            sandboxed = make_evaluator({}, PROBLEM).evaluate(cand, wid).metrics
    finally:
        box.close()
    assert sandboxed == _evaluate(_source("least_requests"), wid)
    assert 0 <= sandboxed["score"] <= 1 and sandboxed["imbalance"] >= 1


@pytest.mark.parametrize("wid,message", [
    ("sharegpt:seed=1:n=100", "look like"),
    ("sharegpt:seed=1:n=100@0.5/half=9", "there are 4 instances"),
    ("sharegpt:seed=1:n=100@0.5/slow=1", "the only option"),
    ("sharegpt:seed=1:n=100@0", "each load"),
])
def test_bad_workload_ids_say_what_is_wrong(wid, message):
    with pytest.raises(ConfigError, match=message):
        make_evaluator({}, PROBLEM).check_workload(wid)


def test_a_mooncake_trace_file_is_a_workload(tmp_path):
    lines = [f'{{"timestamp": {i * 200}, "input_length": {600 + 40 * (i % 7)}, "output_length": {20 + i % 13}, '
             f'"hash_ids": [0, {1 + i % 3}]}}' for i in range(120)]
    trace = tmp_path / "trace.jsonl"
    trace.write_text("\n".join(lines) + "\n")
    m = _evaluate(_source("cache_aware"), f"trace:mooncake:{trace}@0.5")
    assert 0 <= m["score"] <= 1 and m["prefix_hit"] > 0
