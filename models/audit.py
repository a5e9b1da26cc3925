"""Audit log: who exported, imported or changed a user's role, grids or status, and when."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import AuditLog


async def record(session: AsyncSession, actor_id: int | None, actor: str, action: str, **detail: object) -> AuditLog:
    row = AuditLog(actor_id=actor_id, actor=actor[:64], action=action, detail=detail)
    session.add(row)
    await session.flush()
    return row


async def entries(session: AsyncSession, action: str | None = None) -> list[AuditLog]:
    query = select(AuditLog).order_by(col(AuditLog.id))
    if action is not None:
        query = query.where(AuditLog.action == action)
    return list((await session.exec(query)).all())
