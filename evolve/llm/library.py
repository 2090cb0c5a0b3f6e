"""litellm, imported once and lazily (it takes seconds), configured to fetch nothing and print nothing."""
from __future__ import annotations

import os


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
