"""Llumnix (Sun et al., OSDI 2024), simplified: dispatch to the least loaded instance, and migrate running
requests off an overloaded instance onto the least loaded one. Load per instance is its outstanding
requests (queued + running, plus those this router sent since the snapshot was taken: the snapshots are
stale, so it keeps its own record) per unit of speed. When the most loaded instance exceeds the least loaded
by GAP and its snapshot shows KV in use above KV_HIGH (or a queue), up to MOVES of its decoding requests with
the least KV (the cheapest to move) go to the least loaded instance, whose KV share must stay below
TARGET_MAX. A request is migrated at most once."""
import numpy as np

# EVOLVE-BLOCK-START
GAP = 6.0          # outstanding requests per unit speed
KV_HIGH = 0.05     # share of KV in use on the source
TARGET_MAX = 0.5   # share of KV in use the target may reach
MOVES = 2
STATE = {}


def init(config):
    STATE.update(speeds=np.asarray(config["speeds"], float), kv=config["kv_tokens"], sent=[], moved=set(),
                 max_moves=min(MOVES, config.get("max_migrations", MOVES)))


def route(state):
    inst, now = state["instances"], state["now_s"]
    n = len(STATE["speeds"])
    taken = now - inst["age_s"]                       # when each snapshot was taken
    sent = STATE["sent"] = [(t, k) for t, k in STATE["sent"] if t > now - 5.0]
    recent = np.zeros(n)
    for t, k in sent:
        if t > taken[k]:
            recent[k] += 1
    load = (inst["queued"] + inst["running"] + recent) / STATE["speeds"]
    k = int(load.argmin())
    sent.append((now, k))
    src, dst = int(load.argmax()), k
    moves = []
    if src != dst and load[src] - load[dst] > GAP and (inst["kv_used"][src] > KV_HIGH or inst["queued"][src] > 0):
        run = state["running"]
        mine = run["instance"] == src
        ids, kv = run["id"][mine], run["kv_tokens"][mine]
        room = (TARGET_MAX - inst["kv_used"][dst]) * STATE["kv"]
        for j in np.argsort(kv, kind="stable"):
            r = int(ids[j])
            if len(moves) >= STATE["max_moves"] or kv[j] > room:
                break
            if r in STATE["moved"]:
                continue
            STATE["moved"].add(r)
            moves.append([r, dst])
            room -= kv[j]
    return {"instance": k, "migrate": moves} if moves else k
# EVOLVE-BLOCK-END
