"""The filesystem a local candidate sees (root only): a private mount namespace of the zygote in which only
the operating system, the Python install and the sandbox's own folder are left.

Why: the trusted side's files are world-readable: the checkout (evaluators/ and its workload generators,
problems/*/problem.toml with the workload seeds, traces), problem folders and run folders (the lineage)
wherever they are. A candidate that reads or imports them could regenerate a workload's hidden ground
truth (true output lengths, future arrivals, future spot availability) from its seed. A separate uid does
not stop that; a view of the filesystem without those files does.

The view, built once in the zygote (after it imported everything it and the runner need) and inherited by
every candidate it forks:
- as on the host: the operating system's top-level directories (SYSTEM), which a candidate's uid cannot
  write, and /proc (no PID namespace: other processes' command lines stay visible);
- an empty read-only tmpfs over every other top-level directory (/home, /root, /work, /opt, /srv, /var,
  /mnt, ...) and over the named hidden folders (the checkout) wherever they are; /dev/null over top-level
  files;
- bound back read-only: the interpreter prefixes, every sys.path directory and the directory of every
  shared object the zygote has loaded, except what lies inside a hidden folder and outside the
  interpreter's own prefix (a venv inside the checkout comes back; the checkout's packages do not);
- a fresh, private tmpfs over /tmp, /var/tmp and /dev/shm (shared by this zygote's candidates and swept
  per uid), with the sandbox's own folder (the candidates' working directories) bound back read-write.
Mounts go outermost first. A source is held as an O_PATH descriptor while its parent is covered, so
nothing needs staging. A candidate cannot undo any of it: it has no capabilities, and mounts inherited
into a user namespace it might create are locked by the kernel.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import stat
import sys
from dataclasses import dataclass, field

from sandbox.uids import SCRATCH_DIRS

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
# Top-level entries of / kept as on the host: what an interpreter and its shared libraries need.
SYSTEM = frozenset({"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "dev", "proc", "sys"})
COVER_OPTS = "mode=755,size=1m"             # holds only the directories that bound-back paths sit on
SCRATCH_OPTS = "mode=1777,size=256m"        # TMPDIR is the candidate's own folder: this is for fixed paths
TRUSTED_PACKAGES = ("evaluators", "evolve", "problems")  # hidden even where the project is pip-installed

_libc = ctypes.CDLL(None, use_errno=True)


class NoNamespace(OSError):
    """No private mount namespace here (not root, or no CAP_SYS_ADMIN, as in an unprivileged container)."""


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _under(path: str, top: str) -> bool:
    """`path` strictly inside `top`."""
    return path.startswith(top.rstrip("/") + "/")


def _at_or_under(path: str, top: str) -> bool:
    return path == top or _under(path, top)


# ---------------------------------------------------------------- what to keep, what to cover

def _loaded_object_dirs() -> set[str]:
    """Directories of the shared objects mapped into this process (extension modules and the libraries
    they link), so that a lazily imported module still finds libraries that sit outside sys.path."""
    with open("/proc/self/maps") as f:
        names = {parts[5] for parts in (line.rstrip("\n").split(None, 5) for line in f) if len(parts) == 6}
    return {os.path.dirname(os.path.realpath(n)) for n in names
            if n.startswith("/") and (n.endswith(".so") or ".so." in os.path.basename(n))}


def python_paths(hidden: tuple[str, ...]) -> list[str]:
    """Directories a candidate must be able to read: the interpreter prefixes, every sys.path directory and
    the loaded objects' directories; inside a hidden folder, only what lies inside an interpreter prefix."""
    prefixes = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    found = set(prefixes) | {os.path.realpath(p) for p in sys.path if p and os.path.isdir(p)}
    found |= _loaded_object_dirs()

    def allowed(path: str) -> bool:
        return all(any(_at_or_under(path, pre) and _under(pre, h) for pre in prefixes)
                   for h in hidden if _at_or_under(path, h))
    return sorted(p for p in found if p != "/" and os.path.isdir(p) and allowed(p))


