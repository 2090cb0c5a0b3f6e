"""The lineage store on a real PostgreSQL server, end to end through the CLI: several runs in one database,
`adrs list/show/report` while a run writes, and a killed controller that resumes as it does from SQLite.
(tests/test_store.py runs the store's own tests on both backends.)"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, TOY, adrs
from tests.pgcluster import connect

LINEAGE = ("select a.iteration, pa.iteration, a.status, a.reason, p.source, p.score, p.island "
           "from attempts a left join programs p on p.id = a.program_id "
           "left join programs pa on pa.id = a.parent_id where a.run_id = '{rid}' order by a.iteration")


def lineage(url: str, rid: str) -> list[tuple]:
    """A run's attempts with parents named by iteration: program ids differ between databases (and a
    PostgreSQL sequence skips the ids of a killed transaction), the lineage must not."""
    con = connect(url)
    try:
        return [tuple(r) for r in con.execute(LINEAGE.format(rid=rid)).fetchall()]
    finally:
        con.close()


def start(*args: str, log: Path | None = None) -> subprocess.Popen:
    """The CLI in the background; a run's output goes to `log` (a pipe nobody reads would stall it)."""
    cmd = [sys.executable, "-m", "evolve.cli.main", *args]
    kw = dict(start_new_session=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"})
    if log is None:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    with open(log, "w") as out:   # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **kw)


def start_run(db: str, rid: str, iterations: int, tmp: Path) -> subprocess.Popen:
    return start("run", str(TOY), "--iterations", str(iterations), "--seed", "5", "--runs-dir", str(tmp),
                 "--run-id", rid, *(["--db", db] if db else []), log=tmp / f"{rid}.log")


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def log(tmp: Path, rid: str) -> str:
    return (tmp / f"{rid}.log").read_text()[-3000:]


def wait_for(url: str, rid: str, n: int, proc: subprocess.Popen, tmp: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"run {rid} ended early ({proc.returncode}): {log(tmp, rid)}")
        try:
            if len(lineage(url, rid)) >= n:
                return
        except Exception:  # the schema may not exist yet
            pass
        time.sleep(0.2)
    pytest.fail(f"run {rid} did not reach {n} iterations in {timeout} s")


def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_runs_share_a_postgresql_store_readers_do_not_block_and_a_killed_run_resumes(pg_url, tmp_path):
    # two runs start at once on an empty database: one creates the schema, the other waits for it; the
    # same seed runs uninterrupted into SQLite beside them, to compare lineages at the end
    short, long_ = start_run(pg_url, "a", 30, tmp_path), start_run(pg_url, "b", 2000, tmp_path)
    reference = start_run("", "u", 30, tmp_path)
    try:
        wait_for(pg_url, "a", 10, short, tmp_path)
        kill(short)                                   # the controller dies mid-run, work in flight
        wait_for(pg_url, "b", 5, long_, tmp_path)
        n0 = len(lineage(pg_url, "b"))
        readers = [start("list", "--db", pg_url), start("show", "b", "--db", pg_url, "--json"),
                   start("report", "b", "--db", pg_url, "--out", str(tmp_path / "report"))]
        (lc, listed, le), (sc, shown, se), (rc, _, re_) = [finish(p) for p in readers]
        wait_for(pg_url, "b", n0 + 5, long_, tmp_path)          # the run kept committing while they read
    finally:
        kill(long_)
    assert lc == 0, le
    assert {"a", "b"} <= {line.split()[1] for line in listed.splitlines() if line.startswith("│")}
    assert sc == 0 and json.loads(shown)["run"] == "b", se
    assert rc == 0 and (tmp_path / "report" / "index.html").is_file(), re_

    before = lineage(pg_url, "a")
    assert 10 <= len(before) < 31
    r = adrs("resume", "a", "--db", pg_url, timeout=300)
    assert r.returncode == 0, r.stderr
    after = lineage(pg_url, "a")
    assert [x[0] for x in after] == list(range(31))   # none lost, none duplicated
    assert after[:len(before)] == before              # committed work untouched
    # the lineage is the one an uninterrupted run of the same seed wrote into SQLite
    assert reference.wait(timeout=120) == 0, log(tmp_path, "u")
    assert after == lineage(f"sqlite:///{tmp_path / 'u' / 'lineage.db'}", "u")
