"""The serving engine against hand-computed cases, its closed-form decode advance against the step-by-step
reference, the rules it enforces, and the metrics computed from its records."""
from __future__ import annotations

import math

import numpy as np
import pytest

from evaluators.base import ConfigError, InvalidOutput
from evaluators.serving.engine import Engine, EngineConfig, simulate
from evaluators.serving.gpu import GpuModel, StepCost, gpu_model
from evaluators.serving.group import DecodeGroup
from evaluators.serving.metrics import Slo, serving_metrics
from evaluators.serving.policies import Fcfs, Sarathi
from evaluators.serving.policy import Decision, Observation, Seq, observation_message
from evaluators.serving.requests import Requests
from sandbox import protocol

# a step costs 1 ms + 10 us per token + 1 us per sampled token + 1 ns per attention pair + 2 ns per KV token read
COST = StepCost(fixed_s=1e-3, token_s=1e-5, sampled_s=1e-6, pair_s=1e-9, kv_read_s=2e-9)
FLAT = StepCost(fixed_s=1e-3, token_s=1e-5, sampled_s=0.0, pair_s=0.0, kv_read_s=0.0)  # 1 ms + 10 us/token


def gpu(cost: StepCost = COST, blocks: int = 10_000) -> GpuModel:
    return GpuModel("test", cost, blocks)


class Recorder:
    """Wraps a policy, keeping every observation's key figures and every decision."""

    def __init__(self, inner) -> None:
        self.inner, self.seen, self.decisions = inner, [], []

    def decide(self, obs: Observation) -> Decision:
        self.seen.append({
            "now": obs.now_s, "events": obs.events, "free": obs.kv_blocks_free, "budget": obs.token_budget,
            "decode_tokens": obs.decode_tokens,
            "waiting": [(s.id, s.generated, s.kv_tokens, s.prefill_left) for s in obs.waiting],
            "prefilling": [(s.id, s.kv_tokens, s.prefill_left) for s in obs.prefilling],
            "decoding": [(s.id, s.generated, s.kv_tokens) for s in obs.decoding]})
        d = self.inner.decide(obs)
        self.decisions.append(d)
        return d


def azure_like(n: int, rate: float, seed: int) -> Requests:
    g = np.random.default_rng(seed)
    arrival = np.cumsum(g.exponential(1 / rate, n))
    prompt = np.clip(np.rint(g.lognormal(6.63, 0.99, n)), 1, 8000)
    output = np.clip(np.rint(g.lognormal(5.02, 0.86, n)), 1, 2048)
    return Requests.of(arrival, prompt, output)


# ---------------------------------------------------------------- hand-computed cases

