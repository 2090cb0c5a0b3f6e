"""Workload-aware routing: estimate, per instance, when this request would get its first token — the prompt
tokens already queued there plus this request's own uncached prompt (its blocks the router has not sent
there before), at the instance's prefill rate, plus the slowdown its running decodes impose — and pick the
earliest. Prefill and decode load are weighed separately, as the seeds' workload-aware router does; the
rates are rough constants for Llama-3-8B on an H100, scaled by instance speed."""
import numpy as np

# EVOLVE-BLOCK-START
PREFILL_TPS = 40_000.0    # prompt tokens per second of one instance
DECODE_COST_S = 0.0002    # added seconds per running decode (their share of every mixed step)
SENT = []
SPEEDS = []
BLOCK = 512


def init(config):
    SPEEDS[:] = config["speeds"]
    SENT[:] = [set() for _ in range(config["instances"])]


def _cached_tokens(tree, blocks):
    m = 0
    for h in blocks:
        if h not in tree:
            break
        m += 1
    return m * BLOCK


def route(state):
    req, inst = state["request"], state["instances"]
    blocks = req["blocks"].tolist()
    speed = np.asarray(SPEEDS)
    own = np.array([max(req["prompt_tokens"] - _cached_tokens(SENT[k], blocks), 1) for k in range(len(SPEEDS))])
    ttft = (inst["prefill_tokens"] + own) / (PREFILL_TPS * speed) + DECODE_COST_S * inst["decode_tokens"] / speed
    k = int(ttft.argmin())
    SENT[k].update(blocks)
    return k
# EVOLVE-BLOCK-END
