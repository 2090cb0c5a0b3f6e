"""The serving simulator's prefix cache, time-to-live pins and closed-loop agent turns, against hand-computed
cases; the agent workload generator; the session and fairness diagnostics."""
from __future__ import annotations

import numpy as np
import pytest

from evaluators.base import InvalidOutput
from evaluators.serving.engine import Engine, EngineConfig, simulate
from evaluators.serving.gpu import GpuModel, StepCost
from evaluators.serving.metrics import client_fairness, serving_metrics
from evaluators.serving.policies import Fcfs
from evaluators.serving.policy import Decision
from evaluators.serving.prefix_cache import PrefixCache
from evaluators.serving.requests import Requests
from evaluators.serving.workloads import generate

COST = StepCost(fixed_s=1e-3, token_s=1e-5, sampled_s=1e-6, pair_s=1e-9, kv_read_s=2e-9)
CACHE = EngineConfig(prefix_cache=True)


def gpu(blocks: int = 10_000) -> GpuModel:
    return GpuModel("test", COST, blocks)


def prefill_s(tokens: int, cached: int) -> float:
    """One prefill step of `tokens` new tokens over `cached` tokens already in the cache (emits a token)."""
    pairs = tokens * cached + tokens * (tokens + 1) // 2
    return COST.time(tokens, 1, pairs, cached)


def two_turns(gap: float = 10.0, shared: int = 2) -> Requests:
    """Two 1,100-token prompts whose first `shared` 512-token units are the same content."""
    a = np.array([1, 2, 3])
    b = np.concatenate([a[:shared], [7, 8, 9][shared:]])
    return Requests.of([0.0, gap], [1100, 1100], [2, 2], hash_ids=[a, b])


# ---------------------------------------------------------------- the cache alone

def test_lru_evicts_a_chains_tail_first_and_pins_hold_until_used_or_expired():
    c = PrefixCache()
    c.release([1, 2, 3], held=0, computed=3, now=0.0)
    c.release([4, 5], held=0, computed=2, now=1.0)
    assert c.match([1, 2, 3, 9]) == 3 and c.evictable_units == 5
    c.trim(4)   # the oldest chain goes first, from its end: a prefix is useless without its beginning
    assert c.match([1, 2, 3]) == 2 and c.match([4, 5]) == 2
    assert c.pin([4, 5], until=5.0) == 2 and c.pinned_units == 2 and c.evictable_units == 2
    c.trim(0)
    assert c.match([4, 5]) == 2 and c.match([1]) == 0   # pinned units survive, the rest is gone
    c.acquire([4, 5], 2)   # the next turn uses them: the pin has done its job
    c.release([4, 5, 6], held=2, computed=3, now=2.0)
    assert c.pinned_units == 0 and c.evictable_units == 3
    c.pin([4], until=3.0)
    c.expire(2.5)
    assert c.pinned_units == 1
    c.expire(3.0)
    assert c.pinned_units == 0 and c.evictable_units == 3


# ---------------------------------------------------------------- the engine with a cache

def test_a_cached_prefix_is_not_prefilled_again_but_still_attended_to():
    req = two_turns()
    with_cache = simulate(req, gpu(), Fcfs(), CACHE)
    ttft = with_cache.records.first_token_s[1] - 10.0
    assert ttft == pytest.approx(prefill_s(1100 - 1024, 1024), rel=1e-12)
    without = simulate(req, gpu(), Fcfs()).records.first_token_s[1] - 10.0
    assert without == pytest.approx(prefill_s(1100, 0), rel=1e-12)
    assert with_cache.stats.prefix_hit == pytest.approx(2 / 6)   # 2 of the 3 + 3 units looked up


def test_only_the_shared_leading_units_match():
    rec = simulate(two_turns(shared=1), gpu(), Fcfs(), CACHE).records
    assert rec.first_token_s[1] - 10.0 == pytest.approx(prefill_s(1100 - 512, 512), rel=1e-12)


def crowded() -> Requests:
    """Request 0's two units (64 blocks), then two 3-unit prompts (96 blocks each) that finish later, then a
    request that shares request 0's prefix. 200 blocks cannot keep all 8 units: LRU evicts request 0's."""
    return Requests.of([0.0, 1.0, 2.0, 10.0], [1100, 1536, 1536, 1100], [2, 2, 2, 2],
                       hash_ids=[np.array([1, 2, 3]), np.array([10, 11, 12]), np.array([20, 21, 22]),
                                 np.array([1, 2, 9])])


def test_lru_eviction_under_memory_pressure_loses_the_oldest_prefix():
    small = Engine(crowded(), gpu(blocks=200), Fcfs(), CACHE)
    rec = small.run().records
    assert rec.first_token_s[3] - 10.0 == pytest.approx(prefill_s(1100, 0), rel=1e-12)   # recomputed
    roomy = simulate(crowded(), gpu(blocks=10_000), Fcfs(), CACHE).records
    assert roomy.first_token_s[3] - 10.0 == pytest.approx(prefill_s(1100 - 1024, 1024), rel=1e-12)


