"""What a model can take and how long to wait for it: context window, max tokens per answer, request timeout.

Each comes from, in order: the run config (llm_max_tokens, llm_timeout_s; 0 means "choose"), the server
itself when the model is served through api_base (vLLM's max_model_len, llama.cpp's n_ctx), litellm's
bundled model table (context window and output limit; no network: get_model_info, or for a model sent to an
OpenAI-compatible api_base the table read as JSON, so that path never imports litellm), or conservative
defaults for a model nobody describes:

- max tokens: the model's output limit, at most DEFAULT_MAX_TOKENS, and at most half the context window
  (the prompt needs the rest); UNKNOWN_MAX_TOKENS when nothing is known of the model;
- timeout: long enough to write max tokens at an assumed speed (HOSTED_TOKENS_PER_S for a provider's
  model litellm knows, LOCAL_TOKENS_PER_S for a local server (api_base, ollama/...) or an unknown model),
  plus TIMEOUT_SLACK_S, clamped to [TIMEOUT_MIN_S, TIMEOUT_MAX_S].

So gpt-4o-mini gets 16,384 tokens and 303 s; ollama/llama3:8b (8k context) 4,096 tokens and 440 s; a model
litellm does not know, 4,096 tokens and 440 s.
"""
from __future__ import annotations

import functools
import json
import urllib.request
from dataclasses import dataclass

DEFAULT_MAX_TOKENS = 16384      # enough for a full rewrite of a large program
UNKNOWN_MAX_TOKENS = 4096       # fits the smallest common local context (8k) with room for the prompt
HOSTED_TOKENS_PER_S = 60.0
LOCAL_TOKENS_PER_S = 10.0       # a small model on a laptop CPU/GPU
TIMEOUT_SLACK_S = 30.0          # queueing and prompt processing
TIMEOUT_MIN_S, TIMEOUT_MAX_S = 60.0, 900.0
PROBE_TIMEOUT_S = 3.0
LOCAL_PROVIDERS = ("ollama", "ollama_chat", "hosted_vllm", "vllm", "lm_studio", "llamafile")


@dataclass(frozen=True)
class ModelLimits:
    model: str
    context_window: int | None    # tokens of prompt + answer; None: unknown
    output_limit: int | None      # the model's own cap on answer tokens; None: unknown
    max_tokens: int               # asked for in every request
    timeout_s: float              # wall-clock bound of one request
    source: str                   # where the window came from: "litellm", "server", or "unknown"
    chosen: tuple[str, ...] = ()  # settings chosen here rather than given ("max_tokens", "timeout_s")

    def describe(self) -> str:
        window = f"context {self.context_window:,} tokens" if self.context_window else "context window unknown"
        where = {"litellm": "litellm's model table", "server": "reported by the server",
                 "unknown": "unknown to litellm: conservative defaults"}[self.source]
        told = "; set --max-tokens / --llm-timeout to change" if self.chosen else ""
        return (f"{window}, max tokens {self.max_tokens:,}, timeout {self.timeout_s:.0f} s ({where}{told})")


@functools.lru_cache(maxsize=64)
def resolve(model: str, api_base: str = "", max_tokens: int = 0, timeout_s: float = 0.0) -> ModelLimits:
    """The limits of `model` with the given settings (0: choose). Cached: the answer cannot change within a
    process, and the server is asked at most once per model."""
    window, output = _table_limits(model, api_base)
    source = "litellm" if window or output else "unknown"
    served = server_context_window(api_base, model) if api_base else None
    if served:
        window, source = served, "server"
    chosen = []
    if max_tokens <= 0:
        chosen.append("max_tokens")
        max_tokens = default_max_tokens(window, output)
    if timeout_s <= 0:
        chosen.append("timeout_s")
        hosted = source == "litellm" and not api_base and model.split("/", 1)[0] not in LOCAL_PROVIDERS
        timeout_s = default_timeout(max_tokens, HOSTED_TOKENS_PER_S if hosted else LOCAL_TOKENS_PER_S)
    return ModelLimits(model, window, output, max_tokens, timeout_s, source, tuple(chosen))


def default_max_tokens(window: int | None, output: int | None) -> int:
    if not window and not output:
        return UNKNOWN_MAX_TOKENS
    cap = min(output or DEFAULT_MAX_TOKENS, DEFAULT_MAX_TOKENS)
    return max(256, min(cap, window // 2)) if window else cap


def default_timeout(max_tokens: int, tokens_per_s: float) -> float:
    return float(min(TIMEOUT_MAX_S, max(TIMEOUT_MIN_S, round(max_tokens / tokens_per_s + TIMEOUT_SLACK_S))))


def _table_limits(model: str, api_base: str) -> tuple[int | None, int | None]:
    """(context window, output limit) from litellm's table; without importing litellm for a model that goes
    to an OpenAI-compatible api_base (evolve/llm/transport_openai.py)."""
    from evolve.llm.transport_openai import serves
    if serves(model, api_base):
        from evolve.llm.library import table_entry
        info = table_entry(model)
    else:
        from evolve.llm.library import import_litellm
        try:
            info = import_litellm().get_model_info(model)
        except Exception:  # not in litellm's table
            info = None
    if not info:
        return None, None
    window = info.get("max_input_tokens") or info.get("max_tokens")
    output = info.get("max_output_tokens") or info.get("max_tokens")
    return (int(window) if window else None), (int(output) if output else None)


def server_context_window(api_base: str, model: str) -> int | None:
    """The context size an OpenAI-compatible server reports for `model`, or None (it does not say, or
    cannot be reached: the first request will tell). vLLM: /v1/models max_model_len; llama.cpp: /props n_ctx."""
    base = api_base.rstrip("/")
    name = model.split("/", 1)[1] if "/" in model else model
    models = _get_json(base + "/models")
    for m in (models or {}).get("data") or []:
        if isinstance(m, dict) and (m.get("id") == name or len(models["data"]) == 1):
            for key in ("max_model_len", "context_length", "context_window"):
                if isinstance(m.get(key), int) and m[key] > 0:
                    return m[key]
    root = base[:-3] if base.endswith("/v1") else base
    props = _get_json(root + "/props") or {}
    n_ctx = props.get("n_ctx") or (props.get("default_generation_settings") or {}).get("n_ctx")
    return n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None


def _get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as r:  # noqa: S310 (the user's own server)
            data = json.loads(r.read(1_000_000))
    except Exception:
        return None
    return data if isinstance(data, dict) else None
