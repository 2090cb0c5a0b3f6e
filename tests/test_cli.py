"""The CLI as a user meets it: real subprocesses; bad input is one clear line and a non-zero exit."""
import json
import sqlite3

import pytest

from tests.conftest import TOY, adrs


def one_line_error(r, pattern: str) -> None:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr + r.stdout
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert pattern in lines[0], lines[0]


def test_unknown_problem():
    one_line_error(adrs("run", "nosuch-problem"), "unknown problem 'nosuch-problem'")


def test_unknown_flag():
    one_line_error(adrs("run", "eplb", "--iteratoins", "3"), "No such option: --iteratoins")


def test_unknown_config_key(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("iterations = 2\nmax_kost = 5\n")
    one_line_error(adrs("run", str(TOY), "--config", str(f)), "c.toml: max_kost: unknown key")


def test_problem_toml_unknown_key(toy_copy):
    t = toy_copy / "problem.toml"
    t.write_text(t.read_text().replace("[limits]", "[limits]\nwall_s = 3"))
    one_line_error(adrs("run", str(toy_copy)), f"{t}: limits.wall_s: unknown key")


def test_problem_toml_missing_field(toy_copy):
    t = toy_copy / "problem.toml"
    t.write_text(t.read_text().replace('score = "score"\n', ""))
    one_line_error(adrs("run", str(toy_copy)), f"{t}: objective.score: missing required key")


def test_entry_point_missing(toy_copy):
    (toy_copy / "initial.py").write_text("def other(xs):\n    return xs\n")
    one_line_error(adrs("run", str(toy_copy)), "does not define the entry point predict()")


def test_database_not_ours(tmp_path):
    f = tmp_path / "foreign.db"
    con = sqlite3.connect(f)
    con.execute("create table customers (id int)")
    con.commit()
    con.close()
    one_line_error(adrs("run", str(TOY), "--db", f"sqlite:///{f}", "--runs-dir", str(tmp_path)),
                   "not an adrs lineage database")
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "lineage.db").write_text("garbage" * 1000)
    one_line_error(adrs("show", str(tmp_path / "fake")), "not a database adrs can open")


def test_problems_lists_bundled():
    r = adrs("problems")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    names = [line.split()[0] for line in lines]
    assert "eplb" in names and "llm_scheduler" in names
    families = [line.split()[1] for line in lines if not line.startswith(" ")]
    assert families == sorted(families, key=["scheduling", "load", "placement", "networking", "data",
                                              "repair", "other"].index)   # grouped by family, in this order


def test_eval_json_and_failure():
    r = adrs("eval", str(TOY), str(TOY / "baselines" / "exact.py"), "--split", "held-out", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "ok" and out["score"] == pytest.approx(1.0)
    assert [w["workload"] for w in out["workloads"]] == ["w7", "w8"]
    r = adrs("eval", str(TOY), str(TOY / "initial.py"), "--json")
    assert 0 < json.loads(r.stdout)["score"] < 1
    one_line_error(adrs("eval", str(TOY), str(TOY / "problem.toml")), "not valid Python")


def test_eval_failed_candidate_exit_code(tmp_path):
    f = tmp_path / "bad.py"
    f.write_text("def predict(xs):\n    raise ValueError('nope')\n")
    r = adrs("eval", str(TOY), str(f), "--json")
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["reason"] == "exception" and "nope" in out["message"] + out["artifacts"].get("traceback", "")


def test_run_list_show_diff(tmp_path):
    r = adrs("run", str(TOY), "--iterations", "6", "--runs-dir", str(tmp_path), "--run-id", "t1")
    assert r.returncode == 0, r.stderr
    assert "offline mutator" in r.stdout and "exact #" in r.stdout
    r = adrs("list", "--runs-dir", str(tmp_path))
    assert "t1" in r.stdout and "finished" in r.stdout
    s = json.loads(adrs("show", str(tmp_path / "t1"), "--json").stdout)
    assert s["iterations"] == 6 and s["status"] == "finished"
    p = json.loads(adrs("show", str(tmp_path / "t1"), "1", "--json").stdout)
    assert p["kind"] == "initial" and "def predict" in p["source"]
    child = next(i for i in range(2, 9) if json.loads(adrs("show", str(tmp_path / "t1"), str(i), "--json")
                                                       .stdout)["parent"] is not None)
    d = adrs("diff", str(tmp_path / "t1"), "1", str(child))
    assert d.returncode == 0 and ("+" in d.stdout or "identical" in d.stdout)
    one_line_error(adrs("show", str(tmp_path / "t1"), "9999"), "has no program 9999")


_REPORT_IMPORTS = ("import sys\nfrom evolve.cli.main import main\ntry:\n    main(sys.argv[1:])\nfinally:\n"
                   "    print('litellm imported:', 'litellm' in sys.modules)\n")


def test_an_offline_run_never_imports_litellm(tmp_path):
    """litellm costs seconds of start-up: a run without a model must not pay for it."""
    import os
    import subprocess
    import sys
    from tests.conftest import ROOT
    r = subprocess.run([sys.executable, "-c", _REPORT_IMPORTS, "run", str(TOY), "--iterations", "2",
                        "--runs-dir", str(tmp_path)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "offline mutator" in r.stdout and "litellm imported: False" in r.stdout, r.stdout


def test_resume_can_move_a_run_to_another_executor(tmp_path):
    """The recorded executor is used unless --executor says otherwise; a bad one is one clear line."""
    assert adrs("run", str(TOY), "--iterations", "2", "--runs-dir", str(tmp_path), "--run-id", "r").returncode == 0
    db = tmp_path / "r" / "lineage.db"
    con = sqlite3.connect(db)
    cfg = json.loads(con.execute("select config from runs").fetchone()[0])
    con.execute("update runs set config = ?", (json.dumps({**cfg, "executor": "ray://127.0.0.1:9"}),))
    con.commit()
    con.close()
    dead = adrs("resume", str(tmp_path / "r"), "--iterations", "4")   # the recorded (unreachable) cluster
    assert dead.returncode != 0 and "127.0.0.1:9" in dead.stdout + dead.stderr
    one_line_error(adrs("resume", str(tmp_path / "r"), "--executor", "slurm"),
                   "executor: 'slurm' is not one of local, ray, ray://HOST:PORT")
    r = adrs("resume", str(tmp_path / "r"), "--iterations", "4", "--executor", "local")
    assert r.returncode == 0, r.stdout + r.stderr
    con = sqlite3.connect(db)
    assert [i for (i,) in con.execute("select iteration from attempts order by iteration")] == [0, 1, 2, 3, 4]
    con.close()
