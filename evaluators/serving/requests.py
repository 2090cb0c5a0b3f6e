"""A workload of LLM requests as columns: what the generators and trace loaders produce and the engine reads.

Everything here is trusted-side data. A policy never sees `output_tokens` (the true output length) nor any
request before its arrival; the engine hands it only what a real scheduler would know.

Closed-loop turns: a request with `follows[i] = j >= 0` is the next turn of an agent session. It cannot be
sent before request j's reply is complete (the tool call needs it): it arrives `gap_s[i]` seconds (the
tool's run time) after request j finishes in the simulation. Its `arrival_s` is then only a nominal time,
used to order ids; the engine records the real one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Requests:
    """One workload, sorted by arrival. All arrays have one entry per request."""

    arrival_s: np.ndarray       # float64, seconds from the start, non-decreasing
    prompt_tokens: np.ndarray   # int64 >= 1
    output_tokens: np.ndarray   # int64 >= 1: the true output length, known to the simulator only
    session: np.ndarray         # int64: conversation/session id, -1 where the workload has none
    client: np.ndarray          # int64: the tenant/client a request belongs to (0 where there is one)
    # content hashes of the prompt's 512-token blocks (Mooncake's hash_ids), one array per request; empty
    # arrays where unknown. Used by prefix caches.
    hash_ids: tuple[np.ndarray, ...] = field(default=())
    name: str = ""
    follows: np.ndarray | None = None   # int64: the request whose finish releases this one, -1 for none
    gap_s: np.ndarray | None = None     # float64: seconds from that finish to this arrival

    def __post_init__(self) -> None:
        n = len(self.arrival_s)
        for col in ("prompt_tokens", "output_tokens", "session", "client"):
            if len(getattr(self, col)) != n:
                raise ValueError(f"Requests.{col} has {len(getattr(self, col))} entries, arrival_s has {n}")
        if self.hash_ids and len(self.hash_ids) != n:
            raise ValueError(f"Requests.hash_ids has {len(self.hash_ids)} entries, arrival_s has {n}")
        if n and (np.any(np.diff(self.arrival_s) < 0) or self.arrival_s[0] < 0):
            raise ValueError("Requests.arrival_s must be non-negative and sorted")
        if n and (self.prompt_tokens.min() < 1 or self.output_tokens.min() < 1):
            raise ValueError("Requests: prompt and output lengths must be >= 1 token")
        if (self.follows is None) != (self.gap_s is None):
            raise ValueError("Requests: give follows and gap_s together")
        if self.follows is not None:
            if len(self.follows) != n or len(self.gap_s) != n:
                raise ValueError("Requests.follows and gap_s need one entry per request")
            if n and (np.any(self.follows >= np.arange(n)) or self.follows.min() < -1 or self.gap_s.min() < 0):
                raise ValueError("Requests.follows must name an earlier request (or -1), gap_s be >= 0")

    @property
    def closed_loop(self) -> bool:
        return self.follows is not None and bool(np.any(self.follows >= 0))

    def __len__(self) -> int:
        return len(self.arrival_s)

    @staticmethod
    def of(arrival_s, prompt_tokens, output_tokens, session=None, client=None, hash_ids=(), name="",
           follows=None, gap_s=None) -> "Requests":
        """Build from any sequences; missing session/client columns are filled (-1 and 0)."""
        a = np.asarray(arrival_s, dtype=np.float64)
        n = len(a)
        return Requests(a, np.asarray(prompt_tokens, dtype=np.int64), np.asarray(output_tokens, dtype=np.int64),
                        np.full(n, -1, np.int64) if session is None else np.asarray(session, dtype=np.int64),
                        np.zeros(n, np.int64) if client is None else np.asarray(client, dtype=np.int64),
                        tuple(np.asarray(h, dtype=np.int64) for h in hash_ids), name,
                        None if follows is None else np.asarray(follows, dtype=np.int64),
                        None if gap_s is None else np.asarray(gap_s, dtype=np.float64))
