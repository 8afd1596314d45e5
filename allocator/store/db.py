"""Opening the run store: where it is, the engine, the schema brought up to date by Alembic,
and stale `running` rows of dead processes marked `lost`.

SQLite (the default, one file) runs in WAL mode with a busy timeout and takes the write lock
at the start of every transaction (BEGIN IMMEDIATE), so two runs writing at once wait for
each other instead of failing; PostgreSQL relies on its transactions, and on an advisory lock
while the schema is migrated (two first runs racing to create the tables)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, select, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from allocator.errors import InputError
from allocator.store.models import LOST, RUNNING, Run

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.pool import ConnectionPoolEntry

ENV = "ALLOCATOR_STORE"
DEFAULT_NAME = "runs.sqlite"
OFF = frozenset({"none", "off", "no", "false", "0"})
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
PG_MIGRATION_LOCK = 0x616C6C6F63  # pg_advisory_xact_lock key: "alloc"


class StoreError(InputError):
    """The store cannot be opened or used (bad URL, unreachable server, not a store)."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _as_url(value: str, base: Path) -> str:
    """A SQLAlchemy URL as given, or a file path (relative to `base`; a folder means the
    default file in it) as a SQLite URL."""
    if "://" in value:
        return value
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base / path
    with contextlib.suppress(OSError, ValueError):  # a name too long, say: opening says why
        if path.is_dir():
            path = path / DEFAULT_NAME
    return f"sqlite:///{os.path.abspath(path)}"


