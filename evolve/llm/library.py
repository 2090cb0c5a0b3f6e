"""litellm, imported once and lazily (it takes seconds), configured to fetch nothing and print nothing; and
its bundled model table (context windows, output limits, prices), read as the JSON file it is, without
importing litellm: the path to an OpenAI-compatible server (evolve/llm/transport_openai.py) needs only that.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
from pathlib import Path

TABLE_FILE = "model_prices_and_context_window_backup.json"  # what litellm itself reads offline


def import_litellm():
    """litellm, configured to fetch nothing and print nothing. Imported lazily: it takes seconds."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    for k in [k for k, v in os.environ.items() if k.endswith("_API_KEY") and not v.strip()]:
        del os.environ[k]  # an empty key is no key (litellm would send it, and its checks pass it)
    import litellm
    litellm.suppress_debug_info = True
    litellm.telemetry = False
    litellm.disable_hf_tokenizer_download = True  # count tokens with the bundled tokenizers, never download
    return litellm


@functools.lru_cache(maxsize=1)
def model_table() -> dict:
    """litellm's bundled model table ({model: {max_input_tokens, input_cost_per_token, ...}}), ~16 ms to
    read; {} when litellm is not installed. find_spec locates the package without running its __init__."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    try:
        data = json.loads((Path(list(spec.submodule_search_locations)[0]) / TABLE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def table_entry(model: str) -> dict | None:
    """The table's entry for a litellm model string: the string itself ("ollama/llama3:8b"), or the name
    after the provider when the entry belongs to that provider ("openai/gpt-4o-mini" -> "gpt-4o-mini")."""
    table = model_table()
    entry = table.get(model)
    if entry is None and "/" in model:
        provider, name = model.split("/", 1)
        entry = table.get(name)
        if entry is not None and entry.get("litellm_provider") != provider:
            entry = None
    return entry if isinstance(entry, dict) else None


def table_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """Dollars of one answer by the table's per-token prices, or None when it has no price for the model."""
    entry = table_entry(model) or {}
    p_in, p_out = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    if not isinstance(p_in, (int, float)) or not isinstance(p_out, (int, float)):
        return None
    return prompt_tokens * float(p_in) + completion_tokens * float(p_out)
