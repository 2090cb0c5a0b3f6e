"""Seeded generators of LLM-serving workloads matching REFERENCE.md's trace statistics.

    generate("azure-conv", rate_per_s=5.5, n_requests=2000, cv=1.0, seed=3) -> Requests

Kinds (lengths in lengths.py; arrivals in arrivals.py, at the caller's rate, which it sets from a measured
capacity):
- `azure-conv`, `azure-code`: single requests; output length independent of the prompt (REFERENCE.md:
  corr <= 0.09). No block hashes (the Azure traces have none).
- `sharegpt`: multi-turn sessions. Turn k's prompt is the whole history (earlier user messages and replies)
  plus a new user message, so prompts grow along a session; `session` names it and its 512-token blocks share
  ids with the earlier turns' (a prefix cache sees the history). `cv` and `burst` shape the session starts;
  turn k+1 arrives `output_k * READ_S_PER_TOKEN + Exp(think_s)` after turn k (open loop: it does not wait for
  the simulated reply).
- `mooncake`: long single requests with block hashes: every prompt starts with one shared system block, and
  with probability `prefix_share` continues with a hot prefix (a Zipf-popular document or conversation)
  covering a uniform 50-100% of its remaining full blocks. Prefix reuse (unbounded cache, blocks.reuse_ratio)
  is calibrated at the conversation trace's size, 12,000 requests (59 min at 3.4/s): the default gives
  0.36-0.37 (REFERENCE.md: 36.6%), prefix_share 0.95 gives 0.64-0.65 (the synthetic trace's 64%). Fewer
  requests meet more hot prefixes for the first time: about 0.32 at 2,000 requests, 0.24 at 400.
  `hot_burst` (id key `hotburst=`): in the middle third of the requests that share of them opens with one
  new document instead (one prefix suddenly carrying most of the traffic, as a viral prompt would).
- `agent`: closed-loop multi-turn agent sessions with tool calls and a shared system prompt (agents.py);
  the next turn arrives a tool's run time after the previous one finishes in the simulation.

Randomness: one stream per purpose, seeded by (seed, purpose), so request i's lengths do not depend on the
rate, the count or the arrival process, and a smaller `n_requests` gives a prefix of a larger one (the
capacity a caller measures on the lengths holds for every rate).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluators.base import ConfigError
from evaluators.serving import arrivals
from evaluators.serving.agents import agent_requests
from evaluators.serving.arrivals import Burst
from evaluators.serving.blocks import SYSTEM_BLOCK, BlockIds, Stream, prompt_blocks
from evaluators.serving.lengths import BLOCK_TOKENS, PROFILES, SHAREGPT_USER
from evaluators.serving.requests import Requests

KINDS = (*PROFILES, "agent")
MAX_REQUESTS = 2_000_000

# ShareGPT sessions: 1 + Geometric turns with this mean before the 8k context cuts them (3.45 turns remain on
# average); fitted with SHAREGPT_USER to the table's whole-prompt statistics.
MEAN_TURNS = 4.0
REALISED_TURNS = 3.45     # mean turns per session after the context cut (measured over 10^5 sessions)
READ_S_PER_TOKEN = 0.02   # a reply streams at 50 tokens/s before the user thinks about the next turn

# Mooncake hot prefixes (calibrated to 36.6% prefix reuse at 12,000 requests with the default prefix_share).
HOT_PREFIXES = 50         # distinct hot prefixes, Zipf-popular
HOT_ZIPF = 1.0
PREFIX_SHARE = 0.52

_STREAMS = {"prompt": 1, "output": 2, "arrival": 3, "client": 4, "prefix": 5, "session": 6, "turn_gap": 7,
            "burst": 8}


@dataclass(frozen=True)
class GenParams:
    """Everything a generated workload depends on."""

    kind: str
    rate_per_s: float                 # mean requests per second (sharegpt: of all turns)
    n_requests: int | None = None     # exactly one of n_requests and duration_s
    duration_s: float | None = None
    cv: float = 1.0                   # inter-arrival CV of the Gamma renewal process (1 = Poisson)
    seed: int = 0
    burst: Burst | None = None        # on/off overlay on the arrival rate
    clients: int = 1                  # tenants, Zipf(1)-popular (sharegpt: per session)
    think_s: float = 20.0             # sharegpt: mean user pause between a reply and the next turn
    prefix_share: float = PREFIX_SHARE  # mooncake: probability a prompt continues a hot prefix
    hot_burst: float = 0.0            # mooncake: in the middle third of the requests, this share all open
                                      # with one new hot document (a sudden hot prefix)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown workload kind '{self.kind}' (known: {', '.join(KINDS)})")
        if (self.n_requests is None) == (self.duration_s is None):
            raise ConfigError(f"{self.kind} workload: give exactly one of n_requests and duration_s")
        if self.kind == "agent" and self.n_requests is None:
            raise ConfigError("agent workload: give n= (turns); its arrivals depend on the simulation")
        lo, hi = arrivals.CV_RANGE
        rules = [
            ("n_requests", self.n_requests is None or 1 <= self.n_requests <= MAX_REQUESTS, f"in [1, {MAX_REQUESTS}]"),
            ("duration_s", self.duration_s is None or 0 < self.duration_s < 1e7, "in (0, 1e7)"),
            ("rate_per_s", 0 < self.rate_per_s < float("inf"), "> 0"),
            ("cv", lo <= self.cv <= hi, f"in [{lo}, {hi}] (burstier traffic: add a burst overlay)"),
            ("seed", self.seed >= 0, ">= 0"),
            ("clients", 1 <= self.clients <= 10_000, "in [1, 10000]"),
            ("think_s", self.think_s >= 0, ">= 0"),
            ("prefix_share", 0 <= self.prefix_share <= 1, "in [0, 1]"),
            ("hot_burst", 0 <= self.hot_burst <= 1 and (self.hot_burst == 0 or self.kind == "mooncake"),
             "in [0, 1], and only for mooncake"),
        ]
        for name, ok, rule in rules:
            if not ok:
                raise ConfigError(f"{self.kind} workload: {name} must be {rule}, got {getattr(self, name)!r}")


def generate(kind: str, rate_per_s: float, *, n_requests: int | None = None, duration_s: float | None = None,
             cv: float = 1.0, seed: int = 0, **options) -> Requests:
    """Generate a workload; `options` are the other GenParams fields (burst, clients, think_s, prefix_share)."""
    return make_requests(GenParams(kind, rate_per_s, n_requests, duration_s, cv, seed, **options))


def make_requests(p: GenParams) -> Requests:
    name = f"{p.kind} seed={p.seed} rate={p.rate_per_s:g}/s cv={p.cv:g}"
    if p.kind == "sharegpt":
        return _sharegpt(p, name)
    if p.kind == "agent":
        clients = _clients(p, p.n_requests) if p.clients > 1 else None   # per session: at most n sessions
        return agent_requests(_rng(p, "session"), _rng(p, "arrival"), p.rate_per_s, p.n_requests, p.cv,
                              p.burst, clients, name)
    t = arrivals.renewal(_rng(p, "arrival"), p.rate_per_s, p.cv, n=p.n_requests, duration_s=p.duration_s,
                         burst=p.burst)
    n = len(t)
    profile = PROFILES[p.kind]
    prompt = profile.prompt.sample(_rng(p, "prompt"), n)
    output = profile.output.sample(_rng(p, "output"), n)
    hashes = _mooncake_blocks(p, prompt) if p.kind == "mooncake" else ()
    return Requests.of(t, prompt, output, client=_clients(p, n), hash_ids=hashes, name=name)


def _rng(p: GenParams, purpose: str) -> np.random.Generator:
    return np.random.default_rng([p.seed, _STREAMS[purpose]])


def _clients(p: GenParams, n: int) -> np.ndarray:
    if p.clients == 1:
        return np.zeros(n, np.int64)
    weights = 1.0 / np.arange(1, p.clients + 1)
    cdf = np.cumsum(weights) / weights.sum()
    u = _rng(p, "client").random(n)
    return np.minimum(np.searchsorted(cdf, u, side="right"), p.clients - 1).astype(np.int64)


def _mooncake_blocks(p: GenParams, prompt: np.ndarray) -> tuple[np.ndarray, ...]:
    """Block ids: the shared system block, then (with probability prefix_share) part of a hot prefix."""
    ids = BlockIds()
    hot: dict[int, Stream] = {}
    weights = 1.0 / np.arange(1, HOT_PREFIXES + 1) ** HOT_ZIPF
    cdf = np.cumsum(weights) / weights.sum()
    draws = _rng(p, "prefix").random((len(prompt), 3))   # row i is request i's, whatever the count
    burst = _rng(p, "burst").random(len(prompt)) < p.hot_burst
    n = len(prompt)
    burst[: n // 3] = burst[2 * n // 3:] = False
    storm = Stream(ids)   # the burst's document: a prefix no request has sent before the burst
    out = []
    for i, (tokens, (u_share, u_pick, u_frac)) in enumerate(zip(prompt.tolist(), draws)):
        rest = tokens // BLOCK_TOKENS - 1   # full blocks after the system block
        shared = np.empty(0, np.int64)
        if burst[i] and rest > 0:
            shared = storm.blocks(int(rest * (0.5 + 0.5 * u_frac)))
        elif u_share < p.prefix_share and rest > 0:
            j = int(np.searchsorted(cdf, u_pick, side="right"))
            stream = hot.setdefault(j, Stream(ids))
            shared = stream.blocks(int(rest * (0.5 + 0.5 * u_frac)))
        out.append(np.concatenate([[SYSTEM_BLOCK], prompt_blocks(tokens - BLOCK_TOKENS, shared, ids)]))
    return tuple(out)


@dataclass
class _Session:
    prompts: list[int]
    outputs: list[int]


def _session(rng: np.random.Generator) -> _Session:
    """One conversation: each turn's prompt is the history so far plus a new user message (the first always
    fits: a user message is at most the context)."""
    turns = int(rng.geometric(1.0 / MEAN_TURNS))
    user = SHAREGPT_USER.sample(rng, turns)
    reply = PROFILES["sharegpt"].output.sample(rng, turns)
    s, history = _Session([], []), 0
    for u, o in zip(user.tolist(), reply.tolist()):
        if history + u > SHAREGPT_USER.hi:   # the context is full: the conversation ends
            break
        s.prompts.append(history + u)
        s.outputs.append(o)
        history += u + o
    return s


def _sharegpt(p: GenParams, name: str) -> Requests:
    content = _rng(p, "session")
    if p.n_requests is not None:
        sessions, count = [], 0
        while count < p.n_requests:   # whole sessions in start order; the last is cut to fit
            sessions.append(_session(content))
            count += len(sessions[-1].prompts)
        extra = count - p.n_requests
        if extra:
            last = sessions[-1]
            sessions[-1] = _Session(last.prompts[:-extra], last.outputs[:-extra])
        turns = p.n_requests / len(sessions)
        starts = arrivals.renewal(_rng(p, "arrival"), p.rate_per_s / turns, p.cv, n=len(sessions), burst=p.burst)
    else:
        starts = arrivals.renewal(_rng(p, "arrival"), p.rate_per_s / REALISED_TURNS, p.cv,
                                  duration_s=p.duration_s, burst=p.burst)
        sessions = [_session(content) for _ in starts]
    return _sessions_to_requests(p, sessions, starts, name)


def _sessions_to_requests(p: GenParams, sessions: list[_Session], starts: np.ndarray, name: str) -> Requests:
    gaps = _rng(p, "turn_gap")
    ids = BlockIds()
    clients = _clients(p, len(sessions))
    rows: list[tuple[float, int, int, int, int]] = []   # arrival, session, turn, prompt, output
    for sid, (s, t) in enumerate(zip(sessions, starts.tolist())):
        think = gaps.exponential(p.think_s, len(s.prompts)) if p.think_s > 0 else np.zeros(len(s.prompts))
        for k, (prompt, output) in enumerate(zip(s.prompts, s.outputs)):
            rows.append((t, sid, k, prompt, output))
            t += output * READ_S_PER_TOKEN + float(think[k])
    if p.duration_s is not None:
        rows = [r for r in rows if r[0] < p.duration_s]
    rows.sort()
    streams = [Stream(ids) for _ in sessions]
    hashes = tuple(prompt_blocks(r[3], streams[r[1]].blocks(r[3] // BLOCK_TOKENS), ids) for r in rows)
    cols = list(zip(*rows)) if rows else [(), (), (), (), ()]
    session = np.asarray(cols[1], np.int64)
    return Requests.of(cols[0], cols[3], cols[4], session=session, client=clients[session] if rows else None,
                       hash_ids=hashes, name=name)
