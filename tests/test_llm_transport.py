"""The two transports of the LLM client (evolve/llm/transport_*.py): which model goes where, the error kinds
of the httpx transport against a real OpenAI-compatible server (the same kinds litellm's give), prices and
limits from litellm's table without importing it, the token estimate, and a run with --api-base that never
imports litellm."""
import asyncio
import os
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from evolve.llm import library, limits
from evolve.llm.client import ClientSettings, LlmClient
from evolve.llm.transport_openai import OpenAITransport, estimate_tokens, serves
from tests.conftest import ROOT, TOY
from tests.llm_server import TRUNCATED, Reply, ScriptedServer, slow, toy_diff

KNOWN, UNKNOWN = "openai/gpt-4o-mini", "openai/adrs-test-unpriced"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(params=["openai", "litellm"])
def transport(request, monkeypatch) -> str:
    """Each test once per transport: the error kinds must not depend on which one sent the request."""
    monkeypatch.setenv("ADRS_LLM_TRANSPORT", "litellm" if request.param == "litellm" else "auto")
    return request.param


def _client(url: str, **kw) -> LlmClient:
    return LlmClient(ClientSettings(api_base=url, **{"timeout_s": 1.0, "attempts": 1, "backoff_s": 0.01, **kw}))


def _one(srv: ScriptedServer, model: str = UNKNOWN, **kw):
    client = _client(srv.base_url, **kw)
    (rec,) = asyncio.run(client.complete(model, HI, np.random.default_rng(0)))
    return client, rec


def test_models_served_through_an_api_base_go_over_httpx(monkeypatch):
    monkeypatch.delenv("ADRS_LLM_TRANSPORT", raising=False)
    base = "http://127.0.0.1:8080/v1"
    for model in (UNKNOWN, "hosted_vllm/qwen", "lm_studio/x", "llamafile/x"):
        assert serves(model, base) and isinstance(_client(base).transport(model), OpenAITransport)
    assert not serves(KNOWN, "")                      # hosted OpenAI: litellm maps o-series/gpt-5 parameters
    assert not serves("ollama/llama3", base)          # Ollama's native API, not /v1
    assert not serves("gpt-4o-mini", base)            # no provider: litellm infers it
    monkeypatch.setenv("ADRS_LLM_TRANSPORT", "litellm")
    assert not serves(UNKNOWN, base)


# ---------------------------------------------------------------- error kinds, the same on both transports

@pytest.mark.parametrize("reply, kind", [
    (Reply("Incorrect API key provided", status=401), "auth_error"),
    (Reply("The model `adrs-test-unpriced` does not exist", status=404), "not_found"),
    (Reply("This model's maximum context length is 4096 tokens. However, you requested 5000", status=400),
     "context_window"),
    (Reply("the request exceeds the available context size, try increasing it", status=400), "context_window"),
    (Reply("temperature must be at most 2", status=400), "bad_request"),
    (Reply(status=429), "rate_limited"),
    (Reply(status=500), "server_error"),
    (Reply(status=503), "server_error"),
    (slow(5.0), "timeout"),
])
def test_error_kinds(transport, reply, kind):
    with ScriptedServer([reply]) as srv:
        _, rec = _one(srv, timeout_s=0.5)
        assert rec.kind == kind, rec.error
        assert len(srv.requests) == 1
        if kind == "timeout":
            assert "no answer within 0.5 s" in rec.error
            t0 = time.monotonic()
            while not srv.hangups and time.monotonic() - t0 < 2.0:   # the server notices within its 20 ms poll
                time.sleep(0.01)
            assert len(srv.hangups) == 1 and srv.hangups[0] < 1.5    # the connection closed, not left to finish


def test_a_server_that_is_down_is_a_connection_error(transport):
    _, rec = _one_at("http://127.0.0.1:9/v1")
    assert rec.kind == "connection_error", rec.error


def _one_at(url: str):
    client = _client(url)
    return client, asyncio.run(client.complete(UNKNOWN, HI, np.random.default_rng(0)))[0]


