"""The scheduling-policy interface: what a policy sees at a decision point and what it may decide.

A policy is an object with `decide(obs: Observation) -> Decision`, made fresh for each workload. The engine
calls it only at decision points (see engine.py): after arrivals, completions, a step that ran prefill
chunks, when the KV cache cannot hold the next decode step, and after a step that did nothing. Between
decision points every running sequence decodes one token per step and nothing else changes, so the policy
would have nothing new to decide.

What it sees is what a real scheduler knows: per request its prompt length, tokens generated so far, KV
tokens/blocks held, the prompt tokens the prefix cache holds for it, age and time queued, preemption count,
its session and client (tenant) ids and a noisy predicted output length (predictor.py); the cache's free,
evictable and pinned blocks, the token budget, the running cap, and the requests finished since the last
decision. Never a true output length,
never a request before it arrives. In process (trusted built-in policies) it gets `Seq` objects, read-only
by contract; across the sandbox it gets `observation_message(obs)`, plain columns.

What it decides, for the next step only:
  prefill   (request id, tokens) pairs: a waiting request named here joins the running set and its first
            chunk runs; a running request still prefilling gets its next chunk. The list order is the
            policy's priority (recorded; every chunk of a step runs in that same step).
  preempt   running requests to evict: their KV blocks are freed, their generated tokens are kept as
            prompt to recompute, and they go back to the waiting queue (vLLM's preemption by recompute).
  decode    True: every running sequence that finished its prefill decodes one token this step (a policy
            cannot hold back some sequences' tokens); False: none do, which only a step running prefill
            chunks may choose (a prefill-prioritising scheduler, like vLLM's default without chunking).
  retain    (finished request id, seconds) pairs: keep that request's cached prompt units from eviction for
            a time-to-live, so the session's next turn finds them (Continuum); pinned memory is used memory.
The engine checks every decision (rules.py) and raises InvalidOutput naming the decision, step and rule.
"""
from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Collection, Protocol, Sequence

import numpy as np

from evaluators.base import InvalidOutput
from evaluators.serving.gpu import BLOCK_TOKENS
from sandbox.protocol import Columns

WAITING, PREFILLING, DECODING, FINISHED, MIGRATING = 0, 1, 2, 3, 4   # migrating: between instances (migration.py)
STATE_NAMES = ("waiting", "prefilling", "decoding", "finished", "migrating")


class Clock:
    """The decode group's count of uniform decode steps; a request's counters are offsets from it."""

    __slots__ = ("d",)

    def __init__(self) -> None:
        self.d = 0


STOPPED = Clock()  # the clock of every request outside the decode group: never advances


