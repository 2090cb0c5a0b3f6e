"""The llm_scheduler problem: the sandboxed baselines against the trusted simulator, the attack set, and
the orderings the serving papers report (on held-out-style workloads)."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

from evaluators.llm_scheduler import make_evaluator
from evaluators.llm_scheduler.adapter import SandboxPolicy
from evaluators.serving.engine import EngineConfig, simulate
from evaluators.serving.gpu import gpu_model
from evaluators.serving.policies import Fcfs, Sarathi
from evaluators.serving.requests import Requests
from evolve import problem
from evolve.run.scoring import ProgramScorer
from sandbox.base import Limits
from sandbox.inprocess import InProcessSandbox
from sandbox.local import LocalSandbox
from tests.conftest import ROOT

PROBLEM = ROOT / "problems" / "llm_scheduler"
ENTRIES = ("init", "schedule")


def _requests(wid: str, rate: float) -> Requests:
    """A generated serving workload at an absolute rate (requests/s)."""
    from evaluators.serving.workload_id import parse_workload_id
    return parse_workload_id(wid).requests(rate)


def _source(name: str) -> str:
    return (PROBLEM / "baselines" / f"{name}.py").read_text()


def _evaluate(name: str, workload: str, box=None) -> dict[str, float]:
    box = box or InProcessSandbox()
    with box.start(_source(name), Limits(), ENTRIES) as cand:
        return make_evaluator({}, PROBLEM).evaluate(cand, workload).metrics


@pytest.mark.parametrize("name,builtin", [("fcfs", Fcfs), ("sarathi", Sarathi)])
def test_sandboxed_baselines_decide_exactly_as_the_built_ins(name, builtin):
    reqs = _requests("azure-conv:seed=1:n=600", 18.0)  # ~90% of FCFS capacity on Llama-3-8B/H100: queues form
    gpu, cfg = gpu_model(), EngineConfig()
    ref = simulate(reqs, gpu, builtin(), cfg).records
    with InProcessSandbox().start(_source(name), Limits(), ENTRIES) as cand:
        cand.call("init", {})
        got = simulate(reqs, gpu, SandboxPolicy(cand), cfg).records
    assert np.array_equal(ref.first_token_s, got.first_token_s)
    assert np.array_equal(ref.finish_s, got.finish_s)


def test_local_sandbox_and_in_process_give_identical_metrics():
    wid = "azure-conv:seed=3:n=300@0.9"
    local = LocalSandbox()
    try:
        a = _evaluate("sjf_predicted", wid, local)
    finally:
        local.close()
    assert a == _evaluate("sjf_predicted", wid)
    assert 0 <= a["score"] <= 1


CLASSIC = ("azure-conv", "azure-code", "sharegpt", "mooncake")
ORDERING_BASELINES = ("fcfs", "sarathi", "sjf_predicted")


@pytest.fixture(scope="module")
def held_out():
    """The baselines the orderings name, on the problem's held-out workloads (in process: the same numbers
    as sandboxed, as test_local_sandbox_and_in_process_give_identical_metrics checks)."""
    spec = problem.load(PROBLEM)
    out = {}
    for w in spec.workloads.held_out:
        if "clients=" in w:
            names = ("fcfs", "fair_share")
        elif w.startswith("agent"):
            names = ("fcfs", "continuum_ttl")
        else:
            names = ORDERING_BASELINES
        out[w] = {b: _evaluate(b, w) for b in names}
    return out


def _classic(held_out):
    return {w: by for w, by in held_out.items() if w.split(":", 1)[0] in CLASSIC and "clients=" not in w}


@pytest.mark.slow
def test_light_load_policies_are_within_noise(held_out):
    for wid, by in held_out.items():
        att = [m["slo_attainment@0.3"] for m in by.values()]
        assert max(att) - min(att) <= 0.03, (wid, att)


@pytest.mark.slow
def test_sarathi_beats_fcfs_on_p99_tpot(held_out):
    for wid, by in _classic(held_out).items():
        assert by["sarathi"]["p99_tpot_s"] < 0.8 * by["fcfs"]["p99_tpot_s"], wid


@pytest.mark.slow
def test_sjf_predicted_never_loses_to_fcfs_on_mean_latency(held_out):
    for wid, by in _classic(held_out).items():
        assert by["sjf_predicted"]["mean_e2e_s"] <= 1.005 * by["fcfs"]["mean_e2e_s"], wid


@pytest.mark.slow
def test_sjf_predicted_beats_fcfs_under_heavy_load_with_heavy_tails(held_out):
    """Mooncake-like outputs are the heavy-tailed ones (lognormal sigma 1.36 against Azure's 0.86)."""
    by = next(v for k, v in held_out.items() if k.startswith("mooncake"))
    assert by["sjf_predicted"]["mean_e2e_s"] < 0.97 * by["fcfs"]["mean_e2e_s"]
    assert by["sjf_predicted"]["slo_attainment@1.2"] > by["fcfs"]["slo_attainment@1.2"] + 0.05
    assert by["sjf_predicted"]["slo_attainment"] > by["fcfs"]["slo_attainment"]


@pytest.mark.slow
def test_continuum_ttl_shortens_agent_sessions(held_out):
    """Program-level FCFS and time-to-live pins against FCFS with an LRU prefix cache (what vLLM does)."""
    by = next(v for k, v in held_out.items() if k.startswith("agent"))
    assert by["continuum_ttl"]["mean_session_s"] < 0.98 * by["fcfs"]["mean_session_s"]
    assert by["continuum_ttl"]["mean_e2e_s"] < by["fcfs"]["mean_e2e_s"]


@pytest.mark.slow
def test_a_multi_client_workload_reports_client_fairness(held_out):
    by = next(v for k, v in held_out.items() if "clients=" in k)
    for m in by.values():
        assert 0 < m["client_fairness"] <= 1


# ---------------------------------------------------------------- the attack set, through the real sandbox

HEADER = "def init(config):\n    pass\n\n"
ATTACKS = {
    "reads_files": (HEADER + "def schedule(state):\n    return {'prefill_ids': [len(open('/etc/passwd').read())],"
                    " 'prefill_tokens': [1]}\n", None),
    "spins": (HEADER + "def schedule(state):\n    while True:\n        pass\n", "timeout"),
    "garbage": (HEADER + "def schedule(state):\n    return 'run everything'\n", "rule 'format'"),
    "unknown_request": (HEADER + "def schedule(state):\n    return {'prefill_ids': [10**9], 'prefill_tokens': [1]}\n",
                        "rule 'unknown-request'"),
    "over_budget": (HEADER + textwrap.dedent("""
        def schedule(state):
            w = state['waiting']
            return {'prefill_ids': [int(i) for i in w['id']], 'prefill_tokens': [int(t) for t in w['prefill_left']],
                    'decode': False}
        """), "rule 'token-budget'|rule 'max-running'|rule 'kv-capacity'"),
    "retains_running": (HEADER + textwrap.dedent("""
        def schedule(state):
            run = state['running']
            ids = [int(i) for i in run['id']]
            w = state['waiting']
            pre = [int(i) for i in w['id'][:1]]
            return {'prefill_ids': pre, 'prefill_tokens': [int(t) for t in w['prefill_left'][:1]],
                    'retain_ids': ids, 'retain_s': [600.0] * len(ids)}
        """), "rule 'retain'|rule 'token-budget'|rule 'max-running'|rule 'kv-capacity'"),
    "over_kv": (HEADER + textwrap.dedent("""
        def schedule(state):
            w, run = state['waiting'], state['running']
            ids = [int(i) for i in w['id']][:max(0, state['max_running'] - len(run['id']))]
            return {'prefill_ids': ids, 'prefill_tokens': [1] * len(ids), 'decode': True}
        """), "rule"),
}


@pytest.fixture
def attack_spec():
    """The problem's spec with tight limits."""
    import dataclasses
    spec = problem.load(PROBLEM)
    return dataclasses.replace(spec, limits=dataclasses.replace(spec.limits, call_timeout_s=0.5,
                                                                 workload_timeout_s=10))


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_are_recorded_with_a_reason(attack_spec, name):
    source, expected = ATTACKS[name]
    box = LocalSandbox()
    try:
        out = ProgramScorer(attack_spec, box).score(source, [("quick", ("azure-conv:seed=7:n=200@1.0",))])
    finally:
        box.close()
    assert out.status == "failed", (name, out.reason, out.message)
    if expected is None:   # reading files: refused by the sandbox, or at least never a valid schedule
        assert out.reason in ("exception", "invalid_output", "timeout"), out.message
    elif expected == "timeout":
        assert out.reason == "timeout", out.message
    else:
        assert out.reason == "invalid_output", (out.reason, out.message)
        assert any(e in out.message for e in expected.split("|")), out.message
        assert "decision " in out.message and "step " in out.message


def test_a_real_trace_file_is_a_workload():
    trace = ROOT / "tests" / "fixtures" / "traces" / "azure_conv.csv"
    m = _evaluate("fcfs", f"trace:azure:{trace}@0.5,1.0")
    assert 0 <= m["score"] <= 1 and m["throughput_rps"] > 0
