"""`adrs sandbox ...`: build the Docker sandbox image locally (no registry), and see what is there."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from evolve.cli.app import app, make_console
from evolve.errors import AdrsError

sandbox_app = typer.Typer(no_args_is_help=True, help="The Docker sandbox: build its image, show its state.")
app.add_typer(sandbox_app, name="sandbox")

SMOKE_SOURCE = "import numpy, sys\ndef f():\n    return [sys.version.split()[0], numpy.__version__]\n"


def _client():
    from sandbox.docker import SandboxUnavailable, connect
    try:
        return connect(timeout_s=900)
    except SandboxUnavailable as e:
        raise AdrsError(str(e)) from None


@sandbox_app.command("build")
def build(rootfs: Optional[Path] = typer.Option(None, help="use this root filesystem (with python3, numpy "
                                                "and msgpack) instead of debootstrap"),
          problem: Optional[str] = typer.Option(None, help="also install this problem's [sandbox] packages"),
          suite: str = typer.Option("bookworm", help="Debian suite for debootstrap"),
          mirror: Optional[str] = typer.Option(None, help="Debian mirror (default: the one apt uses here)"),
          rebuild: bool = typer.Option(False, help="rebuild even if a cached image matches"),
          distro_numpy: bool = typer.Option(False, help="keep the rootfs' numpy instead of installing the "
                                            "trusted side's version (no PyPI access; metrics may differ)")) -> None:
    """Build the sandbox image (Python, numpy, the runner) locally and check that a candidate runs in it."""
    from sandbox import image
    from sandbox.base import Limits
    from sandbox.docker import DockerSandbox, SandboxUnavailable
    console = make_console()
    packages: tuple[str, ...] = ()
    if problem:
        from evolve import problem as pm
        packages = pm.load(problem, check_evaluator=False).sandbox_packages
    client = _client()
    try:
        info = image.build(client, packages, rootfs, suite, mirror, rebuild, log=console.print,
                           pin_numpy=not distro_numpy)
    except image.ImageError as e:
        raise AdrsError(str(e)) from None
    try:
        with DockerSandbox(image=info.tag, packages=info.packages, client=client, pool_size=1) as sb:
            with sb.start(SMOKE_SOURCE, Limits(call_timeout_s=30, workload_timeout_s=60)) as cand:
                py, np_version = cand.call("f")
    except (SandboxUnavailable, Exception) as e:  # noqa: BLE001 - one line, whatever failed
        raise AdrsError(f"image {info.tag} was built but a candidate cannot run in it: {e}") from None
    console.print(f"[green]ready[/]: {info.tag} (Python {py}, numpy {np_version}"
                  + (f", {', '.join(packages)}" if packages else "") + ")")
    console.print(f"digest sha256:{info.digest}")


@sandbox_app.command("status")
def status() -> None:
    """The engine, the sandbox images, and any sandbox container still present."""
    from sandbox import docker_options, image
    console = make_console()
    client = _client()
    v = client.version()
    console.print(f"engine: Docker {v.get('Version', '?')} (API {v.get('ApiVersion', '?')})")
    for im in client.images.list(filters={"label": f"{image.LABEL}=1"}):
        current = (im.labels or {}).get(image.RUNNER_LABEL) == image.runner_digest()
        console.print(f"image {', '.join(im.tags) or im.short_id}: packages "
                      f"{(im.labels or {}).get('adrs.packages.list', '[]')}"
                      f"{'' if current else ' (older runner: rebuild)'}")
    left = client.api.containers(all=True, filters={"label": f"{docker_options.LABEL}=1"})
    console.print(f"sandbox containers present: {len(left)}")


@sandbox_app.command("clean")
def clean() -> None:
    """Remove sandbox containers left by adrs processes of this host that are gone (e.g. killed with -9,
    or the engine was down when they ended). Every `--sandbox docker` run does this when it starts."""
    import socket
    from sandbox.docker import remove_orphans
    console = make_console()
    console.print(f"removed {remove_orphans(_client(), socket.gethostname())} leftover sandbox container(s)")
