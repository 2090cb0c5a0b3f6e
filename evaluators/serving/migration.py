"""Migration of running requests between serving instances (Llumnix-style), the trusted side.

With any routing decision the router may ask to move decoding requests: `route()` returns either an
instance index (as before) or `{"instance": k, "migrate": [[request_id, to_instance], ...]}`. Each move is
checked (rules below, InvalidOutput naming the routed request, the rule and the moved request), then
applied at once, in order:
  - the request leaves its instance's decode group at that instance's current step boundary (the cluster
    has just advanced every instance to the routing time) and its KV is freed there;
  - the target reserves blocks for its KV at once (pre-allocation, as Llumnix does), counted as used;
  - after transfer_s = kv_tokens * kv_bytes_per_token / link_bandwidth (the source GPU model's KV bytes
    per token; the cluster's link bandwidth, 25 GB/s by default) it arrives at the target with its KV and
    decodes from the target's next step boundary: no prefill again, its first-token time kept.
Stop-and-copy: the request emits nothing while it moves (Llumnix overlaps the copy with decoding; not
modelled). Rules: 'migration-format' (a list of [request id, instance] pairs of ints), 'migration-limit'
(at most `max_migrations` per decision), 'migration-duplicate' (a request named twice in one decision),
'migration-in-flight' (already moving), 'migration-not-decoding' (waiting, prefilling, finished or unknown;
but a request the router was shown decoding in its instance's snapshot, which has finished or been
preempted since, is skipped and counted in `skipped`: the router's view is stale by design),
'migration-target' (not an instance index, or the request's own instance), 'migration-target-full' (the
target's free KV blocks, evictable prefix-cache blocks counted free, cannot hold the request's KV).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from evaluators.base import InvalidOutput
from evaluators.serving.policy import DECODING, STATE_NAMES


class Cluster(Protocol):
    """What migration reads and changes of the cluster (cluster.Cluster)."""

    engines: list
    instance: np.ndarray
    max_migrations: int
    migration: Any


LINK_BANDWIDTH = 25e9   # bytes/s between instances (assumption: RDMA-class network, ~200 Gb/s)
MAX_MIGRATIONS = 8      # per routing decision
ANSWER_KEYS = {"instance", "migrate"}


@dataclass
class MigrationStats:
    count: int = 0
    bytes: float = 0.0
    transfer_s: float = 0.0
    skipped: int = 0      # moves of requests that stopped decoding after the snapshot the router saw


def _int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def read_answer(answer: Any, rid: int, t: float, n: int) -> tuple[int, list]:
    """A router's answer: (instance, moves). Anything but an int or {"instance", "migrate"} breaks rule
    'instance'; the moves are checked by `apply`."""
    moves: Any = []
    if isinstance(answer, dict) and set(answer) <= ANSWER_KEYS and "instance" in answer:
        k, moves = answer["instance"], answer.get("migrate", [])
    else:
        k = answer
    if not _int(k) or not 0 <= k < n:
        raise InvalidOutput(f"request {rid} (t={t:.6f} s): rule 'instance': the router returned "
                            f"{repr(answer)[:60]}, not an instance index in [0, {n - 1}] or "
                            f"{{'instance': k, 'migrate': [[id, to], ...]}}")
    return int(k), moves


def apply(cluster: "Cluster", rid: int, t: float, moves: Any, snapshots: list) -> None:
    """Check every move of one routing decision, then start them (see the module docstring)."""
    where = f"request {rid} (t={t:.6f} s)"
    if not isinstance(moves, (list, tuple)) or not all(
            isinstance(m, (list, tuple)) and len(m) == 2 and _int(m[0]) and _int(m[1]) for m in moves):
        raise InvalidOutput(f"{where}: rule 'migration-format': 'migrate' must be a list of "
                            f"[request id, instance] pairs of ints, got {str(moves)[:60]!r}")
    if len(moves) > cluster.max_migrations:
        raise InvalidOutput(f"{where}: rule 'migration-limit': {len(moves)} migrations in one decision, "
                            f"at most {cluster.max_migrations}")
    engines, n, seen = cluster.engines, len(cluster.engines), set()
    for r, dst in ((int(a), int(b)) for a, b in moves):
        if r in seen:
            raise InvalidOutput(f"{where}: rule 'migration-duplicate': request {r} named twice")
        seen.add(r)
        src = int(cluster.instance[r]) if 0 <= r < len(cluster.instance) else -1
        seq = engines[src].seqs[r] if src >= 0 and r < len(engines[src].seqs) else None
        if src >= 0 and r in engines[src].incoming:
            raise InvalidOutput(f"{where}: rule 'migration-in-flight': request {r} is already migrating")
        if seq is not None and seq.state != DECODING and r in snapshots[src].decoding_ids:
            cluster.migration.skipped += 1   # it was decoding in the router's (stale) view
            continue
        if seq is None or seq.state != DECODING:
            state = STATE_NAMES[seq.state] if seq is not None else "not arrived or unknown"
            raise InvalidOutput(f"{where}: rule 'migration-not-decoding': request {r} is {state}; only "
                                f"decoding requests migrate")
        if not 0 <= dst < n or dst == src:
            raise InvalidOutput(f"{where}: rule 'migration-target': request {r} runs on instance {src}; "
                                f"{dst} is not another instance index in [0, {n - 1}]")
        free = _free_blocks(engines[dst])
        if seq.kv_blocks > free:
            raise InvalidOutput(f"{where}: rule 'migration-target-full': request {r} holds {seq.kv_blocks} "
                                f"KV blocks; instance {dst} has {free} free")
        _move(cluster, r, src, dst)


def _free_blocks(e) -> int:
    return e.kv_blocks_total - e.used_prefill - e.group.blocks() - e.pinned_blocks()


def _move(cluster: "Cluster", r: int, src: int, dst: int) -> None:
    s, d = cluster.engines[src], cluster.engines[dst]
    seq = s.detach(r)
    nbytes = seq.kv_tokens * s.gpu.kv_bytes_per_token
    dt = nbytes / cluster.link_bandwidth
    d.expect(seq, s.now + dt, s.record(r)[0], s.record(r)[1])
    cluster.instance[r] = dst
    st = cluster.migration
    st.count += 1
    st.bytes += nbytes
    st.transfer_s += dt
