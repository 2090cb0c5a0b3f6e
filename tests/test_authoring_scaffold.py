"""`adrs new-problem`: both kinds come out complete and working, outside the repository, through the CLI:
`check-problem` passes, `eval` scores initial and the baseline in the sandbox, and the problem's own test
passes (the baseline beats the initial program on held-out)."""
import json
import subprocess
import sys

import pytest

from evolve import problem
from evolve.authoring.scaffold import new_problem
from evolve.errors import AdrsError
from tests.conftest import ROOT, adrs

FILES = {"problem.toml", "README.md", "initial.py", "evaluator.py", "test_{name}.py"}
BASELINE = {"oneshot": "lpt", "stateful": "sjf"}


@pytest.mark.slow  # about 8 s each: five CLI processes and a pytest run
@pytest.mark.parametrize("kind", ["oneshot", "stateful"])
def test_new_problem_checks_evaluates_and_passes_its_test(tmp_path, kind):
    name = f"my_{kind}"
    r = adrs("new-problem", name, "--kind", kind, "--dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    folder = tmp_path / name
    made = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert made == {f.format(name=name) for f in FILES} | {f"baselines/{BASELINE[kind]}.py"}

    toml = (folder / "problem.toml").read_text()
    spec = problem.load(folder)
    assert spec.name == name and spec.family in problem.FAMILIES
    for key in ("name", "description", "family", "[entry]", "[evaluator]", "[workloads]", "held_out", "quick",
                "[objective]", "[limits]", "[baselines]"):  # every key there with a comment on its line
        line = next(ln for ln in toml.splitlines() if ln.startswith(key))
        assert "#" in line, line

    check = adrs("check-problem", str(folder), cwd=tmp_path)
    assert check.returncode == 0 and "0 failed, 0 warnings" in check.stdout, check.stdout + check.stderr

    scores = {}
    for label, file in (("initial", folder / "initial.py"), ("baseline", folder / "baselines" / f"{BASELINE[kind]}.py")):
        ev = adrs("eval", str(folder), str(file), "--split", "held-out", "--json", cwd=tmp_path)
        assert ev.returncode == 0, ev.stderr
        out = json.loads(ev.stdout)
        assert all(w["feedback"] for w in out["workloads"])  # words for the LLM on every workload
        scores[label] = out["score"]
    assert 0 < scores["initial"] < scores["baseline"] <= 1

    test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert test.returncode == 0 and "8 passed" in test.stdout, test.stdout[-2000:]


def test_new_problem_refuses_bad_names_kinds_and_existing_folders(tmp_path):
    with pytest.raises(AdrsError, match="use a Python identifier"):
        new_problem("my-problem", "oneshot", tmp_path)
    with pytest.raises(AdrsError, match="--kind must be one of oneshot, stateful"):
        new_problem("p", "batch", tmp_path)
    new_problem("p", "oneshot", tmp_path)
    with pytest.raises(AdrsError, match="already exists"):
        new_problem("p", "stateful", tmp_path)
    r = adrs("new-problem", "p", "--dir", str(tmp_path))
    assert r.returncode == 1 and r.stderr.startswith("adrs: error:") and "already exists" in r.stderr
