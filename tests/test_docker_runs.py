"""Whole runs under the Docker sandbox: Ctrl-C and kill -9 leave nothing behind, the same scores as the local
sandbox, and a run of hostile children is contained and goes on. Skipped, saying why, without an engine."""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evolve import problem
from evolve.run.scoring import ProgramScorer
from evolve.search.proposer import Proposer
from sandbox import docker_options as opts
from tests.conftest import ROOT, TOY, adrs
from tests.docker_engine import SECRET, engine_or_skip, of_pids, ours, process_tree


@pytest.fixture(scope="module")
def client():
    return engine_or_skip()


@pytest.mark.slow
def test_ctrl_c_and_kill_9_leave_nothing_behind(client, tmp_path):
    """`adrs run --sandbox docker` stopped by Ctrl-C (SIGINT to its process group, as a terminal does)
    removes every container before it exits; after kill -9 the next sandbox on the host removes them.
    The containers are made by the run's worker processes, so they are found by the run's process tree."""
    import glob
    import tempfile
    from sandbox.docker import ROOT_PREFIX, remove_orphan_folders, remove_orphans
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for sig in (signal.SIGINT, signal.SIGKILL):
        args = [sys.executable, "-m", "evolve.cli.main", "run", str(TOY), "--sandbox", "docker", "--iterations",
                "100000", "--runs-dir", str(tmp_path), "--run-id", sig.name]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        pids = {proc.pid}
        db = tmp_path / sig.name / "lineage.db"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (of_pids(client, pids) and _attempts(db)):
            pids |= process_tree(proc.pid)  # the run has started iterating: candidates are in flight
            time.sleep(0.2)
        pids |= process_tree(proc.pid)
        assert of_pids(client, pids), "the run should have sandbox containers"
        os.killpg(proc.pid, sig)
        out, err = proc.communicate(timeout=60)
        if sig == signal.SIGINT:
            assert proc.returncode == 130 and "adrs resume" in out and "Traceback" not in err, err
            assert of_pids(client, pids) == [], "containers left after Ctrl-C"
            continue
        deadline = time.monotonic() + 20
        while of_pids(client, pids) and time.monotonic() < deadline:
            # nothing ran at exit: the next sandbox on this host sweeps the orphans (repeatedly here, as a
            # create request in flight at the kill may complete after a sweep)
            remove_orphans(client, socket.gethostname())
            time.sleep(0.2)
        assert of_pids(client, pids) == [], "containers of a killed run not swept"
        # a sandbox made by a worker keeps its folder in the worker's own TMPDIR, which the worker pool
        # cleans up; any left directly in the temp dir are the next sandbox's to remove
        left = [f for p in pids for f in glob.glob(os.path.join(tempfile.gettempdir(), f"{ROOT_PREFIX}{p}-*"))]
        remove_orphan_folders()
        assert not [f for f in left if os.path.exists(f)]


def test_folders_of_dead_sandboxes_are_removed(tmp_path, monkeypatch):
    import tempfile
    from sandbox.docker import ROOT_PREFIX, remove_orphan_folders
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone, alive = tmp_path / f"{ROOT_PREFIX}{dead.pid}-x", tmp_path / f"{ROOT_PREFIX}{os.getpid()}-x"
    for folder in (gone, alive):
        (folder / "slot").mkdir(parents=True)
    remove_orphan_folders()
    assert not gone.exists() and alive.exists()


def _attempts(db: Path) -> int:
    try:
        con = sqlite3.connect(db)
        try:
            return con.execute("select count(*) from attempts").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _scores(db: Path, skip_metric: str = "") -> list[tuple]:
    """Every deterministic metric and attempt; decision time (measured, so noisy) and `skip_metric` left out."""
    from evaluators.base import DECISION_METRIC
    con = sqlite3.connect(db)
    # baselines are scored afresh by every run and are not lineage; EPLB's ILP baseline is time-limited,
    # so its answer depends on the machine's load
    rows = con.execute("select e.program_id, e.workload, e.split, e.metric, e.value from metrics e "
                       "join programs p on p.id = e.program_id where p.kind != 'baseline' and "
                       "e.metric not in (?, ?) order by e.program_id, e.split, e.workload, e.metric",
                       (skip_metric, DECISION_METRIC)).fetchall()
    lineage = con.execute("select iteration, status, reason from attempts order by iteration").fetchall()
    con.close()
    return rows + lineage


