"""problem.toml and run-config validation: every bad input names the file and the key."""
from pathlib import Path

import pytest

from evolve import config, problem
from evolve.errors import AdrsError
from tests.conftest import TOY


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_toy_loads():
    spec = problem.load(TOY)
    assert spec.name == "toy" and spec.entry.function == "predict"
    assert spec.workloads.quick == ("w0",) and spec.limits.memory_mb == 1024
    assert spec.baseline_sources()["exact"].startswith("def predict")


def test_unknown_top_level_key(toy_copy):
    (toy_copy / "problem.toml").write_text('bogus = 1\n' + (toy_copy / "problem.toml").read_text())
    with pytest.raises(AdrsError, match=r"problem.toml: bogus: unknown key"):
        problem.load(toy_copy)


def test_unknown_nested_key(toy_copy):
    _edit(toy_copy / "problem.toml", "memory_mb = 1024", "memory_mb = 1024\nmemroy_gb = 2")
    with pytest.raises(AdrsError, match=r"limits.memroy_gb: unknown key"):
        problem.load(toy_copy)


def test_missing_field(toy_copy):
    _edit(toy_copy / "problem.toml", 'function = "predict"', "")
    with pytest.raises(AdrsError, match=r"problem.toml: entry.function: missing required key"):
        problem.load(toy_copy)


def test_wrong_type(toy_copy):
    _edit(toy_copy / "problem.toml", "cpu_s = 20", 'cpu_s = "lots"')
    with pytest.raises(AdrsError, match=r"limits.cpu_s: must be int or float"):
        problem.load(toy_copy)


def test_entry_point_not_defined(toy_copy):
    _edit(toy_copy / "initial.py", "def predict(xs):", "def guess(xs):")
    with pytest.raises(AdrsError, match=r"does not define the entry point predict\(\)"):
        problem.load(toy_copy)


def test_bad_workload_id(toy_copy):
    _edit(toy_copy / "problem.toml", '"w7", "w8"', '"w7", "x8"')
    with pytest.raises(AdrsError, match=r"workloads.held_out: 'x8'"):
        problem.load(toy_copy)


def test_held_out_overlapping_train_rejected(toy_copy):
    _edit(toy_copy / "problem.toml", '"w7", "w8"', '"w7", "w2"')
    with pytest.raises(AdrsError, match=r"held-out workloads also in train: w2"):
        problem.load(toy_copy)


def test_unknown_problem_name():
    with pytest.raises(AdrsError, match=r"unknown problem 'nosuch'"):
        problem.load("nosuch")


def test_not_toml(toy_copy):
    (toy_copy / "problem.toml").write_text("name = [unclosed")
    with pytest.raises(AdrsError, match=r"not valid TOML"):
        problem.load(toy_copy)


def test_config_file_unknown_key(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text("iterations = 5\n[archive]\nnum_islandz = 3\n")
    with pytest.raises(AdrsError, match=r"run.toml: archive.num_islandz: unknown key"):
        config.load_file(f)


def test_config_file_values(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text("iterations = 5\neval_slots = 3\n[archive]\nnum_islands = 2\n")
    cfg = config.load_file(f)
    assert (cfg.iterations, cfg.eval_slots, cfg.archive.num_islands) == (5, 3, 2)
    assert config.RunConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(AdrsError, match=r"eval_slots: must be >= 1"):
        config.build({"eval_slots": 0}, "flags")
    with pytest.raises(AdrsError, match=r"iterations: must be int"):
        config.build({"iterations": "ten"}, "flags")


def test_family_defaults_to_other_and_must_be_known(toy_copy):
    assert problem.load(toy_copy).family == "other"
    (toy_copy / "problem.toml").write_text('family = "scheduler"\n' + (toy_copy / "problem.toml").read_text())
    with pytest.raises(AdrsError, match=r"family: 'scheduler' is not one of: scheduling"):
        problem.load(toy_copy)


def test_every_bundled_problem_names_its_family():
    for d in problem.bundled_problems():
        assert problem.load(d, check_evaluator=False).family != "other", d.name
