"""Continuum-style agent scheduling (Li et al., 2025): program-level FCFS (a session's turns go before
those of sessions that started later, so a returning agent keeps its place instead of queueing behind new
work) and KV time-to-live: when a turn ends in a tool call, its prompt's cached prefix is retained for about
the time the tool takes (the 90th percentile of the tool pauses observed so far), so the next turn skips its
prefill. Pins are bounded to half of the cache and only taken from memory this step leaves free. Otherwise
FCFS's steps (prefill-prioritising, chunked to the token budget)."""
import numpy as np

# EVOLVE-BLOCK-START
CFG = {}
WATERMARK = 0.01  # keep 1% of the cache free, as vLLM does, so an admission does not force a preemption
UNIT_TOKENS = 512       # the prefix cache keeps whole 512-token units of a prompt
PIN_SHARE = 0.5         # at most this share of the cache pinned
SPARE = 0.05            # and never the last 5% of the free blocks
SEEN = {}               # per run: session -> first arrival; session -> when its last turn ended in a tool call


def init(config):
    CFG.clear()
    CFG.update(config)
    SEEN.clear()
    SEEN.update(start={}, paused={}, gaps=[])


def _ttl():
    gaps = SEEN["gaps"]
    if len(gaps) < 10:
        return 10.0
    return float(min(60.0, max(1.0, np.percentile(gaps, 90))))


def _observe(state):
    now, wait, fin = state["now_s"], state["waiting"], state["finished"]
    start, paused = SEEN["start"], SEEN["paused"]
    for s, age in zip(wait["session"].tolist(), wait["age_s"].tolist()):
        if s >= 0 and s not in start:
            start[s] = now - age
        if s in paused:   # the session's next turn is here: its tool took this long
            SEEN["gaps"].append(now - age - paused.pop(s))
    for s, tool in zip(fin["session"].tolist(), fin["tool_call"].tolist()):
        if s >= 0 and tool:
            paused[s] = now


def _retain(state, ids, tok):
    """Pin the prefixes of turns that ended in a tool call, within the memory this step leaves."""
    fin, bt = state["finished"], state["block_tokens"]
    wait, run = state["waiting"], state["running"]
    running = dict(zip(run["id"].tolist(), run["kv_tokens"].tolist()))
    cached = dict(zip(wait["id"].tolist(), wait["cached"].tolist()))
    step = 0   # blocks this step's chunks take (an admitted request's cache hit becomes its own)
    for i, t in zip(ids, tok):
        kv = running.get(i)
        step += _blocks(kv + t, bt) - _blocks(kv, bt) if kv is not None else _blocks(cached[i] + t, bt)
    total = state["kv_blocks_total"]
    avail = state["kv_blocks_free"] - state["decode_new_blocks"] - step - int(SPARE * total)
    cap = PIN_SHARE * total - state["kv_blocks_pinned"]
    out, ttl = [], _ttl()
    for rid, prompt, tool in zip(fin["id"].tolist(), fin["prompt_tokens"].tolist(), fin["tool_call"].tolist()):
        blocks = prompt // UNIT_TOKENS * (UNIT_TOKENS // bt)
        if tool and 0 < blocks <= min(avail, cap):
            out.append(rid)
            avail -= blocks
            cap -= blocks
    return out, ttl


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
    _observe(state)
    victims, free, need = _make_room(state)
    wait, start, now = state["waiting"], SEEN["start"], state["now_s"]
    first = [start.get(s, now - a) for s, a in zip(wait["session"].tolist(), wait["age_s"].tolist())]
    order = np.lexsort((wait["id"], np.asarray(first, dtype=float)))   # the oldest program first
    ids, tok = _chunks(state, victims, free, need, state["token_budget"], order)
    keep, ttl = _retain(state, ids, tok)
    return {"prefill_ids": ids, "prefill_tokens": tok, "preempt": victims, "decode": not ids,
            "retain_ids": keep, "retain_s": [ttl] * len(keep)}
# EVOLVE-BLOCK-END
