"""Schema versions: a store written by an older adrs opens after `adrs db upgrade` with its runs intact,
one written by a newer adrs is refused saying so, and every upgrade ends at the schema a new store has.
On SQLite and on PostgreSQL (`db_url`)."""
import pytest

from evolve.errors import AdrsError
from evolve.store import SCHEMA_VERSION, MetricRow, FeedbackRow, NewAttempt, NewProgram, Store, migrate
from tests.conftest import adrs
from tests.pgcluster import execute_sql

V1_RUN = [
    "insert into runs values ('old', 'toy', '/x', 3, '{}', 'local', '{}', '{}', 1.0)",
    "insert into programs (run_id, iteration, kind, name, island, generation, source, diff, status, reason, "
    "score, origin, created_at) values ('old', 0, 'initial', '', 0, 0, 'x = 0', '', 'ok', '', 0.25, '', 1.0)",
    "insert into attempts (run_id, iteration, island, proposer, stage, status, reason, message, proposal, "
    "program_id, duration_s, created_at) select 'old', 0, 0, 'initial', 'train', 'ok', '', '', '', id, 0.5, 1.0 "
    "from programs",
    "insert into evaluations (program_id, workload, split, metric, value, samples) "
    "select id, 'w0', 'train', 'score', 0.25, '[0.2, 0.3]' from programs",
]


def _upgrade_args(url: str) -> list[str]:
    return [url[len("sqlite:///"):]] if url.startswith("sqlite:///") else ["--db", url]


def test_the_newest_revision_is_the_schema_version_a_new_store_gets(db_url):
    assert migrate.head_version() == SCHEMA_VERSION
    Store(db_url, create=True).close()
    assert migrate.version(db_url) == SCHEMA_VERSION and migrate.differences(db_url) == []


def test_a_version_1_store_opens_after_adrs_db_upgrade_with_its_run_intact(db_url):
    migrate.build(db_url, 1)
    execute_sql(db_url, V1_RUN)
    with pytest.raises(AdrsError) as refused:
        Store(db_url)
    where = _upgrade_args(db_url)
    command = f"adrs db upgrade {where[0]}" if len(where) == 1 else f"adrs db upgrade --db '{db_url}'"
    assert str(refused.value) == (f"{db_url}: this lineage store was written by an older adrs (schema version 1; "
                                  f"this adrs reads version {SCHEMA_VERSION}): upgrade it with `{command}`")

    r = adrs("db", "upgrade", *_upgrade_args(db_url))
    assert r.returncode == 0, r.stderr
    assert f"upgraded from schema version 1 to {SCHEMA_VERSION}" in r.stdout
    assert migrate.differences(db_url) == []       # the same tables a new store has

    s = Store(db_url)
    assert s.run("old").seed == 3 and s.last_iteration("old") == 0
    root = s.programs("old")[0].id
    assert s.metrics(root) == [MetricRow("w0", "train", "score", 0.25, [0.2, 0.3])]   # evaluations -> metrics
    # what the old schema could not hold: feedback, and (on PostgreSQL) text past the old VARCHAR lengths
    long_id = "trace:azure:/" + "d/" * 200 + "trace.csv:n=1000"
    pid = s.commit_attempt("old", NewAttempt(1, 0, root, "p" * 300, "train", "ok", program=NewProgram(
        kind="child", source="x = 1", status="ok", iteration=1, parent_id=root, score=0.5,
        metrics=[MetricRow(long_id, "train", "score", 0.5)], feedback=[FeedbackRow(long_id, "train", "fine")])))
    assert s.metrics(pid)[0].workload == long_id and s.feedback(pid)[0].workload == long_id
    s.close()
    again = adrs("db", "upgrade", *_upgrade_args(db_url))
    assert again.returncode == 0 and f"already at schema version {SCHEMA_VERSION}" in again.stdout


def test_a_store_written_by_a_newer_adrs_is_refused_by_open_and_by_upgrade(db_url):
    Store(db_url, create=True).close()
    execute_sql(db_url, ["update adrs_meta set value = '99' where key = 'schema_version'"])
    newer = (f"written by a newer adrs (schema version 99; this adrs reads version {SCHEMA_VERSION}): "
             "upgrade adrs to read it")
    with pytest.raises(AdrsError, match=newer.replace("(", r"\(").replace(")", r"\)")):
        Store(db_url)
    r = adrs("db", "upgrade", *_upgrade_args(db_url))
    assert r.returncode == 1 and newer in r.stderr and "Traceback" not in r.stderr
    assert migrate.version(db_url) == 99           # untouched


def test_db_upgrade_takes_a_folder_of_runs_and_refuses_what_is_not_a_store(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        migrate.build(f"sqlite:///{tmp_path / name / 'lineage.db'}", 2)
    r = adrs("db", "version", str(tmp_path))
    assert r.stdout.count(f"schema version 2 (older: run `adrs db upgrade`; this adrs reads version "
                          f"{SCHEMA_VERSION})") == 2, r.stdout + r.stderr
    r = adrs("db", "upgrade", str(tmp_path))
    assert r.returncode == 0 and r.stdout.count(f"from schema version 2 to {SCHEMA_VERSION}") == 2, r.stderr
    assert all(Store(f"sqlite:///{tmp_path / n / 'lineage.db'}").runs() == [] for n in ("a", "b"))
    (tmp_path / "c").mkdir()
    r = adrs("db", "upgrade", str(tmp_path / "c"))
    assert r.returncode == 1 and "no lineage store here" in r.stderr
