"""How a sandbox container is locked down, and how its end is turned into one failure reason.

Pure functions of Limits and of what Docker reports, so they are testable without an engine.
"""
from __future__ import annotations

import signal
from typing import Any

from sandbox.base import CandidateError, Limits

LABEL = "adrs.sandbox.container"   # every container we make carries it, so none can be missed at cleanup
OWNER_LABEL = "adrs.owner"         # <host>:<pid>:<token> of the DockerSandbox that made it
HOST_LABEL = "adrs.host"
PID_LABEL = "adrs.pid"
SANDBOX_MOUNT = "/sandbox"         # the candidate's source (and the runner's socket), read-only
TMPFS_MB = 64
SHM_MB = 16
USER = "65534:65534"               # nobody:nogroup
CPUS = 1.0                         # one core per candidate: comparable timings, no noisy neighbour
EXIT_SETUP = 70                    # container_boot.py could not set up
EXIT_MEMORY = 3                    # runner.EXIT_MEMORY: could not even report a MemoryError
ENVIRONMENT = {                    # the whole environment: nothing from the caller's
    "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
    # one BLAS thread, as in the local backend: timings stay comparable, threads stay within the pid limit
    "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
}


def host_config(limits: Limits, slot_dir: str) -> dict[str, Any]:
    """Keyword arguments for the SDK's create_host_config: everything that confines the container."""
    from docker.types import LogConfig, Mount
    mem = f"{int(limits.memory_mb)}m"
    return dict(
        network_mode="none",
        read_only=True,
        tmpfs={"/tmp": f"rw,nosuid,nodev,noexec,size={TMPFS_MB}m,mode=1777"},
        shm_size=f"{SHM_MB}m",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        mem_limit=mem,
        memswap_limit=mem,              # no swap beyond the memory limit
        nano_cpus=int(CPUS * 1e9),
        pids_limit=int(limits.max_processes) + 1,  # + docker-init
        init=True,                      # docker-init is PID 1: reaps orphans, the runner is not init
        mounts=[Mount(target=SANDBOX_MOUNT, source=slot_dir, type="bind", read_only=True)],
        log_config=LogConfig(type="none"),  # output is captured (capped) from the attach stream only
        ipc_mode="private",
    )


def labels(owner: str, host: str, pid: int) -> dict[str, str]:
    return {LABEL: "1", OWNER_LABEL: owner, HOST_LABEL: host, PID_LABEL: str(pid)}


def load_request(limits: Limits, marker: str, entries: tuple[str, ...] = ()) -> dict[str, Any]:
    """The first frame a pooled container gets: the limits its runner applies to itself, the entry
    functions the candidate must define, and the marker that ends its output."""
    return {"op": "load", "marker": marker, "entries": list(entries),
            "limits": {"cpu_s": int(limits.cpu_s), "memory_mb": int(limits.memory_mb),
                       "output_bytes": int(limits.output_bytes), "max_frame_bytes": int(limits.max_frame_bytes)}}


def describe() -> dict[str, str]:
    """The confinement, in words, for the run's metadata."""
    return {
        "network": "none (--network none: only a down loopback)",
        "filesystem": f"read-only image root; tmpfs /tmp ({TMPFS_MB} MB, noexec) and /dev/shm ({SHM_MB} MB); "
                      f"the only host mount is the candidate's own folder at {SANDBOX_MOUNT}, read-only",
        "user": f"{USER} (nobody), all capabilities dropped, no-new-privileges",
        "pid_namespace": "own (docker-init is PID 1; no host process is visible)",
        "environment": "only " + ",".join(sorted(ENVIRONMENT)) + " (plus Docker's HOSTNAME)",
        "limits": f"cgroup memory = memory_mb (no swap), {CPUS:g} CPU, pids = max_processes + 1; rlimits CPU, "
                  "AS, FSIZE, NOFILE=256, CORE=0; wall clock enforced by killing the container",
        "lifetime": "a fresh container per candidate from a pre-started pool; removed after the candidate",
    }


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def classify_exit(code: int | None, oom_killed: bool, limits: Limits, output_over: bool) -> CandidateError:
    """A container whose runner ended without answering. docker-init exits with the runner's code, or with
    128 + the signal that killed it."""
    sig = code - 128 if code is not None and code > 128 else None
    if output_over or sig == signal.SIGXFSZ:
        return CandidateError("output_limit", f"wrote more than {limits.output_bytes} bytes of output; killed")
    if oom_killed or code == EXIT_MEMORY:
        return CandidateError("memory_limit", f"ran out of its {limits.memory_mb} MB of memory; killed")
    if sig == signal.SIGXCPU:
        return CandidateError("cpu_limit", f"used its {limits.cpu_s} s of CPU time; killed")
    if code == EXIT_SETUP:
        return CandidateError("infrastructure", "the sandbox container could not set up the candidate")
    if code is None:
        return CandidateError("infrastructure", "the sandbox container vanished while the candidate ran")
    if sig is not None:
        return CandidateError("crash", f"died by {_signame(sig)} without answering")
    return CandidateError("crash", f"exited with code {code} without answering")
