"""Problems outside the repository: a problem folder anywhere (`adrs run PATH`), and problems that an
installed package ships through the `adrs.problems` entry-point group (a dist-info written here, put on
sys.path: what pip would leave behind, without pip)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evolve import problem
from evolve.errors import AdrsError
from tests.conftest import ROOT, TOY

STATEFUL = ROOT / "tests" / "fixtures" / "stateful"


def _cli(*args: str, cwd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT, extra_path) if p)}
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "DEEPSEEK_API_KEY", "OPENROUTER_API_KEY"):
        env.pop(key, None)  # the offline mutator: no LLM call from a test
    return subprocess.run([sys.executable, "-m", "evolve.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _site(tmp_path: Path, problems: dict[str, Path], dist: str = "acme_problems") -> Path:
    """A site folder holding package `acme` with the given problem folders and an installed dist-info whose
    entry_points.txt declares them (and one entry pointing nowhere)."""
    site = tmp_path / "site"
    pkg = site / "acme"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    lines = ["[adrs.problems]"]
    for name, src in problems.items():
        shutil.copytree(src, pkg / name)
        (pkg / name / "__init__.py").write_text("")
        lines.append(f"{name} = acme.{name}")
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return site


@pytest.mark.slow  # a 3-iteration run with its held-out scoring: about 6 s
def test_run_and_eval_a_problem_folder_outside_the_repository(tmp_path):
    folder = tmp_path / "elsewhere" / "queue"
    shutil.copytree(STATEFUL, folder)
    r = _cli("run", str(folder), "--iterations", "3", "--runs-dir", str(tmp_path / "runs"), "--eval-slots", "1",
             cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-1500:]
    assert "initial #1" in r.stdout and "sjf #2" in r.stdout  # initial and baseline scored on held-out
    assert len(list((tmp_path / "runs").glob("stateful-*/lineage.db"))) == 1
    rel = _cli("eval", "queue", "queue/initial.py", cwd=folder.parent)  # a relative folder, from its parent
    assert rel.returncode == 0 and "score:" in rel.stdout, rel.stderr


def test_installed_problems_are_found_listed_and_loaded(tmp_path, monkeypatch):
    site = _site(tmp_path, {"acme_toy": TOY})
    monkeypatch.syspath_prepend(str(site))
    found = problem.installed_problems()
    assert found["acme_toy"] == (site / "acme" / "acme_toy", "acme_problems")
    spec = problem.load("acme_toy")
    assert spec.directory == (site / "acme" / "acme_toy").resolve() and spec.entry.function == "predict"


def test_a_bundled_name_wins_and_an_unknown_name_lists_installed_ones(tmp_path, monkeypatch):
    site = _site(tmp_path, {"eplb": TOY, "acme_toy": TOY})
    monkeypatch.syspath_prepend(str(site))
    assert problem.resolve("eplb") == problem.BUNDLED_DIR / "eplb"
    with pytest.raises(AdrsError, match=r"unknown problem 'nope': .*acme_toy"):
        problem.resolve("nope")


def test_adrs_problems_lists_installed_ones_with_their_package_and_trust(tmp_path):
    site = _site(tmp_path, {"acme_toy": TOY, "acme_queue": STATEFUL, "eplb": TOY})
    toml = site / "acme" / "acme_queue" / "problem.toml"
    toml.write_text(toml.read_text().replace('name = "stateful"', 'name = "stateful"\ntrust = "sandboxed-evaluator"'))
    r = _cli("problems", cwd=tmp_path, extra_path=site)
    assert r.returncode == 0, r.stderr
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines()}
    assert "[package acme_problems]" in lines["acme_toy"] and "sandboxed" not in lines["acme_toy"]
    assert "[package acme_problems] [sandboxed evaluator: scores only as honest as that evaluator]" in lines["acme_queue"]
    assert "the bundled one is used" in r.stdout and "llm_scheduler" in lines
    ev = _cli("eval", "acme_queue", str(STATEFUL / "initial.py"), cwd=tmp_path, extra_path=site)
    assert ev.returncode == 0, ev.stderr
    assert 'trust = "sandboxed-evaluator"' in ev.stderr and "only as honest as that evaluator" in ev.stderr
