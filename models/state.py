"""Storage for PTB's persistence (conversation states, user/chat/bot data) as JSON rows."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import clock
from models.tables import PersistedState


async def load_kind(session: AsyncSession, kind: str) -> dict[str, object]:
    rows = await session.exec(select(PersistedState.key, PersistedState.data).where(PersistedState.kind == kind))
    return {key: data for key, data in rows.all()}


async def put(session: AsyncSession, kind: str, key: str, data: object) -> None:
    """Insert or replace one row (native upsert on both databases)."""
    dialect = session.bind.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(PersistedState).values(kind=kind, key=key, data=data, updated_at=clock.now())
    stmt = stmt.on_conflict_do_update(
        index_elements=["kind", "key"], set_={"data": stmt.excluded.data, "updated_at": stmt.excluded.updated_at}
    )
    await session.exec(stmt)  # type: ignore[call-overload]


async def remove(session: AsyncSession, kind: str, key: str) -> None:
    await session.exec(delete(PersistedState).where(PersistedState.kind == kind, PersistedState.key == key))  # type: ignore[call-overload]
