"""The fork server: a long-lived helper that forks one fresh child per candidate.

Started once per LocalSandbox with a scrubbed environment, it pre-imports numpy, msgpack and the runner so a
candidate costs a fork instead of a Python start, then (as root) enters the view of the filesystem its
candidates inherit, without the checkout (mounts.py). It never runs candidate code itself. It talks to the
trusted side over a SOCK_SEQPACKET socket (one msgpack message per packet, fds passed alongside):

  trusted -> zygote   {"op": "spawn", "req", "workdir", "uid", "gid", "limits", "life_s", "entries"}
                      + the child's fd
                      {"op": "kill", "req", "pid", "why"}
  zygote -> trusted   {"op": "hello", "pid", "network", "user"}
                      {"op": "spawned", "req", "pid"}  or  {"op": "spawn_failed", "req", "error"}
                      {"op": "killed", "req"}
                      {"op": "exit", "pid", "code", "signal", "cpu_s", "maxrss_kb", "killed"}

It is the candidates' subreaper, so it reaps (and can count) whatever they leave behind, and it exits,
killing every child, as soon as the trusted side goes away (EOF on the socket).
"""
from __future__ import annotations

import _thread
import contextlib
import ctypes
import gc
import os
import resource
import select
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

from sandbox import mounts
from sandbox.uids import remove_scratch_files

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
EXIT_SETUP = 70
MSG_MAX = 1 << 16
CLEAR_UID_S = 2.0
CANDIDATE_FILE = "candidate.py"
# Imported once here so that forked candidates start warm; all are stdlib or declared dependencies.
PRELOAD = ("numpy", "msgpack", "math", "random", "heapq", "bisect", "collections", "itertools",
           "functools", "dataclasses", "typing", "statistics", "json", "re", "traceback")

_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, arg: int) -> None:
    if _libc.prctl(option, arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _unshare(flags: int) -> None:
    if _libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


# ---------------------------------------------------------------- namespaces at zygote start

def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def isolate_network(as_root: bool) -> dict[str, str]:
    """Enter a fresh network namespace (only a down loopback) so no candidate can reach any network."""
    if as_root:
        try:
            _unshare(CLONE_NEWNET)
            return {"network": "netns", "user_ns": "no"}
        except OSError as e:
            return {"network": "none", "user_ns": "no", "network_error": str(e)}
    uid, gid = os.getuid(), os.getgid()
    try:
        _unshare(CLONE_NEWUSER | CLONE_NEWNET)
        # Map our own ids 1:1 so files keep their owners; setgroups must be denied first.
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
        return {"network": "netns", "user_ns": "yes"}
    except OSError as e:
        return {"network": "none", "user_ns": "no", "network_error": str(e)}


# ---------------------------------------------------------------- the forked child

def _limit(which: int, value: int) -> None:
    resource.setrlimit(which, (value, value))


def _apply_limits(limits: dict[str, int]) -> None:
    _limit(resource.RLIMIT_CORE, 0)
    # soft < hard: SIGXCPU first (classifiable), SIGKILL one second later if ignored
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 1))
    _limit(resource.RLIMIT_AS, limits["memory_mb"] << 20)
    _limit(resource.RLIMIT_NPROC, limits["max_processes"])
    _limit(resource.RLIMIT_FSIZE, limits["output_bytes"])
    _limit(resource.RLIMIT_NOFILE, 256)


