"""The loop end to end on the toy problem, through the real local sandbox and a SQLite store."""
import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from evolve import problem
from evolve.run import session
from evolve.config import RunConfig
from evolve.run.controller import Controller
from evolve.search.edits import FullRewrite
from evolve.run.scoring import ProgramScorer
from evolve.search.proposer import Proposal, Proposer
from sandbox.local import LocalSandbox
from tests.conftest import ROOT, TOY


def lineage(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    rows = con.execute(
        "select a.iteration, a.parent_id, a.status, a.reason, p.id, p.source, p.score, p.island "
        "from attempts a left join programs p on p.id = a.program_id order by a.iteration").fetchall()
    con.close()
    return rows


def run_toy(tmp_path: Path, name: str, **kw) -> Path:
    cfg = RunConfig(problem=str(TOY), runs_dir=str(tmp_path), run_id=name, **kw)
    sb = LocalSandbox()
    try:
        h = session.create(cfg, sb)
        session.execute(h, sb, None, Console(file=open(os.devnull, "w")), resumed=False)
    finally:
        sb.close()
    return tmp_path / name / "lineage.db"


def test_run_improves_and_scores_finalists(tmp_path):
    db = run_toy(tmp_path, "r", iterations=40, seed=1)
    rows = lineage(db)
    assert [r[0] for r in rows] == list(range(41))          # every iteration exactly once
    con = sqlite3.connect(db)
    init = con.execute("select score from programs where kind='initial'").fetchone()[0]
    best = con.execute("select max(score) from programs where kind='child' and status='ok'").fetchone()[0]
    assert best > init                                       # the offline mutator found something better
    base = con.execute("select name, status from programs where kind='baseline'").fetchall()
    assert base == [("exact", "ok")]
    ho = con.execute("select count(distinct program_id) from metrics where split='held-out'").fetchone()[0]
    assert ho >= 2                                           # initial, best, baseline on held-out
    events = [e for (e,) in con.execute("select kind from run_events order by id")]
    assert events[0] == "started" and events[-1] == "finished"


def test_same_seed_same_lineage_with_work_in_flight(tmp_path):
    kw = dict(iterations=24, seed=7, eval_slots=2, proposals_in_flight=2)
    a = lineage(run_toy(tmp_path, "a", **kw))
    b = lineage(run_toy(tmp_path, "b", **kw))
    assert len(a) == 25 and a == b
    c = lineage(run_toy(tmp_path, "c", **{**kw, "seed": 8}))
    assert c != a                                            # the seed matters


@pytest.mark.slow
def test_resume_after_sigkill_loses_and_duplicates_nothing(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "evolve.cli.main", "run", str(TOY), "--iterations", "60", "--seed", "5",
            "--runs-dir", str(tmp_path), "--run-id", "k"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    db = tmp_path / "k" / "lineage.db"
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.2)
        if db.exists():
            try:
                if len(lineage(db)) >= 15:
                    break
            except sqlite3.Error:
                pass
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = lineage(db)
    assert 15 <= len(before) < 61, proc.stderr.read()
    r = subprocess.run([sys.executable, "-m", "evolve.cli.main", "resume", str(tmp_path / "k")], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    after = lineage(db)
    assert [x[0] for x in after] == list(range(61))          # none lost, none duplicated
    assert after[:len(before)] == before                     # committed work untouched
    # and the resumed run is the run that would have happened without the kill
    assert after == lineage(run_toy(tmp_path, "u", iterations=60, seed=5))


HOSTILE = {
    1: ("timeout", "    while True:\n        pass\n"),
    2: ("memory_limit", "    x = bytearray(8 << 30)\n    return [0.0] * len(xs)\n"),
    3: (("process_limit", "timeout"), "    import os\n    while True:\n        os.fork()\n"),
    4: ("output_limit", "    while True:\n        print('flood' * 1000)\n"),
    5: ("ok", "    import os, sys\n    sys.stderr.write(repr(dict(os.environ)))\n"
              "    return [3 * x * x - 2 * x + 1 for x in xs]\n"),
    6: ("exception", "    import socket\n    socket.create_connection(('127.0.0.1', PORT), timeout=2)\n"
                     "    return [0.0] * len(xs)\n"),
    7: ("invalid_output", "    return ['not', 'numbers']\n"),
    8: ("ok", "    return [3 * x * x - 2 * x + 1.5 for x in xs]\n"),
}


class ScriptedProposer(Proposer):
    name = "scripted"

    def __init__(self, port: int) -> None:
        self.port = port

    async def propose(self, ctx):
        body = HOSTILE[ctx.iteration][1].replace("PORT", str(self.port))
        src = "import math\n\n# EVOLVE-BLOCK-START\ndef predict(xs):\n" + body + "# EVOLVE-BLOCK-END\n"
        return Proposal(edit=FullRewrite(src), description=f"hostile {ctx.iteration}")


@pytest.mark.slow
def test_hostile_candidates_are_contained_and_the_run_goes_on(tmp_path, toy_copy, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-adrs-test-secret-123")
    text = (toy_copy / "problem.toml").read_text().replace("call_timeout_s = 5", "call_timeout_s = 2")
    (toy_copy / "problem.toml").write_text(text)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except OSError:
                pass
    threading.Thread(target=serve, daemon=True).start()
    spec = problem.load(toy_copy)
    cfg = RunConfig(problem=str(toy_copy), runs_dir=str(tmp_path), run_id="h", iterations=len(HOSTILE),
                    eval_slots=2, proposals_in_flight=1)
    sb = LocalSandbox()
    isolation = sb.isolation()
    try:
        h = session.create(cfg, sb)
        ctl = Controller(spec, h.cfg, h.store, h.run_id, ScriptedProposer(server.getsockname()[1]),
                         ProgramScorer(spec, sb).score)
        asyncio.run(ctl.run())
    finally:
        sb.close()
        stop.set()
    rows = {r[0]: r for r in lineage(tmp_path / "h" / "lineage.db")}
    for i, (want, _) in HOSTILE.items():
        got = rows[i][2] if rows[i][2] == "ok" else rows[i][3]
        assert got in (want if isinstance(want, tuple) else (want,)), (i, rows[i])
    if isolation.get("network") == "netns":
        assert accepted == []
    dump = (tmp_path / "h" / "lineage.db").read_bytes()
    assert b"sk-adrs-test-secret-123" not in dump


def _descendants(root: int) -> set[int]:
    """Every live process under `root` (the zygote and its candidates included), from /proc."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(name))
    out, todo = set(), [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for p in pids:
        try:
            if "zombie" not in Path(f"/proc/{p}/status").read_text():
                alive.add(p)
        except OSError:
            pass
    return alive


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_resume_finishes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "evolve.cli.main", "run", str(TOY), "--iterations", "400", "--seed", "2",
            "--runs-dir", str(tmp_path), "--run-id", "c"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    db = tmp_path / "c" / "lineage.db"
    deadline = time.time() + 120
    while time.time() < deadline and not (db.exists() and len(lineage(db)) >= 10):
        time.sleep(0.2)
    under = _descendants(proc.pid)
    assert under, "the run should have a sandbox fork server running"
    os.killpg(proc.pid, signal.SIGINT)           # what a terminal does on Ctrl-C: the whole group
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "adrs resume" in out and "Traceback" not in err
    con = sqlite3.connect(db)
    assert con.execute("select kind from run_events order by id desc").fetchone()[0] == "interrupted"
    con.close()
    deadline = time.time() + 15                  # the fork server exits on EOF; give it a moment under load
    while _alive(under) and time.time() < deadline:
        time.sleep(0.2)
    assert _alive(under) == set()                # no fork server or candidate left running
    before = lineage(db)
    assert [x[0] for x in before] == list(range(len(before)))
    r = subprocess.run([sys.executable, "-m", "evolve.cli.main", "resume", str(tmp_path / "c"), "--iterations",
                        str(len(before) + 10)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    after = lineage(db)
    assert after[:len(before)] == before and [x[0] for x in after] == list(range(len(before) + 11))


def test_wall_time_budget_stops_the_search(tmp_path):
    t0 = time.monotonic()
    db = run_toy(tmp_path, "w", iterations=100_000, max_wall_time_s=2.0)
    assert time.monotonic() - t0 < 30
    con = sqlite3.connect(db)
    kind, detail = con.execute("select kind, detail from run_events order by id desc").fetchone()
    assert (kind, detail) == ("finished", "max_wall_time")
    n = con.execute("select count(*) from attempts").fetchone()[0]
    assert 1 < n < 100_000
    # the finalists were still scored on held-out
    assert con.execute("select count(*) from metrics where split='held-out'").fetchone()[0] > 0
