"""Per-candidate user ids when the trusted side runs as root.

Each live candidate gets its own uid from a reserved range, so RLIMIT_NPROC counts only that candidate's
processes, one candidate cannot signal or ptrace another, and "kill everything of this uid" kills exactly
one candidate. A slot is held with an flock on a root-only lock file, so concurrent sandboxes, threads and
even separate adrs processes on one machine never share a uid.
"""
from __future__ import annotations

import fcntl
import os
import threading
from dataclasses import dataclass

UID_BASE = 61000
SLOTS = 1000
LOCK_DIR = "/run/adrs-sandbox-uids" if os.path.isdir("/run") else "/tmp/adrs-sandbox-uids"
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


@dataclass
class UidLease:
    uid: int
    gid: int
    lock_fd: int


class UidPool:
    """Hands out free uids (uid == gid) and takes them back once nothing of the candidate is left."""

    def __init__(self, base: int = UID_BASE, slots: int = SLOTS, lock_dir: str = LOCK_DIR) -> None:
        self.base, self.slots, self.lock_dir = base, slots, lock_dir
        os.makedirs(lock_dir, mode=0o700, exist_ok=True)
        self._next = 0
        self._mutex = threading.Lock()

    def acquire(self) -> UidLease:
        with self._mutex:
            # Round robin: a uid just released gets the most time before it is reused.
            for i in range(self.slots):
                slot = (self._next + i) % self.slots
                lease = self._try(slot)
                if lease is not None:
                    self._next = slot + 1
                    return lease
        raise RuntimeError(f"all {self.slots} sandbox uids from {self.base} are in use")

    def _try(self, slot: int) -> UidLease | None:
        uid = self.base + slot
        fd = os.open(os.path.join(self.lock_dir, f"{uid}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return UidLease(uid, uid, fd)

    def release(self, lease: UidLease) -> None:
        remove_scratch_files(lease.uid)
        os.close(lease.lock_fd)  # closing drops the flock


def remove_scratch_files(uid: int) -> None:
    """Delete what the candidate uid left at the top of the shared scratch dirs (/tmp ...), so nothing a
    candidate leaves behind reaches the next candidate that gets this uid."""
    import shutil
    for top in SCRATCH_DIRS:
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass


def processes_of_uid(uid: int) -> list[int]:
    """Pids whose real uid is `uid` (read from /proc); used to verify a candidate left nothing running."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            found.append(int(name))
                        break
        except OSError:
            continue
    return found
