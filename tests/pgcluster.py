"""A throwaway PostgreSQL cluster for the store's tests: initdb and pg_ctl from Debian's packages, in a temp
folder, reachable only through a unix socket in that folder (no TCP port, nothing shared with the host).

PostgreSQL refuses to run as root, so under root the cluster belongs to the `postgres` user that Debian's
package creates (or `nobody`), started with runuser. `find_bin()` says why not when it cannot run here.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "adrs"
# Durability off: a test cluster is thrown away, and fsync on a shared 2-core machine costs seconds.
SERVER_OPTS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"


def find_bin() -> tuple[Path | None, str]:
    """The folder holding initdb and pg_ctl (newest Debian version first, then PATH), or why there is none."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for c in candidates:
        if (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c), ""
    return None, ("PostgreSQL is not installed (no initdb/pg_ctl under /usr/lib/postgresql/*/bin or on PATH; "
                  "`apt-get install postgresql`)")


def _version(path: str) -> float:
    try:
        return float(Path(path).parent.name)
    except ValueError:
        return 0.0


def _run_as() -> tuple[list[str], int | None]:
    """(command prefix, uid to own the folder): as ourselves, or under root as an unprivileged user."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        try:
            uid = pwd.getpwnam(name).pw_uid
        except KeyError:
            continue
        if shutil.which("runuser"):
            return ["runuser", "-u", name, "--"], uid
    raise RuntimeError("running as root, and there is no `postgres` or `nobody` user with runuser to start "
                       "PostgreSQL as (it refuses root)")


@dataclass
class Cluster:
    bindir: Path
    root: Path          # holds data/ and the socket
    prefix: list[str]

    @property
    def socket_dir(self) -> str:
        return str(self.root)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        import psycopg
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(host=self.socket_dir, user=SUPERUSER, dbname="postgres", autocommit=True) as c:
            c.execute(f'create database "{name}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m",
                        "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def start(bindir: Path) -> Cluster:
    """initdb a cluster in a new temp folder and start it; raises RuntimeError with the server's log."""
    prefix, uid = _run_as()
    root = Path(tempfile.mkdtemp(prefix="adrs-pg-"))   # short: a socket path must fit in 107 bytes
    if uid is not None:
        os.chown(root, uid, -1)
    cluster = Cluster(bindir, root, prefix)
    data, log = root / "data", root / "server.log"
    steps = [
        [str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "--no-sync", "-E", "UTF8",
         "--locale=C.UTF-8"],
        [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
         f"-k {root} -c listen_addresses='' {SERVER_OPTS}", "start"],
    ]
    for cmd in steps:
        r = subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            tail = log.read_text()[-1500:] if log.exists() else ""
            cluster.stop()
            raise RuntimeError(f"{' '.join(cmd[:1])} failed ({r.returncode}): {r.stderr.strip()[-1500:]}\n{tail}")
    return cluster


def connect(url: str):
    """A plain DB-API connection to a lineage URL (sqlite:///PATH or this module's PostgreSQL URLs), for
    tests that look at the tables behind the store's back."""
    from urllib.parse import parse_qs, urlsplit
    if url.startswith("sqlite:///"):
        import sqlite3
        return sqlite3.connect(url[len("sqlite:///"):])
    import psycopg
    u = urlsplit(url)
    return psycopg.connect(host=parse_qs(u.query)["host"][0], user=u.username, dbname=u.path.lstrip("/"),
                           autocommit=True)


def execute_sql(url: str, statements: list[str]) -> None:
    """Run `statements` on a lineage URL behind the store's back (to build an old store), then commit."""
    con = connect(url)
    try:
        for sql in statements:
            con.execute(sql)
        con.commit()
    finally:
        con.close()
