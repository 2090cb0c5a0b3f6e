"""The Docker sandbox image, built locally: no registry is ever contacted.

Two layers of caching:
  base   `adrs-sandbox-base:<recipe digest>`  a root filesystem with Python, numpy and msgpack, from
         `debootstrap --variant=minbase` against the host's own Debian mirror, or imported from a directory
         the user points at (--rootfs);
  final  `adrs-sandbox:<content digest>`      the base plus the runner (sandbox/protocol.py, state_mirror.py,
         runner.py and container_boot.py as /opt/adrs) and a problem's extra Python packages in /opt/adrs/site.
The content digest covers the base's layers and every file added, so the tag names exactly what runs; it is
recorded in each run's metadata. Nothing of the host's own paths goes in (pip's console scripts, which name
the host venv's interpreter, are left out), so every checkout and venv of the same code gets the same tag. Images carry labels (runner digest, package digest) by which the sandbox
finds the newest image matching the code it runs with: a changed runner means `adrs sandbox build` again.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = "adrs-sandbox"
BASE_REPO = "adrs-sandbox-base"
LABEL = "adrs.sandbox"
RUNNER_LABEL = "adrs.runner"
PACKAGES_LABEL = "adrs.packages"
PYTHON_LABEL = "adrs.python"
USER = "65534:65534"  # nobody:nogroup; needs no passwd entry
DEBIAN_PACKAGES = ("python3", "python3-numpy", "python3-msgpack")
DEFAULT_SUITE = "bookworm"
SUITE_PYTHON = {"bookworm": "3.11", "trixie": "3.13", "bullseye": "3.9"}
# Not needed at run time; dropping them halves the image.
SLIM_GLOBS = ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "usr/share/doc/*", "usr/share/man/*",
              "usr/share/locale/*", "usr/share/info/*")
HERE = Path(__file__).resolve().parent
RUNNER_SOURCES = {"sandbox/__init__.py": None, "sandbox/protocol.py": HERE / "protocol.py",
                  "sandbox/state_mirror.py": HERE / "state_mirror.py", "sandbox/runner.py": HERE / "runner.py",
                  "boot.py": HERE / "container_boot.py"}

Log = Callable[[str], None]


class ImageError(Exception):
    """The image cannot be built or found; the message says what to do, in one line."""


@dataclass(frozen=True)
class ImageInfo:
    tag: str          # adrs-sandbox:<digest[:16]>
    id: str           # Docker's image id (sha256:...)
    digest: str       # our content digest (sha256 hex)
    packages: tuple[str, ...]


# ---------------------------------------------------------------- digests

def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def runner_digest() -> str:
    """What the container runs of ours: a changed runner needs a new image."""
    h = hashlib.sha256()
    for rel, path in sorted(RUNNER_SOURCES.items()):
        h.update(rel.encode() + b"\0" + (path.read_bytes() if path else b"") + b"\0")
    return h.hexdigest()


def normalise_packages(packages: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(sorted({" ".join(p.split()) for p in packages if p.strip()}))


def packages_digest(packages: tuple[str, ...] | list[str]) -> str:
    return _sha(json.dumps(normalise_packages(packages)).encode())[:16]


def numpy_pin() -> str:
    """Candidates get the trusted side's numpy version, so that a program computes exactly what it
    computes under the local backend (sorting ties, summation order change between numpy versions)."""
    import numpy
    return f"numpy=={numpy.__version__}"


def tree_digest(root: Path) -> str:
    """Digest of every file under `root`: relative path, mode and content, in sorted order."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        mode = path.lstat().st_mode & 0o777
        body = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
        h.update(f"{rel}\0{mode:o}\0".encode() + _sha(body).encode())
    return h.hexdigest()


# ---------------------------------------------------------------- base: debootstrap or a given rootfs

def apt_mirror(suite: str = DEFAULT_SUITE) -> str | None:
    """The Debian mirror this machine's apt already uses for `suite` (no host is hard-coded)."""
    texts = []
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*"))]:
        try:
            texts.append(Path(path).read_text())
        except OSError:
            continue
    for text in texts:
        for line in text.splitlines():  # one-line format: deb [opts] URI suite components
            m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s", line)
            if m and m.group(2) == suite:
                return m.group(1)
        for stanza in re.split(r"\n\s*\n", text):  # deb822 format
            fields = dict(re.findall(r"(?m)^(\w[\w-]*):\s*(.*)$", stanza))
            if "deb" in fields.get("Types", "").split() and suite in fields.get("Suites", "").split():
                return fields.get("URIs", "").split()[0] if fields.get("URIs") else None
    return None


