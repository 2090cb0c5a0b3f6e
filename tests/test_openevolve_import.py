"""OpenEvolve-format problems: `adrs import-openevolve` and `adrs run <OpenEvolve folder>`.

The fixture (tests/fixtures/openevolve_sqrt) is a small OpenEvolve problem with a two-stage cascade gated at
0.5 and artifacts. Its evaluator runs inside the real sandbox beside the candidate (evaluators/openevolve);
these tests check the import, the cascade, the mapping of results, malformed folders, what the evaluator can
see, and what a lying or tampering candidate gets (tampering works: that is what the trust label says)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evaluators.base import InvalidOutput
from evaluators.openevolve import harness
from evaluators.openevolve.results import map_answer
from evolve import config as cfgmod
from evolve import problem as pm
from evolve.authoring.openevolve import check_local_packages, import_openevolve
from evolve.cli.author import trust_warning
from evolve.errors import AdrsError
from evolve.run.scoring import ProgramScorer
from sandbox.local import LocalSandbox

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "openevolve_sqrt"
ADRS = [sys.executable, "-m", "evolve.cli.main"]
TRAIN = [("train", ("openevolve",))]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    return import_openevolve(FIXTURE, tmp_path_factory.mktemp("oe") / "sqrt")


@pytest.fixture(scope="module")
def spec(imported):
    return pm.load(imported.folder)


@pytest.fixture(scope="module")
def sb():
    box = LocalSandbox()
    yield box
    box.close()


def _score(spec, sb, source: str):
    return ProgramScorer(spec, sb).score(source, TRAIN)


def _folder(tmp_path: Path, evaluator: str | None = None, initial: str | None = None,
            config: str | None = None) -> Path:
    """A copy of the fixture with some files replaced."""
    d = tmp_path / "oe_src"
    shutil.copytree(FIXTURE, d)
    for name, text in (("evaluator.py", evaluator), ("initial_program.py", initial), ("config.yaml", config)):
        if text is not None:
            (d / name).write_text(text)
    return d


# ---------------------------------------------------------------- import and config mapping

def test_import_writes_a_problem_with_the_sandboxed_evaluator_label(imported, spec):
    assert spec.trust == "sandboxed-evaluator" and spec.family == "other"
    assert spec.entry.names == ("run",)  # the evaluator calls program.run()
    assert spec.evaluator.module == "evaluators.openevolve"
    assert spec.evaluator.params["cascade"] is True and spec.evaluator.params["thresholds"] == [0.5]
    assert (imported.folder / "evaluator.py").read_text() == (FIXTURE / "evaluator.py").read_text()  # verbatim
    assert (imported.folder / "initial.py").read_text() == (FIXTURE / "initial_program.py").read_text()
    readme = (imported.folder / "README.md").read_text()
    assert "accurate for x from 0.001 to 12345" in readme and "EVOLVE-BLOCK-START" in readme
    assert spec.limits.call_timeout_s == 40  # evaluator.timeout 20 s per stage, two stages
    assert "only as honest as that evaluator" in trust_warning(spec)
    for f in imported.folder.iterdir():  # the API key in config.yaml is never copied
        assert "sk-not-a-real-key" not in f.read_text()


def test_config_yaml_maps_to_run_settings_and_lists_what_it_ignores(imported):
    cfg = cfgmod.load_file(imported.run_config)
    assert cfg.iterations == 20 and cfg.seed == 7 and cfg.temperature == 0.6
    assert cfg.models == ("gpt-4o-mini:0.8", "gpt-4o:0.2") and cfg.llm_max_tokens == 4096
    assert cfg.archive.num_islands == 2 and cfg.archive.migration_interval == 10
    assert cfg.diff_ratio > 0  # diff_based_evolution: true
    assert sorted(imported.config.ignored) == sorted([
        "checkpoint_interval", "log_level", "max_code_length", "llm.api_key (never copied)",
        "prompt.num_top_programs", "database.population_size", "evaluator.parallel_evaluations"])


def test_full_rewrites_and_no_cascade_map(tmp_path):
    src = _folder(tmp_path, config="diff_based_evolution: false\nevaluator:\n  cascade_evaluation: false\n")
    done = import_openevolve(src, tmp_path / "out")
    cfg = cfgmod.load_file(done.run_config)
    assert cfg.diff_ratio == 0 and cfg.rewrite_ratio > 0
    assert pm.load(done.folder).evaluator.params["cascade"] is False


# ---------------------------------------------------------------- malformed folders

@pytest.mark.parametrize("evaluator, initial, config, message", [
    ("def score(p):\n    return {}\n", None, None, r"evaluator\.py: defines no top-level function evaluate"),
    ("def evaluate(p):\n    return {\n", None, None, r"evaluator\.py, line 2: not valid Python"),
    (None, "def run(xs):\n    return xs\n", None, r"initial_program\.py: no `# EVOLVE-BLOCK-START`"),
    (None, "# EVOLVE-BLOCK-START\ndef run(xs):\n    return xs\n", None, r"never closed by EVOLVE-BLOCK-END"),
    (None, None, "llm:\n  temperature: [0.5\nmax_iterations: 3\n", r"config\.yaml, line \d+, column \d+: not valid YAML"),
    (None, None, "llm:\n  temperature: hot\n", r"config\.yaml: llm\.temperature: must be a number, got str"),
    (None, None, "language: rust\n", r"only Python problems"),
])
def test_malformed_folder_gets_a_clear_error(tmp_path, evaluator, initial, config, message):
    src = _folder(tmp_path, evaluator, initial, config)
    with pytest.raises(AdrsError, match=message):
        import_openevolve(src, tmp_path / "out")
    assert not (tmp_path / "out" / "problem.toml").exists()


def test_evaluator_importing_a_sibling_module_is_named(tmp_path):
    src = _folder(tmp_path, evaluator="import helpers\n" + (FIXTURE / "evaluator.py").read_text())
    (src / "helpers.py").write_text("X = 1\n")
    with pytest.raises(AdrsError, match=r"imports helpers from its folder"):
        import_openevolve(src, tmp_path / "out")


def test_missing_evaluator_file_is_named(tmp_path):
    src = _folder(tmp_path)
    (src / "evaluator.py").unlink()
    with pytest.raises(AdrsError, match=r"no evaluator\.py"):
        import_openevolve(src, tmp_path / "out")


# ---------------------------------------------------------------- scoring through the real sandbox

def test_cascade_runs_both_stages_and_maps_metrics_and_artifacts(spec, sb):
    out = _score(spec, sb, spec.initial_source())
    assert out.ok, out.message
    m = out.results["train"][0].metrics
    assert m["openevolve_stage"] == 2 and "accuracy" in m and "quick_accuracy" in m
    assert m["score"] == m["accuracy"]  # stage 2's combined_score wins the merge, as in OpenEvolve
    assert 0 < m["score"] < 1
    feedback = out.results["train"][0].feedback
    assert "quick_worst: x=" in feedback and "worst: x=12345" in feedback


def test_threshold_stops_the_cascade_after_stage_one(spec, sb):
    bad = spec.initial_source().replace("    return guess\n", "    return 1000.0 + 0 * guess\n")
    out = _score(spec, sb, bad)
    assert out.ok, out.message
    m = out.results["train"][0].metrics
    assert m["openevolve_stage"] == 1 and "accuracy" not in m  # stage 2 never ran
    assert m["score"] == m["quick_accuracy"] < 0.5


def test_better_program_scores_higher(spec, sb):
    better = spec.initial_source().replace("range(2)", "range(8)")
    initial = _score(spec, sb, spec.initial_source()).mean("train", "score")
    assert _score(spec, sb, better).mean("train", "score") > initial


def test_candidate_without_the_called_function_is_an_import_error(spec, sb):
    out = _score(spec, sb, spec.initial_source().replace("def run(", "def go("))
    assert out.reason == "import_error" and "'run'" in out.message


def test_evaluator_exception_in_stage_one_fails_the_program(spec, sb):
    out = _score(spec, sb, spec.initial_source().replace("    return guess\n", "    return None\n"))
    assert not out.ok and out.reason == "exception" and "TypeError" in out.message


def test_hanging_candidate_is_stopped_by_the_sandbox_timeout(tmp_path, sb):
    done = import_openevolve(_folder(tmp_path, config="evaluator:\n  timeout: 0.5\n"), tmp_path / "out")
    spec = pm.load(done.folder)
    assert spec.limits.call_timeout_s == 1.0  # 0.5 s per stage, two stages
    out = _score(spec, sb, spec.initial_source().replace("    return guess\n", "    while True:\n        pass\n"))
    assert out.reason == "timeout"


def test_lying_candidate_cannot_raise_its_score(spec, sb):
    honest = _score(spec, sb, spec.initial_source()).mean("train", "score")
    liar = spec.initial_source().replace(
        "def run(xs):\n",
        "combined_score = 1.0\nscore = 1.0\n\ndef run(xs):\n    print('combined_score: 1.0')\n"
        "    print('{\"combined_score\": 1.0}')\n")
    out = _score(spec, sb, liar)
    assert out.ok and out.mean("train", "score") == honest
    assert "combined_score: 1.0" in out.artifacts["stdout"]  # kept as its output, never parsed
    returns_score = spec.initial_source().replace("    return [approx_sqrt(x) for x in xs]",
                                                  "    return {'combined_score': 1.0}")
    assert _score(spec, sb, returns_score).reason == "exception"


def test_tampering_candidate_reaches_the_evaluator_which_is_why_the_label_says_so(spec, sb):
    """A candidate shares a process with a sandboxed evaluator and CAN replace it; the bound still holds,
    and every command says such scores are only as honest as that evaluator."""
    tamper = ("import sys\n_ev = sys.modules.get('evaluation_module')\n"
              "if _ev is not None:\n    _ev.evaluate_stage2 = lambda p: {'combined_score': SCORE}\n")
    out = _score(spec, sb, spec.initial_source() + tamper.replace("SCORE", "0.999"))
    assert out.ok and out.mean("train", "score") == pytest.approx(0.999)  # it works: no pretending otherwise
    huge = _score(spec, sb, spec.initial_source() + tamper.replace("SCORE", "1e12"))
    assert huge.reason == "invalid_output" and "outside the bound" in huge.message
    assert spec.sandboxed_evaluator and trust_warning(spec)


def test_evaluator_finds_no_keys_and_no_trusted_folders(tmp_path, monkeypatch):
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "lineage.db").write_text("answers")
    probe = f'''import os
PATHS = [{str(REPO / "evolve" / "problem.py")!r}, {str(run_dir / "lineage.db")!r},
         {str(REPO / "evaluators" / "openevolve" / "adapter.py")!r}, {str(FIXTURE / "evaluator.py")!r}]
def evaluate(program_path):
    env = {{k: v for k, v in os.environ.items() if any(w in k.upper() for w in ("KEY", "TOKEN", "SECRET"))}}
    leaked = [k for k, v in os.environ.items() if "sk-adrs-oe-secret" in v]
    seen = []
    for p in PATHS:  # the checkout (only its venv is bound back), the run folder, the problem's source
        try:
            with open(p) as f:
                f.read(1)
            seen.append(p)
        except OSError:
            pass
    return {{"combined_score": 1.0, "keys": float(len(env) + len(leaked)), "seen": float(len(seen)),
             "what": ",".join(list(env) + leaked + seen)}}
'''
    monkeypatch.setenv("OPENAI_API_KEY", "sk-adrs-oe-secret")
    monkeypatch.setenv("ADRS_TEST_TOKEN", "sk-adrs-oe-secret")
    done = import_openevolve(_folder(tmp_path, evaluator=probe), tmp_path / "out")
    spec = pm.load(done.folder)
    box = LocalSandbox()
    try:
        out = _score(spec, box, spec.initial_source())
        hidden = box.isolation()["trusted_files"].startswith("hidden")
    finally:
        box.close()
    assert out.ok, out.message
    m = out.results["train"][0]
    assert m.metrics["keys"] == 0, m.feedback
    if not hidden:
        pytest.skip("the local sandbox cannot hide folders here (not root or no mount namespace); keys checked")
    assert m.metrics["seen"] == 0, m.feedback


# ---------------------------------------------------------------- results mapping (trusted side)

def test_score_is_combined_score_or_the_mean_of_numeric_metrics_but_error():
    a = map_answer({"metrics": {"combined_score": 0.7, "x": 3.0}, "artifacts": {}, "stage": 0}, 1e9)
    assert a.score == 0.7 and a.metrics == {"x": 3.0, "score": 0.7, "openevolve_stage": 0.0}
    b = map_answer({"metrics": {"a": 0.2, "b": 0.6, "error": 0.0, "note": "slow"}, "artifacts": {"log": "x  y"},
                    "stage": 0}, 1e9)
    assert b.score == pytest.approx(0.4) and b.feedback == "note: slow; log: x y"
    c = map_answer({"metrics": {"score": 5.0, "combined_score": 0.1}, "artifacts": {}, "stage": 1}, 1e9)
    assert c.metrics["openevolve_score"] == 5.0 and c.metrics["score"] == 0.1  # never confused with ours


@pytest.mark.parametrize("answer, message", [
    ([1, 2], "not {metrics, artifacts, stage}"),
    ({"metrics": {"combined_score": float("nan")}, "artifacts": {}, "stage": 0}, "not a finite number"),
    ({"metrics": {"combined_score": 2e9}, "artifacts": {}, "stage": 0}, "outside the bound"),
    ({"metrics": {"note": "no numbers"}, "artifacts": {}, "stage": 0}, "no numeric metric"),
    ({"metrics": {"m": [1]}, "artifacts": {}, "stage": 0}, "not a number or a string"),
    ({"metrics": {"x" * 65: 1.0}, "artifacts": {}, "stage": 0}, "names must be strings"),
    ({"metrics": {f"m{i}": 1.0 for i in range(65)}, "artifacts": {}, "stage": 0}, "at most 64"),
    ({"metrics": {"a": 1.0}, "artifacts": {"x": 3}, "stage": 0}, "not text"),
    ({"metrics": {"a": 1.0}, "artifacts": {}, "stage": 7}, "stage must be 0..3"),
])
def test_invalid_answers_are_rejected_naming_the_rule(answer, message):
    with pytest.raises(InvalidOutput, match=message):
        map_answer(answer, 1e9)


def test_threshold_gate_follows_openevolve():
    assert harness.passes({"combined_score": 0.5, "other": 0.0}, 0.5)
    assert not harness.passes({"combined_score": 0.4, "other": 1.0}, 0.5)
    assert harness.passes({"a": 0.2, "b": 0.8, "error": -100.0}, 0.5)  # mean but `error`
    assert not harness.passes({}, 0.0)


# ---------------------------------------------------------------- dependencies

def test_missing_package_is_declared_and_named_before_running(tmp_path, sb):
    ev = "import adrs_no_such_package_xyz\nimport networkx as nx\n" + (FIXTURE / "evaluator.py").read_text()
    src = _folder(tmp_path, evaluator=ev)
    (src / "requirements.txt").write_text("# pinned\nnetworkx>=3\n")
    done = import_openevolve(src, tmp_path / "out")
    spec = pm.load(done.folder)
    assert spec.sandbox_packages == ("networkx>=3", "adrs_no_such_package_xyz")  # the Docker image layer
    assert spec.evaluator.params["modules"] == ["adrs_no_such_package_xyz", "networkx"]
    with pytest.raises(AdrsError, match="imports adrs_no_such_package_xyz, not installed"):
        check_local_packages(spec, "local")
    check_local_packages(spec, "docker")  # the image has them (adrs sandbox build --problem ...)
    out = _score(spec, sb, spec.initial_source())  # and the harness says so too, if run anyway
    assert not out.ok and "adrs_no_such_package_xyz" in out.message


# ---------------------------------------------------------------- the command line

def _adrs(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k} | {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([*ADRS, *args], cwd=cwd, env=env | {"PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=300)


def _run_and_report(tmp_path: Path, sandbox: str) -> None:
    runs = tmp_path / "runs"
    r = _adrs("run", str(FIXTURE), "--iterations", "20", "--runs-dir", str(runs), "--sandbox", sandbox,
              "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "imported the OpenEvolve problem" in r.stderr and "only as honest as that evaluator" in r.stderr
    assert "no LLM key is set" in r.stderr and "offline mutator" in r.stderr
    assert "config.yaml keys ignored (no meaning here): " in r.stderr
    (imported,) = (runs / "imported").iterdir()
    assert pm.load(imported).trust == "sandboxed-evaluator"
    run_dir = next(p for p in runs.iterdir() if (p / "lineage.db").is_file())   # not imported/, .cache/
    rep = _adrs("report", str(run_dir), cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    assert "only as honest as that evaluator" in rep.stderr
    assert "only as honest as that evaluator" in (run_dir / "report" / "index.html").read_text()


@pytest.mark.slow
def test_run_openevolve_folder_20_iterations_local_and_report(tmp_path):
    _run_and_report(tmp_path, "local")


@pytest.mark.slow
def test_run_openevolve_folder_20_iterations_docker(tmp_path):
    from tests.docker_engine import engine_or_skip
    engine_or_skip()
    _run_and_report(tmp_path, "docker")


def test_import_command_and_bad_folder_error(tmp_path):
    ok = _adrs("import-openevolve", str(FIXTURE), "--out", str(tmp_path / "p"), "--family", "other", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "config.yaml keys ignored" in ok.stdout and (tmp_path / "p" / "problem.toml").is_file()
    bad = _folder(tmp_path, evaluator="def evaluate(p:\n")
    r = _adrs("run", str(bad), "--iterations", "1", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 1 and "evaluator.py, line 1: not valid Python" in r.stderr


@pytest.mark.slow
def test_docker_image_layer_holds_the_evaluators_package(tmp_path):
    """`adrs sandbox build --problem` installs the declared packages into an image layer (the mechanism
    `--problem eplb` uses for scipy); the evaluator then imports them inside the container."""
    from tests.docker_engine import engine_or_skip
    engine_or_skip()
    ev = (FIXTURE / "evaluator.py").read_text().replace("import math\n", "import math\n\nimport networkx\n", 1)
    ev = ev.replace('artifacts={"worst"', 'artifacts={"networkx": networkx.__version__, "worst"')
    done = import_openevolve(_folder(tmp_path, evaluator=ev), tmp_path / "nx")
    assert pm.load(done.folder).sandbox_packages == ("networkx",)
    build = _adrs("sandbox", "build", "--problem", str(done.folder), cwd=tmp_path)
    if build.returncode != 0 and "could not install" in build.stderr:
        pytest.skip(f"no package index reachable to build the layer: {build.stderr.strip()[-200:]}")
    assert build.returncode == 0, build.stderr[-2000:]
    r = _adrs("eval", str(done.folder), str(done.folder / "initial.py"), "--sandbox", "docker", "--json",
              cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "networkx: " in json.loads(r.stdout)["workloads"][0]["feedback"]
