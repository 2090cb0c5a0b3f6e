"""The lineage store: schema, atomic iteration commits, and refusing databases that are not ours."""
import sqlite3

import pytest

from evolve.errors import AdrsError
from evolve.store import MetricRow, NewAttempt, NewProgram, Run, Store, sqlite_url


def _run(store: Store, rid: str = "r1") -> None:
    store.create_run(Run(id=rid, problem="toy", problem_dir="/x", seed=0, config="{}", sandbox="local",
                         isolation="{}", versions="{}", created_at=0.0))


def test_roundtrip(tmp_path):
    s = Store(sqlite_url(tmp_path / "l.db"), create=True)
    _run(s)
    prog = NewProgram(kind="initial", source="x = 1", status="ok", iteration=0, score=0.5,
                      metrics=[MetricRow("w0", "train", "score", 0.5, [0.4, 0.6])], artifacts={"stderr": "hi"})
    pid = s.commit_attempt("r1", NewAttempt(0, 0, None, "initial", "train", "ok", program=prog))
    s.commit_attempt("r1", NewAttempt(1, 0, pid, "m", "edit", "failed", reason="no_match", message="block 1"))
    assert s.last_iteration("r1") == 1
    assert s.metrics(pid)[0].samples == [0.4, 0.6]
    assert s.artifacts(pid) == {"stderr": "hi"}
    assert s.failure_counts("r1") == {"no_match": 1}
    assert s.sources([pid]) == {pid: "x = 1"}
    s.close()
    assert Store(sqlite_url(tmp_path / "l.db")).run("r1").problem == "toy"


def test_duplicate_iteration_rejected_atomically(tmp_path):
    s = Store(sqlite_url(tmp_path / "l.db"), create=True)
    _run(s)
    s.commit_attempt("r1", NewAttempt(1, 0, None, "m", "edit", "failed", reason="x"))
    with pytest.raises(Exception):
        s.commit_attempt("r1", NewAttempt(1, 0, None, "m", "train", "ok",
                                          program=NewProgram(kind="child", source="y", status="ok", iteration=1)))
    assert len(s.programs("r1")) == 0  # the program insert rolled back with the attempt


def test_foreign_sqlite_file_refused(tmp_path):
    f = tmp_path / "other.db"
    con = sqlite3.connect(f)
    con.execute("create table t (x int)")
    con.commit()
    con.close()
    with pytest.raises(AdrsError, match="not an adrs lineage database"):
        Store(sqlite_url(f))


def test_non_database_file_refused(tmp_path):
    f = tmp_path / "lineage.db"
    f.write_text("this is not sqlite at all\n" * 100)
    with pytest.raises(AdrsError, match="not a database adrs can open"):
        Store(sqlite_url(f))


def test_wal_mode(tmp_path):
    s = Store(sqlite_url(tmp_path / "l.db"), create=True)
    with s.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
