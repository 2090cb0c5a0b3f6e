"""One trusted evaluation worker as a Ray actor, on whichever node Ray placed it: it builds its problem,
sandbox backend and ProgramScorer once (evolve/run/worker.py's build_scorer, exactly as a worker process
does), then scores the programs its pool (evolve/run/ray_pool.py) sends, one at a time.

This module never imports ray at the top: the pool wraps EvalActor with ray.remote, and a plain
EvalActor(...) is what the tests build to check start-up without a cluster. Nothing here touches the
lineage store; an actor receives source text and workload ids and returns a Scorecard.

The problem is read from the same path on every node (not shipped with a Ray runtime_env working_dir): a
problem's evaluator imports the `evaluators` and `sandbox` packages of the adrs installation, which must be
on each node anyway, and some problems carry large trace files that a working_dir would upload per run.
So each actor checks on its node that the folder is there, is the controller's (same problem.toml) and
runs the controller's adrs version, and fails start-up with an error naming the node otherwise.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from evolve import problem as problem_mod
from evolve.errors import AdrsError
from evolve.run.scoring import ProgramScorer
from evolve.run.worker import answer, build_scorer, default_sandbox, explain, first_workloads, image_hint


TMP_PREFIX = "adrs-ray-actor-"  # + <pid>-: an actor's folder (its TMPDIR), in the node's temp dir


@dataclass(frozen=True)
class NodeInfo:
    """Where an actor runs."""

    node_id: str
    ip: str
    hostname: str
    pid: int

    def describe(self) -> str:
        return f"node {self.ip} ({self.hostname}, node id {self.node_id[:12]})"


@dataclass(frozen=True)
class ActorSetup:
    """All an actor is given (picklable); it builds everything else on its node."""

    spec_dir: str
    sandbox: str
    problem_digest: str   # sha256 of problem.toml as the controller read it
    adrs_version: str
    make_sandbox: Callable = default_sandbox  # module-level, so pickled by reference


def problem_digest(spec_dir: str | Path) -> str:
    return hashlib.sha256((Path(spec_dir) / "problem.toml").read_bytes()).hexdigest()


def _remove_orphan_folders() -> None:
    """Folders of this node's actors that were killed (their node lost, kill -9) before they could close."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), f"{TMP_PREFIX}*-*")):
        pid = os.path.basename(path)[len(TMP_PREFIX):].split("-", 1)[0]
        with contextlib.suppress(OSError):
            if pid.isdigit() and os.stat(path).st_uid == os.getuid() and not os.path.exists(f"/proc/{pid}"):
                shutil.rmtree(path, ignore_errors=True)


def this_node() -> NodeInfo:
    """The node of the calling Ray worker process."""
    import ray
    return NodeInfo(ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address(), socket.gethostname(),
                    os.getpid())


def check_sandbox_image(spec: problem_mod.ProblemSpec, node: NodeInfo) -> None:
    """The Docker sandbox image (the tag `adrs sandbox build` gives, sandbox/image.py) exists on this node."""
    from sandbox import image as image_mod
    from sandbox.docker import SandboxUnavailable, connect
    try:
        image_mod.find(connect(), spec.sandbox_packages, image_hint(spec))
    except (image_mod.ImageError, SandboxUnavailable) as e:
        raise AdrsError(f"--sandbox docker on {node.describe()}: {e}; run `{image_hint(spec)}` on "
                        f"{node.hostname} ({node.ip}), then start the run again") from None


def check_node(setup: ActorSetup, node: NodeInfo) -> None:
    """The problem folder on this node is the controller's, and so is the adrs version."""
    from evolve import __version__
    where = Path(setup.spec_dir)
    if not (where / "problem.toml").is_file():
        raise AdrsError(f"problem folder {where} is not on this node: every node of a Ray cluster needs the "
                        f"problem (and adrs) at the controller's path")
    if problem_digest(where) != setup.problem_digest:
        raise AdrsError(f"{where}/problem.toml differs from the controller's: give every node the same checkout")
    if __version__ != setup.adrs_version:
        raise AdrsError(f"adrs {__version__} here, {setup.adrs_version} on the controller: install the same "
                        f"version on every node")


class EvalActor:
    """The actor's state: a scorer, or the reason it could not be built (reported by ready(), not raised, so
    the pool reads one clear line instead of Ray's actor-died wrapping)."""

    def __init__(self, setup: ActorSetup, node: NodeInfo | None = None) -> None:
        """`node` is given only by tests, which build an actor in their own process."""
        _remove_orphan_folders()
        self.tmp_dir = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-")
        os.chmod(self.tmp_dir, 0o711)  # sandboxed candidates (another uid, as root) must reach their dirs
        if node is None:  # a Ray actor's process is its own: everything left behind is in one folder
            os.environ["TMPDIR"] = tempfile.tempdir = self.tmp_dir
        self.node = node or this_node()
        self.scorer: ProgramScorer | None = None
        self.error = ""
        try:
            check_node(setup, self.node)
            if setup.sandbox == "docker":
                check_sandbox_image(problem_mod.load(setup.spec_dir, check_evaluator=False), self.node)
            self.scorer = build_scorer(setup.spec_dir, setup.sandbox, setup.make_sandbox)
            self.scorer.prepare(first_workloads(self.scorer.spec))
        except BaseException as e:  # noqa: BLE001 - reported by ready()
            self.error = f"on {self.node.describe()}: {explain(e)}"

    def ready(self) -> tuple[str, Any]:
        return ("error", self.error) if self.error else ("ready", self.node)

    def serve(self, msg: tuple) -> tuple[str, Any]:
        if self.scorer is None:
            return "error", self.error or "the actor is closed"
        return answer(self.scorer, msg)

    def close(self) -> None:
        """Close the sandbox (a Docker sandbox removes its containers); runs beside an evaluation in
        flight, which then fails, and the pool discards its result."""
        scorer, self.scorer = self.scorer, None
        with contextlib.suppress(Exception):
            if scorer is not None:
                scorer.sandbox.close()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
