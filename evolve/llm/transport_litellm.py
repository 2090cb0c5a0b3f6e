"""Chat completions through litellm: hosted providers (openai/ without --api-base, anthropic/, gemini/,
bedrock/ ...) and any provider whose wire format is not OpenAI's (ollama/ native). litellm translates each
provider's parameters (e.g. max_completion_tokens for OpenAI's reasoning models), reads the keys from the
provider's environment variables itself, and prices answers from its bundled table (no network).
Importing it takes seconds: only a client that sends a model through it pays that (evolve/llm/library.py).
"""
from __future__ import annotations

import os

from evolve.llm.library import import_litellm
from evolve.llm.transport_base import Answer, shared_kind

# litellm exception class -> kind, most specific first (ContextWindowExceededError is a BadRequestError)
_ORDERED = (("Timeout", "timeout"), ("RateLimitError", "rate_limited"),
            ("ContextWindowExceededError", "context_window"), ("AuthenticationError", "auth_error"),
            ("PermissionDeniedError", "auth_error"), ("NotFoundError", "not_found"),
            ("BadRequestError", "bad_request"), ("InternalServerError", "server_error"),
            ("ServiceUnavailableError", "server_error"), ("BadGatewayError", "server_error"),
            ("APIConnectionError", "connection_error"))


class LitellmTransport:
    name = "litellm"

    def __init__(self, api_base: str = "") -> None:
        self.api_base = api_base
        self.litellm = import_litellm()  # seconds of imports: paid when the client is set up, not mid-run

    async def send(self, model: str, messages: list[dict], max_tokens: int, temperature: float,
                   timeout_s: float) -> Answer:
        kwargs = dict(model=model, messages=messages, timeout=timeout_s, max_retries=0, num_retries=0,
                      max_tokens=max_tokens, temperature=temperature)
        if self.api_base:
            kwargs["api_base"] = self.api_base
            if model.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
                kwargs["api_key"] = "none"  # local servers ignore the key, the openai client wants one
        resp = await self.litellm.acompletion(**kwargs)
        choice = resp.choices[0]
        usage = getattr(resp, "usage", None)
        try:
            cost = float(self.litellm.completion_cost(completion_response=resp))
        except Exception:  # no price known for this model: count tokens, cost unknown
            cost = None
        return Answer(text=choice.message.content or "",
                      prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                      completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                      finish_reason=str(choice.finish_reason or ""), cost_usd=cost)

    def classify(self, exc: BaseException) -> str:
        return classify_litellm(exc)

    def count_tokens(self, model: str, messages: list[dict]) -> int:
        """litellm's counter: the model's tokenizer when known, else cl100k (bundled, offline)."""
        return int(self.litellm.token_counter(model=model, messages=messages))


def classify_litellm(exc: BaseException) -> str:
    """An exception from litellm/openai (or asyncio) -> one of client.ERROR_KINDS."""
    kind = shared_kind(exc)
    if kind:
        return kind
    text = str(exc).lower()
    # litellm reports a refused or dropped connection to an OpenAI-compatible server as a 500
    if "connection error" in text or "connection refused" in text:
        return "connection_error"
    if "missing credentials" in text or "api_key client option must be set" in text:
        return "auth_error"
    litellm = import_litellm()
    for name, kind in _ORDERED:
        cls = getattr(litellm, name, None)
        if cls is not None and isinstance(exc, cls):
            return kind
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return "rate_limited" if status == 429 else "server_error" if status >= 500 else "bad_request"
    return "error"
