"""Built-in routers (trusted, in process): reference points for the cluster simulator and its tests. The
llm_router problem's baselines are sandboxed files with the same logic.

- RoundRobin: instance i mod N.
- LeastRequests: the fewest waiting + running requests in the (stale) snapshot; ties by index.
- CacheAware (SGLang's cache-aware router): while the load imbalance (max - min of waiting + running) is at
  most `balance_abs`, the instance whose recorded prefix tree matches the request's blocks longest (ties: the
  less loaded); beyond it, the least loaded. The tree is what the router itself sent where (as SGLang's
  router keeps an approximate tree per worker), not what the instance holds.
"""
from __future__ import annotations

from evaluators.serving.cluster import Snapshot
from evaluators.serving.requests import Requests


class RoundRobin:
    def __init__(self) -> None:
        self.i = -1

    def route(self, rid: int, now_s: float, requests: Requests, snapshots: list[Snapshot]) -> int:
        self.i = (self.i + 1) % len(snapshots)
        return self.i


def _load(s: Snapshot) -> int:
    return s.queued + s.running


class LeastRequests:
    def route(self, rid: int, now_s: float, requests: Requests, snapshots: list[Snapshot]) -> int:
        return min(range(len(snapshots)), key=lambda k: (_load(snapshots[k]), k))


class CacheAware:
    def __init__(self, balance_abs: int = 32) -> None:
        self.balance_abs = balance_abs
        self.sent: list[set[int]] = []

    def route(self, rid: int, now_s: float, requests: Requests, snapshots: list[Snapshot]) -> int:
        n = len(snapshots)
        if not self.sent:
            self.sent = [set() for _ in range(n)]
        loads = [_load(s) for s in snapshots]
        blocks = requests.hash_ids[rid].tolist() if requests.hash_ids else []
        if max(loads) - min(loads) > self.balance_abs or not blocks:
            k = min(range(n), key=lambda j: (loads[j], j))
        else:
            k = max(range(n), key=lambda j: (_match(self.sent[j], blocks), -loads[j], -j))
        self.sent[k].update(blocks)
        return k


def _match(tree: set[int], blocks: list[int]) -> int:
    m = 0
    for h in blocks:
        if h not in tree:
            break
        m += 1
    return m
