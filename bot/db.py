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


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str) -> AsyncEngine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 5})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    return engine


class Database:
    """Owns the engine; hands out one session per update or job."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        self._sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error."""
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
