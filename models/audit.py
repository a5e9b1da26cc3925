"""Audit log: who exported, imported or changed a user's role, grids or status, and when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import created_field


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = created_field()
    actor_id: int | None = Field(default=None, foreign_key="app_user.id", description="None: the command line")
    actor: str = Field(max_length=64, description="display name, telegram id or 'cli'")
    action: str = Field(max_length=32, description="export | import | setrole | setgrid | deactivate | targets")
    detail: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


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
