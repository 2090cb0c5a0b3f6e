"""Schema upgrades with Alembic (`adrs db upgrade`): one revision per schema version, "0001" being version 1.

adrs_meta's schema_version stays the one truth about a store (it predates Alembic and is what opening a
store checks), so an upgrade stamps Alembic's table from it and then runs the revisions after it, in one
transaction where the database has transactional DDL (PostgreSQL; SQLite's steps are each atomic).
New stores are made by create_all at the newest version and need no revision at all.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from evolve.errors import AdrsError
from evolve.store import engine as eng
from evolve.store.schema import SCHEMA_VERSION, Base

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@dataclass(frozen=True)
class Upgrade:
    url: str
    before: int
    after: int


def revision(version: int) -> str:
    return f"{version:04d}"


def head_version() -> int:
    """The version of the newest revision (a test holds it equal to SCHEMA_VERSION)."""
    return int(ScriptDirectory.from_config(_config()).get_current_head())


def upgrade(url: str) -> Upgrade:
    """Bring the store at `url` to SCHEMA_VERSION; a store already there is left alone."""
    engine, shown = eng.make_engine(url), eng.shown(url)
    try:
        with eng.schema_lock(engine):   # no one creates or upgrades the same PostgreSQL store meanwhile
            before = _version(engine, shown)
            if before > SCHEMA_VERSION:
                eng.check_version(shown, before)   # the "written by a newer adrs" refusal
            if before < SCHEMA_VERSION:
                with engine.begin() as conn:
                    cfg = _config(conn)
                    command.stamp(cfg, revision(before), purge=True)
                    command.upgrade(cfg, "head")
            return Upgrade(shown, before, _version(engine, shown))
    finally:
        engine.dispose()


def version(url: str) -> int:
    """The schema version recorded in the store at `url` (any version: nothing is refused here)."""
    engine = eng.make_engine(url)
    try:
        return _version(engine, eng.shown(url))
    finally:
        engine.dispose()


def build(url: str, version: int) -> None:
    """Lay out an empty store as schema version `version` was, by its revisions (tests of upgrades)."""
    engine = eng.make_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(_config(conn), revision(version))
    finally:
        engine.dispose()


def differences(url: str) -> list[str]:
    """How the tables at `url` differ from those this adrs creates; [] when they match. Column types are
    compared except on SQLite, which ignores declared lengths (see revision 0003)."""
    engine = eng.make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": conn.dialect.name != "sqlite"})
            diffs = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    return [repr(d) for d in diffs if not _alembic_own(d)]


def _alembic_own(diff) -> bool:
    # Alembic's own bookkeeping table, left by an upgrade, is not part of the schema
    return isinstance(diff, tuple) and diff[0] == "remove_table" and diff[1].name == "alembic_version"


def _version(engine, shown: str) -> int:
    v = eng.stored_version(engine, shown)
    if v is None:
        raise AdrsError(f"{shown}: not an adrs lineage database")
    return v


def _config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg
