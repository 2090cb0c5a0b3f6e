"""A private mount namespace for the zygote (root only) in which candidates can read the Python install.

Candidates run under an unprivileged uid, but the interpreter and its stdlib may live under a directory
that uid cannot enter (e.g. /root/.pyenv with /root at 0700). Rather than loosening the host's
permissions, the zygote enters its own mount namespace and covers each such directory with an empty tmpfs
into which only the needed paths are bind-mounted back, read-only. Side effect: everything else in those
directories (a home's dotfiles, keys, caches) is hidden from candidates.
"""
from __future__ import annotations

import ctypes
import os
import stat
import sys

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def needed_paths() -> list[str]:
    """Directories a candidate must be able to read: the interpreter prefix and every sys.path dir."""
    found = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    found |= {os.path.realpath(p) for p in sys.path if p and os.path.isdir(p)}
    ordered = sorted(found)
    # keep only the outermost of nested paths
    return [p for p in ordered if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in ordered)]


def _blocked_ancestor(path: str) -> str | None:
    """The outermost ancestor of `path` that others cannot traverse, if any."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts)):
        anc = "/" + "/".join(parts[:i])
        if not os.stat(anc).st_mode & stat.S_IXOTH:
            return anc
    return None


def expose_to_candidates(stage_dir: str) -> list[str]:
    """Enter a private mount namespace and make the needed paths readable; returns the covered dirs."""
    plan: dict[str, list[str]] = {}
    for path in needed_paths():
        blocked = _blocked_ancestor(path)
        if blocked is not None:
            plan.setdefault(blocked, []).append(path)
    if not plan:
        return []
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount here propagates to the host
    for n, (blocked, paths) in enumerate(sorted(plan.items())):
        staged = []
        for i, path in enumerate(paths):  # park each path where it stays reachable under the tmpfs
            stage = os.path.join(stage_dir, f"{n}-{i}")
            os.makedirs(stage, exist_ok=True)
            _mount(path, stage, None, MS_BIND | MS_REC)
            staged.append((stage, path))
        _mount("tmpfs", blocked, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
        for stage, path in staged:
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(stage, path, None, MS_BIND | MS_REC)
            _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID)
            _check(_libc.umount2(stage.encode(), MNT_DETACH), f"umount {stage}")
    return sorted(plan)
