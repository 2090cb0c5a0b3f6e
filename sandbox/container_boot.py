"""The first program of a sandbox container (copied into the image as /opt/adrs/boot.py).

It runs as an unprivileged user under docker-init, warms up (numpy, msgpack, the runner), connects to the
trusted side's socket in the read-only /sandbox mount, and waits there: this is a pooled container. The
first frame says which limits to apply and which entry functions the candidate must define; then the
shared runner (sandbox/runner.py, the same one the local backend uses) imports /sandbox/candidate.py and
serves calls on that socket.

Frames travel on the socket only: the candidate's stdout and stderr are the container's own streams,
which the trusted side captures (capped) from Docker's attach stream, so nothing a candidate prints can
corrupt a frame. When the trusted side closes the socket, an end marker (chosen by the trusted side) is
written on both streams so it knows it has all the output. Only stdlib, numpy, msgpack and sandbox's
protocol, state_mirror and runner are used here.
"""
from __future__ import annotations

import os
import resource
import socket
import sys

SANDBOX_DIR = "/sandbox"
SOCKET_PATH = SANDBOX_DIR + "/runner.sock"
CANDIDATE_PATH = SANDBOX_DIR + "/candidate.py"
CODE_DIR = "/opt/adrs"           # sandbox/protocol.py, state_mirror.py and runner.py live here
SITE_DIR = "/opt/adrs/site"      # a problem's extra Python packages, when it declares any
EXIT_SETUP = 70
PRELOAD = ("numpy", "msgpack", "math", "random", "heapq", "bisect", "collections", "itertools",
           "functools", "dataclasses", "typing", "statistics", "json", "re", "traceback")


def _apply_limits(limits: dict) -> None:
    """The per-process rlimits the local backend applies too. Processes and memory are also capped by
    the container's cgroup; RLIMIT_NPROC is not set because it would count every container's processes
    under the shared unprivileged uid."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # soft < hard: SIGXCPU first (classifiable), SIGKILL one second later if ignored
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 1))
    mem = limits["memory_mb"] << 20
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["output_bytes"], limits["output_bytes"]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def main() -> int:
    sys.path[:0] = [p for p in (SITE_DIR, CODE_DIR) if os.path.isdir(p)]
    for name in PRELOAD:
        __import__(name)
    from sandbox import protocol, runner

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(SOCKET_PATH)
    fd = sock.detach()
    try:
        load = protocol.decode(protocol.FrameReader(fd, 1 << 16).read())
        if not (isinstance(load, dict) and load.get("op") == "load"):
            raise ValueError(f"expected a load request, got {str(load)[:80]}")
        limits = load["limits"]
        os.chdir("/tmp")
        _apply_limits(limits)
    except BaseException as e:  # noqa: BLE001 - reported to the trusted side: not the candidate's fault
        msg = {"ok": False, "kind": "infrastructure", "error": f"container setup failed: {type(e).__name__}: {e}"}
        try:
            protocol.send_frame(fd, protocol.encode(msg))
        except OSError:
            pass
        return EXIT_SETUP
    code = runner.serve(fd, CANDIDATE_PATH, int(limits["max_frame_bytes"]), tuple(load.get("entries") or ()))
    _end_output(str(load.get("marker", "")).encode())
    return code


def _end_output(marker: bytes) -> None:
    """Mark the end of the candidate's output on both streams: once the trusted side reads the marker it
    has all the output, without waiting for the container to stop."""
    for fd in (1, 2):
        try:
            os.write(fd, marker)
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())
