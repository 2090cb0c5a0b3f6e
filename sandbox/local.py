"""LocalSandbox: candidates as forked processes of a zygote, isolated with namespaces, uids and rlimits.

    sandbox = LocalSandbox()
    with sandbox.start(source, Limits(), entries=("schedule",)) as cand:
        cand.call("schedule", [1, 2, 3])
    sandbox.close()

One LocalSandbox may be shared by many threads; each `start` gets a fresh process, its own directory and
(as root) its own uid. Only requests to the zygote are serialised, never calls.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import tempfile
import threading
import weakref
from typing import Any, Iterator

from sandbox.artifacts import DEFAULT_CAP
from sandbox.base import CandidateError, Limits, check_entries
from sandbox.handle import LocalCandidate, Process
from sandbox.probe import PROBE_ENTRIES, PROBE_SOURCE
from sandbox.uids import UID_BASE, SLOTS, UidLease, UidPool
from sandbox.zygote import CANDIDATE_FILE
from sandbox.mounts import SYSTEM
from sandbox.zygote_client import REPO_ROOT, ZygoteClient, ZygoteDied, scrubbed_env


class LocalSandbox:
    """The local process backend of the Sandbox protocol."""

    def __init__(self, artifact_bytes: int = DEFAULT_CAP) -> None:
        self.artifact_bytes = artifact_bytes
        self._root = tempfile.mkdtemp(prefix="adrs-sandbox-")
        os.chmod(self._root, 0o711)  # candidates may enter their own dir, not list the others
        self._home = os.path.join(self._root, "home")
        os.mkdir(self._home, 0o755)
        self._uids = UidPool() if os.geteuid() == 0 else None
        self._lock = threading.Lock()  # guards the zygote's (re)start only
        self._box: list[ZygoteClient | None] = [None]  # shared with the finalizer, which must not hold self
        self._live: set[LocalCandidate] = set()
        self._live_lock = threading.Lock()
        self._closed = False
        self._probe: dict[str, str] | None = None
        # Normal exit / Ctrl-C of the parent: stop the zygote and everything it forked.
        self._finalizer = weakref.finalize(self, _cleanup, self._live, self._live_lock, self._box, self._root)
        atexit.register(self._finalizer)

    # ------------------------------------------------------------ zygote

    def _client(self, restart: bool = False) -> ZygoteClient:
        with self._lock:
            if self._closed:
                raise CandidateError("infrastructure", "the sandbox is closed")
            z = self._box[0]
            if z is None or not z.alive or restart:
                if z is not None:
                    z.close()
                z = self._box[0] = ZygoteClient(self._home)
            return z

    # ------------------------------------------------------------ candidates

    @contextlib.contextmanager
    def start(self, source: str, limits: Limits, entries: tuple[str, ...] = ()) -> Iterator[LocalCandidate]:
        """A fresh candidate process; `entries` are checked right after its import (import_error if any
        is missing)."""
        cand = self._launch(source, limits, check_entries(entries))
        try:
            yield cand
        finally:
            with self._live_lock:
                self._live.discard(cand)
            cand.finish()

    def _launch(self, source: str, limits: Limits, entries: tuple[str, ...]) -> LocalCandidate:
        lease = self._uids.acquire() if self._uids is not None else None
        workdir = self._make_workdir(source, lease)
        try:
            try:
                proc = self._spawn(self._client(), workdir, limits, lease, entries)
            except ZygoteDied:  # not the candidate's fault: a fresh zygote, one more try
                try:
                    proc = self._spawn(self._client(restart=True), workdir, limits, lease, entries)
                except ZygoteDied as e:
                    raise CandidateError("infrastructure", f"could not start the candidate: {e}") from None
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            if lease is not None:
                self._uids.release(lease)
            raise
        cand = LocalCandidate(proc, limits, self.artifact_bytes)
        with self._live_lock:
            self._live.add(cand)
        try:
            cand.await_hello()
        except BaseException:
            with self._live_lock:
                self._live.discard(cand)
            cand.finish()
            raise
        return cand

    def _make_workdir(self, source: str, lease: UidLease | None) -> str:
        workdir = tempfile.mkdtemp(prefix="c-", dir=self._root)
        with open(os.path.join(workdir, CANDIDATE_FILE), "w") as f:
            f.write(source)
        if lease is not None:
            os.chown(workdir, lease.uid, lease.gid)
        return workdir

    def _spawn(self, client: ZygoteClient, workdir: str, limits: Limits, lease: UidLease | None,
               entries: tuple[str, ...]) -> Process:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        notify_r, notify_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        spec: dict[str, Any] = {
            "workdir": workdir, "uid": lease.uid if lease else None, "gid": lease.gid if lease else None,
            "life_s": limits.workload_timeout_s, "entries": list(entries),
            "limits": {"cpu_s": int(limits.cpu_s), "memory_mb": int(limits.memory_mb),
                       "max_processes": int(limits.max_processes), "output_bytes": int(limits.output_bytes),
                       "max_frame_bytes": int(limits.max_frame_bytes)}}
        try:
            pid, watch = client.spawn(spec, theirs.fileno(), notify_w)
        except BaseException:
            ours.close()
            os.close(notify_r)
            os.close(notify_w)
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        fd = ours.detach()
        return Process(client, pid, watch, fd, notify_r, notify_w, workdir, lease,
                       self._uids.release if self._uids else _no_release)

    # ------------------------------------------------------------ metadata and shutdown

    def isolation(self) -> dict[str, str]:
        """What is in effect, as observed: zygote facts plus what a probe candidate could see."""
        facts = self._client().facts
        root = self._uids is not None
        info = {
            "backend": "local (forked from a zygote, fresh process per candidate)",
            "network": str(facts.get("network", "none")),
            "user": f"uid {UID_BASE}..{UID_BASE + SLOTS - 1}, one per live candidate" if root
                    else f"same as caller (uid {os.getuid()})",
            "user_namespace": str(facts.get("user_ns", "no")),
            "pid_namespace": "host (other processes are visible in /proc)",
            "environment": "scrubbed: " + ",".join(sorted(scrubbed_env(self._home))) + ",TMPDIR",
            "filesystem": _filesystem(facts, root),
            "limits": "rlimits CPU, AS, NPROC, FSIZE, NOFILE=256, CORE=0; no_new_privs; wall clock by SIGKILL "
                      "of the process group" + (" and of every process of the candidate's uid" if root else ""),
        }
        info["trusted_files"] = _trusted_files(facts)
        if "network_error" in facts:
            info["network_error"] = str(facts["network_error"])
        info.update(self._probe_candidate())
        return info

    def _probe_candidate(self) -> dict[str, str]:
        if self._probe is None:
            with self.start(PROBE_SOURCE, Limits(call_timeout_s=10, workload_timeout_s=20), PROBE_ENTRIES) as cand:
                seen = cand.call("probe", os.getpid(), REPO_ROOT)
            self._probe = {"proc_environ": seen["proc_environ"], "candidate_uid": seen["uid"],
                           "candidate_interfaces": seen["interfaces"], "candidate_env_keys": seen["env_keys"],
                           "candidate_checkout": seen["checkout"]}
        return self._probe

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._finalizer()
        atexit.unregister(self._finalizer)

    def __enter__(self) -> "LocalSandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _filesystem(facts: dict[str, Any], root: bool) -> str:
    if facts.get("files") == "private":
        return (f"private view: {', '.join(sorted(SYSTEM))} as on the host; covered (empty, read-only): "
                f"{facts['covered']}; bound back read-only: {facts['exposed']}; fresh private tmpfs "
                f"{facts['scratch']} (the uid's leftovers removed); writable: own temp dir (removed "
                "after) and those scratch dirs")
    return ("host filesystem; writable: own temp dir (removed after) and world-writable dirs (uid's "
            "top-level leftovers in /tmp, /var/tmp, /dev/shm removed)" if root else
            "host filesystem with the caller's permissions; own temp dir removed after")


def _trusted_files(facts: dict[str, Any]) -> str:
    """Whether a candidate can read the trusted side's files: the first thing to check before running
    programs one did not write."""
    if facts.get("files") == "private":
        return (f"hidden: the checkout ({REPO_ROOT}: evaluators, problems, runs) and every folder "
                "outside the operating system's and the Python install's")
    why = facts.get("files_why", "no private mount namespace")
    return (f"READABLE by candidates ({why}): a candidate can read and import the checkout ({REPO_ROOT}: "
            "evaluators and their workload generators, problems with their workload seeds, runs) and any "
            "world-readable problem or run folder, and so regenerate hidden workload data; use --sandbox "
            "docker (or run as root) for programs you did not write")


def _no_release(lease: UidLease) -> None:
    pass


def _cleanup(live: set, live_lock: threading.Lock, box: list, root: str) -> None:
    with live_lock:
        cands = list(live)
        live.clear()
    for cand in cands:
        try:
            cand.finish()
        except Exception:  # noqa: BLE001 - best effort at shutdown
            pass
    if box[0] is not None:
        box[0].close()  # the zygote kills and reaps every child it still has
        box[0] = None
    shutil.rmtree(root, ignore_errors=True)
