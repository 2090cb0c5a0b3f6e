"""Several serving instances on one event clock, with a router choosing the instance of every arriving request.

Each instance is an Engine (engine.py) with its own GPU model, scheduling policy (a built-in one: the
router is what is evolved) and prefix cache. The cluster holds the arrivals (fixed times, and agent turns
released when their previous turn finishes on whichever instance served it); before routing a request that
arrives at t it advances every instance to t (their closed-form decode runs stop at the cluster's next
event, so instances stay in step), then asks the router, then hands the request to the chosen instance.

The router sees what a production router sees: the request (its length, its prefix-block hashes, its
session), and per instance a load snapshot that is `delay_s` old (routers read exported metrics, not the
truth): the newest snapshot an instance recorded at a decision point at or before t - delay_s. It never
sees output lengths or a later state. A snapshot also lists the instance's decoding requests (ids and KV
tokens), what a cluster manager needs to choose requests to migrate. With any routing decision the router
may migrate decoding requests between instances (migration.py). A next turn is routed at the first cluster event at or after its
release, so it can be routed up to one inter-arrival gap late (stated simplification).
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from evaluators.serving.arrival_queue import ArrivalQueue, RoutedQueue
from evaluators.serving.engine import Engine, EngineConfig
from evaluators.serving.gpu import GpuModel
from evaluators.serving.migration import LINK_BANDWIDTH, MAX_MIGRATIONS, MigrationStats, apply, read_answer
from evaluators.serving.policy import Decision, Observation, Policy
from evaluators.serving.records import Records
from evaluators.serving.requests import Requests

SNAPSHOT_FIELDS = ("queued", "running", "kv_used", "prefill_tokens", "decode_tokens")


@dataclass(frozen=True)
class InstanceSpec:
    gpu: GpuModel
    policy: Callable[[], Policy]     # makes the instance's scheduling policy (e.g. policies.Fcfs)
    config: EngineConfig = EngineConfig(prefix_cache=True)


@dataclass(frozen=True)
class Snapshot:
    """One instance's load as last exported: requests waiting and running, the share of KV blocks in use,
    prompt tokens still to prefill (waiting + prefilling), decode tokens per step (running decodes), and the
    decoding requests' ids and KV tokens."""

    time_s: float
    queued: int
    running: int
    kv_used: float
    prefill_tokens: int
    decode_tokens: int
    decoding_ids: tuple[int, ...] = ()
    decoding_kv: tuple[int, ...] = ()


EMPTY = Snapshot(-math.inf, 0, 0, 0.0, 0, 0)


class Router(Protocol):
    def route(self, rid: int, now_s: float, requests: Requests, snapshots: list[Snapshot]) -> int | dict:
        """An instance index, or {"instance": k, "migrate": [[request id, to instance], ...]} (migration.py)."""


class _Recording:
    """Wraps an instance's policy: records a load snapshot at every decision point."""

    def __init__(self, inner: Policy, log: list[Snapshot]) -> None:
        self.inner, self.log = inner, log

    def decide(self, obs: Observation) -> Decision:
        waiting = sum(s.prefill_left for s in obs.waiting)
        prefilling = sum(s.prefill_left for s in obs.prefilling)
        self.log.append(Snapshot(obs.now_s, len(obs.waiting), obs.running_count,
                                 1.0 - obs.kv_blocks_free / obs.kv_blocks_total, waiting + prefilling,
                                 obs.decode_tokens, tuple(q.id for q in obs.decoding),
                                 tuple(q.kv_tokens for q in obs.decoding)))
        return self.inner.decide(obs)


@dataclass
class ClusterResult:
    records: Records
    instance: np.ndarray                  # per request: the instance that served it
    busy_s: list[float]                   # per instance: GPU time in steps
    prefix_hit: list[float]               # per instance: share of prompt units its prefix cache served
    end_s: float
    queue_peak: list[int] = field(default_factory=list)   # per instance: the most requests waiting
    migration: MigrationStats = field(default_factory=MigrationStats)