def _redirect_output(workdir: str) -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        out = os.open(os.path.join(workdir, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        os.dup2(out, fd)
        os.close(out)


def _drop_privileges(uid: int | None, gid: int | None) -> None:
    if uid is not None and gid is not None:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)  # no setuid binary can hand privileges back


def _child_setup(spec: dict[str, Any], zygote_pid: int, repo_root: str) -> int:
    """Turn the forked zygote copy into a sandboxed candidate process; returns the protocol fd (3)."""
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    os.setsid()  # own process group: a timeout kills the whole group
    os.closerange(4, 1 << 16)  # above all the zygote's control socket: a candidate must never reach it
    os.set_inheritable(3, False)
    workdir = spec["workdir"]
    os.chdir(workdir)
    _redirect_output(workdir)
    os.environ["HOME"] = workdir
    os.environ["TMPDIR"] = workdir
    sys.path[:] = [p for p in sys.path if p != repo_root]  # no trusted-side package is importable
    _apply_limits(spec["limits"])
    _drop_privileges(spec.get("uid"), spec.get("gid"))
    # After the uid change, which clears the parent-death signal; die with the zygote.
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != zygote_pid:  # the zygote died before prctl took effect
        os._exit(EXIT_SETUP)
    return 3


def _child_main(spec: dict[str, Any], proto_fd: int, zygote_pid: int, repo_root: str) -> int:
    from sandbox import protocol, runner
    if proto_fd != 3:
        os.dup2(proto_fd, 3)  # a fixed number, so everything above it can be closed in one call
    try:
        fd = _child_setup(spec, zygote_pid, repo_root)
    except BaseException as e:  # noqa: BLE001 - report to the trusted side: not the candidate's fault
        msg = {"ok": False, "kind": "infrastructure", "error": f"sandbox setup failed: {type(e).__name__}: {e}"}
        try:  # the trusted side records it; no traceback on the terminal (at shutdown the workdir is gone)
            protocol.send_frame(3, protocol.encode(msg))
        except OSError:
            pass  # the trusted side is gone: nobody to tell
        return EXIT_SETUP
    return runner.serve(fd, os.path.join(spec["workdir"], CANDIDATE_FILE), spec["limits"]["max_frame_bytes"],
                        tuple(spec.get("entries") or ()))


# ---------------------------------------------------------------- the zygote loop

@dataclass
class Child:
    pid: int
    uid: int | None
    gid: int | None
    deadline: float
    killed: str | None = None


class Zygote:
    def __init__(self, ctrl: socket.socket, repo_root: str, private_scratch: bool = False) -> None:
        self.ctrl = ctrl
        self.private_scratch = private_scratch
        self.repo_root = repo_root
        self.pid = os.getpid()
        self.children: dict[int, Child] = {}
        self.exited: list[tuple[Child, int, Any]] = []
        self.said_bye = False  # a clean close; without it the trusted side died and we clean up its dir
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def send(self, msg: dict[str, Any]) -> None:
        from sandbox import protocol
        self.ctrl.send(protocol.encode(msg))

    def spawn(self, msg: dict[str, Any], fds: list[int]) -> None:
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            self.send({"op": "spawn_failed", "req": msg["req"], "error": "spawn request without one fd"})
            return
        try:
            pid = os.fork()
        except OSError as e:
            os.close(fds[0])
            self.send({"op": "spawn_failed", "req": msg["req"], "error": f"fork failed: {e}"})
            return
        if pid == 0:
            code = EXIT_SETUP
            try:
                code = _child_main(msg, fds[0], self.pid, self.repo_root)
            finally:
                os._exit(code)
        os.close(fds[0])
        self.children[pid] = Child(pid, msg.get("uid"), msg.get("gid"), time.monotonic() + msg["life_s"])
        self.send({"op": "spawned", "req": msg["req"], "pid": pid})

    def kill(self, child: Child, why: str) -> None:
        """SIGKILL the child's process group; the uid sweep follows when the child is reaped."""
        child.killed = child.killed or why
        try:
            os.killpg(child.pid, signal.SIGKILL)  # a session leader cannot leave its group, so this hits it
        except ProcessLookupError:
            pass

    def handle(self, msg: dict[str, Any], fds: list[int]) -> None:
        op = msg.get("op")
        if op == "spawn":
            self.spawn(msg, fds)
        elif op == "bye":
            self.said_bye = True
        elif op == "kill":
            child = self.children.get(msg["pid"])
            if child is not None:
                self.kill(child, msg.get("why", "request"))
            self.send({"op": "killed", "req": msg["req"]})

    def _collect(self) -> None:
        """Reap every exited child now; candidates' exits are queued, orphans just vanish."""
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is not None:  # else an orphan of some candidate, reparented to us as subreaper
                self.exited.append((child, status, usage))

    def reap(self) -> None:
        self._collect()
        while self.exited:
            child, status, usage = self.exited.pop(0)
            if child.uid is not None:
                # The candidate's life ends with its main process: whatever else runs under its uid
                # (a setsid'd fork bomb, a daemon) is dead and reaped before the uid may be reused.
                self.clear_uid(child.uid, child.gid)
                if self.private_scratch:  # /tmp and co. of our view: only we can sweep them
                    remove_scratch_files(child.uid)
            self.send({"op": "exit", "pid": child.pid,
                       "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                       "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                       "cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss,
                       "killed": child.killed})

    def clear_uid(self, uid: int, gid: int | None) -> None:
        deadline = time.monotonic() + CLEAR_UID_S
        while sweep_uid(uid, gid) and time.monotonic() < deadline:
            time.sleep(0.0005)  # let the killed processes die and reparent to us
            self._collect()

    def enforce_deadlines(self) -> float | None:
        """Kill children past their per-workload deadline; return seconds until the next deadline."""
        now = time.monotonic()
        nearest = None
        for child in list(self.children.values()):
            if child.killed is None and child.deadline <= now:
                self.kill(child, "deadline")
            elif child.killed is None:
                nearest = child.deadline - now if nearest is None else min(nearest, child.deadline - now)
        return nearest

    def loop(self) -> None:
        from sandbox import protocol
        poller = select.poll()
        poller.register(self.ctrl.fileno(), select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        while True:
            wait_s = self.enforce_deadlines()
            ready = poller.poll(None if wait_s is None else int(wait_s * 1000) + 1)
            for fd, _ in ready:
                if fd == self.wake_r:
                    _drain(self.wake_r)
                    continue
                data, fds, _, _ = socket.recv_fds(self.ctrl, MSG_MAX, 4)
                if not data:
                    return  # the trusted side is gone
                self.handle(protocol.decode(data), fds)
            self.reap()

    def shutdown(self) -> None:
        for child in list(self.children.values()):
            self.kill(child, "shutdown")
        deadline = time.monotonic() + 2.0
        while self.children and time.monotonic() < deadline:
            try:
                self.reap()
            except OSError:  # the trusted side may be gone: exit messages have nowhere to go
                self.children = {p: c for p, c in self.children.items() if _alive(p)}
            time.sleep(0.005)


def sweep_uid(uid: int, gid: int | None) -> bool:
    """Kill every process owned by `uid`; return whether any (zombies included) was still there.

    A helper takes that uid and calls kill(-1, SIGKILL), which the kernel applies atomically with respect to
    fork, so even a setsid fork bomb cannot outrun it. kill(-1) cannot say whether it hit anything, so the
    helper then counts through RLIMIT_NPROC: with the limit at 2 it can start a thread only if it is
    alone under its uid."""
    try:
        helper = os.fork()
    except OSError:
        return False
    if helper == 0:
        code = 2
        try:
            os.setgroups([])
            if gid is not None:
                os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
            resource.setrlimit(resource.RLIMIT_NPROC, (2, 2))
            try:
                _thread.start_new_thread(int, ())
                code = 0
            except RuntimeError:
                code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(helper, 0)
    return not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def main(argv: list[str]) -> None:
    """argv: repo_root, control fd, trusted-side pid."""
    repo_root, ctrl_fd, parent_pid = argv[0], int(argv[1]), int(argv[2])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # runs the cleanup in main()'s finally
    # SIGTERM, not SIGKILL: if the trusted side dies we still kill, sweep and reap every candidate.
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:
        return
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the trusted side's to handle
    facts: dict[str, Any] = isolate_network(os.geteuid() == 0)
    for name in PRELOAD:
        __import__(name)
    from sandbox import protocol, runner  # noqa: F401 - preloaded for the children, before the checkout hides
    root = os.path.dirname(os.getcwd())  # the LocalSandbox's folder: home (our cwd) and candidates' dirs
    root_parent = mounts.host_dir_fd(os.path.dirname(root))  # before the view: root becomes a mount point
    facts.update(mounts.hide_from_candidates(repo_root, root))
    os.chdir(os.getcwd())  # our cwd as the view shows it
    ctrl = socket.socket(fileno=ctrl_fd)
    zygote = Zygote(ctrl, repo_root, private_scratch=facts.get("files") == "private")
    signal.set_wakeup_fd(zygote.wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    gc.freeze()  # keep the preloaded heap shared copy-on-write with every child
    try:
        zygote.send({"op": "hello", "pid": zygote.pid, **facts})
        zygote.loop()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the trusted side went away (Ctrl-C, exit) while we answered: clean up as on EOF
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # EOF and parent-death SIGTERM both come: finish once
        zygote.shutdown()
        if not zygote.said_bye and os.path.basename(root).startswith("adrs-sandbox-"):
            shutil.rmtree(root, ignore_errors=True)  # its contents; the folder itself by name from its parent
            with contextlib.suppress(OSError):
                os.rmdir(os.path.basename(root), dir_fd=root_parent)
