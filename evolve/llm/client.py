"""One chat completion, with our own retry loop so every HTTP attempt is recorded.

The request itself goes through a transport (evolve/llm/transport_base.py): httpx straight to an
OpenAI-compatible server given by api_base (transport_openai.py, no litellm import: a run against a local
server starts ~3 s sooner), litellm for everything else (transport_litellm.py); ADRS_LLM_TRANSPORT=litellm
sends every model through litellm.

Faults never raise out of here: timeouts, 429s, 5xx and connection errors are retried with exponential
backoff and jitter; the backoff is shared per model, so when a provider is down for minutes all proposals
to it wait longer and longer (up to BACKOFF_CAP_S) instead of burning iterations. Errors that a retry
cannot fix (bad key, unknown model, context too long) end at once. Each attempt becomes a CallRecord, a
row of the llm_calls table; its `error` is "<kind>: <one line>" with kind from ERROR_KINDS. A prompt that
cannot fit the model's known context window is refused before sending: one record, no request.

Each request is bounded by the model's timeout (evolve/llm/limits.py) on the wall clock. A request given up
is cancelled, which closes its connection: that is how a local server learns to stop generating an answer
nobody will read, and is free for the next request (tests/test_llm_client.py checks the server sees it).

Keys come only from the provider environment variables; nothing here logs, stores or forwards them
elsewhere. Costs come from litellm's bundled price table (no network); None when it has no price.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass

import numpy as np

from evolve.llm.limits import ModelLimits, resolve
from evolve.llm.transport_base import Answer, Transport

ERROR_KINDS = ("timeout", "rate_limited", "server_error", "connection_error", "truncated", "auth_error",
               "bad_request", "context_window", "not_found", "error")
RETRYABLE = frozenset({"timeout", "rate_limited", "server_error", "connection_error"})
BACKOFF_CAP_S = 60.0
# A server on this machine (llama.cpp, vLLM on loopback) that does not answer is down or restarting, not
# throttling us: waiting a minute between tries only delays the repeated-failure stop (15 minutes with the
# defaults at a 60 s cap).
LOCAL_BACKOFF_CAP_S = 5.0
GUARD_S = 5.0        # beyond the HTTP timeout, our own bound on a whole request


@dataclass
class CallRecord:
    model: str
    messages: str                  # JSON text of the request's messages
    response: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None  # None: litellm knows no price for this model
    latency_s: float = 0.0
    error: str = ""

    @property
    def kind(self) -> str:
        return self.error.split(":", 1)[0] if self.error else ""

    def row(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ClientSettings:
    api_base: str = ""
    timeout_s: float = 0.0         # 0: from the model (evolve/llm/limits.py)
    attempts: int = 5
    backoff_s: float = 2.0
    max_tokens: int = 0            # 0: from the model
    temperature: float = 0.8


def classify(exc: BaseException) -> str:
    """An exception from litellm/openai (or asyncio) -> one of ERROR_KINDS (the litellm transport's mapping;
    each transport classifies its own exceptions)."""
    from evolve.llm.transport_litellm import classify_litellm
    return classify_litellm(exc)


def is_loopback(api_base: str) -> bool:
    """The server is on this machine (localhost, 127.0.0.0/8, ::1)."""
    import ipaddress
    from urllib.parse import urlsplit
    host = urlsplit(api_base).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


class LlmClient:
    def __init__(self, settings: ClientSettings) -> None:
        self.s = settings
        self.spent_usd = 0.0                        # known dollars of every call made by this client
        self._not_before: dict[str, float] = {}     # model -> monotonic time before which no call starts
        self._streak: dict[str, int] = {}           # model -> consecutive retryable failures
        self._transports: dict[str, Transport] = {}

    def transport(self, model: str) -> Transport:
        """The transport that sends `model`; made on first use (the litellm one imports litellm)."""
        from evolve.llm.transport_openai import serves
        http = serves(model, self.s.api_base)
        key = "openai" if http else "litellm"
        if key not in self._transports:
            if http:
                from evolve.llm.transport_openai import OpenAITransport
                self._transports[key] = OpenAITransport(self.s.api_base)
            else:
                from evolve.llm.transport_litellm import LitellmTransport
                self._transports[key] = LitellmTransport(self.s.api_base)
        return self._transports[key]

    def limits(self, model: str) -> ModelLimits:
        """The model's limits; also sets up its transport, so a proposer that asks before the loop pays
        litellm's import (when the model needs it) then, not in the first proposals."""
        self.transport(model)
        return resolve(model, self.s.api_base, self.s.max_tokens, self.s.timeout_s)

    def count_tokens(self, model: str, messages: list[dict]) -> int:
        """Tokens of a prompt by the model's transport (litellm's counter, or an estimate for a server whose
        tokenizer is unknown); characters / 4 when it cannot count."""
        try:
            return int(self.transport(model).count_tokens(model, messages))
        except Exception:
            return sum(len(str(m.get("content", ""))) for m in messages) // 4

    async def complete(self, model: str, messages: list[dict], g: np.random.Generator) -> list[CallRecord]:
        """Attempts until an answer, a final error, or the attempt budget; one record per attempt."""
        lim = self.limits(model)
        max_tokens, refused = fit_answer(lim, self.count_tokens(model, messages) if lim.context_window else 0)
        if refused:
            return [CallRecord(model=model, messages=json.dumps(messages, ensure_ascii=False),
                               error=f"context_window: {refused}")]
        records: list[CallRecord] = []
        for _ in range(self.s.attempts):
            wait = self._not_before.get(model, 0.0) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            rec = await self._attempt(model, messages, max_tokens, lim.timeout_s)
            records.append(rec)
            if rec.kind not in RETRYABLE:
                self._streak[model], self._not_before[model] = 0, 0.0  # it answers again
                break
            self._back_off(model, g)
        return records

    def _back_off(self, model: str, g: np.random.Generator) -> None:
        k = self._streak.get(model, 0)
        self._streak[model] = k + 1
        cap = LOCAL_BACKOFF_CAP_S if is_loopback(self.s.api_base) else BACKOFF_CAP_S
        delay = min(cap, self.s.backoff_s * 2 ** k) * float(g.uniform(0.5, 1.5))
        self._not_before[model] = max(self._not_before.get(model, 0.0), time.monotonic() + delay)

    async def _attempt(self, model: str, messages: list[dict], max_tokens: int, timeout_s: float) -> CallRecord:
        transport = self.transport(model)
        rec = CallRecord(model=model, messages=json.dumps(messages, ensure_ascii=False))
        t0 = time.perf_counter()
        try:
            # The HTTP client's timeout is per read (a non-streaming server sends nothing until it is done);
            # ours bounds a server that trickles bytes. Either one closes the request's connection.
            answer = await asyncio.wait_for(
                transport.send(model, messages, max_tokens, self.s.temperature, timeout_s), timeout_s + GUARD_S)
        except Exception as e:
            rec.latency_s = time.perf_counter() - t0
            kind = transport.classify(e)
            detail = f"no answer within {timeout_s:g} s (request cancelled)" if kind == "timeout" else _one_line(e)
            rec.error = f"{kind}: {detail}"
            return rec
        rec.latency_s = time.perf_counter() - t0
        self._fill(rec, answer)
        return rec

    def _fill(self, rec: CallRecord, answer: Answer) -> None:
        rec.response = answer.text
        rec.prompt_tokens, rec.completion_tokens = answer.prompt_tokens, answer.completion_tokens
        rec.cost_usd = answer.cost_usd
        if rec.cost_usd is not None:
            self.spent_usd += rec.cost_usd
        if answer.finish_reason == "length":
            rec.error = f"truncated: the answer hit max_tokens ({rec.completion_tokens} tokens)"


MIN_ANSWER_TOKENS = 256   # less room than this cannot hold an edit


def fit_answer(lim: ModelLimits, prompt_tokens: int) -> tuple[int, str]:
    """(max tokens for this prompt, "" ) or (0, why the prompt cannot fit). A server refuses a request whose
    prompt + max_tokens exceeds its window (vLLM), so max tokens shrinks to the room the prompt leaves."""
    if not lim.context_window or not prompt_tokens:
        return lim.max_tokens, ""
    room = lim.context_window - prompt_tokens
    if room < MIN_ANSWER_TOKENS:
        return 0, (f"the prompt has about {prompt_tokens:,} tokens and {lim.model}'s context window is "
                   f"{lim.context_window:,} ({lim.source}), leaving {max(room, 0):,} for the answer")
    return min(lim.max_tokens, room), ""


def missing_keys(model: str, api_base: str = "") -> list[str]:
    """Environment variables the provider of `model` needs and that are not set (names only, never values).
    A model served through api_base (a local server) needs none."""
    if api_base:
        return []
    from evolve.llm.library import import_litellm
    try:
        info = import_litellm().validate_environment(model)
    except Exception:  # a provider litellm cannot check: let the first call tell
        return []
    return list(info.get("missing_keys") or [])
