"""The bridge between the trusted cluster simulator and a sandboxed router.

Per arriving request the candidate's `route(state)` gets plain data: `now_s`, the request (`id`,
`prompt_tokens`, `blocks`: the content hashes of its 512-token prompt blocks, `session`: -1 if none) and
`instances`, one column table (sandbox.protocol.Columns) of the stale load snapshots: `queued`, `running`,
`kv_used` (share of KV blocks in use), `prefill_tokens` (prompt tokens still to prefill), `decode_tokens`
(running decodes), `age_s` (how old the snapshot is: at least the configured delay); and `running`, one
column table of the decoding requests in those same snapshots: `instance`, `id`, `kv_tokens`. It returns an
instance index, or `{"instance": k, "migrate": [[request id, to instance], ...]}` to also migrate decoding
requests (evaluators/serving/migration.py); anything else is InvalidOutput naming the request (the
cluster's rule 'instance', or a migration rule).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from evaluators.base import InvalidOutput
from evaluators.serving.cluster import Snapshot
from evaluators.serving.requests import Requests
from sandbox.base import Candidate
from sandbox.protocol import Columns


def message(rid: int, now_s: float, requests: Requests, snapshots: list[Snapshot]) -> dict:
    blocks = requests.hash_ids[rid] if requests.hash_ids else np.empty(0, np.int64)
    table = Columns({
        "queued": np.array([s.queued for s in snapshots], np.int64),
        "running": np.array([s.running for s in snapshots], np.int64),
        "kv_used": np.array([s.kv_used for s in snapshots], np.float64),
        "prefill_tokens": np.array([s.prefill_tokens for s in snapshots], np.int64),
        "decode_tokens": np.array([s.decode_tokens for s in snapshots], np.int64),
        "age_s": np.array([min(now_s - s.time_s, 1e9) for s in snapshots], np.float64),
    })
    running = Columns({
        "instance": np.repeat(np.arange(len(snapshots), dtype=np.int64), [len(s.decoding_ids) for s in snapshots]),
        "id": np.fromiter((i for s in snapshots for i in s.decoding_ids), np.int64),
        "kv_tokens": np.fromiter((v for s in snapshots for v in s.decoding_kv), np.int64),
    })
    request = {"id": rid, "prompt_tokens": int(requests.prompt_tokens[rid]), "blocks": blocks.copy(),
               "session": int(requests.session[rid])}
    return {"now_s": now_s, "request": request, "instances": table, "running": running}


@dataclass
class SandboxRouter:
    candidate: Candidate
    function: str = "route"
    calls: int = field(default=0, init=False)

    def route(self, rid: int, now_s: float, requests: Requests, snapshots: list[Snapshot]) -> int | dict:
        self.calls += 1
        answer = self.candidate.call(self.function, message(rid, now_s, requests, snapshots))
        if isinstance(answer, (np.integer,)):
            answer = int(answer)
        if type(answer) is not int and not isinstance(answer, dict):
            raise InvalidOutput(f"request {rid} (t={now_s:.6f} s): rule 'instance': route() returned "
                                f"{type(answer).__name__} {str(answer)[:40]!r}, not an instance index")
        return answer   # the cluster checks the rest (migration.read_answer)