def test_truncated_answers_usage_and_cost(transport):
    with ScriptedServer([TRUNCATED, Reply("fine"), Reply("fine")]) as srv:
        _, cut = _one(srv)
        client, known = _one(srv, KNOWN)
        _, unknown = _one(srv, UNKNOWN)
    assert cut.kind == "truncated" and cut.response.startswith("<<<<<<< SEARCH") and cut.completion_tokens > 0
    assert known.kind == "" and known.response == "fine" and known.prompt_tokens > 0
    price = library.table_entry("gpt-4o-mini")
    expect = known.prompt_tokens * price["input_cost_per_token"] + known.completion_tokens * price[
        "output_cost_per_token"]
    assert known.cost_usd == pytest.approx(expect) and client.spent_usd == pytest.approx(expect)
    assert unknown.cost_usd is None                                        # no price: unknown, not $0
    assert srv.requests[1]["model"] == "gpt-4o-mini" and srv.requests[1]["max_tokens"] > 0


@pytest.mark.parametrize("body", ['<html>busy</html>', '{"choices": []}', '{"error": "x"}'])
def test_a_200_that_is_not_a_chat_completion_is_an_error_naming_the_body(body):
    import httpx
    from evolve.llm.transport_openai import MalformedAnswer, _answer
    with pytest.raises(MalformedAnswer, match="not a chat completion") as e:
        _answer(UNKNOWN, httpx.Response(200, text=body))
    assert OpenAITransport("http://x/v1").classify(e.value) == "error"


# ---------------------------------------------------------------- the table and the estimate, no litellm

def test_the_table_read_as_json_is_litellms():
    import litellm
    for model, name in ((KNOWN, "gpt-4o-mini"), ("ollama/llama3:8b", "ollama/llama3:8b")):
        assert library.table_entry(model) == litellm.model_cost[name]
    assert library.table_entry(UNKNOWN) is None and library.table_entry("anthropic/gpt-4o-mini") is None
    assert library.table_cost(UNKNOWN, 10, 10) is None
    with ScriptedServer(default=Reply("fine")) as srv:
        served = limits.resolve(KNOWN, srv.base_url)       # from the JSON table: the same as litellm's
    assert (served.context_window, served.output_limit, served.source) == (128_000, 16_384, "litellm")


def test_the_token_estimate_is_close_to_a_real_tokenizer():
    import litellm
    from evolve import problem as pm
    from evolve.llm.doctor import first_prompt
    for name in ("eplb", "llm_scheduler"):
        messages = first_prompt(pm.load(name)).messages
        real = litellm.token_counter(model=UNKNOWN, messages=messages)   # cl100k
        assert abs(estimate_tokens(messages) - real) <= 0.06 * real, (name, estimate_tokens(messages), real)
        assert OpenAITransport("http://x/v1").count_tokens(UNKNOWN, messages) >= real   # the check errs high
    words = [{"role": "user", "content": "word " * 1500}]
    assert 1500 <= estimate_tokens(words) <= 1520


# ---------------------------------------------------------------- a run never imports litellm

_REPORT_IMPORTS = ("import sys\nfrom evolve.cli.main import main\ntry:\n    main(sys.argv[1:])\nfinally:\n"
                   "    print('litellm imported:', 'litellm' in sys.modules)\n")


@pytest.mark.slow
@pytest.mark.parametrize("forced", [False, True])
def test_a_run_with_an_api_base_never_imports_litellm(tmp_path, forced):
    """litellm costs ~3 s of start-up: a run against a local server does not pay it (and the guard can fail:
    forced through litellm, it is imported)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ADRS_LLM_TRANSPORT": "litellm" if forced else "auto"}
    with ScriptedServer(default=toy_diff, context_window=32_768) as srv:
        r = subprocess.run([sys.executable, "-c", _REPORT_IMPORTS, "run", str(TOY), "--iterations", "2",
                            "--runs-dir", str(tmp_path), "--run-id", "r", "--model", UNKNOWN,
                            "--api-base", srv.base_url], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
        served = len(srv.requests)
    assert r.returncode == 0, r.stderr + r.stdout
    assert f"litellm imported: {forced}" in r.stdout, r.stdout
    assert "context 32,768 tokens" in r.stdout                       # the window came from the server
    con = sqlite3.connect(tmp_path / "r" / "lineage.db")
    try:
        calls = con.execute("select error, prompt_tokens, cost_usd from llm_calls").fetchall()
    finally:
        con.close()
    assert len(calls) == served >= 2 and all(not e and p > 0 and c is None for e, p, c in calls)
