"""The Docker sandbox against a real dockerd: hostile candidates contained with the right reason, engine
faults recorded as infrastructure and retried once, nothing left behind, and the same scores as the local
sandbox. Without a reachable engine and a built image these tests skip, saying why; the unit tests at the
top (options, classification, image recipe, retry) run everywhere."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from evolve import problem
from evolve.errors import AdrsError
from evolve.run.scoring import ProgramScorer
from evolve.search.proposer import Proposer
from sandbox import docker_options as opts
from sandbox import image
from sandbox.base import CandidateError, Limits
from tests.conftest import ROOT, TOY, adrs

SECRET = "sk-adrs-docker-secret-42"
FAST = Limits(call_timeout_s=2.0, workload_timeout_s=20.0, cpu_s=10, memory_mb=512, max_processes=16,
              output_bytes=64 * 1024)


# ---------------------------------------------------------------- without an engine

def test_container_options_are_locked_down(tmp_path):
    hc = opts.host_config(FAST, str(tmp_path))
    assert hc["network_mode"] == "none" and hc["read_only"] is True
    assert hc["cap_drop"] == ["ALL"] and hc["security_opt"] == ["no-new-privileges"]
    assert hc["mem_limit"] == hc["memswap_limit"] == "512m" and hc["pids_limit"] == 17
    assert "size=" in hc["tmpfs"]["/tmp"] and "noexec" in hc["tmpfs"]["/tmp"]
    (mount,) = hc["mounts"]
    assert mount["Source"] == str(tmp_path) and mount["ReadOnly"] is True and mount["Target"] == "/sandbox"
    assert hc["log_config"]["Type"] == "none" and hc["init"] is True
    assert set(opts.ENVIRONMENT) == {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE",
                                     "PYTHONHASHSEED", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                     "MKL_NUM_THREADS"}
    assert opts.USER.split(":")[0] != "0"


@pytest.mark.parametrize("code,oom,over,reason", [
    (137, True, False, "memory_limit"), (3, False, False, "memory_limit"), (128 + 24, False, False, "cpu_limit"),
    (137, False, True, "output_limit"), (70, False, False, "infrastructure"), (None, False, False, "infrastructure"),
    (143, False, False, "crash"), (1, False, False, "crash")])
def test_exit_classification(code, oom, over, reason):
    assert opts.classify_exit(code, oom, FAST, over).reason == reason


def test_image_recipe_helpers(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.py").write_text("x = 1\n")
    d1 = image.tree_digest(tmp_path)
    (tmp_path / "a" / "f.py").write_text("x = 2\n")
    assert image.tree_digest(tmp_path) != d1
    assert image.packages_digest(["b", " a "]) == image.packages_digest(["a", "b"])
    assert len(image.runner_digest()) == 64
    with pytest.raises(image.ImageError, match="no python3 standard library"):
        image.rootfs_python(tmp_path)
    lib = tmp_path / "usr" / "lib" / "python3.11"
    lib.mkdir(parents=True)
    (lib / "os.py").write_text("")
    assert image.rootfs_python(tmp_path) == "3.11"


def _fake_site(root: Path, interpreter: str) -> Path:
    """What `pip install --target` leaves for a package with a console script, run from `interpreter`'s venv."""
    site = root / "adrs" / "site"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (site / "bin").mkdir()
    script = f"#!{interpreter}\nfrom pkg import main\nmain()\n"
    (site / "bin" / "pkg-tool").write_text(script)
    info = site / "pkg-1.0.dist-info"
    info.mkdir()
    (info / "RECORD").write_text(f"pkg/__init__.py,sha256=abc,10\n../../bin/pkg-tool,sha256={hash(script)},"
                                 f"{len(script)}\npkg-1.0.dist-info/RECORD,,\n")
    return site


