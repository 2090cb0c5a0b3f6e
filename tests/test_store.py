"""The lineage store: schema, atomic iteration commits, refusing databases that are not ours, the queries
other packages ask of it, and the rule that only evolve/store/ talks to the database.

Tests taking `db_url` run twice: on SQLite and on a real PostgreSQL cluster (tests/pgcluster.py)."""
import ast
import sqlite3
from pathlib import Path

import pytest

from evolve.errors import AdrsError
from evolve.store import (SCHEMA_VERSION, CallCost, FeedbackRow, MetricRow, NewAttempt, NewProgram, Run, Store,
                          sqlite_url)
from tests.pgcluster import connect

ROOT = Path(__file__).resolve().parent.parent


def _run(store: Store, rid: str = "r1") -> None:
    store.create_run(Run(id=rid, problem="toy", problem_dir="/x", seed=0, config="{}", sandbox="local",
                         isolation="{}", versions="{}", created_at=0.0))


def _rows(url: str, sql: str) -> list[tuple]:
    con = connect(url)
    try:
        return [tuple(r) for r in con.execute(sql).fetchall()]
    finally:
        con.close()


def test_roundtrip(db_url):
    s = Store(db_url, create=True)
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
    assert Store(db_url).run("r1").problem == "toy"


def test_duplicate_iteration_rejected_atomically(db_url):
    s = Store(db_url, create=True)
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


def test_feedback_round_trip_through_every_writer(db_url):
    s = Store(db_url, create=True)
    _run(s)
    prog = NewProgram(kind="initial", source="x = 1", status="ok", iteration=0, score=0.5,
                      metrics=[MetricRow("w0", "train", "score", 0.5)],
                      feedback=[FeedbackRow("w0", "quick", "slow start"), FeedbackRow("w0", "train", "queue grew"),
                                FeedbackRow("w1", "train", "request 812 waited 41 s")])
    pid = s.commit_attempt("r1", NewAttempt(0, 0, None, "initial", "train", "ok", program=prog))
    s.add_metrics(pid, [MetricRow("h0", "held-out", "score", 0.4)], [FeedbackRow("h0", "held-out", "fine")])
    base = s.add_program("r1", NewProgram(kind="baseline", name="b", source="y", status="ok",
                                          feedback=[FeedbackRow("w0", "train", "baseline words")]))
    assert s.feedback(pid, "train") == [FeedbackRow("w0", "train", "queue grew"),
                                        FeedbackRow("w1", "train", "request 812 waited 41 s")]
    assert [f.split for f in s.feedback(pid)] == ["quick", "train", "train", "held-out"]   # stored order
    assert s.feedback(base) == [FeedbackRow("w0", "train", "baseline words")]
    assert s.programs_with_split("r1", "held-out") == {pid}
    s.close()
    assert _rows(db_url, "select count(*) from feedback") == [(5,)]
    assert _rows(db_url, "select count(*) from metrics") == [(2,)]   # the table is "metrics" now


def test_a_store_written_by_an_older_adrs_is_refused_clearly(tmp_path):
    f = tmp_path / "l.db"
    Store(sqlite_url(f), create=True).close()
    con = sqlite3.connect(f)
    con.execute("update adrs_meta set value='1' where key='schema_version'")
    con.execute("alter table metrics rename to evaluations")   # as version 1 laid it out
    con.commit()
    con.close()
    with pytest.raises(AdrsError, match=rf"written by an older adrs \(schema version 1; this adrs reads "
                                        rf"version {SCHEMA_VERSION}\): upgrade it with `adrs db upgrade {f}`"):
        Store(sqlite_url(f))


def test_text_with_nul_bytes_is_stored_on_every_backend(db_url):
    """A candidate can print NUL; PostgreSQL text cannot hold it. The iteration must commit all the same."""
    s = Store(db_url, create=True)
    _run(s)
    nul = "before\x00after"
    pid = s.commit_attempt("r1", NewAttempt(0, 0, None, "initial", "train", "ok", message=nul, proposal=nul,
                                            program=NewProgram(kind="initial", source="x = 1", status="ok",
                                                               iteration=0, artifacts={"stdout": nul})))
    kept = nul if db_url.startswith("sqlite") else "before\ufffdafter"
    assert s.artifacts(pid) == {"stdout": kept}
    assert (s.attempts("r1")[0].message, s.attempts("r1")[0].proposal) == (kept, kept)


def test_a_run_id_already_in_a_shared_store_is_refused_clearly(db_url):
    s = Store(db_url, create=True)
    _run(s, "same")
    with pytest.raises(AdrsError, match="already holds a run 'same'; choose another run id"):
        _run(s, "same")
    assert [r.id for r in s.runs()] == ["same"] and len(s.events("same")) == 1


class _WriteBetweenTables(dict):
    """The `columns` of run_rows, calling `write` after the first table is read (while the read is open)."""

    def __init__(self, columns: dict, write) -> None:
        super().__init__(columns)
        self.write = write

    def items(self):
        for n, (table, cols) in enumerate(super().items()):
            if n == 1:
                self.write()
            yield table, cols


