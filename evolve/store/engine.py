"""Opening a lineage database: the engine (SQLite pragmas), and refusing databases that are not ours or
were written with another schema version."""
from __future__ import annotations

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session

from evolve.errors import AdrsError
from evolve.store.schema import SCHEMA_VERSION, Base, Meta


def make_engine(url: str) -> Engine:
    try:
        engine = create_engine(url)
    except Exception as e:  # malformed URL, missing driver
        raise AdrsError(f"cannot open database URL '{url}': {first_line(e)}") from None
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):  # WAL: readers never block the writer; NORMAL is durable in WAL
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    return engine


class StatementCounter:
    """Counts the SQL statements an engine runs, so tests and benches can hold query counts down."""

    def __init__(self, engine: Engine) -> None:
        self.n = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args) -> None:
        self.n += 1


def check_or_create(engine: Engine, url: str, create: bool) -> None:
    """Accept a store of our schema version; create one in an empty database when asked; refuse the rest."""
    try:
        tables = set(inspect(engine).get_table_names())
    except (DatabaseError, OperationalError) as e:
        raise AdrsError(f"{url}: not a database adrs can open ({first_line(e)})") from None
    if "adrs_meta" in tables:
        with Session(engine) as s:
            v = s.get(Meta, "schema_version")
        _check_version(url, v.value if v is not None else None)
        return
    if tables or not create:
        raise AdrsError(f"{url}: not an adrs lineage database")
    Base.metadata.create_all(engine)
    with Session(engine) as s, s.begin():
        s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))


def _check_version(url: str, stored: str | None) -> None:
    try:
        v = int(stored) if stored is not None else None
    except ValueError:
        v = None
    if v == SCHEMA_VERSION:
        return
    if v is None:
        raise AdrsError(f"{url}: adrs lineage store without a readable schema version ({stored!r})")
    # a plain message rather than a traceback half-way through reading a renamed table
    who = "an older" if v < SCHEMA_VERSION else "a newer"
    advice = ("open it with the adrs version that wrote it, or start a new run" if v < SCHEMA_VERSION
              else "upgrade adrs to read it")
    raise AdrsError(f"{url}: this lineage store was written by {who} adrs (schema version {v}; this adrs "
                    f"reads version {SCHEMA_VERSION}): {advice}")


def ping(url: str) -> None:
    """Connect to a database URL and run `select 1`; the driver's exception propagates as it is."""
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            c.execute(text("select 1"))
    finally:
        engine.dispose()


def first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
