"""The rules every decision must keep; a broken rule is InvalidOutput naming the decision, step and rule.

Rules (in the order they are checked):
  format            the decision is a Decision of integer ids and token counts
  unknown-request   an id that has not arrived, has finished, or never existed
  duplicate         an id twice in `preempt`, or twice in `prefill`
  preempt-limit     a request preempted more than EngineConfig.max_preemptions times (so a policy cannot
                    livelock by evicting and re-admitting forever)
  not-running       `preempt` names a waiting request
  not-prefillable   `prefill` names a decoding request, or one preempted in the same decision
  chunk-size        a chunk of fewer than 1 token, or more than the request has left to prefill
  max-running       more running requests (prefilling + decoding) than the cap after the step's admissions
  token-budget      decode tokens (if decode) + chunk tokens over the per-step budget
  retain            a retained id that has not finished, twice, or a time-to-live outside (0, MAX_RETAIN_S]
  kv-capacity       the step (with the prefixes it newly retains) would need more KV blocks than the cache has
The progress rule (a policy that schedules nothing while requests wait) is enforced by the engine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn, Protocol

from evaluators.base import InvalidOutput
from evaluators.serving.gpu import BLOCK_TOKENS as B
from evaluators.serving.group import DecodeGroup
from evaluators.serving.policy import DECODING, FINISHED, MAX_RETAIN_S, WAITING, Decision, Seq


class EngineConfigLike(Protocol):
    token_budget: int
    max_running: int
    max_preemptions: int


class Engine(Protocol):
    """What the rules read of the engine (engine.Engine) at a decision point."""

    config: EngineConfigLike
    seqs: list[Seq]
    prefilling: dict[int, Seq]
    group: DecodeGroup
    kv_blocks_total: int

    def where(self) -> str: ...
    def blocks_used(self) -> int: ...
    def decode_new_blocks(self) -> int: ...
    def retain_blocks(self, seq: Seq) -> int: ...


@dataclass(slots=True)
class Plan:
    """A checked decision, in the engine's terms."""

    chunks: list[tuple[Seq, int]]
    admit: list[Seq]
    preempt: list[Seq]
    decode: bool      # decodes run this step (asked for, and someone is left to decode)
    retain: list[tuple[Seq, float]]


def _fail(eng: Engine, rule: str, detail: str) -> NoReturn:
    raise InvalidOutput(f"{eng.where()}: rule '{rule}': {detail}")


def _seq(eng: Engine, rid, field: str) -> Seq:
    if type(rid) is not int:
        _fail(eng, "format", f"{field} holds {rid!r}, not an integer request id")
    seqs = eng.seqs
    seq = seqs[rid] if 0 <= rid < len(seqs) else None
    if seq is None or seq.state > DECODING:
        what = "has finished" if seq is not None else "has not arrived or does not exist"
        _fail(eng, "unknown-request", f"{field} names request {rid}, which {what}")
    return seq


def _preempted(decision: Decision, eng: Engine) -> list[Seq]:
    victims: list[Seq] = []
    seen: set[int] = set()
    for rid in decision.preempt:
        seq = _seq(eng, rid, "preempt")
        if rid in seen:
            _fail(eng, "duplicate", f"preempt names request {rid} twice")
        seen.add(rid)
        if seq.state == WAITING:
            _fail(eng, "not-running", f"preempt names request {rid}, which is waiting")
        if seq.preemptions >= eng.config.max_preemptions:
            _fail(eng, "preempt-limit", f"request {rid} was already preempted {seq.preemptions} times "
                                        f"(limit {eng.config.max_preemptions})")
        victims.append(seq)
    return victims