def test_a_reader_sees_one_snapshot_and_never_blocks_the_writer(db_url):
    """`adrs report` reads a run table by table while the run commits: the writer goes on at once, and
    the report sees no attempt without its program (nor the reverse)."""
    import threading
    writer, reader = Store(db_url, create=True), Store(db_url)
    _run(writer)
    writer.commit_attempt("r1", NewAttempt(0, 0, None, "initial", "train", "ok", program=NewProgram(
        kind="initial", source="x = 0", status="ok", iteration=0, score=0.1)))

    def commit_in_a_thread() -> None:
        t = threading.Thread(target=writer.commit_attempt, args=("r1", NewAttempt(1, 0, None, "m", "train", "ok",
                             program=NewProgram(kind="child", source="x = 1", status="ok", iteration=1))))
        t.start()
        t.join(timeout=10)
        assert not t.is_alive(), "an open read blocked the writer"

    rows = reader.run_rows("r1", _WriteBetweenTables({"attempts": ("iteration",), "programs": ("iteration",)},
                                                     commit_in_a_thread))
    assert rows == {"attempts": [(0,)], "programs": [(0,)]}        # the state when the read began
    assert writer.last_iteration("r1") == 1                         # and the write went through
    assert reader.run_rows("r1", {"programs": ("iteration",)}) == {"programs": [(0,), (1,)]}


