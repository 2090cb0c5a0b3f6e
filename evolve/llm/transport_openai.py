"""Chat completions to an OpenAI-compatible server (--api-base: llama.cpp, vLLM, SGLang, Ollama's /v1, LM
Studio) over httpx, without litellm.

Why httpx and not the openai SDK: importing httpx costs ~0.07 s, the openai SDK ~0.36 s (its pydantic types)
and litellm ~2.8 s (`python -X importtime`, this machine); the request is one POST whose answer we read
four fields of. Each request has its own connection (no pool outlives it): cancelling the request closes
the connection, which is how the server learns to stop generating; the TLS context is built once.

Prices and output limits come from litellm's bundled table read as JSON (evolve/llm/library.py); token
counts for the context check are an estimate (estimate_tokens), since the server's tokenizer is unknown.
"""
from __future__ import annotations

import functools
import math
import os
import re
import ssl

import httpx

from evolve.llm.library import table_cost
from evolve.llm.transport_base import Answer, forced_litellm, shared_kind, status_kind

# providers litellm would send to api_base as OpenAI chat completions; their key's variable
COMPATIBLE = {"openai": "OPENAI_API_KEY", "hosted_vllm": "HOSTED_VLLM_API_KEY", "lm_studio": "LM_STUDIO_API_KEY",
              "llamafile": "LLAMAFILE_API_KEY"}


class HttpError(Exception):
    """The server answered with an error status; the message is its own (OpenAI-style error body or text)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class MalformedAnswer(Exception):
    """A 200 whose body is not a chat completion."""


def serves(model: str, api_base: str) -> bool:
    """Whether this transport sends `model`: one served through api_base by an OpenAI-compatible provider."""
    return bool(api_base) and "/" in model and model.split("/", 1)[0] in COMPATIBLE and not forced_litellm()


@functools.lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


class OpenAITransport:
    name = "openai-compatible"

    def __init__(self, api_base: str) -> None:
        self.url = api_base.rstrip("/") + "/chat/completions"

    async def send(self, model: str, messages: list[dict], max_tokens: int, temperature: float,
                   timeout_s: float) -> Answer:
        provider, name = model.split("/", 1)
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(COMPATIBLE[provider], "").strip()
        if key:  # a local server ignores it; a proxy or a vLLM started with --api-key wants it
            headers["Authorization"] = f"Bearer {key}"
        body = {"model": name, "messages": messages, "max_tokens": max_tokens, "temperature": temperature}
        # the timeout is per read (a non-streaming server sends nothing until done); the client bounds the whole
        async with httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), verify=_tls()) as http:
            resp = await http.post(self.url, json=body, headers=headers)
        if resp.status_code != 200:
            raise HttpError(resp.status_code, _error_message(resp))
        return _answer(model, resp)

    def classify(self, exc: BaseException) -> str:
        kind = shared_kind(exc)
        if kind:
            return kind
        if isinstance(exc, HttpError):
            return status_kind(exc.status)
        if isinstance(exc, httpx.TimeoutException):
            return "timeout"
        if isinstance(exc, (httpx.NetworkError, httpx.RemoteProtocolError, httpx.UnsupportedProtocol)):
            return "connection_error"  # refused, reset, or closed without an answer
        return "error"

    def count_tokens(self, model: str, messages: list[dict]) -> int:
        """The estimate, erring high by its measured error: max tokens is the room the prompt leaves, and
        a request whose prompt + max tokens overruns the window is refused (vLLM)."""
        return math.ceil(estimate_tokens(messages) * ESTIMATE_MARGIN)


def _error_message(resp: httpx.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return " ".join(resp.text.split())[:300] or resp.reason_phrase
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and err.get("message"):
        return str(err["message"])
    if isinstance(err, str):
        return err
    return str(data)[:300]


def _answer(model: str, resp: httpx.Response) -> Answer:
    try:
        data = resp.json()
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
        if isinstance(text, list):  # content parts: keep their text
            text = "".join(str(p.get("text", "")) for p in text if isinstance(p, dict))
        usage = data.get("usage") or {}
        prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise MalformedAnswer(f"the server's answer is not a chat completion ({type(e).__name__}: "
                              f"{' '.join(resp.text.split())[:200]})") from None
    return Answer(text=str(text), prompt_tokens=prompt, completion_tokens=completion,
                  finish_reason=str(choice.get("finish_reason") or ""),
                  cost_usd=table_cost(model, prompt, completion))


# ---------------------------------------------------------------- token estimate without a tokenizer

# the shape of cl100k's pre-tokenizer: words with their leading space, 1-3 digits, runs of punctuation, spaces
_PIECES = re.compile(r"'(?:[sdmt]|ll|ve|re)|[^\r\n\w]?[^\W\d_]+|\d{1,3}| ?(?:[^\s\w]|_)+[\r\n]*|\s*[\r\n]+"
                     r"|\s+(?!\S)|\s+")
CHARS_PER_SUBWORD = 7      # a piece longer than this splits; calibrated on five problems' first prompts
PER_MESSAGE = 4            # role and separators, as OpenAI counts them
ESTIMATE_MARGIN = 1.05     # the estimate is within 4% of cl100k on real prompts


def estimate_tokens(messages: list[dict]) -> int:
    """An estimate of a prompt's tokens (the server's tokenizer is unknown): within 4% of cl100k's count on
    the first prompts of eplb, llm_scheduler, cloudcast, txn_scheduling and llm_sql."""
    n = 3
    for m in messages:
        n += PER_MESSAGE
        for piece in _PIECES.findall(str(m.get("content", ""))):
            s = piece.strip()
            n += max(1, math.ceil(len(s) / CHARS_PER_SUBWORD)) if s else 1
    return n