class Seq:
    """One request as the scheduler sees it. The engine keeps its true output length elsewhere.

    Counters are stored as offsets from a clock (`_g + clock.d`), so a run of decode steps advances every
    decoding request by moving one number (the decode group's clock), not by touching each request."""

    __slots__ = ("id", "prompt_tokens", "arrival_s", "predicted_output", "preemptions", "queued_at_s",
                 "state", "session", "client", "cached", "tool_call", "_units", "_g", "_c", "_clock")

    def __init__(self, rid: int, prompt: int, arrival_s: float, predicted: int, session: int = -1,
                 client: int = 0) -> None:
        self.id = rid
        self.session = session
        self.client = client
        self.cached = 0     # prompt tokens found in the prefix cache: now (waiting), at admission (running)
        self._units = 0     # prefix-cache units it holds while running
        self.tool_call = 0  # set when it finishes: 1 if its reply was a tool call (its session goes on)
        self.prompt_tokens = prompt
        self.arrival_s = arrival_s
        self.predicted_output = predicted
        self.preemptions = 0
        self.queued_at_s = arrival_s     # when it last entered the waiting queue
        self.state = WAITING
        self._g = 0                      # generated tokens (an offset while decoding)
        self._c = 0                      # tokens whose KV is cached (an offset while decoding)
        self._clock = STOPPED

    @property
    def generated(self) -> int:
        """Output tokens produced so far (kept across preemptions)."""
        return self._g + self._clock.d

    @property
    def kv_tokens(self) -> int:
        """Tokens whose KV is in the cache (0 while waiting)."""
        return self._c + self._clock.d

    @property
    def kv_blocks(self) -> int:
        return -(-(self._c + self._clock.d) // BLOCK_TOKENS)

    @property
    def prefill_left(self) -> int:
        """Tokens still to prefill before it decodes: prompt + generated - KV held (waiting: the prefix-cache
        hit it would get; a preempted request recomputes its generated tokens too); 0 while decoding."""
        state = self.state
        if state == DECODING:
            return 0
        return self.prompt_tokens + self._g - (self.cached if state == WAITING else self._c)

    def __repr__(self) -> str:
        return (f"Seq(id={self.id}, {STATE_NAMES[self.state]}, prompt={self.prompt_tokens}, "
                f"generated={self.generated}, kv={self.kv_tokens})")


class Observation:
    """The engine's state at one decision point. `waiting` is in arrival order; `prefilling` and `decoding`
    together are the running set. All of it is read-only, and valid only during the `decide` call (the
    collections are live views of the engine's)."""

    __slots__ = ("now_s", "decision", "step", "events", "token_budget", "max_running", "block_tokens",
                 "kv_blocks_total", "kv_blocks_free", "decode_tokens", "decode_new_blocks",
                 "waiting", "prefilling", "decoding", "finished", "kv_blocks_cached", "kv_blocks_pinned")

    def __init__(self, now_s: float, decision: int, step: int, events: tuple[str, ...], token_budget: int,
                 max_running: int, kv_blocks_total: int, kv_blocks_free: int, decode_new_blocks: int,
                 waiting: Sequence[Seq], prefilling: Collection[Seq], decoding: Collection[Seq],
                 finished: Sequence[Seq] = (), kv_blocks_cached: int = 0, kv_blocks_pinned: int = 0) -> None:
        self.now_s = now_s
        self.decision = decision                # index of this decision point
        self.step = step                        # GPU steps run so far
        self.events = events                    # why the policy is consulted: "arrival", "finish", ...
        self.token_budget = token_budget        # tokens per step, decodes included
        self.max_running = max_running          # cap on prefilling + decoding requests
        self.block_tokens = BLOCK_TOKENS
        self.kv_blocks_total = kv_blocks_total
        self.kv_blocks_free = kv_blocks_free    # free now, evictable prefix-cache blocks included
        self.kv_blocks_cached = kv_blocks_cached    # of which hold evictable cached prefixes
        self.kv_blocks_pinned = kv_blocks_pinned    # held by retained (pinned) prefixes: not free
        self.decode_tokens = len(decoding)      # tokens the running decodes take if decode=True
        self.decode_new_blocks = decode_new_blocks  # blocks those decodes need this step
        self.waiting = waiting
        self.prefilling = prefilling
        self.decoding = decoding
        self.finished = finished                # requests finished since the previous decision

    @property
    def running_count(self) -> int:
        return len(self.prefilling) + len(self.decoding)


MAX_RETAIN_S = 600.0   # the longest time-to-live a policy may pin a finished request's prefix for


@dataclass(frozen=True, slots=True)
class Decision:
    prefill: Sequence[tuple[int, int]] = ()
    preempt: Sequence[int] = ()
    decode: bool = True
    retain: Sequence[tuple[int, float]] = ()

    @staticmethod
    def from_message(msg: Any, where: str) -> "Decision":
        """A Decision from plain data (what a sandboxed policy returns):
        {"prefill_ids": [...], "prefill_tokens": [...], "preempt": [...], "decode": bool,
         "retain_ids": [...], "retain_s": [...]}, every key optional."""
        if not isinstance(msg, dict):
            raise InvalidOutput(f"{where}: rule 'format': the decision must be a dict, got {type(msg).__name__}")
        unknown = set(msg) - {"prefill_ids", "prefill_tokens", "preempt", "decode", "retain_ids", "retain_s"}
        if unknown:
            raise InvalidOutput(f"{where}: rule 'format': unknown decision key(s) {sorted(map(str, unknown))}")
        ids = _int_list(msg.get("prefill_ids", ()), "prefill_ids", where)
        tokens = _int_list(msg.get("prefill_tokens", ()), "prefill_tokens", where)
        if len(ids) != len(tokens):
            raise InvalidOutput(f"{where}: rule 'format': prefill_ids has {len(ids)} entries, "
                                f"prefill_tokens {len(tokens)}")
        decode = msg.get("decode", True)
        if not isinstance(decode, (bool, np.bool_)):
            raise InvalidOutput(f"{where}: rule 'format': decode must be a bool, got {type(decode).__name__}")
        retain = ()
        if "retain_ids" in msg or "retain_s" in msg:
            rids = _int_list(msg.get("retain_ids", ()), "retain_ids", where)
            ttls = _float_list(msg.get("retain_s", ()), "retain_s", where)
            if len(rids) != len(ttls):
                raise InvalidOutput(f"{where}: rule 'format': retain_ids has {len(rids)} entries, retain_s {len(ttls)}")
            retain = list(zip(rids, ttls))
        return Decision(list(zip(ids, tokens)), _int_list(msg.get("preempt", ()), "preempt", where), bool(decode),
                        retain)


def _int_list(value: Any, name: str, where: str) -> list[int]:
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or value.dtype.kind not in "iu":
            raise InvalidOutput(f"{where}: rule 'format': {name} must be a 1-D integer array")
        return value.tolist()
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        raise InvalidOutput(f"{where}: rule 'format': {name} must be a list of integers")
    return [int(v) for v in value]


def _float_list(value: Any, name: str, where: str) -> list[float]:
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iuf":
        return [float(v) for v in value.tolist()]
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in value):
        raise InvalidOutput(f"{where}: rule 'format': {name} must be a list of numbers")
    return [float(v) for v in value]


