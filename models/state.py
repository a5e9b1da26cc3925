"""Storage for PTB's persistence (conversation states, user/chat/bot data) as JSON rows, and the ids of
the updates handled (`processed_update`: a redelivered update is handled once)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import clock
from models.tables import PersistedState, ProcessedUpdate


async def load_kind(session: AsyncSession, kind: str) -> dict[str, object]:
    rows = await session.exec(select(PersistedState.key, PersistedState.data).where(PersistedState.kind == kind))
    return {key: data for key, data in rows.all()}


async def put_many(session: AsyncSession, rows: list[tuple[str, str, object]]) -> None:
    """Insert or replace rows (kind, key, data) in one statement (native upsert on both databases)."""
    if not rows:
        return
    insert = postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
    now = clock.now()
    unique = {(kind, key): {"kind": kind, "key": key, "data": data, "updated_at": now} for kind, key, data in rows}
    stmt = insert(PersistedState).values(list(unique.values()))
    stmt = stmt.on_conflict_do_update(
        index_elements=["kind", "key"], set_={"data": stmt.excluded.data, "updated_at": stmt.excluded.updated_at}
    )
    await session.exec(stmt)  # type: ignore[call-overload]


async def remove_many(session: AsyncSession, rows: list[tuple[str, str]]) -> None:
    by_kind: dict[str, list[str]] = {}
    for kind, key in rows:
        by_kind.setdefault(kind, []).append(key)
    for kind, keys in by_kind.items():
        await session.exec(delete(PersistedState).where(PersistedState.kind == kind, PersistedState.key.in_(keys)))  # type: ignore[call-overload,attr-defined]


async def was_processed(session: AsyncSession, bot_id: int, update_id: int, digest: str, since: datetime) -> bool:
    row = await session.exec(select(ProcessedUpdate.update_id).where(
        ProcessedUpdate.bot_id == bot_id, ProcessedUpdate.update_id == update_id, ProcessedUpdate.digest == digest,
        ProcessedUpdate.processed_at >= since))
    return row.first() is not None


async def highest_processed(session: AsyncSession, bot_id: int, since: datetime) -> int:
    row = await session.exec(select(func.max(ProcessedUpdate.update_id)).where(ProcessedUpdate.bot_id == bot_id, ProcessedUpdate.processed_at >= since))
    return int(row.one() or -1)


async def record_processed(session: AsyncSession, ids: list[tuple[int, int, str]], at: datetime) -> None:
    if not ids:
        return
    insert = postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
    values = {(b, u): {"bot_id": b, "update_id": u, "digest": d, "processed_at": at} for b, u, d in ids}  # one row per key
    stmt = insert(ProcessedUpdate).values(list(values.values()))
    stmt = stmt.on_conflict_do_update(index_elements=["bot_id", "update_id"], set_={"digest": stmt.excluded.digest, "processed_at": stmt.excluded.processed_at})
    await session.exec(stmt)  # type: ignore[call-overload]


async def prune_processed(session: AsyncSession, before: datetime) -> int:
    done = await session.exec(delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < before))  # type: ignore[call-overload]
    return done.rowcount