def _chunks(decision: Decision, eng: Engine, victims: list[Seq]) -> tuple[list, list, int, int]:
    """(chunks, admitted, chunk tokens, new KV blocks the chunks need)."""
    chunks, admit = [], []
    seen: set[int] = set()
    tokens = new_blocks = 0
    gone = {s.id for s in victims}
    for entry in decision.prefill:
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            _fail(eng, "format", f"prefill holds {entry!r}, not an (id, tokens) pair")
        rid, n = entry
        seq = _seq(eng, rid, "prefill")
        if rid in seen:
            _fail(eng, "duplicate", f"prefill names request {rid} twice")
        seen.add(rid)
        if seq.state == DECODING or rid in gone:
            why = "is decoding" if seq.state == DECODING else "is preempted in the same decision"
            _fail(eng, "not-prefillable", f"prefill names request {rid}, which {why}")
        left = seq.prefill_left
        if type(n) is not int or not 1 <= n <= left:
            _fail(eng, "chunk-size", f"request {rid} gets a chunk of {n!r} tokens; it has {left} left to prefill")
        if seq.state == WAITING:   # admitted: its prefix-cache hit becomes its own KV
            new_blocks += -(-(seq.cached + n) // B)
        else:
            kv = seq._c  # absolute: the request is not decoding
            new_blocks += -(-(kv + n) // B) - -(-kv // B)
        tokens += n
        chunks.append((seq, n))
        if seq.state == WAITING:
            admit.append(seq)
    return chunks, admit, tokens, new_blocks


def _retained(decision: Decision, eng: Engine) -> tuple[list[tuple[Seq, float]], int]:
    """(request, time-to-live) pairs and the KV blocks newly pinned by them."""
    out, seen, blocks = [], set(), 0
    for entry in decision.retain:
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            _fail(eng, "format", f"retain holds {entry!r}, not an (id, seconds) pair")
        rid, ttl = entry
        seqs = eng.seqs
        seq = seqs[rid] if type(rid) is int and 0 <= rid < len(seqs) else None
        if seq is None or seq.state != FINISHED:
            _fail(eng, "retain", f"retain names {rid!r}, which is not a finished request")
        if rid in seen:
            _fail(eng, "retain", f"retain names request {rid} twice")
        if not isinstance(ttl, (int, float)) or not 0 < ttl <= MAX_RETAIN_S:
            _fail(eng, "retain", f"request {rid}: time-to-live {ttl!r} s is outside (0, {MAX_RETAIN_S:g}]")
        seen.add(rid)
        blocks += eng.retain_blocks(seq)
        out.append((seq, float(ttl)))
    return out, blocks


def check(decision: Decision, eng: Engine) -> Plan:
    if not isinstance(decision, Decision):
        _fail(eng, "format", f"the policy returned {type(decision).__name__}, not a Decision")
    victims = _preempted(decision, eng) if decision.preempt else []
    chunks, admit, chunk_tokens, chunk_blocks = _chunks(decision, eng, victims) if decision.prefill \
        else ([], [], 0, 0)
    cfg = eng.config
    decoders = len(eng.group.members)
    freed = lost_decode_blocks = 0
    for seq in victims:
        freed += seq.kv_blocks
        if seq.state == DECODING:
            decoders -= 1
            lost_decode_blocks += seq.kv_tokens % B == 0   # its next-step block is no longer needed
    running = len(eng.prefilling) + len(eng.group.members) - len(victims) + len(admit)
    if running > cfg.max_running:
        _fail(eng, "max-running", f"{running} running requests after this step's admissions; the cap is "
                                  f"{cfg.max_running}")
    decode = bool(decision.decode) and decoders > 0
    tokens = chunk_tokens + (decoders if decode else 0)
    if tokens > cfg.token_budget:
        _fail(eng, "token-budget", f"the step has {tokens} tokens ({decoders if decode else 0} decode + "
                                   f"{chunk_tokens} prefill); the budget is {cfg.token_budget}")
    retain, pinned = _retained(decision, eng) if decision.retain else ([], 0)
    used = eng.blocks_used()
    need = used - freed + chunk_blocks + pinned + (eng.decode_new_blocks() - lost_decode_blocks if decode else 0)
    if need > eng.kv_blocks_total:
        _fail(eng, "kv-capacity", f"the step needs {need} KV blocks ({used} in use, {freed} freed by "
                                  f"preemption, {chunk_blocks} for prefill chunks, {pinned} newly retained, the "
                                  f"rest for decodes); the cache has {eng.kv_blocks_total}")
    return Plan(chunks, admit, victims, decode, retain)