def test_image_digest_does_not_depend_on_the_host_venv(tmp_path):
    digests = []
    for venv in ("/home/a/checkout/.venv/bin/python", "/srv/ci/clone-2/.venv/bin/python3"):
        site = _fake_site(tmp_path / str(len(digests)), venv)
        image.drop_console_scripts(site)
        assert not (site / "bin").exists()
        assert "bin/" not in (site / "pkg-1.0.dist-info" / "RECORD").read_text()
        assert "pkg/__init__.py" in (site / "pkg-1.0.dist-info" / "RECORD").read_text()
        digests.append(image.tree_digest(site.parent))
    assert digests[0] == digests[1]
    (site / "pkg" / "__init__.py").write_text("VALUE = 2\n")   # what the image does still counts
    assert image.tree_digest(site.parent) != digests[0]


@pytest.mark.slow
def test_image_context_is_the_same_from_two_venvs(tmp_path, monkeypatch):
    """The real pip install of the pinned numpy (it ships console scripts), from this venv and from a second
    one that differs only in its path: the same files, so the same tag and no second build."""
    here = Path(sys.executable)
    other = tmp_path / "second-checkout" / ".venv"
    (other / "bin").mkdir(parents=True)
    (other / "bin" / "python").symlink_to(here.resolve())
    (other / "pyvenv.cfg").write_text((here.parent.parent / "pyvenv.cfg").read_text())
    (other / "lib").symlink_to((here.parent.parent / "lib").resolve())
    digests = []
    for python in (str(here), str(other / "bin" / "python")):
        monkeypatch.setattr(image.sys, "executable", python)
        ctx = tmp_path / f"ctx{len(digests)}"
        try:
            image._context(ctx, (image.numpy_pin(),), "3.11", lambda m: None)
        except image.ImageError as e:
            pytest.skip(f"pip cannot fetch numpy here: {e}")
        digests.append(image.tree_digest(ctx / "adrs"))
        assert not (ctx / "adrs" / "site" / "bin").exists()
    assert digests[0] == digests[1]


def test_problem_declares_image_packages(toy_copy):
    path = toy_copy / "problem.toml"
    path.write_text(path.read_text() + '\n[sandbox]\npackages = ["sortedcontainers==2.4.0"]\n')
    assert problem.load(toy_copy).sandbox_packages == ("sortedcontainers==2.4.0",)
    path.write_text(path.read_text().replace("packages =", "pakages ="))
    with pytest.raises(AdrsError, match="sandbox.pakages: unknown key"):
        problem.load(toy_copy)


class _FlakySandbox:
    """Fails to start `failures` times with an infrastructure error, then runs candidates in-process."""

    def __init__(self, failures: int) -> None:
        self.failures, self.starts = failures, 0

    @contextlib.contextmanager
    def start(self, source, limits, entries=()):
        from sandbox.inprocess import InProcessCandidate
        self.starts += 1
        if self.starts <= self.failures:
            raise CandidateError("infrastructure", "the Docker engine stopped")
        yield InProcessCandidate(source, entries=entries)


@pytest.mark.parametrize("failures,status", [(1, "ok"), (2, "failed")])
def test_infrastructure_failure_is_retried_once(failures, status):
    spec = problem.load(TOY)
    sb = _FlakySandbox(failures)
    # one workload: every workload starts its own candidate, and this counts the starts of one
    out = ProgramScorer(spec, sb).score(spec.initial_source(), [("train", spec.workloads.train[:1])])
    assert out.status == status and sb.starts == 2
    assert "retried once" in out.artifacts["retried"]
    if status == "failed":
        assert out.reason == "infrastructure" and "also on the retry" in out.message


# ---------------------------------------------------------------- against a real engine

def _engine_or_skip():
    from sandbox.docker import SandboxUnavailable, connect
    try:
        client = connect(timeout_s=60)
        image.find(client)
    except (SandboxUnavailable, image.ImageError) as e:
        pytest.skip(f"Docker sandbox not available here: {e}")
    return client


@pytest.fixture(scope="module")
def client():
    return _engine_or_skip()


