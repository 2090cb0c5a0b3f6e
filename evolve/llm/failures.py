"""LLM failures only the user can fix: what each one means, and when the same failure repeating stops a run.

A bad key, an unknown model, a server that is down, a prompt larger than the context window or a model too
slow for the timeout fail every proposal the same way; spending the whole budget on them helps nobody.
RepeatWatch sees the committed attempts in iteration order (so where a run stops does not depend on
timing) and asks to stop after `limit` consecutive identical failures, saying once what to do.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

ADVICE = {
    "auth_error": "the provider rejected the key: check {keys}",
    "not_found": "the provider does not know this model: check the litellm model string (e.g. openai/gpt-4.1-mini)",
    "connection_error": "cannot reach the server: check --api-base and that the server is running",
    "timeout": "no answer in time: the model is too slow for the timeout or the server is down; raise "
               "--llm-timeout, or lower --max-tokens",
    "rate_limited": "rate-limited: wait, or run with fewer --proposals (a 429 on every call can mean no quota left)",
    "server_error": "the provider failed (5xx): try again later",
    "bad_request": "the request was refused: check the model string and --api-base",
    "context_window": "the prompt does not fit the model's context window: serve the model with a larger context "
                      "(llama.cpp -c, vLLM --max-model-len, Ollama num_ctx), evolve a smaller program, or put fewer "
                      "programs in the prompt (archive.num_inspirations in --config)",
    "truncated": "the answer was cut at max tokens: raise --max-tokens",
    "empty_answer": "the model answers with nothing: check the server's chat template, or raise --max-tokens "
                    "for a model that thinks before it answers",
    "unparseable": "the answer holds no SEARCH/REPLACE block and no program: the model does not follow the "
                   "format; try a stronger or instruction-tuned model",
    "error": "unexpected error; the message says more",
}

# failures that repeat identically when the setup is wrong (answers that are merely bad differ each time)
_SETUP_REASONS = ("empty_answer",)


def advice(kind: str, keys: str = "the provider's key variable (e.g. OPENAI_API_KEY)") -> str:
    return ADVICE.get(kind, ADVICE["error"]).format(keys=keys)


def signature(reason: str, message: str) -> tuple[str, str] | None:
    """What makes two failures "the same": the reason and the message with its numbers blanked (token counts
    and attempt counts vary). None for anything but a failure of the model call itself."""
    if not (reason.startswith("llm_") or reason in _SETUP_REASONS):
        return None
    return reason, re.sub(r"\d+(\.\d+)?", "#", message)


@dataclass
class RepeatWatch:
    limit: int                      # consecutive identical failures that stop the run; 0: never stop
    _last: tuple[str, str] | None = None
    _count: int = 0
    _example: str = ""
    _stop: str = ""                 # once asked to stop, the same words (work in flight still commits)

    def observe(self, reason: str, message: str) -> None:
        """One committed attempt (reason "" when it did not fail), in iteration order."""
        sig = signature(reason, message)
        if sig is not None and sig == self._last:
            self._count += 1
        elif sig is not None:
            self._last, self._count, self._example = sig, 1, f"{reason}: {message}"
        else:
            self._last, self._count = None, 0

    def stop_reason(self) -> str:
        if not self._stop and self.limit and self._count >= self.limit and self._last is not None:
            kind = self._last[0].removeprefix("llm_")
            self._stop = (f"repeated_failure: the last {self._count} proposals failed the same way "
                          f"({self._example}) -> {advice(kind)}; then continue with `adrs resume`")
        return self._stop
