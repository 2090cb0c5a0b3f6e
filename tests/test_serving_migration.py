"""Migration of decoding requests between cluster instances: a hand-computed move, the rules, and the
Llumnix-style baseline on a held-out-style workload with a half-speed instance."""
from __future__ import annotations

import math

import pytest

from evaluators.base import InvalidOutput
from evaluators.serving.cluster import Cluster, InstanceSpec
from evaluators.serving.engine import EngineConfig
from evaluators.serving.gpu import GpuModel, StepCost
from evaluators.serving.policies import Fcfs
from evaluators.serving.requests import Requests

COST = StepCost(fixed_s=1e-3, token_s=1e-5, sampled_s=1e-6, pair_s=1e-9, kv_read_s=2e-9)
T = 0.02


def gpu(blocks: int = 10_000) -> GpuModel:
    return GpuModel("test", COST, blocks)


class Scripted:
    """Routes by a table; request `at` also carries `moves`; request `spy` records the engines' state."""

    def __init__(self, table, at=None, moves=()):
        self.table, self.at, self.moves, self.cluster, self.seen = table, at, list(moves), None, {}

    def route(self, rid, now_s, requests, snapshots):
        if rid == self.at:
            self.seen["snapshot_ids"] = [s.decoding_ids for s in snapshots]
            return {"instance": self.table[rid], "migrate": self.moves}
        if self.cluster is not None and rid == self.at + 1:
            e0, e1 = self.cluster.engines
            self.seen.update(src_members=set(e0.group.members), src_kv=e0.group.kv_tokens(),
                             src_blocks=e0.group.blocks(), dst_reserved=e1.used_prefill)
        return self.table[rid]


def run(req, router, specs=None, **kw):
    c = Cluster(req, specs or [InstanceSpec(gpu(), Fcfs, EngineConfig()) for _ in range(2)], router, delay_s=0.0, **kw)
    router.cluster = c
    return c.run(), c


def test_a_migrated_request_finishes_on_the_target_after_exactly_the_transfer_and_its_steps():
    req = Requests.of([0.0, T, T + 1e-4], [100, 10, 10], [50, 2, 2])
    router = Scripted([0, 0, 0], at=1, moves=[[0, 1]])
    res, c = run(req, router)
    # by hand: the prefill, then decode steps on instance 0 until the first step boundary at or after T
    first = COST.time(100, 1, 100 * 101 // 2, 0)
    now, kv, g = first, 100, 1
    while now < T:
        now += COST.time(1, 1, kv + 1, kv)
        kv, g = kv + 1, g + 1
    transfer = kv * 131072 / 25e9
    finish = now + transfer
    for _ in range(50 - g):
        finish += COST.time(1, 1, kv + 1, kv)
        kv += 1
    assert res.instance.tolist() == [1, 0, 0]
    assert res.records.first_token_s[0] == pytest.approx(first, abs=1e-12)   # TTFT unchanged
    assert res.records.finish_s[0] == pytest.approx(finish, abs=1e-12)
    assert res.migration.count == 1 and res.migration.bytes == (kv - 50 + g) * 131072
    assert res.migration.transfer_s == pytest.approx(transfer)
    assert 0 in router.seen["snapshot_ids"][0]          # the router saw it decoding on instance 0
    # while it moves: gone from the source (its KV freed), its blocks reserved on the target
    assert 0 not in router.seen["src_members"]
    assert router.seen["dst_reserved"] == math.ceil((kv - 50 + g) / 16)
    assert res.records.preemptions.tolist() == [0, 0, 0]


@pytest.mark.parametrize("moves,rule", [
    ([[0, 0]], "migration-target"),            # its own instance
    ([[0, 7]], "migration-target"),            # not an instance
    ([[1, 1]], "migration-not-decoding"),      # the request just routed: waiting
    ([[99, 1]], "migration-not-decoding"),     # unknown
    ([[0, 1], [0, 1]], "migration-duplicate"),
    ([[0, "1"]], "migration-format"),
    ([[0, 1]] * 9, "migration-limit"),
])
def test_migration_rules_name_the_request_and_the_rule(moves, rule):
    req = Requests.of([0.0, T], [100, 10], [50, 2])
    with pytest.raises(InvalidOutput, match=rf"request 1 .*rule '{rule}'"):
        run(req, Scripted([0, 0], at=1, moves=moves))


def test_a_full_target_is_refused_naming_the_request():
    req = Requests.of([0.0, 0.0, T], [100, 120, 10], [50, 30, 2])   # request 1 fills instance 1's 10 blocks
    specs = [InstanceSpec(gpu(), Fcfs, EngineConfig()), InstanceSpec(gpu(10), Fcfs, EngineConfig())]
    with pytest.raises(InvalidOutput, match=r"rule 'migration-target-full': request 0 holds \d+ KV blocks; "
                                            r"instance 1 has \d+ free"):
        run(req, Scripted([0, 1, 0], at=2, moves=[[0, 1]]), specs)


def test_a_request_already_migrating_cannot_move_again():
    req = Requests.of([0.0, T, T + 1e-5], [100, 10, 10], [50, 2, 2])

    class Twice(Scripted):
        def route(self, rid, now_s, requests, snapshots):
            return {"instance": 0, "migrate": [[0, 1]]} if rid else 0

    with pytest.raises(InvalidOutput, match=r"request 2 .*rule 'migration-in-flight': request 0"):
        run(req, Twice([0, 0, 0], at=-5))


def test_llumnix_migrates_on_a_held_out_style_workload_with_a_half_speed_instance():
    from tests.test_llm_router import _evaluate, _source
    m = _evaluate(_source("llumnix"), "azure-conv:seed=104:n=1500@0.8/half=2")
    assert m["migrations"] >= 1 and m["migrated_gb"] > 0
    assert 0 <= m["score"] <= 1
