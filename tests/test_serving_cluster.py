"""The multi-instance cluster simulator: instances in step on one clock, stale snapshots, closed-loop turns
routed across instances, and the built-in routers on shared prefixes."""
from __future__ import annotations

import numpy as np
import pytest

from evaluators.base import InvalidOutput
from evaluators.serving.cluster import InstanceSpec, simulate_cluster
from evaluators.serving.engine import EngineConfig, simulate
from evaluators.serving.gpu import GpuModel, StepCost, gpu_model
from evaluators.serving.metrics import serving_metrics
from evaluators.serving.policies import Fcfs
from evaluators.serving.requests import Requests
from evaluators.serving.routers import CacheAware, LeastRequests, RoundRobin
from evaluators.serving.workloads import generate

COST = StepCost(fixed_s=1e-3, token_s=1e-5, sampled_s=1e-6, pair_s=1e-9, kv_read_s=2e-9)


def gpu(blocks: int = 10_000) -> GpuModel:
    return GpuModel("test", COST, blocks)


def test_round_robin_over_two_instances_equals_each_instance_alone():
    g = np.random.default_rng(1)
    n = 60
    req = Requests.of(np.cumsum(g.exponential(0.01, n)), g.integers(20, 400, n), g.integers(1, 50, n))
    res = simulate_cluster(req, [InstanceSpec(gpu(), Fcfs, EngineConfig()) for _ in range(2)], RoundRobin())
    assert res.instance.tolist() == [i % 2 for i in range(n)]
    for k in (0, 1):
        ids = np.arange(k, n, 2)
        alone = simulate(Requests.of(req.arrival_s[ids], req.prompt_tokens[ids], req.output_tokens[ids]), gpu(), Fcfs())
        assert np.allclose(res.records.first_token_s[ids], alone.records.first_token_s, rtol=0, atol=1e-12)
        assert np.allclose(res.records.finish_s[ids], alone.records.finish_s, rtol=0, atol=1e-12)


class Spy:
    """Least requests, keeping every snapshot it was shown with the time it was shown."""

    def __init__(self) -> None:
        self.seen = []
        self.inner = LeastRequests()

    def route(self, rid, now_s, requests, snapshots):
        self.seen.append((now_s, snapshots))
        return self.inner.route(rid, now_s, requests, snapshots)


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.5])
def test_the_router_never_sees_fresher_state_than_the_delay_allows(delay):
    req = generate("azure-conv", 40.0, n_requests=400, seed=2)
    spy = Spy()
    res = simulate_cluster(req, [InstanceSpec(gpu_model(), Fcfs) for _ in range(3)], spy, delay_s=delay)
    assert len(spy.seen) == 400 and not np.isnan(res.records.finish_s).any()
    assert all(s.time_s <= t - delay + 1e-12 for t, snaps in spy.seen for s in snaps)
    fresh = sum(any(s.time_s > t - delay - 0.02 for s in snaps) for t, snaps in spy.seen)
    assert fresh > 100   # and the snapshots are the newest allowed, not arbitrarily old


def test_a_bad_instance_index_names_the_request():
    class Bad:
        def route(self, rid, now_s, requests, snapshots):
            return 5 if rid == 3 else 0

    req = Requests.of([0.0, 0.1, 0.2, 0.3], [10] * 4, [2] * 4)
    with pytest.raises(InvalidOutput, match=r"request 3 .*rule 'instance'.*returned 5"):
        simulate_cluster(req, [InstanceSpec(gpu(), Fcfs) for _ in range(2)], Bad())


def test_agent_turns_are_routed_after_their_previous_turn_finishes_anywhere():
    req = generate("agent", 4.0, n_requests=300, seed=5)
    res = simulate_cluster(req, [InstanceSpec(gpu_model(), Fcfs) for _ in range(2)], RoundRobin())
    nxt = np.flatnonzero(req.follows >= 0)
    prev = req.follows[nxt]
    assert np.all(res.records.arrival_s[nxt] >= res.records.finish_s[prev] + req.gap_s[nxt] - 1e-9)
    assert (res.instance[nxt] != res.instance[prev]).any()   # round robin moves sessions between instances


def test_cache_aware_routing_keeps_sessions_where_their_history_is_cached():
    req = generate("sharegpt", 60.0, n_requests=1500, seed=1, think_s=1.0)
    specs = [InstanceSpec(gpu_model(), Fcfs) for _ in range(4)]
    by = {}
    for name, router in (("round_robin", RoundRobin()), ("least_requests", LeastRequests()),
                         ("cache_aware", CacheAware())):
        res = simulate_cluster(req, specs, router)
        by[name] = (serving_metrics(res.records)["mean_ttft_s"], float(np.mean(res.prefix_hit)))
    assert by["cache_aware"][1] > 1.5 * max(by["round_robin"][1], by["least_requests"][1])
    assert by["cache_aware"][0] < min(by["round_robin"][0], by["least_requests"][0])