@pytest.fixture(scope="module")
def sb(client):
    from sandbox.docker import DockerSandbox
    os.environ["OPENAI_API_KEY"] = SECRET  # before the sandbox exists: it must still not leak
    box = DockerSandbox(limits=FAST, pool_size=2, client=client)
    yield box
    owner = box.owner
    box.close()
    os.environ.pop("OPENAI_API_KEY", None)
    assert _ours(client, owner) == [], "containers left behind after close()"


def _ours(client, owner: str) -> list:
    return client.api.containers(all=True, filters={"label": f"{opts.OWNER_LABEL}={owner}"})


def _gone(client, cid: str, timeout_s: float = 20.0) -> bool:
    import docker.errors
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            client.api.inspect_container(cid)
        except docker.errors.NotFound:
            return True
        time.sleep(0.1)
    return False


def src(text: str) -> str:
    return textwrap.dedent(text)


def fails(sb, source: str, limits: Limits = FAST, *args) -> CandidateError:
    """Run f() in a fresh container, expect a CandidateError; check the container is removed and the
    sandbox still serves the next candidate."""
    with pytest.raises(CandidateError) as info:
        with sb.start(src(source), limits) as cand:
            cid = cand.container_id
            cand.call("f", *args)
    assert _gone(sb.client, cid), f"container {cid[:12]} left behind"
    with sb.start("def ok(x):\n    return x + 1\n", FAST) as cand:
        assert cand.call("ok", 41) == 42
    return info.value


def test_normal_candidate_output_and_fresh_container(sb):
    source = "import os\nprint('at import')\ndef f(x):\n    open('/tmp/mark', 'a').write('x')\n" \
             "    print('in f')\n    return [x * 2, os.path.getsize('/tmp/mark'), os.getuid()]\n"
    for _ in range(2):  # the second candidate must not see the first one's /tmp
        with sb.start(source, FAST) as cand:
            assert cand.call("f", 21) == [42, 1, 65534]
            assert cand.round_trip_s() < 0.01
    assert cand.artifacts.stdout == "at import\nin f\n"


def test_missing_entry_functions_are_an_import_error(sb):
    source = "def init(n):\n    return n\ndef step():\n    return 1\n"
    with pytest.raises(CandidateError) as info:
        with sb.start(source, FAST, ("init", "on_arrival", "step")):
            pass
    assert info.value.reason == "import_error"
    assert info.value.message == "the candidate defines no function 'on_arrival' (required: init, on_arrival, step)"
    with sb.start(source, FAST, ("init", "step")) as cand:
        assert cand.call("init", 5) == 5


def test_timed_empty_call_measures_about_zero(sb):
    import statistics
    with sb.start("def f():\n    return None\ndef spin(s):\n    import time\n    t = time.perf_counter()\n"
                  "    while time.perf_counter() - t < s:\n        pass\n", FAST) as cand:
        _, times = cand.timed_call("f", repeats=400)
        rtt = cand.round_trip_s()
        assert 0 < rtt < 0.01 and statistics.median(times) < 0.5 * rtt
        calls, spent = cand.calls, cand.decision_s
        cand.call("spin", 0.01)
        assert cand.calls == calls + 1 and 0.0099 <= cand.decision_s - spent < 0.1


def test_state_deltas_rebuild_the_tables(sb):
    import numpy as np
    from evaluators.state import DeltaTable
    rng = np.random.default_rng(4)
    table, ids, next_id = DeltaTable("queue"), np.arange(50), 50
    with sb.start("def echo(q):\n    return [q, q['id'].flags.writeable]\n", FAST) as cand:
        for _ in range(40):
            ids = np.concatenate((ids[rng.random(len(ids)) > 0.1], np.arange(next_id, next_id + 5)))
            next_id += 5
            t = {"id": ids, "x": rng.normal(size=len(ids)), "k": (ids % 7).astype(np.int8)}
            got, writeable = cand.call("echo", table.encode(t))
            assert not writeable and list(got) == ["id", "x", "k"]
            assert all(got[k].dtype == t[k].dtype and got[k].tobytes() == t[k].tobytes() for k in t)


def test_loop_forever_is_killed_at_the_call_timeout(sb):
    t0 = time.monotonic()
    err = fails(sb, "def f():\n    while True: pass\n")
    assert err.reason == "timeout" and time.monotonic() - t0 < FAST.call_timeout_s + 5


