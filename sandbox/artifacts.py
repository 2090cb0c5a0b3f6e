"""Capped copies of what a candidate printed: head and tail of its stdout/stderr files.

Only a bounded number of bytes is ever read, so a candidate that floods its output cannot blow up the
trusted side's memory. The text is kept for the prompt and the report, never parsed for scores.
"""
from __future__ import annotations

import os

from sandbox.base import Artifacts

DEFAULT_CAP = 32 * 1024  # bytes kept per stream: half from the head, half from the tail


def read_capped(path: str, cap: int = DEFAULT_CAP) -> tuple[str, bool, int]:
    """(text, truncated, file size). A missing file reads as empty."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return "", False, 0
    try:
        size = os.fstat(fd).st_size
        if size <= cap:
            data = os.pread(fd, cap, 0)
            return data.decode("utf-8", "replace"), False, size
        half = cap // 2
        head = os.pread(fd, half, 0).decode("utf-8", "replace")
        tail = os.pread(fd, half, size - half).decode("utf-8", "replace")
        return f"{head}\n... [{size - 2 * half} bytes cut] ...\n{tail}", True, size
    finally:
        os.close(fd)


def collect(workdir: str, cap: int = DEFAULT_CAP) -> tuple[Artifacts, int]:
    """The candidate's capped stdout/stderr, and the larger of the two file sizes (for the output cap)."""
    out, out_cut, out_size = read_capped(os.path.join(workdir, "stdout"), cap)
    err, err_cut, err_size = read_capped(os.path.join(workdir, "stderr"), cap)
    return Artifacts(stdout=out, stderr=err, truncated=out_cut or err_cut), max(out_size, err_size)