def _run_under_both(problem_dir, iterations: int, seed: int, tmp_path) -> dict:
    """The same run under the local and the Docker sandbox (one runs folder: the reference cache keys on the
    sandbox kind, so each measures its own initial program and baselines); backend -> lineage.db."""
    runs = {}
    for backend in ("local", "docker"):
        r = adrs("run", str(problem_dir), "--iterations", str(iterations), "--seed", str(seed), "--runs-dir",
                 str(tmp_path), "--run-id", backend, "--sandbox", backend, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        runs[backend] = tmp_path / backend / "lineage.db"
    return runs


@pytest.mark.slow
def test_eplb_run_scores_the_same_under_docker_and_local(client, tmp_path):
    """The bundled default problem, with its runtime term off (runtime is measured, so never identical):
    the same lineage and every deterministic metric equal, program by program, workload by workload."""
    import shutil
    from sandbox.image import ImageError, find
    try:   # the problem's image carries scipy (its MoETuner-style baseline): .ci/run builds it
        find(client, problem.load("eplb").sandbox_packages)
    except ImageError as e:
        pytest.skip(str(e))
    eplb = tmp_path / "eplb"
    shutil.copytree(ROOT / "problems" / "eplb", eplb)
    toml = eplb / "problem.toml"
    toml.write_text(toml.read_text().replace("runtime_weight = 0.1", "runtime_weight = 0.0"))
    runs = _run_under_both(eplb, 6, 1, tmp_path)
    local = _scores(runs["local"], skip_metric="runtime_ms")
    assert len(local) > 50 and _scores(runs["docker"], skip_metric="runtime_ms") == local


@pytest.mark.slow
def test_toy_run_scores_the_same_under_docker_and_local(client, tmp_path):
    runs = _run_under_both(TOY, 12, 3, tmp_path)
    assert _scores(runs["docker"]) == _scores(runs["local"])
    con = sqlite3.connect(runs["docker"])
    (iso,) = con.execute("select isolation from runs").fetchone()
    con.close()
    iso = json.loads(iso)
    assert iso["image"].startswith("adrs-sandbox:") and iso["image_digest"]
    left = client.api.containers(all=True, filters={"label": f"{opts.LABEL}=1"})
    dead = [c["Id"][:12] for c in left if not Path(f"/proc/{c['Labels'][opts.PID_LABEL]}").exists()]
    assert dead == [], f"containers of finished adrs processes left behind: {dead}"


HOSTILE = {  # iteration -> (expected reason, body of predict(xs))
    1: ("timeout", "    while True:\n        pass\n"),
    2: ("process_limit", "    import os\n    while True:\n        os.fork()\n"),
    3: ("memory_limit", "    x = []\n    while True:\n        x.append(bytes(1 << 24))\n"),
    4: ("output_limit", "    for i in range(100000):\n        open(f'/tmp/f{i}', 'wb').write(b'x' * 32768)\n"),
    5: ("output_limit", "    while True:\n        print('flood' * 1000)\n"),
    6: ("exception", "    import socket\n    socket.create_connection(('172.17.0.1', 2375), timeout=2)\n"),
    7: ("exception", "    return [float(len(open('HOSTFILE').read()))] * len(xs)\n"),
    8: ("exception", "    import os\n    return [float(len(os.environ['OPENAI_API_KEY']))] * len(xs)\n"),
    9: ("crash", "    import os, signal, time\n    os.kill(1, signal.SIGTERM)\n    time.sleep(5)\n"),
    10: ("timeout", "    import time\n    time.sleep(60)\n"),
    11: ("ok", "    return [3 * x * x - 2 * x + 1.5 for x in xs]\n"),
}


class _ScriptedProposer(Proposer):
    name = "scripted"

    def __init__(self, host_file: str) -> None:
        self.host_file = host_file

    async def propose(self, ctx):
        from evolve.search.edits import FullRewrite
        from evolve.search.proposer import Proposal
        body = HOSTILE[ctx.iteration][1].replace("HOSTFILE", self.host_file)
        source = "import math\n\n# EVOLVE-BLOCK-START\ndef predict(xs):\n" + body + "# EVOLVE-BLOCK-END\n"
        return Proposal(edit=FullRewrite(source), description=f"hostile {ctx.iteration}")


@pytest.mark.slow
def test_hostile_run_is_contained_and_goes_on(client, tmp_path, toy_copy, monkeypatch):
    """A whole run whose children are hostile, under --sandbox docker: each recorded with its reason, the
    run reaches its last iteration, no secret reaches the store, no container is left."""
    import asyncio
    from evolve.run import session
    from evolve.config import RunConfig
    from evolve.run.controller import Controller
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    text = (toy_copy / "problem.toml").read_text().replace("call_timeout_s = 5", "call_timeout_s = 2")
    (toy_copy / "problem.toml").write_text(text)
    host_file = tmp_path / "host-secret.txt"
    host_file.write_text(SECRET)
    spec = problem.load(toy_copy)
    cfg = RunConfig(problem=str(toy_copy), runs_dir=str(tmp_path), run_id="h", iterations=len(HOSTILE),
                    eval_slots=2, proposals_in_flight=1, sandbox="docker")
    sb = session.make_sandbox(cfg, spec)
    owner = sb.owner
    try:
        h = session.create(cfg, sb)
        ctl = Controller(spec, h.cfg, h.store, h.run_id, _ScriptedProposer(str(host_file)),
                         ProgramScorer(spec, sb).score)
        asyncio.run(ctl.run())
    finally:
        sb.close()
    con = sqlite3.connect(tmp_path / "h" / "lineage.db")
    rows = dict(((i, (s, r)) for i, s, r in con.execute("select iteration, status, reason from attempts")))
    con.close()
    for i, (want, _) in HOSTILE.items():
        got = rows[i][0] if rows[i][0] == "ok" else rows[i][1]
        assert got == want, (i, rows[i])
    assert SECRET.encode() not in (tmp_path / "h" / "lineage.db").read_bytes()
    assert ours(client, owner) == []
