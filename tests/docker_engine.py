"""What the Docker tests share: the engine (or a skip saying why), limits, and finding our containers."""
from __future__ import annotations

import os

import pytest

from sandbox import docker_options as opts
from sandbox import image
from sandbox.base import Limits

SECRET = "sk-adrs-docker-secret-42"
FAST = Limits(call_timeout_s=2.0, workload_timeout_s=20.0, cpu_s=10, memory_mb=512, max_processes=16,
              output_bytes=64 * 1024)


def engine_or_skip():
    from sandbox.docker import SandboxUnavailable, connect
    try:
        client = connect(timeout_s=60)
        image.find(client)
    except (SandboxUnavailable, image.ImageError) as e:
        pytest.skip(f"Docker sandbox not available here: {e}")
    return client


def ours(client, owner: str) -> list:
    return client.api.containers(all=True, filters={"label": f"{opts.OWNER_LABEL}={owner}"})


def process_tree(pid: int) -> set[int]:
    """`pid` and every live descendant, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = set(), [pid]
    while todo:
        p = todo.pop()
        tree.add(p)
        todo += children.get(p, [])
    return tree


def of_pids(client, pids: set[int]) -> list:
    """Our sandbox containers made by any of `pids`."""
    found = client.api.containers(all=True, filters={"label": f"{opts.LABEL}=1"})
    return [c for c in found if str((c.get("Labels") or {}).get(opts.PID_LABEL)) in {str(p) for p in pids}]
