"""The local sandbox hides the trusted side's files: a candidate that knows where the checkout, a problem
folder or a run folder lies can neither read, list nor import them ("peek" attacks), while the Python
install (stdlib, numpy, the venv's site-packages) stays usable. Through the real LocalSandbox."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from pathlib import Path

import pytest

from sandbox import local, mounts
from sandbox.base import CandidateError, Limits
from sandbox.local import LocalSandbox

REPO = Path(__file__).resolve().parent.parent  # the checkout
WORKLOADS = REPO / "evaluators" / "serving" / "workloads.py"
SPEC = REPO / "problems" / "llm_scheduler" / "problem.toml"
AS_ROOT = os.geteuid() == 0
LIMITS = Limits(call_timeout_s=20.0, workload_timeout_s=30.0, cpu_s=20, memory_mb=1024, max_processes=16,
                output_bytes=64 * 1024)


@pytest.fixture(scope="module")
def sb():
    box = LocalSandbox()
    state = box.isolation()["trusted_files"]
    if not state.startswith("hidden"):
        box.close()
        if not AS_ROOT or "no private mount namespace" in state:  # the documented fallback
            pytest.skip(f"the local sandbox cannot hide the checkout here: {state}")
        pytest.fail(f"running as root, yet the checkout is not hidden: {state}")
    yield box
    box.close()


@pytest.fixture
def world_readable_dir():
    path = Path(tempfile.mkdtemp(prefix="adrs-hiding-"))  # in /tmp itself, not under a 0700 folder
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run(sb, source: str, *args):
    with sb.start(textwrap.dedent(source), LIMITS) as cand:
        return cand.call("f", *args)


def test_candidate_cannot_open_checkout_files(sb):
    paths = [str(WORKLOADS), str(SPEC), str(REPO / "README.md"), str(REPO / "sandbox" / "runner.py")]
    assert all(os.path.isfile(p) for p in paths)  # there to be read, for the trusted side
    seen = run(sb, """
        def f(paths):
            out = {}
            for p in paths:
                try:
                    with open(p) as fh:
                        out[p] = fh.read(200)
                except OSError as e:
                    out[p] = type(e).__name__
            return out
    """, paths)
    assert seen == {p: "FileNotFoundError" for p in paths}
    assert WORKLOADS.read_text()  # the trusted side, in its own mount namespace, is unaffected


def test_candidate_cannot_import_trusted_packages(sb):
    seen = run(sb, """
        import importlib, sys
        def f(repo):
            sys.path.insert(0, repo)  # even pointed at the checkout
            out = {}
            for name in ("evaluators.serving.workloads", "evaluators.spot", "evolve.problem", "problems",
                         "sandbox.base"):
                try:
                    importlib.import_module(name)
                    out[name] = "imported"
                except ImportError as e:
                    out[name] = type(e).__name__
            return out
    """, str(REPO))
    assert set(seen.values()) == {"ModuleNotFoundError"}, seen
    with pytest.raises(CandidateError) as info:  # at the top of a program: an import error, as any other
        run(sb, "import evaluators.serving.workloads\ndef f():\n    return 1\n")
    assert info.value.reason == "import_error"


def test_candidate_lists_nothing_of_the_checkout(sb):
    seen = run(sb, """
        import os
        def f(repo):
            files = []
            for top, dirs, names in os.walk(repo):
                dirs[:] = [d for d in dirs if os.path.join(top, d) != os.path.join(repo, ".venv")]
                files += [os.path.join(top, n) for n in names]
            return sorted(os.listdir(repo)) if os.path.isdir(repo) else [], files  # (in /tmp: all gone)
    """, str(REPO))
    entries, files = seen
    assert {"evaluators", "problems", "evolve", "sandbox", "runs", "README.md"} & set(os.listdir(REPO))
    assert set(entries) <= {".venv"}  # a venv inside the checkout comes back (read-only), nothing else
    assert files == []
    seen_by_probe = sb.isolation()["candidate_checkout"]  # as every run records it
    assert seen_by_probe in ("sees none of its packages", "cannot list it (FileNotFoundError)")


def test_problem_and_run_folders_elsewhere_are_hidden(sb, world_readable_dir):
    runs = world_readable_dir / "runs" / "llm_scheduler-1"
    problem = world_readable_dir / "myproblem"
    for p in (runs, problem):
        p.mkdir(parents=True)
    (runs / "lineage.db").write_bytes(b"SQLite format 3\0")
    (problem / "problem.toml").write_text('[workloads]\ntrain = ["seed:7"]\n')
    for p in (world_readable_dir, runs.parent, runs, problem):
        p.chmod(0o755)  # readable by any uid on the host: only the view keeps them out of reach
    seen = run(sb, """
        import os
        def f(paths):
            out = {}
            for p in paths:
                try:
                    out[p] = os.listdir(p) if os.path.isdir(p) else open(p, "rb").read(16)
                except OSError as e:
                    out[p] = type(e).__name__
            return out
    """, [str(runs / "lineage.db"), str(problem / "problem.toml"), str(world_readable_dir)])
    assert set(seen.values()) == {"FileNotFoundError"}, seen


def test_python_install_stays_usable(sb):
    seen = run(sb, """
        import subprocess, sys
        import numpy as np
        def f():
            out = {"numpy": float(np.linalg.norm(np.array([3.0, 4.0])))}
            for name in ("scipy.optimize", "networkx"):
                try:
                    __import__(name)
                    out[name] = "ok"
                except ImportError as e:
                    out[name] = f"{type(e).__name__}: {e}"
            child = subprocess.run([sys.executable, "-c", "import numpy, json; print(numpy.__version__)"],
                                   capture_output=True, text=True, timeout=20)
            out["subprocess"] = child.stdout.strip() or child.stderr[-300:]
            return out
    """)
    assert seen["numpy"] == 5.0
    import numpy
    assert seen["subprocess"] == numpy.__version__
    for name in ("scipy.optimize", "networkx"):  # problems' declared packages live in the same site-packages
        if _importable(name):
            assert seen[name] == "ok"


def test_view_cannot_be_undone_from_a_user_namespace(sb):
    """With no capabilities the candidate cannot unmount; in a user namespace of its own it gets them, but
    the kernel locks the mounts it inherited, so the covers stay."""
    seen = run(sb, """
        import ctypes, os
        CLONE_NEWUSER, CLONE_NEWNS, MNT_DETACH = 0x10000000, 0x00020000, 2
        def f(repo):
            libc = ctypes.CDLL(None, use_errno=True)
            tries = [libc.umount2(repo.encode(), MNT_DETACH)]
            if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0:
                tries += [libc.umount2(p.encode(), MNT_DETACH) for p in (repo, os.path.dirname(repo))]
            return tries, sorted(os.listdir(repo)) if os.path.isdir(repo) else []
    """, str(REPO))
    tries, entries = seen
    assert set(entries) <= {".venv"}
    assert all(rc == -1 for rc in tries)


def test_private_scratch_dirs_are_swept_and_not_the_hosts(sb):
    name = f"adrs-hiding-test-{os.getpid()}"
    run(sb, f"""
        def f():
            with open("/tmp/{name}", "w") as fh:
                fh.write("left behind")
    """)
    assert not os.path.exists(f"/tmp/{name}")  # the candidate's /tmp is not the host's
    later = run(sb, """
        import os
        def f():
            return os.listdir("/tmp")
    """)
    assert name not in later  # swept when its writer exited, whichever uid comes next


def _importable(name: str) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True).returncode == 0


# ---------------------------------------------------------------- the plan, and the fallback (no root needed)

def test_the_checkout_is_hidden_but_its_venv_and_the_interpreter_are_kept():
    keep = mounts.python_paths((str(REPO),))
    assert str(REPO) not in keep
    prefix = os.path.realpath(sys.prefix)
    assert all(p.startswith(prefix) for p in keep if p.startswith(str(REPO) + "/"))  # only a venv inside it
    assert os.path.realpath(sys.base_prefix) in keep or any(
        os.path.realpath(sys.base_prefix).startswith(p + "/") for p in keep)


def test_an_installed_project_hides_only_its_trusted_packages():
    site = os.path.realpath(sysconfig.get_paths()["purelib"])  # where pip would put a non-editable install
    packages = tuple(os.path.join(site, d) for d in ("evaluators", "evolve", "problems"))
    assert mounts.trusted_folders(site) == packages
    assert mounts.trusted_folders(str(REPO)) == (str(REPO),)


def test_without_a_mount_namespace_the_record_says_the_checkout_is_readable(monkeypatch):
    monkeypatch.setattr(mounts.os, "geteuid", lambda: 1000)
    facts = mounts.hide_from_candidates(str(REPO), "/nonexistent")
    assert facts == {"files": "host", "files_why": "not root, so no private mount namespace"}
    said = local._trusted_files(facts)
    assert said.startswith("READABLE by candidates (not root") and "--sandbox docker" in said
    assert local._trusted_files({"files": "private"}).startswith("hidden")
