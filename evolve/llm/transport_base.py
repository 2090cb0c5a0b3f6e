"""What a transport is: one chat-completion request, sent once, no retries (evolve/llm/client.py retries).

Two transports implement it, each in its own module, so neither pays for the other's imports:
- transport_openai.py: OpenAI-compatible servers given by --api-base (llama.cpp, vLLM, SGLang, Ollama's /v1),
  sent with httpx; no litellm import (litellm takes ~3 s to import, httpx ~0.07 s);
- transport_litellm.py: every other provider (openai/ hosted, anthropic/, gemini/, bedrock/ ...) via litellm.

A transport raises on any failure; its classify() maps the exception to one of client.ERROR_KINDS. The
classifications every transport shares (our own timeout, a context window named in the message) are here.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Answer:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str              # "length": cut at max tokens
    cost_usd: float | None          # None: no price known for the model


class Transport(Protocol):
    name: str

    async def send(self, model: str, messages: list[dict], max_tokens: int, temperature: float,
                   timeout_s: float) -> Answer:
        """One request; raises on any failure. Cancelling it closes its connection."""

    def classify(self, exc: BaseException) -> str:
        """An exception raised by send() -> one of client.ERROR_KINDS."""

    def count_tokens(self, model: str, messages: list[dict]) -> int:
        """Tokens of a prompt (exact or estimated), for the context-window check before sending."""


def forced_litellm() -> bool:
    """ADRS_LLM_TRANSPORT=litellm sends every model through litellm (to compare, or for a server only litellm
    gets right); unset, models served through --api-base by an OpenAI-compatible provider go over httpx."""
    return os.environ.get("ADRS_LLM_TRANSPORT", "").strip().lower() == "litellm"


CONTEXT_WORDS = ("context window", "context length", "context size", "exceed_context_size", "maximum context",
                 "prompt is too long", "context_length_exceeded")


def shared_kind(exc: BaseException) -> str | None:
    """The kinds every transport recognises the same way, or None: our own wall-clock bound, and a context
    window named in the message (local servers say it as a plain 400 or 500)."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    text = str(exc).lower()
    if any(s in text for s in CONTEXT_WORDS):
        return "context_window"
    return None


def status_kind(status: int) -> str:
    """An HTTP error status -> error kind (the message was checked for a context window before)."""
    if status in (401, 403):
        return "auth_error"
    if status == 404:
        return "not_found"
    if status == 408:
        return "timeout"
    if status == 429:
        return "rate_limited"
    return "server_error" if status >= 500 else "bad_request"
