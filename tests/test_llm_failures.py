"""A failure that repeats identically (bad key, prompt larger than the context window, server down) stops the
run after llm_max_repeated_failures proposals, with one message saying what to do; nothing is lost."""
import json
import sqlite3
from pathlib import Path

import pytest
from rich.console import Console

from evolve.config import RunConfig
from evolve.llm.failures import RepeatWatch, signature
from evolve.run import session
from tests.conftest import TOY, adrs
from tests.llm_server import Reply, ScriptedServer, toy_diff

UNKNOWN = "openai/adrs-test-unpriced"


def _rows(db: Path, q: str) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(q).fetchall()
    finally:
        con.close()


def test_identical_failures_ask_to_stop_and_anything_else_resets_the_count():
    w = RepeatWatch(3)
    for n in (900, 1200):   # the same failure with other numbers in it
        w.observe("llm_context_window", f"m: the prompt has about {n} tokens")
    assert w.stop_reason() == ""
    w.observe("no_match", "SEARCH text not found")          # the model answered: not a setup error
    for _ in range(2):
        w.observe("llm_context_window", "m: the prompt has about 1300 tokens")
    assert w.stop_reason() == ""
    w.observe("llm_context_window", "m: the prompt has about 1400 tokens")
    why = w.stop_reason()
    assert why.startswith("repeated_failure: the last 3 proposals failed the same way (llm_context_window: m: the "
                          "prompt has about 1300 tokens) -> the prompt does not fit")
    assert "archive.num_inspirations" in why and "adrs resume" in why
    w.observe("llm_auth_error", "m: bad key")                # once said, the reason stays (in flight drains)
    assert w.stop_reason() == why
    other = RepeatWatch(2)
    other.observe("llm_auth_error", "m: bad key")
    other.observe("llm_not_found", "m: no such model")       # a different failure starts a new count
    assert other.stop_reason() == ""
    never = RepeatWatch(0)
    for _ in range(50):
        never.observe("llm_auth_error", "m: bad key")
    assert never.stop_reason() == ""
    assert signature("unparseable", "no block: 'I think'") is None and signature("", "") is None
    assert signature("empty_answer", "m: empty") == ("empty_answer", "m: empty")


@pytest.mark.slow
def test_a_bad_key_stops_the_run_after_five_proposals_and_the_run_finishes(tmp_path):
    bad_key = Reply("Incorrect API key provided", status=401, kind="401")
    with ScriptedServer(default=bad_key) as srv:
        cfg = RunConfig(problem=str(TOY), runs_dir=str(tmp_path), run_id="key", api_base=srv.base_url,
                        models=(UNKNOWN,), iterations=40, proposals_in_flight=2, eval_slots=1,
                        llm_timeout_s=5.0, llm_backoff_s=0.01)
        from evolve.llm.proposer import make_proposer
        from sandbox.local import LocalSandbox
        out = tmp_path / "out.txt"
        sb = LocalSandbox()
        try:
            with out.open("w") as f:
                h = session.create(cfg, sb)
                session.execute(h, sb, make_proposer(h.cfg, h.spec, h.store, h.run_id),
                                Console(file=f, width=400), resumed=False)
        finally:
            sb.close()
        served = len(srv.requests)
    db = tmp_path / "key" / "lineage.db"
    reasons = [r for (r,) in _rows(db, "select reason from attempts where iteration > 0 order by iteration")]
    # iteration i starts when i - lag commits: the stop at the 5th leaves the next lag - 1 in flight, which drain
    assert reasons == ["llm_auth_error"] * (5 + cfg.lag - 1)
    assert served == len(reasons)                        # one request each: a bad key is not retried
    (detail,) = _rows(db, "select detail from run_events where kind = 'finished'")[0]
    assert detail.startswith("repeated_failure: the last 5 proposals failed the same way (llm_auth_error:")
    assert "check the provider's key variable (e.g. OPENAI_API_KEY)" in detail
    assert _rows(db, "select count(*) from metrics where split = 'held-out'")[0][0] > 0   # final scoring ran
    text = out.read_text()
    assert text.count("the provider rejected the key") == 1


@pytest.mark.slow
def test_cli_flags_set_max_tokens_and_timeout_and_a_prompt_too_large_stops_the_run(tmp_path):
    """A server with a 300-token window: the limits line says so, every prompt is refused before sending,
    and the run stops after 3 (llm_max_repeated_failures from --config) with what to do."""
    cfg = tmp_path / "c.toml"
    cfg.write_text("llm_max_repeated_failures = 3\nproposals_in_flight = 1\neval_slots = 1\n")
    with ScriptedServer(default=toy_diff, context_window=300) as srv:
        r = adrs("run", str(TOY), "--iterations", "30", "--runs-dir", str(tmp_path), "--run-id", "ctx",
                 "--model", UNKNOWN, "--api-base", srv.base_url, "--max-tokens", "100", "--llm-timeout", "7",
                 "--config", str(cfg))
        assert r.returncode == 0, r.stdout + r.stderr
        assert srv.requests == []                                  # nothing sent that could not fit
    assert f"{UNKNOWN}: context 300 tokens, max tokens 100, timeout 7 s (reported by the server)" in r.stdout
    assert "search stopped by repeated_failure: the last 3 proposals failed the same way" in r.stdout
    assert "llama.cpp -c" in r.stdout
    db = tmp_path / "ctx" / "lineage.db"
    assert _rows(db, "select count(*) from attempts where reason = 'llm_context_window'") == [(3 + 2 - 1,)]
    stored = json.loads(_rows(db, "select config from runs")[0][0])
    assert (stored["llm_max_tokens"], stored["llm_timeout_s"]) == (100, 7.0)
