"""SQLModel tables. Created only by Alembic migrations (see migrations/versions)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models import clock
from models.types import UTCDateTime


class Role(StrEnum):
    WORKER = "worker"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


def utc_field(**kw) -> object:  # noqa: ANN003
    """A timestamp column: stored in UTC, read back timezone-aware on every database."""
    return Field(sa_type=UTCDateTime, **kw)


def created_field(**kw) -> object:  # noqa: ANN003
    """A not-null timestamp that defaults to the clock's now."""
    return Field(default_factory=clock.now, sa_type=UTCDateTime, nullable=False, **kw)


class Grid(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=100)
    community: str | None = Field(default=None, max_length=100)
    target_coverage: float = Field(description="half-year visit-coverage target, a fraction (0.2)")
    created_at: datetime = created_field()


class User(SQLModel, table=True):
    __tablename__ = "app_user"  # "user" is reserved in PostgreSQL

    id: int | None = Field(default=None, primary_key=True)
    telegram_id: int = Field(sa_column=Column(BigInteger, unique=True, nullable=False))
    display_name: str | None = Field(default=None, max_length=64)
    phone: str | None = Field(default=None, max_length=32)
    role: str = Field(max_length=16)
    language: str | None = Field(default=None, max_length=8)
    active: bool = Field(default=True)
    created_at: datetime = created_field()


class UserGrid(SQLModel, table=True):
    __tablename__ = "user_grid"

    user_id: int = Field(foreign_key="app_user.id", primary_key=True, ondelete="CASCADE")
    grid_id: int = Field(foreign_key="grid.id", primary_key=True, index=True)


class Invitation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    role: str = Field(max_length=16)
    grid_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    issued_by: int | None = Field(default=None, foreign_key="app_user.id")
    used_by: int | None = Field(default=None, foreign_key="app_user.id")
    used_at: datetime | None = utc_field(default=None, nullable=True)
    expires_at: datetime = utc_field(nullable=False)
    created_at: datetime = created_field()


class Household(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("grid_id", "address", name="uq_household_grid_address"),
        Index("ix_household_grid_active", "grid_id", "active"),
    )

    id: int | None = Field(default=None, primary_key=True)
    grid_id: int = Field(foreign_key="grid.id")
    address: str = Field(max_length=200, description="building/unit/room as text")
    head_name: str | None = Field(default=None, max_length=64)
    head_phone: str | None = Field(default=None, max_length=32)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    active: bool = Field(default=True)
    created_at: datetime = created_field()


class Resident(SQLModel, table=True):
    """A person of a household in the resident register (居民信息库): who they are to the household,
    how to reach them and the care they need. The ID number is stored masked (110101********123X),
    never whole; the register follows the household heads' privacy rules (models/residents.py)."""

    __table_args__ = (UniqueConstraint("household_id", "name", name="uq_resident_household_name"),)

    id: int | None = Field(default=None, primary_key=True)
    household_id: int = Field(foreign_key="household.id", ondelete="CASCADE")
    name: str = Field(max_length=64)
    relation: str | None = Field(default=None, max_length=16, description="与户主关系: 户主 / 配偶 / 子女 / …")
    phone: str | None = Field(default=None, max_length=32)
    id_number: str | None = Field(default=None, max_length=18, description="masked: the first 6 and last 4 characters")
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False), description="care tags of this person: 独居老人, …")
    active: bool = Field(default=True, description="在册; False once moved out or deceased")
    created_at: datetime = created_field()


class Visit(SQLModel, table=True):
    __table_args__ = (
        Index("ix_visit_visited_at", "visited_at"),
        Index("ix_visit_household_visited_at", "household_id", "visited_at"),
        Index("ix_visit_worker_visited_at", "worker_id", "visited_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    draft_id: str = Field(max_length=32, unique=True, description="idempotency key of the chat draft")
    household_id: int = Field(foreign_key="household.id")
    worker_id: int = Field(foreign_key="app_user.id")
    visited_at: datetime = utc_field(nullable=False)
    people_met: int
    situations: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    notes: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    photos: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    latitude: float | None = None
    longitude: float | None = None
    created_at: datetime = created_field()
    # Corrections (models/corrections.py): a voided visit stays, and every figure leaves it out.
    voided_at: datetime | None = utc_field(default=None, nullable=True)
    voided_by: int | None = Field(default=None, foreign_key="app_user.id")
    void_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ProcessedUpdate(SQLModel, table=True):
    """An update the bot has handled: the bot's id (update ids are per bot), the update's id, and a
    digest of its content. Telegram redelivers an update unchanged; an id seen again with other
    content means the id space started afresh (a local Bot API restarted), not a redelivery."""

    __tablename__ = "processed_update"

    bot_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    update_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    digest: str = Field(max_length=32)
    processed_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)


class PersistedState(SQLModel, table=True):
    """PTB persistence: one row per user/chat/bot data blob and per conversation key."""

    __tablename__ = "persisted_state"

    kind: str = Field(max_length=32, primary_key=True)
    key: str = Field(max_length=128, primary_key=True)
    data: dict | list | str | int | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    updated_at: datetime = created_field()
