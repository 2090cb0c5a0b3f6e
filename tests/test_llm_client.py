"""The litellm client against a real OpenAI-compatible server on loopback: retries, truncation, the model's
limits (context window, max tokens, timeout), prompts that cannot fit, and requests abandoned on timeout."""
import asyncio
import json
import time

import numpy as np
import pytest

from evolve.config import RunConfig, build
from evolve.errors import AdrsError
from evolve.llm import limits
from evolve.llm.client import ClientSettings, LlmClient, CallRecord, classify
from tests.llm_server import RATE_LIMITED, SERVER_ERROR, TRUNCATED, Reply, ScriptedServer, slow

KNOWN, UNKNOWN = "openai/gpt-4o-mini", "openai/adrs-test-unpriced"
HI = [{"role": "user", "content": "hi"}]


def _complete(server: ScriptedServer, model: str, messages=HI, **kw) -> list[CallRecord]:
    s = ClientSettings(api_base=server.base_url, **{"timeout_s": 1.0, "attempts": 3, "backoff_s": 0.02, **kw})
    return asyncio.run(LlmClient(s).complete(model, messages, np.random.default_rng(0)))


def test_client_retries_and_records_every_attempt():
    with ScriptedServer([RATE_LIMITED, slow(2.5), SERVER_ERROR, SERVER_ERROR, SERVER_ERROR],
                        default=Reply("fine")) as srv:
        recs = _complete(srv, KNOWN)
        assert [r.kind for r in recs] == ["rate_limited", "timeout", "server_error"]   # attempts used up
        assert len(srv.requests) == 3                                                 # no hidden retries
        recs = _complete(srv, KNOWN)
        assert [r.kind for r in recs] == ["server_error", "server_error", ""] and recs[-1].response == "fine"
        assert recs[-1].cost_usd and recs[-1].cost_usd > 0 and recs[-1].prompt_tokens > 0
        assert _complete(srv, UNKNOWN)[-1].cost_usd is None                           # no known price
        assert "api_key" not in json.dumps([r.row() for r in recs])


def test_client_marks_truncated_answers():
    with ScriptedServer([TRUNCATED]) as srv:
        (r,) = _complete(srv, KNOWN)
        assert r.kind == "truncated" and r.response.startswith("<<<<<<< SEARCH")


# ---------------------------------------------------------------- a request abandoned on timeout

def test_a_request_given_up_on_timeout_is_cancelled_and_the_server_sees_it():
    """The client's timeout closes the connection: the server stops "generating" at once, not after 5 s."""
    with ScriptedServer([slow(5.0)], default=Reply("fine")) as srv:
        t0 = time.monotonic()
        recs = _complete(srv, UNKNOWN, timeout_s=0.5, attempts=2)
        assert [r.kind for r in recs] == ["timeout", ""] and recs[-1].response == "fine"
        assert "no answer within 0.5 s" in recs[0].error
        assert time.monotonic() - t0 < 4.0                       # the retry did not wait for the slow one
        assert len(srv.hangups) == 1 and srv.hangups[0] < 2.0    # the server saw the hang-up within ~0.5 s


# ---------------------------------------------------------------- the model's limits

def test_limits_come_from_litellm_or_are_conservative_for_an_unknown_model():
    known = limits.resolve(KNOWN)
    assert (known.context_window, known.output_limit, known.max_tokens) == (128_000, 16_384, 16_384)
    assert known.source == "litellm" and known.timeout_s == limits.default_timeout(16_384, 60.0)
    small = limits.resolve("ollama/llama3:8b")          # an 8k local model: half the window for the answer
    assert small.max_tokens == 4096 and small.timeout_s == limits.default_timeout(4096, 10.0)
    unknown = limits.resolve(UNKNOWN)
    assert unknown.context_window is None and unknown.source == "unknown"
    assert unknown.max_tokens == limits.UNKNOWN_MAX_TOKENS and unknown.timeout_s >= 300
    assert "conservative defaults" in unknown.describe() and "--max-tokens" in unknown.describe()
    given = limits.resolve(UNKNOWN, "", 900, 12.0)
    assert (given.max_tokens, given.timeout_s, given.chosen) == (900, 12.0, ())
    assert "--max-tokens" not in given.describe()


def test_a_server_reports_its_context_window_and_max_tokens_follow_it():
    with ScriptedServer(default=Reply("fine"), context_window=2048) as srv:
        lim = limits.resolve(UNKNOWN, srv.base_url)
        assert (lim.context_window, lim.source, lim.max_tokens) == (2048, "server", 1024)
        prompt = [{"role": "user", "content": "word " * 1500}]           # ~1,500 of the 2,048 tokens
        (r,) = _complete(srv, UNKNOWN, prompt, timeout_s=0.0, max_tokens=0)
        assert r.kind == "" and srv.requests[-1]["max_tokens"] <= 2048 - 1500   # the answer fits the room
        (r,) = _complete(srv, UNKNOWN, [{"role": "user", "content": "word " * 3000}])
        assert r.kind == "context_window" and "context window is 2,048 (server)" in r.error
        assert len(srv.requests) == 1                                        # refused without a request
    assert limits.server_context_window("http://127.0.0.1:9/v1", UNKNOWN) is None   # unreachable: unknown


@pytest.mark.parametrize("message", [
    "the request exceeds the available context size, try increasing it",                      # llama.cpp
    "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens",  # vLLM
])
def test_a_local_servers_context_error_is_recognised(message):
    with ScriptedServer([Reply(message, status=400)]) as srv:
        (r,) = _complete(srv, UNKNOWN)
    assert r.kind == "context_window", r.error


def test_config_keeps_max_tokens_and_timeout_and_checks_them():
    cfg = build({"llm_max_tokens": 2000, "llm_timeout_s": 30}, "test")
    assert RunConfig.from_json(cfg.to_json()) == cfg and cfg.llm_timeout_s == 30.0
    assert RunConfig().llm_max_tokens == 0 and RunConfig().llm_timeout_s == 0.0     # 0: from the model
    for key, bad in (("llm_max_tokens", -1), ("llm_timeout_s", -5.0), ("llm_max_repeated_failures", -1)):
        with pytest.raises(AdrsError, match=key):
            build({key: bad}, "test")


def test_classify_without_a_request():
    assert classify(asyncio.TimeoutError()) == "timeout"
    assert classify(RuntimeError("prompt is too long: 210000 tokens > 200000 maximum")) == "context_window"


@pytest.mark.parametrize("api_base, cap", [("http://127.0.0.1:8000/v1", 5.0), ("http://localhost:8080/v1", 5.0),
                                           ("http://[::1]:8000/v1", 5.0), ("https://api.example.com/v1", 60.0),
                                           ("", 60.0)])
def test_backoff_to_a_server_on_this_machine_is_capped_at_seconds(api_base, cap):
    from evolve.llm.client import BACKOFF_CAP_S, LOCAL_BACKOFF_CAP_S
    assert (LOCAL_BACKOFF_CAP_S, BACKOFF_CAP_S) == (5.0, 60.0)
    client = LlmClient(ClientSettings(api_base=api_base, backoff_s=2.0))
    g = np.random.default_rng(0)
    for _ in range(10):   # 2 * 2**9 s uncapped
        client._back_off("m", g)
    wait = client._not_before["m"] - time.monotonic()
    assert 0.5 * cap * 0.99 <= wait <= 1.5 * cap   # the cap, times the jitter
