"""`adrs check-problem`: each mistake an author makes is found, named, and decides the exit status.

Broken problems are made from the scaffold's working one (tests/test_authoring_scaffold.py proves it works),
each with one thing broken, so every failing test says which check missed its mistake."""
from pathlib import Path

import pytest

from evolve import problem
from evolve.authoring.check import check_problem
from evolve.authoring.scaffold import new_problem
from evolve.errors import AdrsError
from sandbox.inprocess import InProcessSandbox
from tests.conftest import TOY, adrs


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


@pytest.fixture
def made(tmp_path) -> Path:
    """A fresh one-shot problem, made smaller so each check takes a few milliseconds."""
    folder = new_problem("made", "oneshot", tmp_path)
    _edit(folder / "problem.toml", "jobs = 200", "jobs = 40")
    return folder


def _check(folder: Path):
    """The checker with in-process candidates (trusted test code): the checks, not the sandbox, are tested
    here; the CLI tests below go through the real local sandbox."""
    return check_problem(folder, make_sandbox=lambda spec: InProcessSandbox())


def _levels(report) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in report.findings:
        out.setdefault(f.level, []).append(f"{f.check}: {f.message}")
    return out


def _failed(report, check: str) -> str:
    msgs = [f.message for f in report.failed if f.check == check]
    assert msgs, f"no '{check}' failure in {_levels(report)}"
    return msgs[0]


def test_unknown_key_names_the_line_and_the_closest_key(toy_copy):
    _edit(toy_copy / "problem.toml", "memory_mb = 1024", "memroy_mb = 1024")
    with pytest.raises(AdrsError, match=r"limits.memroy_mb: unknown key \(line 26\); did you mean 'memory_mb'\?"):
        problem.load(toy_copy)


def test_unknown_top_level_and_entry_function_keys(toy_copy):
    _edit(toy_copy / "problem.toml", 'description =', 'descripton =')
    with pytest.raises(AdrsError, match=r"descripton: unknown key \(line 3\); did you mean 'description'\?"):
        problem.load(toy_copy)


def test_unknown_key_far_from_any_valid_one_gets_no_guess(toy_copy):
    _edit(toy_copy / "problem.toml", "memory_mb = 1024", "memory_mb = 1024\nzzz = 1")
    with pytest.raises(AdrsError, match=r"limits.zzz: unknown key \(line 27\) \(allowed: ") as e:
        problem.load(toy_copy)
    assert "did you mean" not in str(e.value)


def test_trust_key_is_checked(toy_copy):
    _edit(toy_copy / "problem.toml", 'name = "toy"', 'name = "toy"\ntrust = "sandboxed"')
    with pytest.raises(AdrsError, match=r"trust: 'sandboxed' is not one of: trusted-evaluator, sandboxed-evaluator"):
        problem.load(toy_copy)
    _edit(toy_copy / "problem.toml", 'trust = "sandboxed"', 'trust = "sandboxed-evaluator"')
    assert problem.load(toy_copy).sandboxed_evaluator


def test_a_working_problem_passes_with_timing_printed(made):
    report = _check(made)
    assert not report.failed and not report.warnings, _levels(report)
    initial = [f.message for f in report.findings if f.check == "initial"]
    assert len(initial) == 1 and " ms per workload" in initial[0] and "a train evaluation, 6 workloads" in initial[0]
    assert [f.check for f in report.findings if f.check.startswith("baseline")] == ["baseline lpt"]


def test_spec_error_stops_the_check(made):
    _edit(made / "problem.toml", "cpu_s = 30", "cpu_sec = 30")
    report = _check(made)
    assert "did you mean 'cpu_s'" in _failed(report, "spec") and len(report.findings) == 1


def test_evaluator_that_cannot_import(made):
    _edit(made / "evaluator.py", "import numpy as np", "import numpy as np\nimport no_such_package_here")
    assert "No module named 'no_such_package_here'" in _failed(_check(made), "evaluator")


def test_workload_id_the_evaluator_rejects(made):
    _edit(made / "problem.toml", '"w104"]', '"x104"]')
    assert "workloads.held_out 'x104'" in _failed(_check(made), "workloads")


def test_nondeterministic_metric(made):
    _edit(made / "evaluator.py", '"makespan_s": makespan}', '"makespan_s": makespan + float(np.random.random())}')
    msg = _failed(_check(made), "determinism")
    assert msg.startswith("evaluating initial twice gave different metrics: makespan_s on w1")


def test_noisy_metrics_are_not_compared(made):
    _edit(made / "evaluator.py", '"makespan_s": makespan}', '"makespan_s": makespan, "wall_s": float(np.random.random())}')
    _edit(made / "evaluator.py", "noisy_metrics = ()", 'noisy_metrics = ("wall_s",)')
    report = _check(made)
    assert not report.failed, _levels(report)
    assert any("wall_s" in f.message for f in report.warnings)  # returned but not declared in objective.metrics


def test_unbounded_score(made):
    _edit(made / "evaluator.py", '{"score": bound / makespan,', '{"score": makespan,')
    assert "must be finite and in [0, 1]" in _failed(_check(made), "bounded")


def test_initial_that_fails(made):
    _edit(made / "initial.py", "return [i % machines", "return [i % machines + machines")
    msg = _failed(_check(made), "initial")
    assert msg.startswith("invalid_output: job 0: machine must be an integer")


def test_quick_workload_held_out_and_ids_naming_one_seed_twice(made):
    _edit(made / "problem.toml", 'quick = ["w1"]', 'quick = ["w101"]')
    _edit(made / "problem.toml", '"w6"]', '"w6", "w0102"]')
    report = _check(made)
    assert any("quick workloads steer the search but are also held out: w101" in f.message for f in report.failed)
    assert any("train and held-out name the same workload: w0102 = w102" in f.message for f in report.failed)


def test_warns_when_initial_beats_every_baseline_and_when_baselines_tie(made):
    (made / "initial.py").write_text((made / "baselines" / "lpt.py").read_text())
    (made / "baselines" / "lpt_again.py").write_text((made / "baselines" / "lpt.py").read_text())
    _edit(made / "problem.toml", 'lpt = "baselines/lpt.py"', 'lpt = "baselines/lpt.py"\nlpt2 = "baselines/lpt_again.py"')
    report = _check(made)
    assert not report.failed, _levels(report)
    warned = " | ".join(f.message for f in report.warnings)
    assert "already matches or beats every baseline" in warned and "all baselines tie" in warned


def test_cli_exit_status_through_the_local_sandbox(made):
    ok = adrs("check-problem", str(made))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "made: 0 failed, 0 warnings" in ok.stdout.replace(str(made.parent) + "/", "")
    assert "determinism: evaluating initial twice gives the same metrics" in ok.stdout
    _edit(made / "evaluator.py", '{"score": bound / makespan,', '{"score": 2 * bound / makespan,')
    bad = adrs("check-problem", str(made))
    assert bad.returncode == 1 and "FAIL bounded" in bad.stdout and "2 failed" in bad.stdout  # initial and lpt


def test_toy_fixture_warns_about_its_missing_readme():
    report = _check(TOY)
    assert not report.failed
    assert {f.check for f in report.warnings} == {"prompt", "feedback"}
