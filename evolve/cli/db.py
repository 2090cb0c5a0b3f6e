"""The lineage store's schema from the command line: `adrs db version` and `adrs db upgrade`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from evolve.cli.app import app, make_console
from evolve.errors import AdrsError

db_app = typer.Typer(no_args_is_help=True, help="The lineage store's schema: its version, and upgrades.")
app.add_typer(db_app, name="db")


def _urls(target: Optional[Path], db: Optional[str]) -> list[str]:
    """--db URL; or a lineage.db file; or a run folder; or a folder of run folders (each of its stores)."""
    from evolve.store import sqlite_url
    if db:
        if target is not None:
            raise AdrsError("give a run folder or --db, not both")
        return [db]
    if target is None:
        raise AdrsError("give a run folder (or a folder of runs, or a lineage.db file), or --db URL")
    if target.is_file():
        return [sqlite_url(target)]
    if (target / "lineage.db").is_file():
        return [sqlite_url(target / "lineage.db")]
    found = sorted(target.glob("*/lineage.db")) if target.is_dir() else []
    if not found:
        raise AdrsError(f"{target}: no lineage store here (no lineage.db in it or in its run folders)")
    return [sqlite_url(p) for p in found]


@db_app.command()
def upgrade(target: Optional[Path] = typer.Argument(None, help="run folder, folder of runs, or lineage.db"),
            db: Optional[str] = typer.Option(None, help="SQLAlchemy URL of the store")) -> None:
    """Upgrade lineage stores written by an older adrs to this adrs's schema version."""
    from evolve.store import migrate
    console = make_console()
    for url in _urls(target, db):
        u = migrate.upgrade(url)
        if u.before == u.after:
            console.print(f"{u.url}: already at schema version {u.after}")
        else:
            console.print(f"{u.url}: upgraded from schema version {u.before} to {u.after}")


@db_app.command()
def version(target: Optional[Path] = typer.Argument(None, help="run folder, folder of runs, or lineage.db"),
            db: Optional[str] = typer.Option(None, help="SQLAlchemy URL of the store")) -> None:
    """Print each store's schema version beside the one this adrs reads."""
    from evolve.store import SCHEMA_VERSION, migrate, shown_url
    console = make_console()
    for url in _urls(target, db):
        v = migrate.version(url)
        state = ("current" if v == SCHEMA_VERSION else "older: run `adrs db upgrade`" if v < SCHEMA_VERSION
                 else "newer: upgrade adrs")
        console.print(f"{shown_url(url)}: schema version {v} ({state}; this adrs reads version {SCHEMA_VERSION})")