def test_one_request_alone_ttft_is_its_prefill_step_and_each_decode_step_is_timed():
    req = Requests.of([0.5], [100], [4])
    rec = simulate(req, gpu(), Fcfs()).records
    prefill = COST.fixed_s + 100 * COST.token_s + COST.sampled_s + (100 * 101 // 2) * COST.pair_s
    assert rec.first_token_s[0] - 0.5 == pytest.approx(prefill, rel=1e-12)
    # decode steps over 100, 101, 102 cached tokens: attention over L + 1, reads L
    decode = [COST.fixed_s + COST.token_s + COST.sampled_s + (L + 1) * COST.pair_s + L * COST.kv_read_s
              for L in (100, 101, 102)]
    assert rec.finish_s[0] - rec.first_token_s[0] == pytest.approx(sum(decode), rel=1e-12)
    m = serving_metrics(rec)
    assert m["mean_tpot_s"] == pytest.approx(sum(decode) / 3, rel=1e-12)
    assert m["mean_ttft_s"] == pytest.approx(prefill, rel=1e-12)
    assert rec.preemptions.tolist() == [0]


def test_two_requests_contending_fcfs_stalls_decodes_sarathi_mixes_them():
    # R0 arrives at 0 (prompt 64, 3 tokens); R1 at 2 ms (prompt 32, 2 tokens) while R0 decodes
    req = Requests.of([0.0, 0.002], [64, 32], [3, 2])
    rec = simulate(req, gpu(FLAT), Fcfs()).records
    # R0 prefill 64 tokens: 1.64 ms; one decode step 1.01 ms ends at 2.65 ms, past R1's arrival: R1's
    # prefill runs alone (R0 stalls): 1.32 ms; then both decode together: 1.02 ms.
    assert rec.first_token_s.tolist() == pytest.approx([0.00164, 0.00164 + 0.00101 + 0.00132], rel=1e-12)
    assert rec.finish_s.tolist() == pytest.approx([0.00499, 0.00499], rel=1e-12)
    rec = simulate(req, gpu(FLAT), Sarathi()).records
    # Sarathi: R1's 32-token chunk runs with R0's decode (33 tokens, 1.33 ms): R0 is done then; R1 decodes alone
    assert rec.first_token_s.tolist() == pytest.approx([0.00164, 0.00398], rel=1e-12)
    assert rec.finish_s.tolist() == pytest.approx([0.00398, 0.00499], rel=1e-12)


def test_a_cache_too_small_forces_exactly_one_preemption_frees_the_kv_and_recomputes():
    # 10 blocks of 16 tokens. R0 (prompt 64, 40 tokens) takes 4 blocks, then a 5th on its first decode;
    # R1 (prompt 64) arrives and fits (4 + 1 blocks): the cache is full. When R0 needs its 6th block the
    # latest arrival, R1, is preempted; it waits until R0 is done, then recomputes prompt + generated.
    req = Requests.of([0.0, 0.004], [64, 64], [40, 40])
    rec_policy = Recorder(Fcfs(watermark=0.0))
    result = simulate(req, gpu(FLAT, blocks=10), rec_policy)
    assert result.records.preemptions.tolist() == [0, 1]
    assert result.stats.preemptions == 1
    seen = rec_policy.seen
    kv_full = next(i for i, o in enumerate(seen) if "kv_full" in o["events"])
    before = seen[kv_full]
    assert before["free"] == 0 and {d[0] for d in before["decoding"]} == {0, 1}
    assert rec_policy.decisions[kv_full].preempt == [1]
    r0_generated = next(g for i, g, _ in before["decoding"] if i == 0)
    # with R1 gone, R0 decodes alone to its end (1.01 ms a step); the next decision point is its finish
    after = seen[kv_full + 1]
    assert "finish" in after["events"] and after["decoding"] == [] and after["prefilling"] == []
    assert result.records.finish_s[0] == pytest.approx(before["now"] + (40 - r0_generated) * 0.00101, rel=1e-12)
    (rid, generated, kv, left), = after["waiting"]   # R1 waits with no KV; its tokens are kept
    assert rid == 1 and kv == 0 and 1 < generated < 40 and left == 64 + generated
    assert after["free"] == 10
    # R1 is re-admitted: one prefill step recomputes prompt + generated tokens and emits its next token
    assert rec_policy.decisions[kv_full + 1].prefill == [(1, 64 + generated)]
    recompute = seen[kv_full + 2]["now"] - after["now"]
    assert recompute == pytest.approx(FLAT.fixed_s + (64 + generated) * FLAT.token_s, rel=1e-12)
    assert result.records.finish_s[1] == pytest.approx(
        seen[kv_full + 2]["now"] + (40 - generated - 1) * 0.00101, rel=1e-12)


def test_chunked_prefill_splits_a_long_prompt_within_the_budget():
    req = Requests.of([0.0], [1000], [2])
    rec_policy = Recorder(Fcfs())
    rec = simulate(req, gpu(), rec_policy, EngineConfig(token_budget=256, max_running=8)).records
    chunks = [d.prefill for d in rec_policy.decisions if d.prefill]
    assert chunks == [[(0, 256)], [(0, 256)], [(0, 256)], [(0, 232)]]
    expected = 0.0
    for p, c in ((0, 256), (256, 256), (512, 256), (768, 232)):
        expected += COST.time(c, c == 232, c * p + c * (c + 1) // 2, p)
    assert rec.first_token_s[0] == pytest.approx(expected, rel=1e-12)
    assert [o["prefilling"] for o in rec_policy.seen[1:4]] == [[(0, 256, 744)], [(0, 512, 488)], [(0, 768, 232)]]


def test_sarathi_keeps_every_step_within_its_token_budget():
    req = azure_like(60, 30.0, seed=3)
    rec_policy = Recorder(Sarathi(step_tokens=300))
    simulate(req, gpu(), rec_policy, EngineConfig(max_running=32))
    for obs, d in zip(rec_policy.seen, rec_policy.decisions):
        assert d.decode
        assert obs["decode_tokens"] - sum(i in d.preempt for i, *_ in obs["decoding"]) \
            + sum(c for _, c in d.prefill) <= 300
    assert sum(len(d.prefill) > 0 for d in rec_policy.decisions) > 60   # prompts were split over steps


# ---------------------------------------------------------------- closed form vs step by step

@pytest.mark.parametrize("policy,blocks", [(Fcfs, 28_375), (Sarathi, 28_375), (Fcfs, 1_500), (Sarathi, 1_500)])
def test_closed_form_decode_advance_equals_the_step_by_step_reference(policy, blocks):
    req = azure_like(250, 25.0, seed=7)
    g = gpu_model()
    g = GpuModel(g.name, g.step, blocks)
    cfg = EngineConfig(max_running=64, seed=7)
    fast = simulate(req, g, policy(), cfg)
    slow = simulate(req, g, policy(), EngineConfig(max_running=64, seed=7, reference=True))
    for field in ("first_token_s", "finish_s"):
        np.testing.assert_allclose(getattr(fast.records, field), getattr(slow.records, field), rtol=1e-9)
    assert fast.records.preemptions.tolist() == slow.records.preemptions.tolist()
    assert fast.stats.steps == slow.stats.steps
    assert fast.stats.decisions < slow.stats.decisions / 2   # the policy is not consulted on alike steps
    if blocks < 2000:
        assert fast.stats.preemptions > 0


def test_decode_group_block_horizon_matches_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(200):
        group = DecodeGroup()
        group.clock.d = int(rng.integers(0, 50))
        seqs = []
        for i in range(int(rng.integers(1, 12))):
            s = Seq(i, 10, 0.0, 5)
            s._c, s._g = int(rng.integers(1, 90)), 1
            group.join(s, 10_000)
            seqs.append(s)
        assert group.blocks() == sum(-(-s.kv_tokens // 16) for s in seqs)
        free = int(rng.integers(0, 30))
        k = group.safe_steps(free)
        need = lambda j: sum(-(-(s.kv_tokens + j) // 16) - s.kv_blocks for s in seqs)  # noqa: E731
        assert need(k) <= free < need(k + 1)
        group.clock.d += k
        assert group.blocks() == sum(-(-s.kv_tokens // 16) for s in seqs)


# ---------------------------------------------------------------- rules

class Scripted:
    """Answers with the given decisions in turn, then FCFS."""

    def __init__(self, *decisions) -> None:
        self.todo, self.fcfs = list(decisions), Fcfs()

    def decide(self, obs):
        return self.todo.pop(0)(obs) if self.todo else self.fcfs.decide(obs)


def _run(*decisions, blocks=10_000, budget=8192, requests=None):
    req = requests or Requests.of([0.0, 0.0, 1.0], [100, 50, 20], [5, 5, 5])
    simulate(req, gpu(blocks=blocks), Scripted(*decisions), EngineConfig(token_budget=budget, max_running=4))


@pytest.mark.parametrize("decision,rule", [
    (lambda o: Decision([(7, 10)]), "unknown-request"),         # not arrived yet / never existed
    (lambda o: Decision([(0, 10), (0, 10)]), "duplicate"),
    (lambda o: Decision([(0, 101)]), "chunk-size"),
    (lambda o: Decision([(0, 0)]), "chunk-size"),
    (lambda o: Decision([("0", 10)]), "format"),
    (lambda o: Decision(preempt=[0]), "not-running"),
    (lambda o: "go", "format"),
])
def test_bad_first_decisions_name_the_decision_step_and_rule(decision, rule):
    with pytest.raises(InvalidOutput, match=rf"^decision 0 \(step 0, t=0\.000000 s\): rule '{rule}'"):
        _run(decision)


def test_budget_kv_and_running_cap_are_enforced():
    with pytest.raises(InvalidOutput, match=r"rule 'token-budget': the step has 150 tokens"):
        _run(lambda o: Decision([(0, 100), (1, 50)]), budget=128)
    with pytest.raises(InvalidOutput, match=r"rule 'kv-capacity': the step needs 11 KV blocks"):
        _run(lambda o: Decision([(0, 100), (1, 50)]), blocks=10)
    many = Requests.of([0.0] * 6, [10] * 6, [3] * 6)
    with pytest.raises(InvalidOutput, match=r"rule 'max-running': 5 running"):
        _run(lambda o: Decision([(i, 10) for i in range(5)]), requests=many)


def test_later_decisions_are_checked_too_and_preempting_twice_or_a_finished_request_fails():
    with pytest.raises(InvalidOutput, match=r"^decision 1 \(step 1, t=0\.00\d+ s\): rule 'not-prefillable'"):
        _run(lambda o: Decision([(0, 100)]), lambda o: Decision([(0, 5)]))   # 0 is decoding now
    with pytest.raises(InvalidOutput, match=r"rule 'duplicate': preempt names request 0 twice"):
        _run(lambda o: Decision([(0, 100)]), lambda o: Decision(preempt=[0, 0]))


def test_a_policy_that_schedules_nothing_breaks_the_progress_rule():
    with pytest.raises(InvalidOutput, match=r"rule 'progress'.*no request will arrive"):
        _run(*[lambda o: Decision() for _ in range(10)])
    with pytest.raises(InvalidOutput, match=r"rule 'progress'.*idle for 3 decisions"):
        req = Requests.of(np.arange(10.0), [10] * 10, [3] * 10)
        simulate(req, gpu(), Scripted(*[lambda o: Decision(decode=False)] * 10),
                 EngineConfig(max_idle_decisions=2))


def test_preempting_forever_hits_the_preemption_limit():
    def churn(obs):
        running = [*obs.prefilling, *obs.decoding]
        if running:
            return Decision(preempt=[s.id for s in running])
        return Decision([(s.id, s.prefill_left) for s in obs.waiting])

    class Churn:
        decide = staticmethod(churn)

    req = Requests.of([0.0], [40], [50])
    with pytest.raises(InvalidOutput, match=r"rule 'preempt-limit': request 0 was already preempted 3 times"):
        simulate(req, gpu(), Churn(), EngineConfig(max_preemptions=3))


def test_engine_refuses_impossible_configurations():
    with pytest.raises(ConfigError, match="request 1 needs 8 KV blocks alone"):
        Engine(Requests.of([0, 1], [16, 100], [1, 28]), gpu(blocks=7), Fcfs())
    with pytest.raises(ConfigError, match="max_running"):
        Engine(Requests.of([0], [16], [1]), gpu(), Fcfs(), EngineConfig(token_budget=64, max_running=65))


# ---------------------------------------------------------------- what the policy sees

def test_decision_from_message_checks_plain_data():
    d = Decision.from_message({"prefill_ids": np.array([3, 4]), "prefill_tokens": [10, 20], "preempt": [1],
                               "decode": False}, "decision 2")
    assert d == Decision([(3, 10), (4, 20)], [1], False)
    for msg, text in [([], "must be a dict"), ({"prefill_ids": [1]}, "prefill_ids has 1 entries"),
                      ({"preempt": [1.5]}, "preempt must be a list of integers"), ({"x": 1}, "unknown decision key"),
                      ({"decode": 1}, "decode must be a bool")]:
        with pytest.raises(InvalidOutput, match=rf"^decision 2: rule 'format': .*{text}"):
            Decision.from_message(msg, "decision 2")


def test_the_observation_holds_no_true_output_length_and_predictions_are_noisy():
    req = azure_like(40, 5.0, seed=2)
    messages = []

    class Peek(Fcfs):
        def decide(self, obs):
            messages.append(protocol.decode(protocol.encode(observation_message(obs))))   # what a candidate gets
            return super().decide(obs)

    simulate(req, gpu(), Peek(), EngineConfig(predictor_sigma=0.7, seed=2))
    cols = set(messages[0]["waiting"]) | set(messages[0]["running"]) | set(messages[0]["finished"])
    assert cols == {"id", "prompt_tokens", "generated", "kv_tokens", "prefill_left", "predicted_output",
                    "preemptions", "cached", "session", "client", "tool_call", "age_s", "queued_s"}
    assert not hasattr(Seq(0, 1, 0.0, 1), "output_tokens")
    pred = {}
    for m in messages:
        for table in (m["waiting"], m["running"]):
            pred.update(zip(table["id"].tolist(), table["predicted_output"].tolist()))
    true = req.output_tokens[list(pred)]
    ratio = np.log(np.array(list(pred.values())) / true)
    assert 0.3 < ratio.std() < 1.2 and (ratio != 0).mean() > 0.9
    oracle = []

    class Oracle(Fcfs):
        def decide(self, obs):
            oracle.extend((s.id, s.predicted_output) for s in obs.waiting)
            return super().decide(obs)

    simulate(req, gpu(), Oracle(), EngineConfig(predictor_sigma=0.0))
    assert all(p == req.output_tokens[i] for i, p in oracle)


# ---------------------------------------------------------------- metrics

def test_metrics_from_hand_made_records():
    from evaluators.serving.records import Records
    rec = Records(arrival_s=np.array([0.0, 1.0, 2.0]), first_token_s=np.array([0.5, 1.1, 4.0]),
                  finish_s=np.array([1.5, 2.1, 4.0]), prompt_tokens=np.array([10, 10, 10]),
                  output_tokens=np.array([11, 3, 1]), preemptions=np.array([0, 2, 0]))
    m = serving_metrics(rec, Slo(ttft_s=1.0, tpot_s=0.2))
    assert m["throughput_rps"] == pytest.approx(3 / 4.0)
    assert m["output_tokens_per_s"] == pytest.approx(15 / 4.0)
    assert m["mean_ttft_s"] == pytest.approx((0.5 + 0.1 + 2.0) / 3)
    assert m["mean_tpot_s"] == pytest.approx((0.1 + 0.5) / 2)       # the one-token output has no TPOT
    assert m["p99_e2e_s"] == pytest.approx(np.percentile([1.5, 1.1, 2.0], 99))
    assert m["preemptions"] == 2 and m["preempted_share"] == pytest.approx(1 / 3)
    # request 0 meets both; 1 misses TPOT (0.5 s); 2 misses TTFT (2 s)
    assert m["slo_attainment"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="unfinished"):
        serving_metrics(Records(*(np.array([math.nan]) for _ in range(3)), np.array([1]), np.array([1]),
                                np.array([0])))
