"""Plain FCFS with chunked prefill (vLLM's default, prefill-prioritising): admit waiting requests in arrival
order while KV blocks and running slots allow; any step with prefill work runs prefill only (decodes pause);
prompts longer than the token budget are chunked over steps; when the next decode step does not fit in the
KV cache, preempt the latest arrivals."""
import numpy as np

# EVOLVE-BLOCK-START
CFG = {}
WATERMARK = 0.01  # keep 1% of the cache free, as vLLM does, so an admission does not force a preemption


def init(config):
    CFG.clear()
    CFG.update(config)


def _blocks(tokens, bt):
    return -(-tokens // bt)


def _make_room(state):
    """Preempt the latest-arrived running requests until the next decode step fits the cache."""
    run, bt = state["running"], state["block_tokens"]
    free, need = state["kv_blocks_free"], state["decode_new_blocks"]
    victims = []
    for i in np.argsort(-run["id"], kind="stable"):
        if need <= free:
            break
        victims.append(int(run["id"][i]))
        kv = int(run["kv_tokens"][i])
        free += _blocks(kv, bt)
        if run["prefill_left"][i] == 0:
            need -= kv % bt == 0
    return victims, free, need


def _chunks(state, victims, free, need, budget, order):
    """Continue partial prefills, then admit waiting requests in `order` (head-of-line blocking)."""
    run, wait, bt = state["running"], state["waiting"], state["block_tokens"]
    gone = set(victims)
    avail = free - need - int(WATERMARK * state["kv_blocks_total"])
    out_ids, out_tok = [], []
    pre = [i for i in range(len(run["id"])) if run["prefill_left"][i] > 0 and int(run["id"][i]) not in gone]
    for i in pre:  # blocks the running prefills still need are reserved first
        kv, left = int(run["kv_tokens"][i]), int(run["prefill_left"][i])
        avail -= _blocks(kv + left, bt) - _blocks(kv, bt)
    for i in pre:
        if budget <= 0:
            return out_ids, out_tok
        c = min(int(run["prefill_left"][i]), budget)
        out_ids.append(int(run["id"][i]))
        out_tok.append(c)
        budget -= c
    running = len(run["id"]) - len(victims)
    for i in order:
        if budget <= 0 or running >= state["max_running"]:
            break
        left = int(wait["prefill_left"][i])
        blocks = _blocks(int(wait["cached"][i]) + left, bt)  # a prefix-cache hit becomes its own KV
        if blocks > avail:
            break
        c = min(left, budget)
        out_ids.append(int(wait["id"][i]))
        out_tok.append(c)
        avail -= blocks
        budget -= c
        running += 1
    return out_ids, out_tok


def schedule(state):
    victims, free, need = _make_room(state)
    order = range(len(state["waiting"]["id"]))  # arrival order
    ids, tok = _chunks(state, victims, free, need, state["token_budget"], order)
    return {"prefill_ids": ids, "prefill_tokens": tok, "preempt": victims, "decode": not ids}
# EVOLVE-BLOCK-END
