"""Multi-turn agent sessions with tool calls (the `agent` workload kind), closed loop.

A session (an agent solving one task, as SWE-agent on SWE-bench, the traces Continuum evaluates on) sends
turn after turn: the prompt of turn k+1 is turn k's prompt, its reply (the tool call) and the tool's result;
turn k+1 arrives the tool's run time after turn k's reply is complete in the simulation (requests.py
`follows`/`gap_s`). Every session begins with the same system prompt (shared 512-token units), then its own
task; a prefix cache that still holds turn k's prompt serves most of turn k+1's.

Figures (stated assumptions, no public table in REFERENCE.md): SWE-agent-like sessions of 1 + Geometric turns
(mean 10, at most 40) within a 32k context; a 2k-token system prompt and a task of median 1k tokens; replies
(tool calls) of median 120 tokens; tool results of median 400 tokens with a heavy tail (file views, test
logs); tool run times lognormal with median 1 s and σ 1.5 (p90 ≈ 7 s, p99 ≈ 33 s: most tools are quick
edits and greps, a few run test suites). Session starts form a Gamma renewal process at rate/turns-per-session.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluators.serving import arrivals
from evaluators.serving.blocks import BlockIds, Stream
from evaluators.serving.lengths import BLOCK_TOKENS, SplitLognormal
from evaluators.serving.requests import Requests

CONTEXT = 32768
MEAN_TURNS = 10.0
MAX_TURNS = 40
SYSTEM_TOKENS = 2048
TASK = SplitLognormal(1000, 0.5, 0.5, 100, 8000)
REPLY = SplitLognormal(120, 0.8, 0.8, 8, 2048)
TOOL_RESULT = SplitLognormal(400, 1.2, 1.2, 1, 8000)
TOOL_MEDIAN_S, TOOL_SIGMA = 1.0, 1.5
NOMINAL_S_PER_TOKEN = 0.02   # orders ids only: a reply is assumed to stream at 50 tokens/s


@dataclass
class _Turns:
    prompts: list[int]
    outputs: list[int]
    gaps: list[float]   # tool time before each turn (0 for the first)


def _session(rng: np.random.Generator) -> _Turns:
    turns = min(int(rng.geometric(1.0 / MEAN_TURNS)), MAX_TURNS)
    task = int(TASK.sample(rng, 1)[0])
    replies, results = REPLY.sample(rng, turns), TOOL_RESULT.sample(rng, turns)
    tools = TOOL_MEDIAN_S * np.exp(TOOL_SIGMA * rng.standard_normal(turns))
    s, prompt = _Turns([], [], []), SYSTEM_TOKENS + task
    for k in range(turns):
        if prompt + int(replies[k]) > CONTEXT:   # the context is full: the agent stops
            break
        s.prompts.append(prompt)
        s.outputs.append(int(replies[k]))
        s.gaps.append(float(tools[k - 1]) if k else 0.0)
        prompt += int(replies[k]) + int(results[k])
    return s


def agent_requests(rng_content: np.random.Generator, rng_arrival: np.random.Generator, rate_per_s: float,
                   n_requests: int, cv: float, burst, clients: np.ndarray | None, name: str) -> Requests:
    """`n_requests` turns of whole sessions (the last cut to fit), session starts at rate/turns."""
    sessions, count = [], 0
    while count < n_requests:
        sessions.append(_session(rng_content))
        count += len(sessions[-1].prompts)
    extra = count - n_requests
    if extra:
        last = sessions[-1]
        sessions[-1] = _Turns(last.prompts[:-extra], last.outputs[:-extra], last.gaps[:-extra])
    starts = arrivals.renewal(rng_arrival, rate_per_s * len(sessions) / n_requests, cv, n=len(sessions),
                              burst=burst)
    return _to_requests(sessions, starts.tolist(), clients, name)


def _to_requests(sessions: list[_Turns], starts: list[float], clients, name: str) -> Requests:
    ids = BlockIds()
    system = Stream(ids).blocks(SYSTEM_TOKENS // BLOCK_TOKENS)
    rows = []   # nominal arrival, session, turn, prompt, output, gap
    for sid, (s, t) in enumerate(zip(sessions, starts)):
        for k, (p, o, g) in enumerate(zip(s.prompts, s.outputs, s.gaps)):
            t += g
            rows.append((t, sid, k, p, o, g))
            t += o * NOMINAL_S_PER_TOKEN
    rows.sort()
    index = {(r[1], r[2]): i for i, r in enumerate(rows)}
    follows = [index[(r[1], r[2] - 1)] if r[2] else -1 for r in rows]
    streams = [Stream(ids) for _ in sessions]
    hashes = []
    for _, sid, _, p, _, _ in rows:
        full = p // BLOCK_TOKENS
        own = streams[sid].blocks(max(0, full - len(system)))
        tail = ids.fresh(1) if p % BLOCK_TOKENS else np.empty(0, np.int64)
        hashes.append(np.concatenate([system[:full], own, tail]))
    session = np.array([r[1] for r in rows], np.int64)
    return Requests.of([r[0] for r in rows], [r[3] for r in rows], [r[4] for r in rows], session=session,
                       client=None if clients is None else clients[session], hash_ids=hashes, name=name,
                       follows=follows, gap_s=[r[5] for r in rows])
