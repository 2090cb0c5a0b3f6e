"""The local sandbox against real processes: results, limits, failures, isolation, cleanup (decision timing:
test_sandbox_timing.py)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sandbox.base import CandidateError, Limits
from sandbox.local import LocalSandbox
from sandbox.uids import processes_of_uid

SECRET = "sk-test-secret"
AS_ROOT = os.geteuid() == 0
FAST = Limits(call_timeout_s=2.0, workload_timeout_s=10.0, cpu_s=10, memory_mb=512, max_processes=16,
              output_bytes=64 * 1024)


@pytest.fixture(scope="module")
def sb():
    os.environ["OPENAI_API_KEY"] = SECRET  # before the sandbox exists: it must still not leak
    box = LocalSandbox()
    yield box
    box.close()
    os.environ.pop("OPENAI_API_KEY", None)


def src(text: str) -> str:
    return textwrap.dedent(text)


def fails(sb, source: str, limits: Limits = FAST, fn: str = "f", *args) -> CandidateError:
    """Run `fn` in a fresh candidate, expect a CandidateError, and check the sandbox still works after."""
    with pytest.raises(CandidateError) as info:
        with sb.start(source, limits) as cand:
            cand.call(fn, *args)
    assert_healthy(sb)
    return info.value


def assert_healthy(sb) -> None:
    with sb.start("def ok(x):\n    return x + 1\n", FAST) as cand:
        assert cand.call("ok", 41) == 42


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] == "Z"  # a zombie is dead too
    except FileNotFoundError:
        return True


def wait_gone(pid: int, timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return gone(pid)


# ---------------------------------------------------------------- success

def test_normal_candidate_returns_numpy(sb):
    source = src("""
        import numpy as np
        def place(load, n):
            print("placing", n)
            return np.argsort(load)[::-1][:n].astype(np.int32), {"total": float(load.sum())}, (1, "x")
    """)
    load = np.array([3.0, 1.0, 7.0, 5.0])
    with sb.start(source, FAST) as cand:
        order, stats, tup = cand.call("place", load, 2)
        assert order.dtype == np.int32 and order.tolist() == [2, 3]
        assert stats == {"total": 16.0} and tup == [1, "x"]
        result, times = cand.timed_call("place", load, 3, repeats=5)
        assert result[0].tolist() == [2, 3, 0] and len(times) == 5 and all(t >= 0 for t in times)
        assert 0 < cand.round_trip_s() < 0.01
        workdir = cand.workdir
    assert "placing 2" in cand.artifacts.stdout
    assert not os.path.exists(workdir)


def test_concurrent_candidates_from_threads(sb):
    source = "import time\ndef f(x):\n    time.sleep(0.4)\n    return x * 2\n"
    results, errors = {}, []

    def run(i: int) -> None:
        try:
            with sb.start(source, FAST) as cand:
                results[i] = cand.call("f", i)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    t0 = time.monotonic()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == {i: 2 * i for i in range(4)}
    assert time.monotonic() - t0 < 1.4  # they ran side by side, not one after another


# ---------------------------------------------------------------- failures of the candidate's own making

def test_import_error_keeps_artifacts(sb):
    err = fails(sb, "print('before')\nimport no_such_module_xyz\n")
    assert err.reason == "import_error" and "no_such_module_xyz" in err.message
    assert "before" in err.artifacts.stdout


def test_missing_function_then_still_usable(sb):
    with sb.start("def g():\n    return 1\n", FAST) as cand:
        with pytest.raises(CandidateError) as info:
            cand.call("f")
        assert info.value.reason == "import_error" and "'f'" in info.value.message
        assert cand.call("g") == 1


ENTRY_SOURCE = "def init(n):\n    return n\ndef step():\n    return 1\n"


@pytest.mark.parametrize("entries,message", [
    (("init", "on_arrival", "step"),
     "the candidate defines no function 'on_arrival' (required: init, on_arrival, step)"),
    (("a", "init", "b"), "the candidate defines no functions 'a', 'b' (required: a, init, b)"),
])
def test_missing_entry_functions_are_an_import_error(sb, entries, message):
    with pytest.raises(CandidateError) as info:
        with sb.start(ENTRY_SOURCE, FAST, entries):
            pass
    assert info.value.reason == "import_error" and info.value.message == message
    with sb.start(ENTRY_SOURCE, FAST, ("init", "step")) as cand:
        assert cand.call("init", 3) == 3
    with pytest.raises(ValueError, match="identifiers"):
        with sb.start(ENTRY_SOURCE, FAST, ("init", "no such")):
            pass


def test_exception_has_traceback(sb):
    err = fails(sb, "def f():\n    return 1 / 0\n")
    assert err.reason == "exception" and "ZeroDivisionError" in err.message
    assert "Traceback" in err.detail and "return 1 / 0" in err.detail


def test_segfault_is_a_crash(sb):
    err = fails(sb, "import os, signal\ndef f():\n    os.kill(os.getpid(), signal.SIGSEGV)\n")
    assert err.reason == "crash" and "SIGSEGV" in err.message


def test_infinite_loop_times_out_and_is_killed(sb):
    t0 = time.monotonic()
    with pytest.raises(CandidateError) as info:
        with sb.start("import os\ndef pid():\n    return os.getpid()\ndef f():\n    while True: pass\n",
                      FAST) as cand:
            pid = cand.pid
            cand.call("f")
    assert info.value.reason == "timeout"
    assert time.monotonic() - t0 < FAST.call_timeout_s + 1.5
    assert gone(pid)
    assert_healthy(sb)


def test_per_workload_timeout(sb):
    limits = Limits(call_timeout_s=5, workload_timeout_s=0.6, cpu_s=10, memory_mb=512)
    with pytest.raises(CandidateError) as info:
        with sb.start("import time\ndef f():\n    time.sleep(0.25)\n", limits) as cand:
            for _ in range(10):
                cand.call("f")
    assert info.value.reason == "timeout" and "per-workload limit" in info.value.message


def test_cpu_limit(sb):
    limits = Limits(call_timeout_s=8, workload_timeout_s=10, cpu_s=1, memory_mb=512)
    err = fails(sb, "def f():\n    while True: pass\n", limits)
    assert err.reason == "cpu_limit"


@pytest.mark.parametrize("body", ["x = bytearray(3 << 30)", "x = []\n    while True: x.append(bytearray(1 << 24))"])
def test_memory_bomb(sb, body):
    err = fails(sb, f"def f():\n    {body}\n", Limits(call_timeout_s=5, memory_mb=512))
    assert err.reason == "memory_limit"


@pytest.mark.parametrize("body", [
    "while True: print('flood' * 100)",
    "import os\n    while True: os.write(1, b'x' * 65536)",
])
def test_output_flood(sb, body):
    limits = Limits(call_timeout_s=5, output_bytes=256 * 1024)
    err = fails(sb, f"def f():\n    {body}\n", limits)
    assert err.reason == "output_limit"
    art = err.artifacts
    assert art.truncated and len(art.stdout) <= sb.artifact_bytes + 100


@pytest.mark.skipif(not AS_ROOT, reason="per-candidate uids (and so RLIMIT_NPROC) need root")
def test_fork_bomb_is_contained_and_swept(sb):
    source = src("""
        import os, time
        def uid():
            return os.getuid()
        def f():
            while True:
                try:
                    if os.fork() == 0:
                        os.setsid()  # try to escape the process group
                except OSError:
                    time.sleep(0.01)
    """)
    with pytest.raises(CandidateError) as info:
        with sb.start(source, Limits(call_timeout_s=1.5, max_processes=16, memory_mb=512)) as cand:
            uid = cand.call("uid")
            cand.call("f")
    assert info.value.reason in ("process_limit", "timeout")
    assert processes_of_uid(uid) == []
    assert_healthy(sb)


@pytest.mark.skipif(not AS_ROOT, reason="per-candidate uids need root")
def test_background_process_does_not_outlive_candidate(sb):
    source = src("""
        import os, subprocess
        def start():
            p = subprocess.Popen(["sleep", "30"], start_new_session=True)
            return [p.pid, os.getuid()]
    """)
    with sb.start(source, FAST) as cand:
        child, uid = cand.call("start")
        assert not gone(child)
    assert gone(child) and processes_of_uid(uid) == []


def test_garbage_on_the_pipe(sb):
    template = src("""
        import os
        def f():
            os.write(3, {payload})
            return 1
    """)
    err = fails(sb, template.format(payload=r"b'\xff\xff\xff\xff'"))
    assert err.reason == "protocol" and "exceeds" in err.message
    err = fails(sb, template.format(payload=r"b'\x00\x00\x00\x02\xc1\xc1'"))
    assert err.reason == "protocol"


def test_unsendable_return_value(sb):
    err = fails(sb, "def f():\n    return {1, 2}\n")
    assert err.reason == "exception" and "cannot be sent" in err.message


# ---------------------------------------------------------------- isolation

def test_secrets_do_not_reach_the_candidate(sb):
    source = src("""
        import os
        def f(parent):
            print(dict(os.environ))
            found = {"env": dict(os.environ)}
            for pid in [parent] + [p for p in os.listdir("/proc") if p.isdigit()]:
                try:
                    with open(f"/proc/{pid}/environ", "rb") as fh:
                        found[str(pid)] = fh.read().decode(errors="replace")
                except OSError as e:
                    found[str(pid)] = type(e).__name__
            return found
    """)
    assert os.environ["OPENAI_API_KEY"] == SECRET
    with sb.start(source, FAST) as cand:
        found = cand.call("f", os.getpid())
    assert "OPENAI_API_KEY" not in found["env"]
    if AS_ROOT:
        assert found[str(os.getpid())] == "PermissionError"
        assert SECRET not in repr(found)
        assert SECRET not in cand.artifacts.stdout + cand.artifacts.stderr
    assert "OPENAI_API_KEY" not in cand.artifacts.stdout


def test_no_network(sb):
    if sb.isolation()["network"] != "netns":
        pytest.skip("no network namespace on this machine")
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    source = src("""
        import socket
        def f(port):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return "connected"
            except OSError as e:
                return type(e).__name__
    """)
    try:
        with sb.start(source, FAST) as cand:
            assert cand.call("f", port) != "connected"
    finally:
        server.close()


def test_isolation_is_reported(sb):
    info = sb.isolation()
    assert "OPENAI_API_KEY" not in info["candidate_env_keys"]
    if AS_ROOT:
        assert info["user"].startswith("uid ") and int(info["candidate_uid"]) >= 61000
        assert info["proc_environ"].startswith("not readable")


# ---------------------------------------------------------------- infrastructure

def test_zygote_death_is_infrastructure_then_recovers(sb):
    with pytest.raises(CandidateError) as info:
        with sb.start("import time\ndef f():\n    time.sleep(5)\n", FAST) as cand:
            pid = cand.pid
            os.kill(sb._box[0].proc.pid, signal.SIGKILL)
            cand.call("f")
    assert info.value.reason == "infrastructure"
    assert wait_gone(pid)  # the candidate died with its zygote
    assert_healthy(sb)  # a fresh zygote was started


@pytest.mark.slow
def test_killed_parent_leaves_nothing_behind(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(src(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
        from sandbox.local import LocalSandbox
        from sandbox.base import Limits
        sb = LocalSandbox()
        with sb.start("import os\\ndef f():\\n    return os.getpid()\\n", Limits()) as cand:
            print(sb._box[0].proc.pid, cand.call("f"), sb._root, flush=True)
            time.sleep(60)
    """))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    zygote, child, root = parent.stdout.readline().split()
    zygote, child = int(zygote), int(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (gone(zygote) and gone(child) and not os.path.exists(root)):
        time.sleep(0.05)
    assert gone(zygote) and gone(child) and not os.path.exists(root)