class RetainFinished(Fcfs):
    """FCFS that pins the prefix of request 0 for `ttl` seconds when it finishes."""

    def __init__(self, ttl: float) -> None:
        super().__init__()
        self.ttl = ttl

    def decide(self, obs):
        d = super().decide(obs)
        keep = [(s.id, self.ttl) for s in obs.finished if s.id == 0]
        return Decision(d.prefill, d.preempt, d.decode, keep)


def test_a_retained_prefix_survives_memory_pressure_until_its_ttl():
    kept = simulate(crowded(), gpu(blocks=200), RetainFinished(60.0), CACHE).records
    assert kept.first_token_s[3] - 10.0 == pytest.approx(prefill_s(1100 - 1024, 1024), rel=1e-12)
    lapsed = simulate(crowded(), gpu(blocks=200), RetainFinished(0.5), CACHE).records
    assert lapsed.first_token_s[3] - 10.0 == pytest.approx(prefill_s(1100, 0), rel=1e-12)


@pytest.mark.parametrize("retain,blocks,rule", [
    ([(1, 5.0)], 100, "retain: retain names 1, which is not a finished request"),
    ([(0, 0.0)], 100, "retain: request 0: time-to-live 0.0 s"),
    ([(0, 601.0)], 100, "retain: request 0: time-to-live 601.0 s"),
    ([(0, 5.0), (0, 5.0)], 100, "retain: retain names request 0 twice"),
    ([(0, 5.0)], 100, "kv-capacity: the step needs 127 KV blocks"),   # 63 for request 1's prompt + 64 pinned
])
def test_retain_rules(retain, blocks, rule):
    # request 1 waits while request 0 runs (100 blocks cannot hold both); when 0 finishes, FCFS admits 1
    req = Requests.of([0.0, 0.001], [1100, 1000], [2, 2], hash_ids=[np.array([1, 2, 3]), np.array([5, 6])])

    class Once(Fcfs):
        def decide(self, obs):
            d = super().decide(obs)
            if any(s.id == 0 for s in obs.finished):
                return Decision(d.prefill, d.preempt, d.decode, retain)
            return d

    with pytest.raises(InvalidOutput, match=f"rule '{rule.split(':')[0]}':{rule.split(':', 1)[1]}"):
        simulate(req, gpu(blocks=blocks), Once(), CACHE)


# ---------------------------------------------------------------- closed-loop turns

def test_a_next_turn_arrives_its_gap_after_the_previous_turn_finishes():
    req = Requests.of([0.0, 0.1], [100, 200], [5, 3], session=[0, 0], follows=[-1, 0], gap_s=[0.0, 2.0])
    rec = simulate(req, gpu(), Fcfs(), CACHE).records
    assert rec.arrival_s[1] == pytest.approx(rec.finish_s[0] + 2.0, rel=1e-12)
    assert rec.first_token_s[1] - rec.arrival_s[1] == pytest.approx(prefill_s(200, 0), rel=1e-12)
    with pytest.raises(ValueError, match="earlier request"):
        Requests.of([0.0, 0.1], [1, 1], [1, 1], follows=[1, -1], gap_s=[0.0, 0.0])


def test_agent_workload_is_closed_loop_with_growing_shared_histories():
    r = generate("agent", 5.0, n_requests=400, seed=3)
    assert r.closed_loop and len(r) == 400
    nxt = np.flatnonzero(r.follows >= 0)
    prev = r.follows[nxt]
    assert np.all(r.session[prev] == r.session[nxt])
    assert np.all(r.prompt_tokens[nxt] > r.prompt_tokens[prev] + r.output_tokens[prev] - 1)
    for i, j in zip(nxt[:50], prev[:50]):   # the next turn's prompt begins with the previous prompt's units
        full = r.prompt_tokens[j] // 512
        assert np.array_equal(r.hash_ids[i][:full], r.hash_ids[j][:full])
    firsts = np.flatnonzero(r.follows < 0)
    assert len({int(r.hash_ids[i][0]) for i in firsts}) == 1   # one shared system prompt
    assert generate("agent", 5.0, n_requests=400, seed=3).prompt_tokens.tolist() == r.prompt_tokens.tolist()


def test_engine_serves_every_turn_of_an_agent_workload_and_caches_their_histories():
    r = generate("agent", 3.0, n_requests=300, seed=4)
    eng = Engine(r, gpu(blocks=200_000), Fcfs(), CACHE)
    res = eng.run()
    assert not np.isnan(res.records.finish_s).any()
    assert np.all(res.records.arrival_s[r.follows >= 0] >= res.records.finish_s[r.follows[r.follows >= 0]])
    assert res.stats.prefix_hit > 0.7
    m = serving_metrics(res.records)
    assert m["mean_session_s"] > m["mean_e2e_s"]


def test_client_fairness_is_one_when_alike_and_falls_when_one_client_waits():
    clients = np.array([0, 0, 1, 1])
    assert client_fairness(clients, np.array([1.0, 1.0, 1.0, 1.0])) == pytest.approx(1.0)
    unfair = client_fairness(clients, np.array([0.0, 0.0, 20.0, 20.0]))
    assert 0.5 <= unfair < 0.6