def test_sleep_past_the_timeout(sb):
    err = fails(sb, "import time\ndef f():\n    time.sleep(60)\n")
    assert err.reason == "timeout" and "per-call limit" in err.message


def test_cpu_limit(sb):
    err = fails(sb, "def f():\n    while True: pass\n", Limits(call_timeout_s=10, cpu_s=1))
    assert err.reason == "cpu_limit"


def test_fork_bomb(sb):
    err = fails(sb, """
        import os
        def f():
            while True:
                os.fork()
        """)
    assert err.reason == "process_limit"


@pytest.mark.parametrize("body", ["x = []\n    while True: x.append(bytearray(1 << 20))",
                                  "import numpy as np\n    return np.ones((1 << 40,))"])
def test_memory_without_bound(sb, body):
    assert fails(sb, f"def f():\n    {body}\n").reason == "memory_limit"


@pytest.mark.parametrize("body", ["open('/tmp/big', 'wb').write(b'x' * (1 << 20))",
                                  "[open(f'/tmp/f{i}', 'wb').write(b'x' * 32768) for i in range(100000)]"])
def test_fill_tmp(sb, body):
    assert fails(sb, f"def f():\n    {body}\n").reason == "output_limit"


def test_flood_stdout(sb):
    with pytest.raises(CandidateError) as info:
        with sb.start("def f():\n    while True: print('y' * 1000)\n", FAST) as cand:
            cand.call("f")
    assert info.value.reason == "output_limit"
    art = info.value.artifacts
    assert art.truncated and len(art.stdout) < 64 * 1024


def test_network_is_unreachable(sb):
    err = fails(sb, """
        import socket
        def f():
            names = [n for _, n in socket.if_nameindex()]
            assert names == ["lo"], names
            socket.create_connection(("172.17.0.1", 2375), timeout=3)
        """)
    assert err.reason == "exception" and "unreachable" in err.message.lower()


def test_host_files_and_secrets_are_out_of_reach(sb, tmp_path):
    host_file = tmp_path / "secret.txt"
    host_file.write_text(SECRET)
    host_file.chmod(0o644)
    err = fails(sb, "def f(path):\n    return open(path).read()\n", FAST, str(host_file))
    assert err.reason == "exception" and "FileNotFoundError" in err.message
    err = fails(sb, "import os\ndef f():\n    return os.environ['OPENAI_API_KEY']\n")
    assert err.reason == "exception" and "KeyError" in err.message
    with sb.start(src("""
            import os
            def f():
                seen = open('/proc/1/environ', 'rb').read().decode(errors='replace')
                return seen + ''.join(os.environ.values()) + ' '.join(os.listdir('/'))
            """), FAST) as cand:
        seen = cand.call("f")
    assert SECRET not in seen and "root" in seen and "work" not in seen.split()


def test_kill_pid_1(sb):
    err = fails(sb, """
        import os, signal, time
        def f():
            os.kill(1, signal.SIGKILL)   # ignored: init of its own pid namespace
            os.kill(1, signal.SIGTERM)   # docker-init passes it on to the runner, which dies
            time.sleep(5)
        """)
    assert err.reason == "crash" and "SIGTERM" in err.message
    assert os.path.exists("/proc/1")


def test_container_removed_under_a_candidate_is_infrastructure(sb):
    with pytest.raises(CandidateError) as info:
        with sb.start("import time\ndef f():\n    time.sleep(30)\n", FAST) as cand:
            sb.client.api.remove_container(cand.container_id, force=True)
            cand.call("f")
    assert info.value.reason == "infrastructure"


