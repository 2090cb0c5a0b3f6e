"""Per-client fair share (a virtual token counter per client, as VTC; cheap preemption in the spirit of
FastSwitch). Each client's counter grows with the tokens served to it (prompt tokens when admitted, output
tokens as they are generated); waiting requests are admitted from the client with the smallest counter, its
oldest request first, so a client that floods the queue cannot crowd out the others. A client seen for the
first time starts at the smallest active counter (no credit for being idle). When the next decode step does
not fit the cache, the victims come from the client with the largest counter. Otherwise FCFS's steps."""
import numpy as np

# EVOLVE-BLOCK-START
CFG = {}
WATERMARK = 0.01  # keep 1% of the cache free, as vLLM does, so an admission does not force a preemption


COUNTERS = {}   # client -> tokens served
SEEN = {}       # request id -> (client, generated tokens already counted)


def init(config):
    CFG.clear()
    CFG.update(config)
    COUNTERS.clear()
    SEEN.clear()


def _count(state):
    """Charge each client the output tokens generated since the last decision."""
    for table in (state["running"], state["finished"]):
        for rid, client, gen in zip(table["id"].tolist(), table["client"].tolist(), table["generated"].tolist()):
            c, counted = SEEN.get(rid, (client, 0))
            if gen > counted:
                COUNTERS[c] = COUNTERS.get(c, 0) + gen - counted
                SEEN[rid] = (c, gen)
    floor = min(COUNTERS.values(), default=0)
    for client in state["waiting"]["client"].tolist():
        COUNTERS.setdefault(client, floor)


def _fair_order(wait):
    """Repeatedly take the oldest request of the client with the least service (tentatively charged)."""
    queues = {}
    for i, client in enumerate(wait["client"].tolist()):
        queues.setdefault(client, []).append(i)
    charge = {c: COUNTERS.get(c, 0) for c in queues}
    order = []
    while queues:
        c = min(queues, key=lambda k: (charge[k], k))
        i = queues[c].pop(0)
        order.append(i)
        charge[c] += int(wait["prefill_left"][i])
        if not queues[c]:
            del queues[c]
    return order


def _blocks(tokens, bt):
    return -(-tokens // bt)


def _make_room(state):
    """Preempt the latest-arrived running requests until the next decode step fits the cache."""
    run, bt = state["running"], state["block_tokens"]
    free, need = state["kv_blocks_free"], state["decode_new_blocks"]
    victims = []
    served = np.array([COUNTERS.get(c, 0) for c in run["client"].tolist()], dtype=np.int64)
    for i in np.lexsort((-run["id"], -served)):   # the most-served client's latest request first
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
    _count(state)
    victims, free, need = _make_room(state)
    wait = state["waiting"]
    order = _fair_order(wait)
    ids, tok = _chunks(state, victims, free, need, state["token_budget"], order)
    row = {rid: i for i, rid in enumerate(wait["id"].tolist())}
    for rid in ids:
        if rid in row:   # admitted now: charge its client the prompt
            i = row[rid]
            client = int(wait["client"][i])
            COUNTERS[client] = COUNTERS.get(client, 0) + int(wait["prefill_left"][i])
    return {"prefill_ids": ids, "prefill_tokens": tok, "preempt": victims, "decode": not ids}
# EVOLVE-BLOCK-END
