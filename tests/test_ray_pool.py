"""The Ray executor: evaluation workers as Ray actors (evolve/run/ray_pool.py, evolve/run/ray_actor.py).

A real two-node Ray cluster on this machine (`ray start --head`, then a second `ray start --address ...` with its
own resource), a run across both nodes, and the second node's raylet killed mid-evaluation; a local Ray started
for a tiny run; and, without Ray, the start-up checks and the configuration errors.

The nodes are stopped by killing their process groups, not with `ray stop`: that kills every Ray process of
this user on the machine, including other clusters and other tests running beside this one.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from evolve import config as cfgmod
from evolve import problem as problem_mod
from evolve.errors import AdrsError
from evolve.run.ray_actor import ActorSetup, EvalActor, NodeInfo, check_sandbox_image, problem_digest
from tests.conftest import ROOT, TOY, adrs

HAVE_RAY = importlib.util.find_spec("ray") is not None   # not imported here: only the tests that use it do
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'adrs[ray]')")
RAY_BIN = Path(sys.executable).parent / "ray"
# Node loss is noticed by missed health checks: every 0.5 s, dead after 3 misses (Ray's defaults are slower).
FAST_HEALTH = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "3",
               "RAY_health_check_initial_delay_ms": "0", "RAY_health_check_timeout_ms": "500",
               "RAY_USAGE_STATS_ENABLED": "0"}
# The test cluster's own token (Ray's token authentication), so that nothing depends on ~/.ray/auth_token,
# which a local `ray.init()` writes: nodes, and this process as their client, all get it from the environment.
AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
NODE = NodeInfo("f" * 56, "10.1.2.3", "gpu-box-7", 4242)


# ---------------------------------------------------------------- without Ray

def test_a_bad_executor_value_is_refused_naming_the_key():
    with pytest.raises(AdrsError, match=r"executor: 'spark' is not one of local, ray, ray://HOST:PORT"):
        cfgmod.build({"executor": "spark"}, "command line")
    with pytest.raises(AdrsError, match="executor: 'ray://head' is not one of"):
        cfgmod.build({"executor": "ray://head"}, "command line")   # the port is missing
    with pytest.raises(AdrsError, match="ray_address: an existing Ray cluster needs executor ray, not 'local'"):
        cfgmod.build({"executor": "local", "ray_address": "auto"}, "command line")
    assert cfgmod.build({"executor": "ray://head.example:10001"}, "x").executor == "ray://head.example:10001"


def test_cli_bad_executor_is_one_line_and_starts_nothing(tmp_path):
    r = adrs("run", str(TOY), "--iterations", "1", "--executor", "slurm", "--runs-dir", str(tmp_path))
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "adrs: error: command line: executor: 'slurm' is not one of local, ray, ray://HOST:PORT"], r.stderr
    r = adrs("run", str(TOY), "--executor", "local", "--ray-address", "auto", "--runs-dir", str(tmp_path))
    assert r.returncode == 1 and "ray_address: an existing Ray cluster needs executor ray, not 'local'" in r.stderr
    assert not list(tmp_path.iterdir())


def test_without_ray_the_executor_says_how_to_install_it(monkeypatch):
    from evolve.run import ray_pool
    monkeypatch.setitem(sys.modules, "ray", None)   # `import ray` now raises ImportError
    with pytest.raises(AdrsError, match=r"pip install 'adrs\[ray\]'"):
        ray_pool.RayWorkerPool(TOY, workers=1)


@needs_ray
def test_an_address_where_no_cluster_listens_fails_at_once():
    from evolve.run.ray_pool import RayWorkerPool
    port = _free_port()   # nothing listens there
    t0 = time.monotonic()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(AdrsError, match=rf"no Ray cluster answers at {re.escape(address)} .*ray start --head"):
            RayWorkerPool(TOY, workers=1, address=address)
    assert time.monotonic() - t0 < 20   # not Ray's own minutes of retries


def test_a_local_run_and_help_never_import_ray(tmp_path):
    code = ("import sys\nfrom evolve.cli.main import main\ntry:\n    main(sys.argv[1:])\nfinally:\n"
            "    print('ray imported:', 'ray' in sys.modules)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for args in (["--help"], ["run", str(TOY), "--iterations", "1", "--runs-dir", str(tmp_path)]):
        r = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
        assert "ray imported: False" in r.stdout, r.stdout + r.stderr


def _with_resources(folder: Path, table: str) -> Path:
    import shutil
    shutil.copytree(TOY, folder)
    with open(folder / "problem.toml", "a") as f:
        f.write(f"\n[resources]\n{table}\n")
    return folder


def test_problem_resources_are_validated(tmp_path):
    spec = problem_mod.load(_with_resources(tmp_path / "a", "cpus = 2\nmemory_mib = 512\ngpus = 0.5"))
    assert spec.resources == problem_mod.Resources(cpus=2.0, memory_mib=512, gpus=0.5)
    assert problem_mod.load(TOY).resources == problem_mod.Resources(1.0, 0, 0.0)
    for table, msg in (("cpu = 1", r"resources.cpu: unknown key .*did you mean 'cpus'"),
                       ("cpus = 0", "resources.cpus: must be positive"),
                       ("memory_mib = -1", "resources.memory_mib: must be >= 0"),
                       ("gpus = 1.5", "resources.gpus: must be >= 0, and a whole number above 1"),
                       ("cpus = 'two'", "resources.cpus: must be float, got str")):
        with pytest.raises(AdrsError, match=msg):
            problem_mod.load(_with_resources(tmp_path / f"p{abs(hash(table))}", table))


def test_a_missing_docker_image_fails_start_up_naming_the_node_and_the_command(monkeypatch):
    """The Docker check on the node is faked: the engine answers, and has no sandbox image."""
    import sandbox.docker
    import sandbox.image

    def no_image(client, packages=(), hint="adrs sandbox build"):
        raise sandbox.image.ImageError(f"no sandbox image for this version of adrs' runner: build it with `{hint}`")

    monkeypatch.setattr(sandbox.docker, "connect", lambda *a, **k: object())
    monkeypatch.setattr(sandbox.image, "find", no_image)
    spec = problem_mod.load(TOY)
    with pytest.raises(AdrsError) as e:
        check_sandbox_image(spec, NODE)
    msg = str(e.value)
    assert "10.1.2.3" in msg and "gpu-box-7" in msg and "node id ffffffffffff" in msg, msg
    assert "run `adrs sandbox build` on gpu-box-7 (10.1.2.3)" in msg, msg
    # ... and it is what an actor on that node reports at start-up, before building any sandbox
    built = []
    actor = EvalActor(ActorSetup(str(TOY), "docker", problem_digest(TOY), _version(),
                                 make_sandbox=lambda spec, kind: built.append(kind)), node=NODE)
    try:
        kind, why = actor.ready()
        assert kind == "error" and "on node 10.1.2.3" in why and "adrs sandbox build" in why, why
        assert built == [] and actor.serve(("isolation",))[0] == "error"
    finally:
        actor.close()


def test_an_actor_refuses_a_node_without_the_controllers_problem(tmp_path):
    missing = EvalActor(ActorSetup(str(tmp_path / "nowhere"), "local", "x", _version()), node=NODE)
    stale = EvalActor(ActorSetup(str(TOY), "local", "0" * 64, _version()), node=NODE)
    try:
        assert "is not on this node" in missing.ready()[1] and "10.1.2.3" in missing.ready()[1]
        assert "differs from the controller's" in stale.ready()[1]
    finally:
        missing.close()
        stale.close()


def _version() -> str:
    from evolve import __version__
    return __version__


# ---------------------------------------------------------------- a real two-node cluster

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    address: str          # the GCS, HOST:PORT
    client: str           # ray://HOST:PORT (Ray Client)
    groups: dict[str, int]  # node -> process group of its `ray start` (every process of that node)

    def raylet_pid(self, node: str) -> int:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            with contextlib.suppress(OSError):
                if os.getpgid(int(pid)) == self.groups[node] and b"raylet/raylet" in \
                        Path(f"/proc/{pid}/cmdline").read_bytes():
                    return int(pid)
        raise AssertionError(f"no raylet for the {node} node")


def _ray_start(args: list[str], tmp: Path) -> tuple[int, str]:
    env = {**os.environ, **FAST_HEALTH, **AUTH, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([str(RAY_BIN), "start", "--disable-usage-stats",
                          f"--temp-dir={tmp}", *args], env=env, cwd=ROOT, start_new_session=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = p.communicate(timeout=120)
    if p.returncode != 0:
        _stop(p.pid)
        raise RuntimeError(f"ray start failed: {out[-2000:]}")
    ip = re.search(r"Local node IP: (\S+)", out)
    # its process group outlives it: the node's daemons stay in it
    return p.pid, ip.group(1) if ip else "127.0.0.1"


def _stop(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not HAVE_RAY or not RAY_BIN.exists():
        pytest.skip("ray is not installed (pip install 'adrs[ray]')")
    import tempfile
    tmp = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    port, client = _free_port(), _free_port()
    groups: dict[str, int] = {}
    try:
        groups["head"], ip = _ray_start(["--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                                         f"--ray-client-server-port={client}"], tmp / "h")
        groups["second"], _ = _ray_start([f"--address={ip}:{port}", "--num-cpus=1", '--resources={"second": 1}'],
                                         tmp / "s")
        yield Cluster(f"{ip}:{port}", f"ray://{ip}:{client}", groups)
    finally:
        for g in groups.values():
            _stop(g)
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


def _slow_toy(folder: Path, delay_s: float) -> Path:
    """The toy problem, each workload taking `delay_s` more, half a CPU per actor (so after a node is lost,
    the head's one CPU has room for the recreated actor)."""
    _with_resources(folder, "cpus = 0.5")
    ev = folder / "evaluator.py"
    marker = "    def evaluate(self, candidate, workload_id: str) -> WorkloadResult:\n"
    ev.write_text(ev.read_text().replace(marker, marker + f"        import time; time.sleep({delay_s})\n"))
    return folder


@needs_ray
@pytest.mark.slow
def test_cli_run_on_an_existing_cluster_by_its_address(cluster, tmp_path):
    prob = _slow_toy(tmp_path / "slow_toy", 0.0)
    r = adrs("run", str(prob), "--iterations", "3", "--eval-slots", "2", "--ray-address", cluster.address,
             "--runs-dir", str(tmp_path), "--run-id", "by-address", "--json", env=AUTH)
    assert r.returncode == 0, r.stderr[-3000:]
    import json
    assert json.loads(r.stdout)["run"] == "by-address"
    with contextlib.closing(sqlite3.connect(tmp_path / "by-address" / "lineage.db")) as con:
        assert '"ray_address": "%s"' % cluster.address in con.execute("select config from runs").fetchone()[0]


@needs_ray
@pytest.mark.slow
def test_a_run_spans_two_nodes_and_survives_losing_one(cluster, tmp_path, monkeypatch):
    for k, v in AUTH.items():
        monkeypatch.setenv(k, v)
    from ray._private.authentication_test_utils import reset_auth_token_state
    reset_auth_token_state()   # Ray read its auth settings when it was imported: read them again
    import ray
    from rich.console import Console
    from evolve.run import session
    from evolve.run.executor import make_workers
    prob = _slow_toy(tmp_path / "slow_toy", 0.2)
    iterations = 10
    cfg = cfgmod.build({"problem": str(prob), "iterations": iterations, "eval_slots": 2, "order": "completion",
                        "executor": cluster.client, "runs_dir": str(tmp_path), "run_id": "r1"}, "test")
    pool = make_workers(cfg)
    killed: list[str] = []
    try:
        second = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and "second" in n["Resources"])
        assert {n.node_id for n in pool.nodes()} == {second, *(n["NodeID"] for n in ray.nodes() if n["Alive"])}

        def kill_second_node_mid_evaluation():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not killed:
                if pool.evaluations_by_node[second] >= 1 and second in {n.node_id for n in pool.in_flight().values()}:
                    os.kill(cluster.raylet_pid("second"), signal.SIGKILL)
                    killed.append(second)
                time.sleep(0.02)

        killer = threading.Thread(target=kill_second_node_mid_evaluation, daemon=True)
        h = session.create(cfg, pool)
        killer.start()
        session.execute(h, pool, None, Console(file=open(os.devnull, "w")), resumed=False)
        killer.join()
        by_node = dict(pool.evaluations_by_node)
        after = {n.node_id for n in pool.nodes() if n is not None}
    finally:
        pool.close()
    assert killed, "the second node never had an evaluation in flight"
    assert by_node.get(second, 0) >= 1 and sum(v for k, v in by_node.items() if k != second) >= 1, by_node
    assert second not in after and after, after   # the lost slot's actor was recreated on the head
    with contextlib.closing(sqlite3.connect(tmp_path / "r1" / "lineage.db")) as con:
        events = [k for (k,) in con.execute("select kind from run_events order by id")]
        iters = sorted(i for (i,) in con.execute("select iteration from attempts"))
        retried = [c for (c,) in con.execute("select content from artifacts where name = 'retried'")]
        infra = con.execute("select count(*) from attempts where reason = 'infrastructure'").fetchone()[0]
        held_out = con.execute("select count(distinct program_id) from metrics where split = 'held-out'").fetchone()[0]
    assert events[-1] == "finished", events
    assert iters == list(range(iterations + 1)), iters          # no program lost
    assert retried or infra, "the evaluation in flight on the lost node was neither retried nor recorded"
    assert all("retried once on a fresh Ray actor" in c and "lost" in c for c in retried), retried
    assert held_out >= 2


