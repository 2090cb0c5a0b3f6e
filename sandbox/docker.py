"""DockerSandbox: every candidate in a fresh locked-down container, taken from a pool of pre-started ones.

    sandbox = DockerSandbox(limits=spec.limits)       # finds the image, pre-starts the pool
    with sandbox.start(source, spec.limits, entries=("schedule",)) as cand:
        cand.call("schedule", [1, 2, 3])
    sandbox.close()                                    # removes every container it made

The same runner and frame protocol as the local backend serve the candidate (sandbox/container_boot.py
starts sandbox/runner.py in the container). Containers carry our labels; they are removed after their
candidate, all of them on close() and at interpreter exit (Ctrl-C included), and those of adrs processes
that died without cleaning up (kill -9) are removed by the next DockerSandbox on the same host.
"""
from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import socket
import tempfile
import threading
import uuid
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterator

from sandbox import docker_options as opts
from sandbox import image as image_mod
from sandbox.artifacts import DEFAULT_CAP
from sandbox.base import CandidateError, Limits, check_entries
from sandbox.docker_handle import DockerCandidate
from sandbox.docker_pool import Engine, OutputCapture, Pool, Slot, remove_folder
from sandbox.probe import PROBE_ENTRIES, PROBE_SOURCE

REQUEST_TIMEOUT_S = 60
ROOT_PREFIX = "adrs-docker-"  # + <pid>-: our folder of slot folders, in the temp dir
REMOVERS = 2


class SandboxUnavailable(Exception):
    """The Docker backend cannot be used at all (no engine, no image); the message says why in one line."""


def connect(timeout_s: float = REQUEST_TIMEOUT_S):
    """A Docker client for the engine of DOCKER_HOST (or the default socket), checked with a ping."""
    try:
        import docker
    except ImportError:  # pragma: no cover - a declared dependency
        raise SandboxUnavailable("the `docker` Python package is not installed") from None
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=int(timeout_s), max_pool_size=64)
        client.ping()
        return client
    except Exception as e:  # noqa: BLE001 - many error types, one meaning
        raise SandboxUnavailable(f"no Docker engine reachable at {where}: {' '.join(str(e).split())[:200]}") from None


