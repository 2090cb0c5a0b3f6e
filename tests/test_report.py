"""HTML reports: a small real toy run rendered by the real CLI, checked on disk and in headless Chromium.

Browser tests drive Debian's chromium through Playwright (never a downloaded browser) and keep screenshots
in $ADRS_TEST_ARTIFACTS (default runs/test-artifacts/report/, git-ignored).
"""
import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from evolve.store import FeedbackRow, NewAttempt, NewProgram, MetricRow, Run, Store, sqlite_url
from tests.conftest import ROOT, TOY, adrs

CHROMIUM = os.environ.get("ADRS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("ADRS_TEST_ARTIFACTS", ROOT / "runs" / "test-artifacts")) / "report"


def toy_run(base: Path, name: str, seed: int, iterations: int = 15) -> Path:
    # The toy's initial program with a knob that can break it: the offline mutator tunes `n` like any
    # int knob, and below 16 the evaluator rejects the answer, so the run has failed attempts to show.
    problem = base / "toy-with-knob"
    if not problem.exists():
        shutil.copytree(TOY, problem)
        (problem / "initial.py").write_text((TOY / "initial.py").read_text().replace(
            "    return [a * x * x + b for x in xs]", "    n = 16\n    return [a * x * x + b for x in xs][:n]"))
    r = adrs("run", str(problem), "--iterations", str(iterations), "--seed", str(seed), "--runs-dir", str(base),
             "--run-id", name)
    assert r.returncode == 0, r.stderr
    return base / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """Two real toy runs (offline mutator, local sandbox), each with its report written by `adrs report`."""
    base = tmp_path_factory.mktemp("runs")
    a, b = toy_run(base, "toy-a", 1), toy_run(base, "toy-b", 2)
    for run in (a, b):
        r = adrs("report", str(run))
        assert r.returncode == 0, r.stderr
        assert "report:" in r.stdout
    return a, b


def db_rows(run: Path, sql: str) -> list[tuple]:
    import sqlite3
    con = sqlite3.connect(run / "lineage.db")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# -- on disk -------------------------------------------------------------------------------------------
def test_report_is_a_self_contained_site(runs):
    run = runs[0]
    rep = run / "report"
    index = (rep / "index.html").read_text()
    assert (rep / "assets" / "plotly.min.js").stat().st_size > 1_000_000
    for f in ("report.js", "report.css", "pygments.css"):
        assert (rep / "assets" / f).is_file()
    # nothing is fetched from the network: every script and stylesheet is a relative path beside the page
    refs = re.findall(r'(?:src|href)="([^"]+)"', index)
    assert refs and not [r for r in refs if re.match(r"[a-z]+://", r)]
    for name in ("progress", "tree", "scores", "failures"):
        if name == "failures" and "failures-data" not in index:
            continue
        fig = json.loads(re.search(rf'id="{name}-data">(.*?)</script>', index, re.S).group(1))
        assert fig["data"], name
    ids = [pid for (pid,) in db_rows(run, "select id from programs")]
    pages = {int(p.stem) for p in (rep / "programs").glob("*.html")}
    assert pages == set(ids)
    for (it,) in db_rows(run, "select iteration from attempts where status='failed' and program_id is null"):
        assert (rep / "attempts" / f"{it}.html").is_file()


def test_index_summary_and_comparison_table(runs):
    run = runs[0]
    index = (run / "report" / "index.html").read_text()
    best_id, best_it = db_rows(run, "select id, iteration from programs where kind='child' and status='ok' "
                                    "order by score desc, id limit 1")[0]
    assert f"best (iteration {best_it})" in index
    assert "baseline exact" in index and "generalisation gap" in index
    assert "offline-mutator" in index and "15 iterations" in index and "no LLM calls" in index
    n_failed = db_rows(run, "select count(*) from attempts where status='failed'")[0][0]
    assert f"15: {15 - n_failed} valid, {n_failed} failed" in index


def test_program_page_shows_code_diff_metrics_and_artifacts(runs):
    run = runs[0]
    rep = run / "report" / "programs"
    pid, parent, diff = db_rows(run, "select id, parent_id, diff from programs where kind='child' and diff != '' "
                                     "limit 1")[0]
    page = (rep / f"{pid}.html").read_text()
    assert 'class="hl"' in page and "predict" in page            # highlighted code
    assert f'href="{parent}.html"' in page and "Diff from parent" in page
    assert "w0" in page and "mse" in page                         # per-workload metrics
    failed = db_rows(run, "select p.id, a.name from programs p join artifacts a on a.program_id = p.id "
                          "where p.status='failed' limit 1")
    if failed:
        fpage = (rep / f"{failed[0][0]}.html").read_text()
        assert failed[0][1] in fpage and "Artifacts" in fpage


def test_report_needs_only_the_store(tmp_path):
    """Reviewed later on another machine: the problem folder is gone, the report still renders."""
    prob = tmp_path / "toy"
    shutil.copytree(TOY, prob)
    run = toy_run(tmp_path, "moved", 3, iterations=4)
    # the run recorded the original toy dir; point it at the copy and then remove the copy
    import sqlite3
    con = sqlite3.connect(run / "lineage.db")
    con.execute("update runs set problem_dir=?", (str(prob),))
    con.commit()
    con.close()
    shutil.rmtree(prob)
    r = adrs("report", str(run), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert "score train" in (tmp_path / "out" / "index.html").read_text()  # score metric inferred


def test_report_errors_are_one_line(tmp_path):
    r = adrs("report", str(tmp_path / "nothing"))
    assert r.returncode == 1 and "no run here" in r.stderr and "Traceback" not in r.stderr
    r = adrs("compare", str(tmp_path / "nothing"))
    assert r.returncode == 1 and "at least two runs" in r.stderr


def llm_store(tmp_path: Path) -> Path:
    """A run with LLM call records, written through the store API as the LLM proposer does."""
    run = tmp_path / "llm-run"
    run.mkdir()
    st = Store(sqlite_url(run / "lineage.db"), create=True)
    st.create_run(Run(id="llm-run", problem="toy", problem_dir=str(TOY), seed=0, config=json.dumps(
        {"iterations": 2, "eval_slots": 1, "proposals_in_flight": 1}), sandbox="local", isolation="{}",
        versions="{}", created_at=time.time()))
    rows = [MetricRow(w, "train", "score", v) for w, v in (("w0", 0.2), ("w1", 0.3), ("w2", 0.25))]
    root = st.commit_attempt("llm-run", NewAttempt(0, 0, None, "initial", "train", "ok", program=NewProgram(
        kind="initial", source="def predict(xs):\n    return xs\n", status="ok", iteration=0, score=0.25,
        metrics=rows)))
    call = dict(model="test/model-x", messages=json.dumps([{"role": "system", "content": "be <careful>"},
                                                           {"role": "user", "content": "IMPROVE predict()"}]),
                response="<<<<<<< SEARCH\nreturn xs\n=======\nreturn [3*x*x for x in xs]\n>>>>>>> REPLACE",
                prompt_tokens=120, completion_tokens=40, cost_usd=0.0125, latency_s=1.5)
    child = NewProgram(kind="child", source="def predict(xs):\n    return [3*x*x for x in xs]\n", status="ok",
                       iteration=1, parent_id=root, score=0.5, diff="-    return xs\n+    return [3*x*x for x in xs]\n",
                       metrics=[MetricRow(w, "train", "score", 0.5) for w in ("w0", "w1", "w2")])
    st.commit_attempt("llm-run", NewAttempt(1, 0, root, "llm", "train", "ok", program=child, llm_calls=[call]))
    st.commit_attempt("llm-run", NewAttempt(2, 0, root, "llm", "edit", "failed", reason="search_not_found",
                                            message="SEARCH block not found", proposal="garbage edit",
                                            llm_calls=[dict(call, cost_usd=0.01, response="garbage edit")]))
    st.close()
    return run


def test_llm_calls_prompt_response_and_dollars(tmp_path):
    run = llm_store(tmp_path)
    r = adrs("report", str(run))
    assert r.returncode == 0, r.stderr
    rep = run / "report"
    index = (rep / "index.html").read_text()
    assert "test/model-x" in index and "$0.0225 in 2 LLM calls" in index
    assert 'id="cost-data"' in index                                     # score against dollars
    child = (rep / "programs" / "2.html").read_text()
    assert "IMPROVE predict()" in child and "be &lt;careful&gt;" in child  # prompt, escaped
    assert "return [3*x*x for x in xs]" in child and "$0.0125" in child   # response and its cost
    failed = (rep / "attempts" / "2.html").read_text()
    assert "search_not_found" in failed and "garbage edit" in failed


def test_unpriced_model_cost_is_unknown_in_the_report_and_the_cli(tmp_path):
    """A local model litellm has no price for: both the CLI's usage table and the report say "unknown", never $0."""
    import sqlite3
    from rich.console import Console
    from evolve.llm.usage import print_usage
    run = llm_store(tmp_path)
    con = sqlite3.connect(run / "lineage.db")
    con.execute("update llm_calls set cost_usd = NULL")
    con.commit()
    con.close()
    console = Console(width=200, record=True)
    print_usage(console, Store(sqlite_url(run / "lineage.db")), "llm-run")
    cli = console.export_text()
    assert re.search(r"test/model-x .* unknown ", cli) and "$0" not in cli
    r = adrs("report", str(run))
    assert r.returncode == 0, r.stderr
    index = (run / "report" / "index.html").read_text()
    assert "unknown in 2 LLM calls" in index and "$0" not in index
    assert 'id="cost-data"' not in index                  # no score-against-dollars chart on a $0 axis
    con = sqlite3.connect(run / "lineage.db")              # one priced call among unpriced ones: both said
    con.execute("update llm_calls set cost_usd = 0.0125 where id = (select min(id) from llm_calls)")
    con.commit()
    con.close()
    assert adrs("report", str(run)).returncode == 0
    assert "$0.0125 + unknown in 2 LLM calls" in (run / "report" / "index.html").read_text()


def test_program_page_shows_the_evaluators_feedback_beside_its_metrics(tmp_path):
    run = tmp_path / "fb-run"
    run.mkdir()
    st = Store(sqlite_url(run / "lineage.db"), create=True)
    st.create_run(Run(id="fb-run", problem="toy", problem_dir=str(TOY), seed=0, config=json.dumps(
        {"iterations": 0}), sandbox="local", isolation="{}", versions="{}", created_at=time.time()))
    pid = st.commit_attempt("fb-run", NewAttempt(0, 0, None, "initial", "train", "ok", program=NewProgram(
        kind="initial", source="def predict(xs):\n    return xs\n", status="ok", iteration=0, score=0.25,
        metrics=[MetricRow(w, "train", "score", 0.25) for w in ("w0", "w1")],
        artifacts={"stdout": "PRINTED-BY-IT"},
        feedback=[FeedbackRow("w0", "train", "x < 0 predicted 3 too low")])))
    st.add_metrics(pid, [MetricRow("w7", "held-out", "score", 0.2)],
                   [FeedbackRow("w7", "held-out", "ok at the tails")])
    st.close()
    r = adrs("report", str(run))
    assert r.returncode == 0, r.stderr
    page = (run / "report" / "programs" / f"{pid}.html").read_text()
    assert "what the evaluator observed" in page
    rows = {tuple(re.findall(r"<td>([^<]*)</td>", tr)[:2]): tr
            for tr in re.findall(r"<tr[^>]*>\s*<td>.*?</tr>", page, re.S)}
    assert 'class="feedback">x &lt; 0 predicted 3 too low</td>' in rows[("train", "w0")]   # escaped, in its row
    assert 'class="feedback">ok at the tails</td>' in rows[("held-out", "w7")]
    assert 'class="feedback"></td>' in rows[("train", "w1")]                          # no words, empty cell
    cells = re.findall(r'class="feedback">(.*?)</td>', page, re.S)
    assert not [c for c in cells if "PRINTED-BY-IT" in c] and "PRINTED-BY-IT" in page  # its stdout is elsewhere


def test_intervals_and_gap():
    from evolve.report.stats import gap_ci, mean_ci, t975
    iv = mean_ci([1.0, 2.0, 3.0])
    assert iv.mean == 2.0 and iv.half == pytest.approx(4.303 / math.sqrt(3))
    assert mean_ci([5.0]).lo is None and mean_ci([]) is None
    assert t975(1000) == pytest.approx(1.962, abs=2e-3) and t975(2.5) == pytest.approx(3.7425)
    g = gap_ci([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    assert g.mean == pytest.approx(1.0) and g.lo < 0 < g.hi       # a noisy gap is not significant


def test_cached_highlighting_equals_pygments():
    from evolve.report import code
    files = [TOY / "initial.py", ROOT / "problems" / "eplb" / "initial.py", *sorted((ROOT / "evolve").glob("*.py"))]
    for f in files:
        src = f.read_text()
        assert code.python_html(src) == code.python_html_plain(src), f
    assert code.python_html("def broken(:\n") == code.python_html_plain("def broken(:\n")


def test_compare_page(runs, tmp_path):
    a, b = runs
    out = tmp_path / "cmp"
    r = adrs("compare", str(a), str(b), "--out", str(out))
    assert r.returncode == 0, r.stderr
    page = (out / "index.html").read_text()
    assert "toy-a" in page and "toy-b" in page and "Best programs side by side" in page
    assert page.count('class="hltable"') == 2
    assert (out / "assets" / "plotly.min.js").is_file()
    assert os.path.relpath(a / "report" / "index.html", out) in page      # links to each run's report


# -- in a real browser ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class PageWatch:
    """Console errors, page errors, failed loads and any request that leaves the disk."""

    def __init__(self, page):
        self.problems: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.problems.append(f"failed load: {r.url}"))
        page.on("request", lambda r: r.url.startswith(("file://", "data:"))
                or self.problems.append(f"network request: {r.url}"))


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    watch = PageWatch(page)
    page.goto(url)
    return page, watch


def wait_figures(page) -> list[str]:
    names = page.eval_on_selector_all("[data-figure]", "els => els.map(e => e.dataset.figure)")
    for n in names:
        page.wait_for_selector(f'[data-figure="{n}"][data-rendered] svg.main-svg', timeout=15000)
    return names


def point_position(page, figure: str, trace_name_prefix: str, index: int = 0) -> tuple[float, float, str]:
    """Viewport position and target of one point of a named trace (from plotly's own axis mapping)."""
    page.eval_on_selector(f'[data-figure="{figure}"]', "el => el.scrollIntoView({block: 'center'})")
    return page.eval_on_selector(f'[data-figure="{figure}"]', """(gd, [prefix, i]) => {
        const tr = gd.data.find(t => (t.name || '').startsWith(prefix));
        const fl = gd._fullLayout, r = gd.getBoundingClientRect();
        return [r.left + fl._size.l + fl.xaxis.d2p(tr.x[i]), r.top + fl._size.t + fl.yaxis.d2p(tr.y[i]),
                tr.customdata[i]];
    }""", [trace_name_prefix, index])


@pytest.mark.slow
def test_index_renders_in_chromium_and_a_click_opens_the_program(runs, browser):
    run = runs[0]
    page, watch = open_page(browser, (run / "report" / "index.html").as_uri())
    names = wait_figures(page)
    assert {"progress", "tree", "scores"} <= set(names)
    n_ok = db_rows(run, "select count(*) from programs where kind != 'baseline' and status='ok'")[0][0]
    n_points = page.eval_on_selector('[data-figure="tree"]',
                                     "gd => gd.querySelectorAll('.scatterlayer .trace .point').length")
    assert n_points >= n_ok                                  # every valid program is drawn in the tree
    page.screenshot(path=str(SHOTS / "index.png"), full_page=True)
    height = page.locator('[data-figure="tree"]').bounding_box()["height"]
    page.set_viewport_size({"width": 900, "height": 700})   # a resized window keeps the figures' heights
    page.wait_for_timeout(400)
    assert page.locator('[data-figure="tree"]').bounding_box()["height"] == pytest.approx(height, abs=2)
    # failed attempts are hidden until switched on in the legend
    page.locator('[data-figure="tree"] .legendtext', has_text="failed attempts").click(force=True)
    page.wait_for_function("""() => document.querySelector('[data-figure="tree"]').data
                              .find(t => t.name.startsWith('failed')).visible === true""")
    page.wait_for_timeout(500)  # let plotly finish redrawing before the picture
    page.locator('[data-figure="tree"]').screenshot(path=str(SHOTS / "tree-with-failed.png"))
    best_id = db_rows(run, "select id from programs where kind='child' and status='ok' "
                           "order by score desc, id limit 1")[0][0]
    x, y, target = point_position(page, "tree", "best")
    assert target == f"programs/{best_id}.html"
    with page.expect_navigation():
        page.mouse.click(x, y)
    assert page.url.endswith(f"/programs/{best_id}.html")
    assert page.locator("h1").inner_text().startswith(f"Program #{best_id}")
    assert page.locator(".code .hl").count() >= 1
    page.screenshot(path=str(SHOTS / "best-program.png"), full_page=True)
    assert not watch.problems, watch.problems
    page.close()


@pytest.mark.slow
def test_tree_node_and_chart_points_open_their_pages(runs, browser):
    run = runs[0]
    page, watch = open_page(browser, (run / "report" / "index.html").as_uri())
    wait_figures(page)
    x, y, target = point_position(page, "tree", "island 0", 0)   # the initial program
    init_id = db_rows(run, "select id from programs where kind='initial'")[0][0]
    assert target == f"programs/{init_id}.html"
    with page.expect_navigation():
        page.mouse.click(x, y)
    assert page.url.endswith(target)
    page.go_back()
    wait_figures(page)
    x, y, target = point_position(page, "progress", "programs", 3)
    with page.expect_navigation():
        page.mouse.click(x, y)
    assert page.url.endswith(target)
    assert not watch.problems, watch.problems
    page.close()


@pytest.mark.slow
def test_compare_page_renders_in_chromium(runs, browser, tmp_path):
    out = tmp_path / "cmp"
    r = adrs("compare", str(runs[0]), str(runs[1]), "--out", str(out))
    assert r.returncode == 0, r.stderr
    page, watch = open_page(browser, (out / "index.html").as_uri())
    assert wait_figures(page) == ["iterations"]
    assert page.locator(".side-by-side .hl").count() == 2
    page.screenshot(path=str(SHOTS / "compare.png"), full_page=True)
    assert not watch.problems, watch.problems
    page.close()


@pytest.mark.slow
def test_llm_report_renders_in_chromium(tmp_path, browser):
    run = llm_store(tmp_path)
    assert adrs("report", str(run)).returncode == 0
    page, watch = open_page(browser, (run / "report" / "index.html").as_uri())
    assert "cost" in wait_figures(page)
    page.screenshot(path=str(SHOTS / "llm-index.png"), full_page=True)
    page.goto((run / "report" / "programs" / "2.html").as_uri())
    assert page.locator(".llm-call").count() == 1
    page.screenshot(path=str(SHOTS / "llm-program.png"), full_page=True)
    assert not watch.problems, watch.problems
    page.close()