def test_container_cannot_be_created_midrun_is_infrastructure_and_retried(client):
    """A pool whose image disappears: the pre-started container still serves, later ones cannot be
    created; the evaluator records infrastructure (retried once) and recovers when the image is back."""
    from sandbox.docker import DockerSandbox
    info = image.find(client)
    tmp_tag = "adrs-sandbox-test:vanishing"
    client.images.get(info.tag).tag(tmp_tag)
    spec = problem.load(TOY)
    box = DockerSandbox(image=tmp_tag, client=client, pool_size=1, limits=spec.limits)
    try:
        scorer = ProgramScorer(spec, box)
        stages = [("train", spec.workloads.train[:1])]  # one workload: one candidate, one container
        time.sleep(1.0)  # the one pooled container is up
        client.images.remove(tmp_tag)
        first = scorer.score(spec.initial_source(), stages)
        second = scorer.score(spec.initial_source(), stages)
        client.images.get(info.tag).tag(tmp_tag)
        third = scorer.score(spec.initial_source(), stages)
        fourth = scorer.score(spec.initial_source(), stages)
    finally:
        box.close()
        try:
            client.images.remove(tmp_tag)
        except Exception:  # noqa: BLE001
            pass
    assert first.ok
    assert second.reason == "infrastructure" and "retried once" in second.artifacts["retried"]
    assert "image" in second.message.lower() or "no such" in second.message.lower()
    assert third.ok or third.reason == "infrastructure"  # the pool may still hold one stale failure
    assert fourth.ok


def test_isolation_is_reported(sb):
    info = sb.isolation()
    assert info["image"].startswith("adrs-sandbox:") and info["image_id"].startswith("sha256:")
    assert info["candidate_interfaces"] == "lo" and info["candidate_uid"] == "65534"
    assert "OPENAI_API_KEY" not in info["candidate_env_keys"]


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
        while time.monotonic() < deadline and not (_of_pids(client, pids) and _attempts(db)):
            pids |= _process_tree(proc.pid)  # the run has started iterating: candidates are in flight
            time.sleep(0.2)
        pids |= _process_tree(proc.pid)
        assert _of_pids(client, pids), "the run should have sandbox containers"
        os.killpg(proc.pid, sig)
        out, err = proc.communicate(timeout=60)
        if sig == signal.SIGINT:
            assert proc.returncode == 130 and "adrs resume" in out and "Traceback" not in err, err
            assert _of_pids(client, pids) == [], "containers left after Ctrl-C"
            continue
        deadline = time.monotonic() + 20
        while _of_pids(client, pids) and time.monotonic() < deadline:
            # nothing ran at exit: the next sandbox on this host sweeps the orphans (repeatedly here, as a
            # create request in flight at the kill may complete after a sweep)
            remove_orphans(client, socket.gethostname())
            time.sleep(0.2)
        assert _of_pids(client, pids) == [], "containers of a killed run not swept"
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


def _process_tree(pid: int) -> set[int]:
    """`pid` and every live descendant, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = set(), [pid]
    while todo:
        p = todo.pop()
        tree.add(p)
        todo += children.get(p, [])
    return tree


def _of_pids(client, pids: set[int]) -> list:
    """Our sandbox containers made by any of `pids`."""
    found = client.api.containers(all=True, filters={"label": f"{opts.LABEL}=1"})
    return [c for c in found if str((c.get("Labels") or {}).get(opts.PID_LABEL)) in {str(p) for p in pids}]


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
    runs = {}
    for backend in ("local", "docker"):
        r = adrs("run", str(eplb), "--iterations", "6", "--seed", "1", "--runs-dir", str(tmp_path),
                 "--run-id", backend, "--sandbox", backend, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        runs[backend] = tmp_path / backend / "lineage.db"
    local = _scores(runs["local"], skip_metric="runtime_ms")
    assert len(local) > 50 and _scores(runs["docker"], skip_metric="runtime_ms") == local


@pytest.mark.slow
def test_toy_run_scores_the_same_under_docker_and_local(client, tmp_path):
    runs = {}
    for backend in ("local", "docker"):
        r = adrs("run", str(TOY), "--iterations", "12", "--seed", "3", "--runs-dir", str(tmp_path),
                 "--run-id", backend, "--sandbox", backend, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        runs[backend] = tmp_path / backend / "lineage.db"
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
    assert _ours(client, owner) == []