def _blocked_ancestor(path: str) -> str | None:
    """The outermost ancestor of `path` that others cannot traverse, if any."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts)):
        anc = "/" + "/".join(parts[:i])
        if not os.stat(anc).st_mode & stat.S_IXOTH:
            return anc
    return None


@dataclass(frozen=True)
class Target:
    path: str
    kind: str   # "cover" / "hide" (empty read-only tmpfs: any non-system dir / a hidden folder),
    #             "scratch" (fresh writable tmpfs), "file" (/dev/null over it)


def targets(hidden: tuple[str, ...], keep: list[str]) -> list[Target]:
    """Everything to mount over, outermost first."""
    found: dict[str, Target] = {}
    for name in os.listdir("/"):
        path = "/" + name
        if name in SYSTEM or path in SCRATCH_DIRS or os.path.islink(path):
            continue
        if os.path.isdir(path):
            found[path] = Target(path, "cover")
        elif os.path.isfile(path):
            found[path] = Target(path, "file")
    for path in (a for a in map(_blocked_ancestor, keep) if a is not None):
        found[path] = Target(path, "cover")
    for path in hidden:
        if os.path.isdir(path):
            found[path] = Target(path, "hide")
    for path in SCRATCH_DIRS:
        found[path] = Target(path, "scratch")
    return sorted(found.values(), key=lambda t: (t.path.count("/"), t.path))


# ---------------------------------------------------------------- building the view

@dataclass
class View:
    """What build_view did, for the zygote's hello (and so for every run's recorded isolation)."""

    covered: list[str] = field(default_factory=list)
    scratch: list[str] = field(default_factory=list)
    exposed: list[str] = field(default_factory=list)


def build_view(hidden: tuple[str, ...], own_dir: str) -> View:
    """Enter a private mount namespace and build the candidates' view (see the module docstring).
    `hidden`: folders to cover wherever they are (the checkout); `own_dir`: the sandbox's folder, kept
    writable. Root only."""
    hidden = tuple(os.path.realpath(h) for h in hidden)
    if any(h == "/" or h.strip("/") in SYSTEM for h in hidden):
        raise ValueError(f"cannot hide a whole system directory: {hidden}")
    own_dir = os.path.realpath(own_dir)
    keep = python_paths(hidden)
    plan = targets(hidden, keep)
    if _libc.unshare(CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        raise NoNamespace(err, f"unshare(CLONE_NEWNS): {os.strerror(err)}")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here propagates to the host
    view, bound = View(), [own_dir]
    for t in plan:
        if t.kind in ("cover", "hide") and not _has_content(t.path, view, bound):
            continue  # inside an earlier cover and not bound back: already hidden
        if t.kind == "cover" and any(_at_or_under(t.path, k) for k in keep):
            continue  # the Python install itself (sys.prefix = /opt, say): left as it is
        ro = _outermost([p for p in keep if _under(p, t.path)])
        rw = [own_dir] if _under(own_dir, t.path) else []
        _apply(t, ro, rw)
        bound += ro
        (view.scratch if t.kind == "scratch" else view.covered).append(t.path)
        view.exposed += ro
    for path in view.covered:  # read-only last: a later mount may need a directory made in an earlier cover
        if os.path.isdir(path):
            _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    view.exposed = _outermost(view.exposed)
    return view


def _outermost(paths: list[str]) -> list[str]:
    return sorted(p for p in set(paths) if not any(q != p and _under(p, q) for q in paths))


def _has_content(path: str, view: View, bound: list[str]) -> bool:
    """Whether `path` still shows host content: under no earlier mount, or inside something bound back."""
    done = view.covered + view.scratch
    return not any(_under(path, d) for d in done) or any(_at_or_under(path, b) for b in bound)


def _apply(t: Target, ro: list[str], rw: list[str]) -> None:
    if t.kind == "file":
        _mount("/dev/null", t.path, None, MS_BIND)
        _mount(None, t.path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        return
    # Opened before the cover hides them; mounting from /proc/self/fd/N reaches what the descriptor holds.
    fds = [(p, os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), True) for p in ro]
    fds += [(p, os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), False) for p in rw]
    try:
        os.makedirs(t.path, mode=0o755, exist_ok=True)
        opts = SCRATCH_OPTS if t.kind == "scratch" else COVER_OPTS
        _mount("tmpfs", t.path, "tmpfs", MS_NOSUID | MS_NODEV, opts)
        for path, fd, read_only in fds:
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
            flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (MS_RDONLY if read_only else 0)
            _mount(None, path, None, flags)
    finally:
        for _, fd, _ in fds:
            os.close(fd)


def trusted_folders(repo_root: str) -> tuple[str, ...]:
    """What to hide: the checkout; or, where the project is installed into the interpreter's own tree
    (site-packages, which candidates need), only its trusted packages there."""
    root = os.path.realpath(repo_root)
    prefixes = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    if any(_at_or_under(root, p) for p in prefixes):
        return tuple(os.path.join(root, d) for d in TRUSTED_PACKAGES)
    return (root,)


def host_dir_fd(path: str) -> int:
    """An O_PATH descriptor of `path` as the host shows it (taken before the view), numbered above 3 so that
    every candidate's closerange drops it."""
    fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


def hide_from_candidates(repo_root: str, own_dir: str) -> dict[str, str]:
    """Build the view if we can, and say what is in effect (the zygote's hello): files "private" (with what
    was covered, made scratch and bound back) or "host" (with why). Never raises."""
    if os.geteuid() != 0:
        return {"files": "host", "files_why": "not root, so no private mount namespace"}
    try:
        view = build_view(trusted_folders(repo_root), own_dir)
    except NoNamespace as e:
        return {"files": "host", "files_why": f"no private mount namespace: {e}"}
    except (OSError, ValueError) as e:
        return {"files": "host", "files_why": f"mount error, the view is incomplete: {e}"}
    return {"files": "private", "covered": ",".join(view.covered), "scratch": ",".join(view.scratch),
            "exposed": ",".join(view.exposed)}