def _slim(rootfs: Path) -> None:
    for pattern in SLIM_GLOBS:
        for path in glob.glob(str(rootfs / pattern)):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)


def rootfs_python(rootfs: Path) -> str:
    """The X.Y of the root filesystem's python3 (for picking wheels of extra packages)."""
    found = sorted((tuple(int(x) for x in m.group(1).split(".")), m.group(1))
                   for d in glob.glob(str(rootfs / "usr/lib/python3.*") + "/os.py")
                   if (m := re.search(r"python(3\.\d+)/os\.py$", d)))
    if not found:
        raise ImageError(f"{rootfs}: no python3 standard library under usr/lib/python3.*: not a usable rootfs")
    return found[-1][1]


def debootstrap(suite: str, mirror: str, into: Path, log: Log) -> None:
    if os.geteuid() != 0:
        raise ImageError("debootstrap needs root: run `adrs sandbox build` as root, or pass --rootfs DIR")
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed (apt-get install debootstrap), or pass --rootfs DIR")
    cmd = ["debootstrap", "--variant=minbase", "--include=" + ",".join(DEBIAN_PACKAGES), suite, str(into), mirror]
    log(f"debootstrap {suite} from {mirror} (about a minute)")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        raise ImageError(f"debootstrap failed (exit {proc.returncode}): {tail}")


def import_rootfs(client, rootfs: Path, tag: str, python: str, log: Log) -> str:
    """Import a directory as a one-layer image; returns its id."""
    for need in ("usr/bin/python3",):
        if not (rootfs / need).exists():
            raise ImageError(f"{rootfs}: has no /{need}: not a usable rootfs")
    repo, _, version = tag.partition(":")
    with tempfile.TemporaryDirectory(prefix="adrs-rootfs-tar-") as tmp:
        tar = Path(tmp) / "rootfs.tar"
        log(f"packing {rootfs}")
        subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tar), "."], check=True,
                       capture_output=True)
        log(f"importing it as {tag}")
        client.api.import_image(src=str(tar), repository=repo, tag=version,
                                changes=[f"LABEL {PYTHON_LABEL}={python}"])
    return client.images.get(tag).id


def base_image(client, rootfs: Path | None, suite: str, mirror: str | None, rebuild: bool, log: Log):
    """The base image (cached by recipe for debootstrap; imported afresh for a given rootfs)."""
    if rootfs is not None:
        rootfs = rootfs.resolve()
        if not rootfs.is_dir():
            raise ImageError(f"{rootfs}: not a directory")
        tag = f"{BASE_REPO}:rootfs-{_sha(str(rootfs).encode())[:12]}"
        import_rootfs(client, rootfs, tag, rootfs_python(rootfs), log)
        return client.images.get(tag)
    mirror = mirror or apt_mirror(suite)
    if not mirror:
        raise ImageError(f"no apt source for '{suite}' on this machine: pass --mirror URL or --rootfs DIR")
    recipe = json.dumps({"suite": suite, "variant": "minbase", "include": DEBIAN_PACKAGES, "slim": SLIM_GLOBS})
    tag = f"{BASE_REPO}:{suite}-{_sha(recipe.encode())[:12]}"
    if not rebuild and _exists(client, tag):
        log(f"base image {tag} is cached")
        return client.images.get(tag)
    with tempfile.TemporaryDirectory(prefix="adrs-debootstrap-", dir="/var/tmp") as tmp:
        into = Path(tmp) / "rootfs"
        debootstrap(suite, mirror, into, log)
        _slim(into)
        import_rootfs(client, into, tag, rootfs_python(into), log)
    return client.images.get(tag)


def _exists(client, tag: str) -> bool:
    import docker.errors
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


# ---------------------------------------------------------------- final image

def _pip_install(packages: tuple[str, ...], python: str, into: Path, log: Log) -> None:
    """Wheels for the image's Python, installed on the host into a folder copied into the image."""
    log(f"installing {', '.join(packages)} for Python {python}")
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-compile", "--target", str(into),
           "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
           *[a for p in ("manylinux2014_x86_64", "manylinux_2_28_x86_64", "linux_x86_64", "any")
             for a in ("--platform", p)], *packages]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
        raise ImageError(f"could not install {', '.join(packages)} for the image: {tail}")


