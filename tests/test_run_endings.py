"""Every way a run can end records a final status in its store: Ctrl-C (SIGINT to the group, as a terminal sends
it), SIGTERM (to the process, as `kill` sends it), SIGHUP (the terminal closed), a closed output pipe (`| head`,
a `| tee` killed first) and an exception. Real `adrs run` subprocesses, as tests/test_engine.py starts them."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from evolve.config import RunConfig
from evolve.run import session
from sandbox.local import LocalSandbox
from tests.conftest import ROOT, TOY


def last_event(db: Path) -> tuple[str, str]:
    con = sqlite3.connect(db)
    try:
        return con.execute("select kind, detail from run_events order by id desc").fetchone()
    finally:
        con.close()


def committed(db: Path) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(db)
    try:
        return con.execute("select count(*) from attempts").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def start(tmp_path: Path, name: str, iterations: int = 400) -> tuple[subprocess.Popen, Path]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "evolve.cli.main", "run", str(TOY), "--iterations", str(iterations),
            "--runs-dir", str(tmp_path), "--run-id", name]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    return proc, tmp_path / name / "lineage.db"


def wait_for_commits(proc: subprocess.Popen, db: Path, n: int = 3) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and committed(db) < n and proc.poll() is None:
        time.sleep(0.2)
    assert committed(db) >= n and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else ""


@pytest.mark.parametrize("sig, group, code, said", [
    (signal.SIGINT, True, 130, "SIGINT"),
    (signal.SIGTERM, False, 143, "SIGTERM"),
    (signal.SIGHUP, True, 129, "SIGHUP"),
])
def test_a_signal_records_interrupted(tmp_path, sig, group, code, said):
    proc, db = start(tmp_path, "s")
    wait_for_commits(proc, db)
    (os.killpg if group else os.kill)(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    kind, detail = last_event(db)
    assert kind == "interrupted" and said in detail and "at iteration" in detail
    if sig != signal.SIGHUP:   # the terminal is gone after a hangup; otherwise say how to go on
        assert "adrs resume" in out


def test_a_closed_output_pipe_records_interrupted(tmp_path):
    proc, db = start(tmp_path, "p", iterations=3)
    assert proc.stdout.readline()       # the first line arrives, then the reader goes away (`| head -1`)
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode == 141, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert "output closed" in err and "adrs resume" in err
    kind, detail = last_event(db)
    assert kind == "interrupted" and "output closed" in detail


def test_an_exception_records_failed(tmp_path, monkeypatch):
    calls = []
    real = session.ProgramScorer

    class Breaking(real):
        def score(self, source, stages):
            calls.append(1)
            if len(calls) > 2:
                raise RuntimeError("scorer broke")
            return super().score(source, stages)

    monkeypatch.setattr(session, "ProgramScorer", Breaking)
    cfg = RunConfig(problem=str(TOY), runs_dir=str(tmp_path), run_id="x", iterations=5, eval_slots=1,
                    proposals_in_flight=1)
    sb = LocalSandbox()
    try:
        h = session.create(cfg, sb)
        with pytest.raises(RuntimeError, match="scorer broke"):
            session.execute(h, sb, None, Console(file=open(os.devnull, "w")), resumed=False)
    finally:
        sb.close()
    kind, detail = last_event(tmp_path / "x" / "lineage.db")
    assert kind == "failed" and detail.startswith("RuntimeError: scorer broke at iteration")


def test_stop_signals_raise_once_and_restore_the_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(session.Stopped) as e:
        with session.stop_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert str(e.value) == "SIGTERM" and session.exit_code(e.value) == 143
    assert signal.getsignal(signal.SIGTERM) == before