def test_several_runs_commit_into_one_database_at_once(db_url):
    import threading
    Store(db_url, create=True).close()
    errors: list[Exception] = []

    def one_run(rid: str) -> None:
        s = Store(db_url)
        try:
            _run(s, rid)
            root = s.commit_attempt(rid, NewAttempt(0, 0, None, "initial", "train", "ok", program=NewProgram(
                kind="initial", source=f"{rid} 0", status="ok", iteration=0, score=0.0)))
            for i in range(1, 21):
                s.commit_attempt(rid, NewAttempt(i, 0, root, "m", "train", "ok", program=NewProgram(
                    kind="child", source=f"{rid} {i}", status="ok", iteration=i, parent_id=root, score=i / 20,
                    metrics=[MetricRow("w0", "train", "score", i / 20)])))
        except Exception as e:  # reported below, with the run it came from
            errors.append(e)
        finally:
            s.close()

    threads = [threading.Thread(target=one_run, args=(f"run{k}",)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    s = Store(db_url)
    assert sorted(r.id for r in s.runs()) == ["run0", "run1", "run2"]
    for k in range(3):
        progs = s.programs(f"run{k}")
        assert [p.source for p in progs] == [f"run{k} {i}" for i in range(21)]      # each run whole, alone
        assert {p.parent_id for p in progs[1:]} == {progs[0].id}
        assert s.last_iteration(f"run{k}") == 20 and len(s.metrics_by_program(f"run{k}", "train")) == 20


def test_stores_opened_at_once_on_an_empty_postgresql_database_create_one_schema(pg_url):
    import threading
    errors: list[Exception] = []

    def open_store() -> None:
        try:
            Store(pg_url, create=True).close()
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert _rows(pg_url, "select key, value from adrs_meta") == [("schema_version", str(SCHEMA_VERSION))]


def test_a_postgresql_database_of_another_application_is_refused(pg_url):
    con = connect(pg_url)
    con.execute("create table customers (id int)")
    con.close()
    with pytest.raises(AdrsError, match="not an adrs lineage database"):
        Store(pg_url, create=True)


def _two_runs_with_calls(url: str) -> Store:
    s = Store(url, create=True)
    for rid in ("r1", "r2"):
        _run(s, rid)
        root = s.commit_attempt(rid, NewAttempt(0, 0, None, "initial", "train", "ok", program=NewProgram(
            kind="initial", source=f"{rid} = 0", status="ok", iteration=0, score=0.5,
            metrics=[MetricRow("w0", "train", "score", 0.5)])))
        call = dict(model="m1", messages="[]", response="a", prompt_tokens=10, completion_tokens=5, cost_usd=0.01)
        s.commit_attempt(rid, NewAttempt(1, 0, root, "llm", "edit", "failed", reason="no_match",
                                         artifacts={"why": "no match"},
                                         llm_calls=[dict(call, error="timeout: slow"), dict(call, model="m2")]))
        s.commit_attempt(rid, NewAttempt(2, 0, root, "llm", "train", "ok", llm_calls=[dict(call, cost_usd=None)],
                                         program=NewProgram(kind="child", source=f"{rid} = 2", status="ok",
                                                            iteration=2, parent_id=root, score=0.75,
                                                            artifacts={"stdout": "hi"})))
    return s


def test_llm_call_queries_are_scoped_to_their_run(db_url):
    s = _two_runs_with_calls(db_url)
    by_it = s.calls_by_iteration("r1")
    assert sorted(by_it) == [1, 2] and [c.model for c in by_it[1]] == ["m1", "m2"]
    assert by_it[1][0].error == "timeout: slow" and by_it[2][0].cost_usd is None
    assert s.call_costs("r2") == [CallCost("m1", 10, 5, 0.01, "timeout: slow"), CallCost("m2", 10, 5, 0.01, ""),
                                  CallCost("m1", 10, 5, None, "")]
    assert s.spent_usd("r1") == pytest.approx(0.02) and s.spent_usd("nope") == 0.0
    out = s.call_outcomes("r1", 0, 2)
    assert [(o.iteration, o.model, o.parent_score, o.child_score) for o in out] == [
        (1, "m1", 0.5, None), (1, "m2", 0.5, None), (2, "m1", 0.5, 0.75)]
    assert [o.iteration for o in s.call_outcomes("r1", 1, 2)] == [2]
    assert list(s.metrics_by_program("r2", "train")) == [s.programs("r2", kind="initial")[0].id]


def test_run_rows_reads_each_table_of_one_run_in_the_asked_column_order(db_url):
    s = _two_runs_with_calls(db_url)
    rows = s.run_rows("r2", {"programs": ("source", "score"), "attempts": ("iteration", "status"),
                             "metrics": ("workload", "value"), "feedback": ("text",),
                             "artifacts": ("name", "content"), "llm_calls": ("model",)})
    assert rows["programs"] == [("r2 = 0", 0.5), ("r2 = 2", 0.75)]
    assert rows["attempts"] == [(0, "ok"), (1, "failed"), (2, "ok")]
    assert rows["metrics"] == [("w0", 0.5)] and rows["feedback"] == []
    assert rows["artifacts"] == [("why", "no match"), ("stdout", "hi")]   # an attempt's and a program's
    assert rows["llm_calls"] == [("m1",), ("m2",), ("m1",)]
    with pytest.raises(ValueError, match="unknown table 'runs'"):
        s.run_rows("r2", {"runs": ("id",)})
    with pytest.raises(ValueError, match="programs has no column bogus"):
        s.run_rows("r2", {"programs": ("id", "bogus")})


def test_report_data_takes_one_query_per_table_whatever_the_run_size(db_url):
    from evolve.report.data import gather

    def queries(n: int) -> int:
        s = Store(db_url, create=True)
        _run(s, f"r{n}")
        root = s.commit_attempt(f"r{n}", NewAttempt(0, 0, None, "initial", "train", "ok", program=NewProgram(
            kind="initial", source="x = 0", status="ok", iteration=0, score=0.1)))
        for i in range(1, n + 1):
            s.commit_attempt(f"r{n}", NewAttempt(i, 0, root, "m", "train", "ok", llm_calls=[dict(
                model="m", messages="[]")], program=NewProgram(
                kind="child", source=f"x = {i}", status="ok", iteration=i, parent_id=root, score=0.2,
                metrics=[MetricRow("w0", "train", "score", 0.2)], artifacts={"stdout": "o"},
                feedback=[FeedbackRow("w0", "train", "ok")])))
        before = s.statements
        data = gather(s, f"r{n}")
        assert len(data.programs) == n + 1 and len(data.feedback) == n
        return s.statements - before

    assert queries(3) == queries(40) <= 9    # the run, its events, and one query per table (7 tables)


def test_database_urls_that_cannot_open_say_why_and_never_show_a_password():
    with pytest.raises(AdrsError) as e:
        Store("postgresql+psycopg://adrs:s3cret@127.0.0.1:1/lineage")   # nothing listens on port 1
    assert "cannot reach the database" in str(e.value) and "s3cret" not in str(e.value)
    assert "adrs:***@127.0.0.1:1/lineage" in str(e.value)
    with pytest.raises(AdrsError, match="no driver 'pg8000'.*psycopg"):
        Store("postgresql+pg8000://adrs@127.0.0.1:1/lineage")


def test_ping_checks_a_database_url(db_url):
    Store.ping(db_url)
    with pytest.raises(Exception):
        Store.ping("nosuchdialect://x")


def _imports_sqlalchemy(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "sqlalchemy" for a in node.names):
            return True
        if (isinstance(node, ast.ImportFrom) and node.level == 0
                and (node.module or "").split(".")[0] == "sqlalchemy"):
            return True
    return False


def test_only_the_store_imports_sqlalchemy():
    """The store is the one boundary to the database: everything else goes through Store's methods."""
    store_dir = ROOT / "evolve" / "store"
    files = [p for p in ROOT.rglob("*.py")
             if not any(part.startswith(".") or part in ("runs", "build", "__pycache__")
                        for part in p.relative_to(ROOT).parts)]
    assert len(files) > 50 and any(p.is_relative_to(store_dir) and _imports_sqlalchemy(p) for p in files)
    bad = sorted(str(p.relative_to(ROOT)) for p in files
                 if not p.is_relative_to(store_dir) and _imports_sqlalchemy(p))
    assert not bad, f"these modules import sqlalchemy; move their queries into evolve/store/: {bad}"