def drop_console_scripts(site: Path) -> None:
    """Remove the console scripts pip wrote to site/bin, and their lines in each package's RECORD.
    Their first line names the host's interpreter (`#!/path/to/venv/bin/python`), so they would make the
    content digest, and the tag, differ per virtual environment; candidates import packages and never run
    these scripts (there is no such interpreter in the image either)."""
    scripts = site / "bin"
    if scripts.is_dir():
        shutil.rmtree(scripts)
    for record in site.glob("*.dist-info/RECORD"):
        lines = record.read_text().splitlines(keepends=True)
        kept = [ln for ln in lines if not re.match(r"(\.\./)*bin/", ln)]
        if kept != lines:
            record.write_text("".join(kept))


def _context(ctx: Path, packages: tuple[str, ...], python: str, log: Log) -> None:
    code = ctx / "adrs"
    for rel, src in RUNNER_SOURCES.items():
        dst = code / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes() if src else b"")
    if packages:
        _pip_install(packages, python, code / "site", log)
        drop_console_scripts(code / "site")
    for path in code.rglob("*"):  # readable by the unprivileged user, writable by nobody
        path.chmod(0o755 if path.is_dir() else 0o644)


def build(client, packages: tuple[str, ...] = (), rootfs: Path | None = None, suite: str = DEFAULT_SUITE,
          mirror: str | None = None, rebuild: bool = False, log: Log = print, pin_numpy: bool = True) -> ImageInfo:
    """Build (or find cached) the sandbox image for `packages` (plus, unless `pin_numpy` is off, the
    trusted side's numpy version instead of the distribution's); returns what was built."""
    packages = normalise_packages(tuple(packages) + ((numpy_pin(),) if pin_numpy else ()))
    base = base_image(client, rootfs, suite, mirror, rebuild, log)
    python = (base.labels or {}).get(PYTHON_LABEL) or SUITE_PYTHON.get(suite, "3.11")
    with tempfile.TemporaryDirectory(prefix="adrs-image-") as tmp:
        ctx = Path(tmp)
        _context(ctx, packages, python, log)
        dockerfile = (f"FROM {base.id}\nCOPY adrs /opt/adrs\nUSER {USER}\nWORKDIR /tmp\n"
                      'CMD ["python3", "-s", "-B", "/opt/adrs/boot.py"]\n')
        layers = base.attrs.get("RootFS", {}).get("Layers", [])
        digest = _sha(json.dumps({"base": layers, "files": tree_digest(ctx / "adrs"),
                                  "dockerfile": dockerfile}).encode())
        tag = f"{REPO}:{digest[:16]}"
        if not rebuild and _exists(client, tag):
            log(f"image {tag} is cached")
        else:
            labels = {LABEL: "1", RUNNER_LABEL: runner_digest(), PACKAGES_LABEL: packages_digest(packages),
                      "adrs.digest": digest, "adrs.packages.list": json.dumps(packages)}
            (ctx / "Dockerfile").write_text(dockerfile)
            log(f"building {tag}")
            client.images.build(path=str(ctx), tag=tag, labels=labels, rm=True, forcerm=True, pull=False)
    return ImageInfo(tag, client.images.get(tag).id, digest, packages)


def find(client, packages: tuple[str, ...] = (), hint: str = "adrs sandbox build") -> ImageInfo:
    """The newest local image built for this runner and these packages, preferring one with the trusted
    side's numpy; ImageError says how to build one."""
    for wanted in (normalise_packages(tuple(packages) + (numpy_pin(),)), normalise_packages(packages)):
        found = client.images.list(filters={"label": [f"{LABEL}=1", f"{RUNNER_LABEL}={runner_digest()}",
                                                      f"{PACKAGES_LABEL}={packages_digest(wanted)}"]})
        tagged = [im for im in found if any(t.startswith(REPO + ":") for t in im.tags)]
        if tagged:
            packages = wanted
            break
    else:
        what = f" with {', '.join(packages)}" if packages else ""
        raise ImageError(f"no sandbox image{what} for this version of adrs' runner: build it with `{hint}`")
    newest = max(tagged, key=lambda im: im.attrs.get("Created", ""))
    tag = sorted(t for t in newest.tags if t.startswith(REPO + ":"))[0]
    return ImageInfo(tag, newest.id, (newest.labels or {}).get("adrs.digest", ""), packages)
