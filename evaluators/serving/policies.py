"""Built-in scheduling policies (trusted, in-process): the human baselines the simulator is checked with.

Both admit in arrival order (first come, first served, with head-of-line blocking: a request that does not
fit stops admission), reserve KV blocks for the whole remaining prefill of every request they admit, keep a
watermark of free blocks as vLLM does (1% of the cache, so an admission does not force a preemption on the
next decode step), and when the cache cannot hold the next decode step they preempt the latest-arrived
running requests (vLLM's recompute preemption of the lowest-priority sequences).

- Fcfs, prefill-prioritising like vLLM's default scheduler without chunked prefill: whenever prompts can be
  admitted or continued, the step runs prefill only (decodes pause: the "generation stalls" Sarathi-Serve
  describes); prompts longer than the token budget are chunked over steps.
- Sarathi, decode-first with chunked prefill (Sarathi-Serve): every step decodes all running requests and
  fills what is left of a per-step token budget (512 by default, a budget Sarathi-Serve uses) with prefill
  chunks, continuing partial prefills before admitting new requests.
"""
from __future__ import annotations

from evaluators.serving.gpu import BLOCK_TOKENS as B
from evaluators.serving.policy import Decision, Observation, Seq


def _blocks(tokens: int) -> int:
    return -(-tokens // B)


def _make_room_for_decodes(obs: Observation) -> tuple[list[int], int, int, int]:
    """Preempt latest arrivals until the next decode step fits. Returns (victim ids, free blocks after,
    decode tokens after, new blocks the decodes need after)."""
    free, need, decoders = obs.kv_blocks_free, obs.decode_new_blocks, obs.decode_tokens
    if need <= free:
        return [], free, decoders, need
    victims = []
    for seq in sorted([*obs.prefilling, *obs.decoding], key=_latest_first):
        if need <= free:
            break
        victims.append(seq.id)
        free += seq.kv_blocks
        if seq.prefill_left == 0:   # decoding: its own next block is no longer needed
            decoders -= 1
            need -= seq.kv_tokens % B == 0
    return victims, free, decoders, need


def _latest_first(seq: Seq) -> int:
    return -seq.id


class _Admission:
    """Shared FCFS admission: continue partial prefills, then admit waiting requests in arrival order."""

    def __init__(self, watermark: float) -> None:
        if not 0 <= watermark < 1:
            raise ValueError(f"watermark must be in [0, 1), got {watermark}")
        self.watermark = watermark

    def chunks(self, obs: Observation, victims: list[int], free: int, decode_need: int, budget: int) -> list:
        gone = set(victims)
        # blocks the next step's decodes need, the watermark, and what running prefills still need later
        avail = free - decode_need - int(self.watermark * obs.kv_blocks_total)
        out = []
        for seq in obs.prefilling:
            if seq.id not in gone:
                avail -= _blocks(seq.kv_tokens + seq.prefill_left) - seq.kv_blocks
        for seq in obs.prefilling:
            if budget <= 0:
                return out
            if seq.id in gone:
                continue
            c = min(seq.prefill_left, budget)
            out.append((seq.id, c))   # its blocks were reserved above
            budget -= c
        running = obs.running_count - len(victims)
        for seq in obs.waiting:
            if budget <= 0 or running >= obs.max_running:
                break
            left = seq.prefill_left
            need = _blocks(seq.cached + left)   # a prefix-cache hit becomes its own KV
            if need > avail:
                break   # head-of-line: later requests wait behind this one
            c = min(left, budget)
            out.append((seq.id, c))
            avail -= need
            budget -= c
            running += 1
        return out


class Fcfs(_Admission):
    """vLLM-style prefill-prioritising FCFS with prompts chunked to the token budget."""

    def __init__(self, watermark: float = 0.01) -> None:
        super().__init__(watermark)

    def decide(self, obs: Observation) -> Decision:
        victims, free, _, need = _make_room_for_decodes(obs)
        # decodes pause during a prefill step, so the chunks need not leave budget for them; the blocks
        # of the decode step that follows are still kept free
        chunks = self.chunks(obs, victims, free, need, obs.token_budget)
        if chunks:
            return Decision(chunks, victims, decode=False)
        return Decision((), victims, decode=True)


class Sarathi(_Admission):
    """Sarathi-Serve-style decode-first scheduling with chunked prefill under a per-step token budget."""

    def __init__(self, step_tokens: int = 512, watermark: float = 0.01) -> None:
        super().__init__(watermark)
        if step_tokens < 1:
            raise ValueError(f"step_tokens must be >= 1, got {step_tokens}")
        self.step_tokens = step_tokens

    def decide(self, obs: Observation) -> Decision:
        victims, free, decoders, need = _make_room_for_decodes(obs)
        budget = min(obs.token_budget, self.step_tokens) - decoders
        return Decision(self.chunks(obs, victims, free, need, budget), victims, decode=True)
