"""Output that is not a terminal (a pipe, `| tee`, a log file) keeps whole lines, and `--json` gives scripts the
same facts: the CLI is run as a real subprocess with its stdout a pipe and no COLUMNS in its environment."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, TOY

LONG_BASELINE = "exact_quadratic_fit_with_a_long_descriptive_baseline_name_that_needs_room"
LONG_RUN = "a-run-id-long-enough-that-an-eighty-column-table-would-wrap-or-crop-it-" + "x" * 30


def piped(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """The CLI with stdout and stderr pipes and no COLUMNS: rich would fit 80 columns here."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "evolve.cli.main", *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A 3-iteration offline run of a toy copy whose baseline has a long name, its output piped."""
    import shutil
    tmp = tmp_path_factory.mktemp("cli-output")
    problem = tmp / "toy"
    shutil.copytree(TOY, problem, ignore=shutil.ignore_patterns("__pycache__"))
    toml = problem / "problem.toml"
    toml.write_text(toml.read_text().replace('exact = "baselines/exact.py"',
                                             f'{LONG_BASELINE} = "baselines/exact.py"'))
    r = piped("run", str(problem), "--iterations", "3", "--runs-dir", str(tmp / "runs"), "--run-id", LONG_RUN)
    assert r.returncode == 0, r.stderr
    return tmp / "runs" / LONG_RUN, r


def _row(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if start in line)


def test_piped_run_prints_whole_rows(finished_run):
    run_dir, r = finished_run
    row = _row(r.stdout, LONG_BASELINE)      # the baseline's row: name and both figures on one line
    assert len(row) > 80
    figures = [c.strip() for c in row.split("│")[2:] if c.strip()]
    assert len(figures) >= 3 and all(f[0].isdigit() for f in figures), row
    assert "…" not in r.stdout
    result = _row(r.stdout, "Result:")
    assert LONG_BASELINE in result and "vs best baseline" in result


def test_piped_list_and_show(finished_run):
    run_dir, _ = finished_run
    r = piped("list", "--runs-dir", str(run_dir.parent))
    assert r.returncode == 0, r.stderr
    row = _row(r.stdout, LONG_RUN)
    assert "toy" in row and "finished" in row and "…" not in row
    r = piped("show", str(run_dir))
    assert r.returncode == 0, r.stderr
    assert LONG_BASELINE in _row(r.stdout, "Result:")
    r = piped("show", str(run_dir), "1")    # program 1: source, metrics; no line padded to the pipe's width
    assert r.returncode == 0, r.stderr
    assert "def predict" in r.stdout and max(len(line) for line in r.stdout.splitlines()) < 400


def test_list_and_show_json(finished_run):
    run_dir, _ = finished_run
    runs = json.loads(piped("list", "--runs-dir", str(run_dir.parent), "--json").stdout)
    assert [(x["run"], x["status"], x["iterations"]) for x in runs] == [(LONG_RUN, "finished", 3)]
    assert runs[0]["store"].endswith("lineage.db")
    s = json.loads(piped("show", str(run_dir), "--json").stdout)
    final = s["final"]
    labels = [row["label"] for row in final["table"]]
    assert labels[0] == "initial" and LONG_BASELINE in labels
    base = next(row for row in final["table"] if row["label"] == LONG_BASELINE)
    assert base["status"] == "ok" and base["held_out"]["score"] > 0.99 and set(base["train"]) >= {"score", "mse"}
    assert final["result"]["initial"]["n"] == 2 and final["result"]["baseline"] == LONG_BASELINE
    assert final["result"]["text"] in piped("show", str(run_dir)).stdout


def test_run_json_keeps_stdout_for_the_document(tmp_path):
    r = piped("run", str(TOY), "--iterations", "2", "--runs-dir", str(tmp_path), "--run-id", "j", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)     # nothing but the document on stdout
    assert doc["run"] == "j" and doc["result"]["text"].startswith("held-out score")
    assert [row["label"] for row in doc["table"]][0] == "initial"
    assert "offline mutator" in r.stderr and "Result:" not in r.stdout
