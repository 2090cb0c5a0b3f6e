"""Opening a lineage database: the engine (SQLite pragmas), and refusing databases that are not ours or
were written with another schema version."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Engine, create_engine, event, insert, inspect, make_url, text
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session

from evolve.errors import AdrsError
from evolve.store.schema import SCHEMA_VERSION, Base, Meta


def make_engine(url: str) -> Engine:
    try:
        engine = create_engine(url)
    except ModuleNotFoundError as e:  # the URL names a driver that is not installed
        hint = (" (adrs is tested with postgresql+psycopg://: pip install 'psycopg[binary]')"
                if url.startswith("postgresql") else "")
        raise AdrsError(f"cannot open database URL '{shown(url)}': no driver {e.name!r}{hint}") from None
    except Exception as e:  # malformed URL, unknown dialect
        raise AdrsError(f"cannot open database URL '{shown(url)}': {first_line(e)}") from None
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):  # WAL: readers never block the writer; NORMAL is durable in WAL
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    return engine


def snapshot_engine(engine: Engine) -> Engine:
    """The same pool, for sessions whose queries must all see one committed state (see begin_snapshot).
    PostgreSQL's default READ COMMITTED gives each statement its own snapshot; REPEATABLE READ gives the
    transaction one. A reader never blocks the writer under either."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="REPEATABLE READ")
    return engine


def begin_snapshot(session: Session) -> None:
    """Start the session's read transaction now. pysqlite sends BEGIN only before a write, so without this
    each SELECT would read its own state; in WAL mode a read transaction is one snapshot and blocks no writer."""
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN")


class StatementCounter:
    """Counts the SQL statements an engine runs, so tests and benches can hold query counts down."""

    def __init__(self, engine: Engine) -> None:
        self.n = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn, _cursor, statement: str, *_args) -> None:
        if statement.strip().upper() != "BEGIN":  # transaction control is not a query
            self.n += 1


def check_or_create(engine: Engine, url: str, create: bool) -> None:
    """Accept a store of our schema version; create one in an empty database when asked; refuse the rest."""
    if _accept_existing(engine, url):
        return
    with schema_lock(engine):  # several runs may start on one empty PostgreSQL database at once
        if _accept_existing(engine, url):
            return
        if _tables(engine, url) or not create:
            raise AdrsError(f"{url}: not an adrs lineage database")
        with engine.begin() as conn:  # one transaction where DDL is transactional (PostgreSQL)
            Base.metadata.create_all(conn)
            conn.execute(insert(Meta), [dict(key="schema_version", value=str(SCHEMA_VERSION))])


def _tables(engine: Engine, url: str) -> set[str]:
    try:
        return set(inspect(engine).get_table_names())
    except (DatabaseError, OperationalError) as e:
        if engine.dialect.name == "sqlite":
            raise AdrsError(f"{url}: not a database adrs can open ({first_line(e)})") from None
        raise AdrsError(f"{url}: cannot reach the database: {first_line(e.orig or e)}") from None


def _accept_existing(engine: Engine, url: str) -> bool:
    """True for a store of our schema version; raises for one of another version; False: no store here."""
    v = stored_version(engine, url)
    if v is None:
        return False
    check_version(url, v)
    return True


def stored_version(engine: Engine, url: str) -> int | None:
    """The schema version an adrs store records; None where the database holds no adrs store."""
    if "adrs_meta" not in _tables(engine, url):
        return None
    with Session(engine) as s:
        row = s.get(Meta, "schema_version")
    stored = row.value if row is not None else None
    try:
        return int(stored)
    except (TypeError, ValueError):
        raise AdrsError(f"{url}: adrs lineage store without a readable schema version ({stored!r})") from None


SCHEMA_LOCK = 0x61647273   # "adrs": the PostgreSQL advisory lock held while tables are created or upgraded


@contextmanager
def schema_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as c:
        c.execute(text("select pg_advisory_lock(:k)"), {"k": SCHEMA_LOCK})
        try:
            yield
        finally:
            c.execute(text("select pg_advisory_unlock(:k)"), {"k": SCHEMA_LOCK})


def check_version(url: str, v: int) -> None:
    """A plain message rather than a traceback half-way through reading a renamed table."""
    if v == SCHEMA_VERSION:
        return
    if v < SCHEMA_VERSION:
        raise AdrsError(f"{url}: this lineage store was written by an older adrs (schema version {v}; this adrs "
                        f"reads version {SCHEMA_VERSION}): upgrade it with `{upgrade_command(url)}`")
    raise AdrsError(f"{url}: this lineage store was written by a newer adrs (schema version {v}; this adrs "
                    f"reads version {SCHEMA_VERSION}): upgrade adrs to read it")


def upgrade_command(url: str) -> str:
    if url.startswith("sqlite:///"):
        return f"adrs db upgrade {url[len('sqlite:///'):]}"
    return f"adrs db upgrade --db '{url}'"


def ping(url: str) -> None:
    """Connect to a database URL and run `select 1`; the driver's exception propagates as it is."""
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            c.execute(text("select 1"))
    finally:
        engine.dispose()


def shown(url: str) -> str:
    """A URL fit to print and record: its password, if any, masked."""
    try:
        u = make_url(url)
    except Exception:  # not a URL at all: nothing to hide that it parses as
        return url
    return url if u.password is None else u.render_as_string(hide_password=True)


def first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
