"""Database engine, per-update sessions and migrations.

Async SQLAlchemy (aiosqlite / asyncpg): PTB runs on asyncio, so async drivers keep the event loop
free without a thread hop per query, and one code path serves SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def normalise_url(url: str) -> str:
    """Accept plain `sqlite:///x.db` / `postgresql://...` and pick the async driver."""
    url = url.strip()
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError("is not a database URL (e.g. sqlite:///./gridbot.db or postgresql://user@host/db)") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {backend!r}; use sqlite or postgresql")
    if parsed.drivername in _ASYNC_DRIVERS:
        parsed = parsed.set(drivername=_ASYNC_DRIVERS[parsed.drivername])
    elif parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg", "postgresql+psycopg"):
        raise ValueError(f"driver {parsed.drivername!r} is not async; use sqlite+aiosqlite or postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


DEFAULT_BUSY_TIMEOUT_MS = 5000


def _sqlite_pragmas(busy_timeout_ms: int):  # noqa: ANN202
    def connect(dbapi_conn, _record) -> None:  # noqa: ANN001
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return connect


def _sqlite_real_savepoint(conn, _name) -> None:  # noqa: ANN001
    """Open the SQLite transaction before a SAVEPOINT that would otherwise be the first statement of it.

    pysqlite only emits BEGIN before INSERT/UPDATE/DELETE. A session whose first write is inside
    `begin_nested()` (save_visit, create_issue, transition, ...) sent SAVEPOINT with no transaction
    open; SQLite then treats the savepoint as the transaction, and its RELEASE commits it. The
    session's later writes went into a second transaction and a failure after the nested block
    could not roll the first part back. With BEGIN first, the savepoint nests and the session's
    COMMIT or ROLLBACK covers everything it wrote. IMMEDIATE: a nested block is only used to write,
    and a DEFERRED transaction that read first fails at once with "database is locked" (no busy
    wait) when another writer committed in between; IMMEDIATE waits busy_timeout for the lock.
    Sessions without a nested block keep pysqlite's lazy BEGIN, so readers are not serialised.
    """
    raw = conn.connection.dbapi_connection
    inner = getattr(raw, "_connection", raw)  # aiosqlite's connection behind SQLAlchemy's adapter
    if not inner.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, busy_timeout_ms: int | None = None) -> AsyncEngine:
    """The engine. `busy_timeout_ms`: how long a statement waits for another writer's lock before
    failing (SQLite busy_timeout, default 5 s; PostgreSQL lock_timeout, default none — migrations
    use this engine and may wait)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        wait = DEFAULT_BUSY_TIMEOUT_MS if busy_timeout_ms is None else busy_timeout_ms
        engine = create_async_engine(url, connect_args={"timeout": wait / 1000})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(wait))
        event.listen(engine.sync_engine, "savepoint", _sqlite_real_savepoint)
    else:
        connect_args = {}
        if busy_timeout_ms is not None:
            connect_args["server_settings"] = {"lock_timeout": str(int(busy_timeout_ms))}
        # pre_ping: a pooled connection the server dropped (restart, pg_terminate_backend, idle
        # timeout) is replaced at checkout instead of failing the next update. A connection lost in
        # the middle of a transaction is invalidated by SQLAlchemy and never returned to the pool.
        engine = create_async_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args=connect_args)
    return engine


# SQLSTATE classes of PostgreSQL errors that say "try again", not "there is a bug": connection
# exceptions, transaction rollbacks (serialization failure, deadlock), insufficient resources,
# operator intervention (admin shutdown, terminated backend), lock not available.
_TRANSIENT_SQLSTATE = ("08", "40", "53", "57P", "55P03")


def is_transient(exc: BaseException) -> bool:
    """A database error that a retry a moment later can fix: busy/locked, connection lost, deadlock."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, sa_exc.TimeoutError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if state is None and orig is not None:
            state = getattr(getattr(orig, "__cause__", None), "sqlstate", None)
        return bool(state) and str(state).startswith(_TRANSIENT_SQLSTATE)
    return isinstance(exc, (ConnectionError, TimeoutError))


class Database:
    """Owns the engine; hands out one session per update or job."""

    def __init__(self, url: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        # A lock held by another writer fails the statement after this long (and the user is asked
        # to try again) rather than holding up every later update, which PTB handles one by one.
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, busy_timeout_ms=busy_timeout_ms)
        self._sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One transaction: commits on success, rolls back on error (savepoints nest inside it)."""
        async with self._sessions() as session, session.begin():
            yield session

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    async def dispose(self) -> None:
        await self.engine.dispose()


# -- migrations ---------------------------------------------------------------------------------


def alembic_config(url: str):  # noqa: ANN201
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def _in_thread(fn, *args) -> None:  # noqa: ANN001
    """Alembic's env.py runs its own event loop; keep it off any loop already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        fn(*args)
        return
    import threading

    err: list[BaseException] = []

    def target() -> None:
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001
            err.append(e)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if err:
        raise err[0]


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    _in_thread(command.upgrade, alembic_config(url), revision)


def downgrade(url: str, revision: str = "-1") -> None:
    from alembic import command

    _in_thread(command.downgrade, alembic_config(url), revision)


def head_revision() -> str | None:
    """The newest revision the code knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(url: str) -> str | None:
    """The revision the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    sync_url = normalise_url(url).replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")
    if "+psycopg" in sync_url:
        # No sync PostgreSQL driver is installed; ask through the async engine instead.
        async def ask() -> str | None:
            engine = make_engine(url)
            async with engine.connect() as conn:
                rev = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
            await engine.dispose()
            return rev

        return asyncio.run(ask())
    engine = create_engine(sync_url)
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