@needs_ray
def test_executor_ray_starts_a_local_ray_for_a_tiny_run(tmp_path):
    r = adrs("run", str(TOY), "--iterations", "2", "--eval-slots", "2", "--executor", "ray", "--runs-dir",
             str(tmp_path), "--run-id", "local-ray", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    import json
    doc = json.loads(r.stdout)
    assert doc["run"] == "local-ray"
    with contextlib.closing(sqlite3.connect(tmp_path / "local-ray" / "lineage.db")) as con:
        cfg = con.execute("select config from runs").fetchone()[0]
        n = con.execute("select count(*) from attempts where status = 'ok'").fetchone()[0]
    assert '"executor": "ray"' in cfg and n >= 1


@needs_ray
def test_local_ray_pool_retries_a_lost_actor_but_never_a_failing_candidate():
    from ray._private.authentication_test_utils import reset_auth_token_state
    from evolve.run.ray_pool import RayWorkerPool
    from evolve.run.workers import WorkerStartError
    reset_auth_token_state()   # whatever an earlier test set: this Ray is started with this process's settings
    stages = [("quick", ("w0",))]
    good = (TOY / "initial.py").read_text()
    with RayWorkerPool(TOY, workers=1) as pool:
        assert pool.score(good, stages).ok
        bad = pool.score(good.replace("return [", "raise RuntimeError('mine')\n    return ["), stages)
        assert not bad.ok and bad.reason == "exception" and "retried" not in bad.artifacts, bad
        (node,) = pool.nodes()
        os.kill(node.pid, signal.SIGKILL)              # the actor's process dies between two evaluations
        again = pool.score(good, stages)
        assert again.ok and "retried once on a fresh Ray actor" in again.artifacts["retried"], again
        assert pool.nodes()[0].pid != node.pid and sum(pool.evaluations_by_node.values()) == 3
    # A problem asking more than the machine has: the actor is never placed, and start-up says why.
    with pytest.raises(WorkerStartError, match=r"did not start in 3 s: each needs cpus=1, gpus=64 "
                       r"\(problem.toml \[resources\]\); the cluster has free CPU \d"):
        RayWorkerPool(TOY, workers=1, resources=problem_mod.Resources(gpus=64.0), start_timeout_s=3)


class _FlakyRay:
    """ray's init/shutdown, failing the first `failures` inits as Ray Client does when its server's
    per-client process fails to start."""

    def __init__(self, failures: int) -> None:
        self.failures, self.inits, self.shutdowns = failures, 0, 0

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs) -> None:
        self.inits += 1
        if self.inits <= self.failures:
            raise ConnectionAbortedError("Initialization failure from server:\nTraceback ...\nthe server's reason")

    def shutdown(self) -> None:
        self.shutdowns += 1


@pytest.mark.parametrize("failures, ok", [(1, True), (3, False)])
def test_a_ray_client_connection_that_fails_to_initialise_is_retried(failures, ok, monkeypatch):
    from evolve.run import ray_pool
    monkeypatch.setattr(ray_pool.time, "sleep", lambda s: None)
    with socket.socket() as listening:   # something answers at the address
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        address = "ray://127.0.0.1:%d" % listening.getsockname()[1]
        ray = _FlakyRay(failures)
        if ok:
            assert ray_pool._connect(ray, address, 1) is True
            assert (ray.inits, ray.shutdowns) == (2, 1)   # the half-made client is shut down before a retry
        else:
            with pytest.raises(AdrsError, match=r"after 3 attempts\): ConnectionAbortedError: Initialization "
                                                r"failure from server: \(the server's reason\)"):
                ray_pool._connect(ray, address, 1)
            assert (ray.inits, ray.shutdowns) == (3, 3)
