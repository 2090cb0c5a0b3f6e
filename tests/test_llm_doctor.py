"""`adrs doctor` against the local server: a real edit task must come back as an edit that applies."""
import asyncio

import pytest

from evolve.llm.client import ClientSettings, LlmClient
from evolve.llm.doctor import check_model, first_prompt, short_task
from evolve.problem import load
from tests.conftest import TOY, adrs
from tests.llm_server import EMPTY, GARBAGE, Reply, ScriptedServer, toy_diff

KNOWN, UNKNOWN = "openai/gpt-4o-mini", "openai/adrs-test-unpriced"
AREA_EDIT = Reply("<<<<<<< SEARCH\n    return 3 * radius * radius\n=======\n"
                  "    return math.pi * radius * radius\n>>>>>>> REPLACE\n", kind="valid")


def _check(server: ScriptedServer, task, model=UNKNOWN):
    client = LlmClient(ClientSettings(api_base=server.base_url, timeout_s=5.0, attempts=1))
    return asyncio.run(check_model(client, model, task, "OPENAI_API_KEY"))


@pytest.mark.slow
def test_doctor_reports_models_db_and_sandbox(tmp_path):
    with ScriptedServer(default=AREA_EDIT) as srv:
        r = adrs("doctor", "--model", KNOWN, "--api-base", srv.base_url, "--db", f"sqlite:///{tmp_path}/d.db")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "def area(radius)" in srv.requests[0]["messages"][-1]["content"]   # the short edit task
    line = next(x for x in r.stdout.splitlines() if f"model {KNOWN}" in x)
    assert "1 SEARCH/REPLACE block that applies" in line and "tokens/s" in line
    assert "context window 128,000 tokens from litellm" in line
    assert "database:" in r.stdout and "sandbox:" in r.stdout
    r = adrs("doctor", "--model", KNOWN, "--api-base", "http://127.0.0.1:9/v1", "--timeout", "3")
    assert r.returncode == 1 and "connection_error" in r.stdout and "check --api-base" in r.stdout
    r = adrs("doctor", "--model", "gpt-4.1-mini", env={"OPENAI_API_KEY": ""})
    assert r.returncode == 1 and "set OPENAI_API_KEY" in r.stdout


@pytest.mark.parametrize("reply,words", [
    (EMPTY, "empty_answer"), (Reply("ok"), "unparseable"), (GARBAGE, "does not follow the format"),
    (Reply("<<<<<<< SEARCH\n    return 4\n=======\n    return 5\n>>>>>>> REPLACE\n"), "does not apply"),
])
def test_an_answer_that_is_no_usable_edit_fails_the_check(reply, words):
    with ScriptedServer([reply]) as srv:
        v = _check(srv, short_task())
    assert not v.ok and words in v.detail, v.detail


def test_the_runs_first_prompt_is_sent_and_must_fit_the_window():
    task = first_prompt(load(TOY))
    assert "Current program (program 1, not scored)" in task.messages[-1]["content"]
    with ScriptedServer(default=toy_diff, context_window=8192) as srv:
        v = _check(srv, task)
        assert srv.requests[0]["messages"] == task.messages          # exactly the run's prompt
    assert v.ok and "that applies" in v.detail and "context window 8,192 tokens from the server" in v.detail
    with ScriptedServer(default=toy_diff, context_window=200) as srv:
        v = _check(srv, task)
        assert srv.requests == []
    assert not v.ok and "context window is 200" in v.detail and "larger context" in v.detail
