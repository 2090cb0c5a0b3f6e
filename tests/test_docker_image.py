"""The Docker sandbox's parts that need no engine: container options, exit classification, the image recipe
and its digest, declared packages, and the once-only retry of an infrastructure failure."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

from evolve import problem
from evolve.errors import AdrsError
from evolve.run.scoring import ProgramScorer
from sandbox import docker_options as opts
from sandbox import image
from sandbox.base import CandidateError
from tests.conftest import TOY
from tests.docker_engine import FAST


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