class Cluster:
    def __init__(self, requests: Requests, instances: list[InstanceSpec], router: Router, delay_s: float = 0.05,
                 link_bandwidth: float = LINK_BANDWIDTH, max_migrations: int = MAX_MIGRATIONS):
        if not instances:
            raise ValueError("a cluster needs at least one instance")
        if delay_s < 0 or link_bandwidth <= 0 or max_migrations < 0:
            raise ValueError(f"need delay_s >= 0, link_bandwidth > 0, max_migrations >= 0; got {delay_s}, "
                             f"{link_bandwidth}, {max_migrations}")
        self.requests, self.router, self.delay_s = requests, router, delay_s
        self.link_bandwidth, self.max_migrations = link_bandwidth, max_migrations
        self.migration = MigrationStats()
        self.arrivals = ArrivalQueue(requests)
        self.logs: list[list[Snapshot]] = [[] for _ in instances]
        self.engines = [self._engine(spec, log) for spec, log in zip(instances, self.logs)]
        self.instance = np.full(len(requests), -1, np.int64)

    def _engine(self, spec: InstanceSpec, log: list[Snapshot]) -> Engine:
        queue = RoutedQueue(self.arrivals.finished)
        return Engine(self.requests, spec.gpu, _Recording(spec.policy(), log), spec.config, arrivals=queue)

    def snapshots(self, now: float) -> list[Snapshot]:
        """Each instance's newest snapshot at or before now - delay_s."""
        cut = now - self.delay_s
        out = []
        for log in self.logs:
            i = bisect.bisect_right(log, cut, key=_time)
            out.append(log[i - 1] if i else EMPTY)
        return out

    def run(self) -> ClusterResult:
        n, routed = len(self.requests), 0
        while routed < n:
            t = self.arrivals.next_time()
            if math.isinf(t):   # every later turn waits on a request still running: run the laggard on
                e = min((e for e in self.engines if e.busy() or e.arrivals.pending()), key=_now)
                e.arrivals.horizon = math.inf
                e.tick()
                continue
            self._advance(t)
            for ta, rid in self.arrivals.pop_due(t):
                self._route(ta, rid)
                routed += 1
        self._advance(math.inf)
        return self._result()

    def _advance(self, t: float) -> None:
        for e in self.engines:
            e.arrivals.horizon = t
            if math.isinf(t):
                while e.busy() or e.arrivals.pending():
                    e.tick()
            else:
                while e.now < t:
                    e.tick()

    def _route(self, t: float, rid: int) -> None:
        snapshots = self.snapshots(t)
        k, moves = read_answer(self.router.route(rid, t, self.requests, snapshots), rid, t, len(self.engines))
        self.instance[rid] = k
        self.engines[k].arrivals.push(t, rid)
        if moves:
            apply(self, rid, t, moves, snapshots)

    def _result(self) -> ClusterResult:
        r = self.requests
        rows = [self.engines[k].record(i) for i, k in enumerate(self.instance.tolist())]
        a, first, finish, pre = (np.array(c) for c in zip(*rows)) if rows else (np.empty(0),) * 4
        records = Records(a.astype(float), first.astype(float), finish.astype(float), r.prompt_tokens.copy(),
                          r.output_tokens.copy(), pre.astype(np.int64), r.session.copy(), r.client.copy())
        hits = [e.prefixes.hit_rate if e.prefixes is not None else 0.0 for e in self.engines]
        peaks = [max((s.queued for s in log), default=0) for log in self.logs]
        return ClusterResult(records, self.instance.copy(), [e.busy_s for e in self.engines], hits,
                             float(np.nanmax(finish)) if len(r) else 0.0, peaks, self.migration)


def _time(s: Snapshot) -> float:
    return s.time_s


def _now(e: Engine) -> float:
    return e.now


def simulate_cluster(requests: Requests, instances: list[InstanceSpec], router: Router, delay_s: float = 0.05,
                     link_bandwidth: float = LINK_BANDWIDTH, max_migrations: int = MAX_MIGRATIONS) -> ClusterResult:
    return Cluster(requests, instances, router, delay_s, link_bandwidth, max_migrations).run()