def scenario_store(scenario: Path) -> str | None:
    """The scenario's `[store] url`, if it has one (relative paths: from the scenario)."""
    try:
        raw = tomllib.loads(Path(scenario).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    store = raw.get("store")
    url = store.get("url") if isinstance(store, dict) else None
    if not isinstance(url, str) or not url.strip():
        return None
    return url.strip()


def resolve_url(option: str | None, scenario: Path | None = None,
                out: Path | None = None) -> str | None:
    """Where runs are recorded: --store, else $ALLOCATOR_STORE, else the scenario's
    `[store] url`, else the user's default store (`default_path`; None: nowhere, when the
    setting says none/off)."""
    cwd = Path.cwd()
    for value, base in ((option, cwd), (os.environ.get(ENV), cwd)):
        if value is not None and value.strip():
            return None if value.strip().lower() in OFF else _as_url(value.strip(), base)
    if scenario is not None:
        found = scenario_store(scenario)
        if found is not None:
            if found.lower() in OFF:
                return None
            return _as_url(found, Path(os.path.abspath(scenario)).parent)
    return _as_url(str(default_path()), cwd)


def default_path() -> Path:
    """The user's own store: $XDG_DATA_HOME/allocator/runs.sqlite (~/.local/share/...).

    Not beside the run folders: a store there would be a file allocator creates in the
    user's data folders (even for a refused run), could collide with a user's own
    runs.sqlite, and would split one machine's nightly history by --out."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "allocator" / DEFAULT_NAME


def shown(url: str | URL) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unreadable store URL>"


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StoreError(f"not a database URL: {exc}", "store") from None
    if parsed.drivername in ("postgresql", "postgres"):
        try:  # a bare postgresql:// works with whichever psycopg is installed
            import psycopg2  # noqa: F401

            parsed = parsed.set(drivername="postgresql+psycopg2")
        except ImportError:
            parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str, timeout: float = 30.0) -> Engine:
    """An engine with the store's connection rules; `timeout` bounds the wait for a lock or a
    connection (seconds)."""
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, poolclass=NullPool,
                               connect_args={"timeout": timeout, "isolation_level": None})

        @event.listens_for(engine, "connect")
        def _connect(dbapi: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            cursor = dbapi.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            cursor.execute("PRAGMA journal_mode = WAL")  # readers never block the writer
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # The write lock up front: two writers queue (busy_timeout) instead of one
            # failing when its read lock cannot be upgraded.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if backend == "postgresql":
        seconds = max(1, int(timeout))
        args: dict[str, object] = {"connect_timeout": seconds}
        if "psycopg" in parsed.drivername or parsed.drivername == "postgresql":
            args["options"] = (f"-c lock_timeout={seconds * 1000} "
                               f"-c statement_timeout={seconds * 1000}")
        return create_engine(parsed, poolclass=NullPool, connect_args=args)
    return create_engine(parsed, poolclass=NullPool)


def _alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


HEAD = "0001"  # the newest revision in migrations/versions/ (a test checks they agree)


def _at_head(engine: Engine) -> bool:
    """The store's schema is already the newest (the common case: Alembic not even loaded)."""
    from sqlalchemy import inspect, text

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        found = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return found == [HEAD]


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (creates the tables in a new store). Safe when
    several processes open a new store at once: the migration runs under a lock."""
    if _at_head(engine):
        return
    from alembic import command

    command.upgrade(_alembic_config(engine), "head")


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory(str(MIGRATIONS)).get_current_head())


# --- processes: is a `running` row's process still there? --------------------------------------


def proc_start(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22): a pid
    reused by another process has another start time. None where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("ascii", "replace")
        fields = text[text.rindex(")") + 2:].split()
        return int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("ascii", "replace")
        return text[text.rindex(")") + 2:].split()[0]
    except (OSError, ValueError, IndexError):
        return None


def process_gone(pid: int, started: int | None) -> str | None:
    """Why the process of a `running` row (on this host) is no longer that run, or None if it
    may still be (never guess a live run dead)."""
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"process {pid} is no longer running"
    except OSError:
        pass  # EPERM: alive, someone else's
    if _proc_state(pid) in ("Z", "X"):
        return f"process {pid} has exited"
    now = proc_start(pid)
    if started is not None and now is not None and now != started:
        return f"process {pid} is no longer running (its id now belongs to another process)"
    return None


def mark_lost(session_factory: sessionmaker[Session]) -> int:
    """Mark `running` rows of this host whose process is gone as `lost` (killed outright,
    machine restarted); returns how many."""
    host = socket.gethostname()
    with session_factory() as session:
        rows = session.execute(
            select(Run.id, Run.pid, Run.pid_start).where(Run.status == RUNNING,
                                                         Run.host == host)).all()
        gone = [(rid, why) for rid, pid, start in rows
                if (why := process_gone(int(pid), start)) is not None]
        if not gone:
            return 0
        now = utcnow()
        for rid, why in gone:
            session.execute(update(Run).where(Run.id == rid, Run.status == RUNNING).values(
                status=LOST, finished_at=now,
                reason=f"lost: {why} and never finished (killed, or the machine stopped); "
                       f"noticed {now:%Y-%m-%d %H:%M:%S} UTC"))
        session.commit()
    return len(gone)


class Store:
    """An open, migrated store."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self.engine = make_engine(url, timeout)
        self.session = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def shown(self) -> str:
        return shown(self.url)

    def close(self) -> None:
        self.engine.dispose()


def _refuse_foreign_sqlite(url: str) -> None:
    """A SQLite file that holds tables but is not an allocator store is someone else's:
    refuse it before connecting (connecting would switch it to WAL and migrating would add
    our tables to it). Read through a read-only connection, which changes nothing."""
    import sqlite3

    parsed = _parse(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or \
            not Path(database).is_file() or Path(database).stat().st_size == 0:
        return
    try:
        conn = sqlite3.connect(f"file:{os.path.abspath(database)}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{database} is not a SQLite database ({exc}); give another --store",
                         "store") from None
    if tables and "alembic_version" not in tables:
        raise StoreError(f"{database} is a database that allocator did not create (tables: "
                         f"{', '.join(sorted(tables)[:5])}); it is left alone: give another "
                         "--store", "store")


def open_store(url: str, timeout: float = 30.0) -> Store:
    """Connect, migrate to the newest schema, mark the lost runs; errors as StoreError."""
    from sqlalchemy.exc import SQLAlchemyError

    _refuse_foreign_sqlite(url)
    store = Store(url, timeout)
    try:
        migrate(store.engine)
        mark_lost(store.session)
    except SQLAlchemyError as exc:
        store.close()
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise StoreError(f"run store {store.shown}: {detail[0] if detail else exc}",
                         "store") from None
    except OSError as exc:
        store.close()
        raise StoreError(f"run store {store.shown}: {exc}", "store") from None
    except Exception as exc:
        store.close()
        if type(exc).__name__ != "CommandError":  # Alembic's: e.g. an unknown revision
            raise
        raise StoreError(f"run store {store.shown}: its schema is not one this version of "
                         f"allocator knows (newest here: {HEAD}): {exc}", "store") from None
    return store