class DockerSandbox:
    """The Docker backend of the Sandbox protocol. Thread-safe: each `start` takes its own container."""

    def __init__(self, image: str | None = None, packages: tuple[str, ...] = (), limits: Limits | None = None,
                 pool_size: int = 2, client=None, artifact_bytes: int = DEFAULT_CAP,
                 image_hint: str = "adrs sandbox build") -> None:
        self.client = client or connect()
        self.pool_size = pool_size
        self.artifact_bytes = artifact_bytes
        try:
            self.image = (image_mod.find(self.client, packages, image_hint) if image is None else
                          image_mod.ImageInfo(image, self.client.images.get(image).id, "", tuple(packages)))
        except image_mod.ImageError as e:
            raise SandboxUnavailable(str(e)) from None
        except Exception as e:  # noqa: BLE001 - e.g. ImageNotFound for an explicit tag
            raise SandboxUnavailable(f"sandbox image {image}: {' '.join(str(e).split())[:200]}") from None
        host, pid = socket.gethostname(), os.getpid()
        self.owner = f"{host}:{pid}:{uuid.uuid4().hex[:12]}"
        self._root = tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{pid}-")
        self._state = _State(self.client, self.owner, self._root)
        self._engine = Engine(self.client, self.image.tag, opts.labels(self.owner, host, pid), self._root,
                              self._state.remove)
        self._pools: dict[Limits, Pool] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._probe: dict[str, str] | None = None
        # Normal exit and Ctrl-C of the parent: every container of ours is removed.
        self._finalizer = weakref.finalize(self, self._state.cleanup)
        atexit.register(self._finalizer)
        remove_orphans(self.client, host)
        remove_orphan_folders()
        if limits is not None:
            self._pool(limits)  # pre-start now: the first candidates need not wait

    # ------------------------------------------------------------ candidates

    def _pool(self, limits: Limits) -> Pool:
        with self._lock:
            if self._closed:
                raise CandidateError("infrastructure", "the sandbox is closed")
            pool = self._pools.get(limits)
            if pool is None:
                pool = self._pools[limits] = Pool(self._engine, limits, self.pool_size)
                self._state.pools.append(pool)
            return pool

    @contextlib.contextmanager
    def start(self, source: str, limits: Limits, entries: tuple[str, ...] = ()) -> Iterator[DockerCandidate]:
        """A candidate in a fresh container; `entries` are checked right after its import (import_error
        if any is missing)."""
        entries = check_entries(entries)
        slot = self._pool(limits).take()
        cand = DockerCandidate(slot, self.client, limits, self._release)
        try:
            cand.load(source, entries)
            yield cand
        finally:
            cand.finish()

    def _release(self, slot: Slot) -> None:
        """The candidate is done (its socket closed): remove its container."""
        self._state.remove(slot.container_id, slot.folder, slot.output)

    # ------------------------------------------------------------ metadata and shutdown

    def isolation(self) -> dict[str, str]:
        """What is in effect: the image (tag and digests), the options, and what a probe candidate saw."""
        version = self.client.version()
        info = {"backend": "docker (fresh container per candidate from a pre-started pool)",
                "image": self.image.tag, "image_id": self.image.id, "image_digest": self.image.digest,
                "image_packages": ",".join(self.image.packages) or "-",
                "engine": f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})",
                "numpy": ("the trusted side's version, " + image_mod.numpy_pin()
                          if image_mod.numpy_pin() in self.image.packages else
                          "the image distribution's own: deterministic metrics may differ from --sandbox local"),
                **opts.describe()}
        info.update(self._probe_candidate())
        return info

    def _probe_candidate(self) -> dict[str, str]:
        if self._probe is None:
            with self.start(PROBE_SOURCE, Limits(call_timeout_s=10, workload_timeout_s=20), PROBE_ENTRIES) as cand:
                seen = cand.call("probe", 1)
            self._probe = {"proc_environ": "/proc/1/environ (docker-init, the same minimal environment) "
                                           + seen["proc_environ"],
                           "candidate_uid": seen["uid"], "candidate_interfaces": seen["interfaces"],
                           "candidate_env_keys": seen["env_keys"]}
        return self._probe

    def wait_removed(self, timeout_s: float = 30.0) -> None:
        """Wait until every finished candidate's container is removed (for tests and benchmarks)."""
        self._state.wait_removed(timeout_s)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._finalizer()
        atexit.unregister(self._finalizer)

    def __enter__(self) -> "DockerSandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _State:
    """What cleanup needs, kept apart from the sandbox so that the finalizer does not hold it alive."""

    def __init__(self, client, owner: str, root: str) -> None:
        self.client, self.owner, self.root = client, owner, root
        self.pools: list[Pool] = []
        self._removers = ThreadPoolExecutor(max_workers=REMOVERS, thread_name_prefix="adrs-docker-rm")
        self._pending: set[Future] = set()
        self._lock = threading.Lock()

    def remove(self, cid: str, folder: str, output: OutputCapture | None) -> None:
        """Remove a container, then its folder, in the background (never on a candidate's critical path)."""
        with self._lock:
            try:
                fut = self._removers.submit(self._remove_now, cid, folder, output)
            except RuntimeError:  # shutting down: do it here
                self._remove_now(cid, folder, output)
                return
            self._pending.add(fut)
        fut.add_done_callback(self._done)

    def _done(self, fut: Future) -> None:
        with self._lock:
            self._pending.discard(fut)

    def _remove_now(self, cid: str, folder: str, output: OutputCapture | None) -> None:
        if cid:
            try:
                self.client.api.remove_container(cid, force=True)
            except Exception:  # noqa: BLE001 - gone already, or the engine is down: the label sweep retries
                pass
        if output is not None:
            output.close(wait_s=1.0)
        remove_folder(folder)

    def wait_removed(self, timeout_s: float) -> None:
        with self._lock:
            pending = list(self._pending)
        for fut in pending:
            fut.result(timeout=timeout_s)

    def cleanup(self) -> None:
        for pool in self.pools:
            pool.close()
        self.wait_removed(60.0)
        self._removers.shutdown(wait=True)
        remove_by_label(self.client, f"{opts.OWNER_LABEL}={self.owner}")
        shutil.rmtree(self.root, ignore_errors=True)


def remove_by_label(client, label: str) -> int:
    """Force-remove every container (running or not) carrying `label`; returns how many."""
    try:
        found = client.api.containers(all=True, filters={"label": label}, quiet=True)
    except Exception:  # noqa: BLE001 - engine unreachable: nothing we can do now
        return 0
    for c in found:
        try:
            client.api.remove_container(c["Id"], force=True)
        except Exception:  # noqa: BLE001
            pass
    return len(found)


def remove_orphans(client, host: str) -> int:
    """Remove containers left by adrs processes on this host that no longer exist (killed with -9)."""
    try:
        found = client.api.containers(all=True, filters={"label": [f"{opts.LABEL}=1", f"{opts.HOST_LABEL}={host}"]})
    except Exception:  # noqa: BLE001
        return 0
    removed = 0
    for c in found:
        pid = (c.get("Labels") or {}).get(opts.PID_LABEL, "")
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(Exception):
                client.api.remove_container(c["Id"], force=True)
                removed += 1
    return removed


def remove_orphan_folders() -> None:
    """Remove the temp folders of DockerSandboxes whose process is gone (killed with -9)."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), ROOT_PREFIX + "*-*")):
        pid = os.path.basename(path)[len(ROOT_PREFIX):].split("-", 1)[0]
        try:
            mine = os.stat(path).st_uid == os.getuid()
        except OSError:
            continue
        if mine and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