class Policy(Protocol):
    def decide(self, obs: Observation) -> Decision: ...


_INT_COLUMNS = ("id", "prompt_tokens", "generated", "kv_tokens", "prefill_left", "predicted_output",
                "preemptions", "cached", "session", "client", "tool_call")


_ROW = attrgetter(*_INT_COLUMNS)


def _table(seqs: Collection[Seq], now: float) -> Columns:
    """One pass over the requests into an (n, k) array, then a column view each: a fraction of the cost of
    a pass per column. Sent as one protocol extension (sandbox.protocol.Columns)."""
    rows = list(seqs)
    ints = np.array([_ROW(s) for s in rows], dtype=np.int64).reshape(len(rows), len(_INT_COLUMNS))
    times = np.array([(s.arrival_s, s.queued_at_s) for s in rows], dtype=np.float64).reshape(len(rows), 2)
    out = {c: ints[:, j] for j, c in enumerate(_INT_COLUMNS)}
    out["age_s"] = now - times[:, 0]
    out["queued_s"] = now - times[:, 1]
    return Columns(out)


def observation_message(obs: Observation) -> dict[str, Any]:
    """The observation as plain data for a sandboxed policy: scalars and three column tables, `waiting`
    (arrival order), `running` (prefilling first, then decoding) and `finished` (since the previous
    decision), each {column: array} with columns id, prompt_tokens, generated, kv_tokens, prefill_left,
    predicted_output, preemptions, cached (prompt tokens from the prefix cache), session, client,
    tool_call (finished requests: 1 if the reply was a tool call, so the session's next turn will come), age_s,
    queued_s."""
    scalars = {k: getattr(obs, k) for k in ("now_s", "decision", "step", "token_budget", "max_running",
                                            "block_tokens", "kv_blocks_total", "kv_blocks_free",
                                            "kv_blocks_cached", "kv_blocks_pinned", "decode_tokens",
                                            "decode_new_blocks")}
    return {**scalars, "events": list(obs.events), "waiting": _table(obs.waiting, obs.now_s),
            "running": _table([*obs.prefilling, *obs.decoding], obs.now_s),
            "finished": _table(obs.finished, obs.now_s)}
