"""Every table of gridbot, in one place (the modules beside it hold the rules and queries on them).
Created only by Alembic migrations (see migrations/versions)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, Text, UniqueConstraint
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
    display_name: str | None = Field(default=None, max_length=64)
    phone: str | None = Field(default=None, max_length=32)
    role: str = Field(max_length=16)
    language: str | None = Field(default=None, max_length=8)
    active: bool = Field(default=True)
    created_at: datetime = created_field()


class ChannelIdentity(SQLModel, table=True):
    """Who a person is on one chat channel: a Telegram user id, a WeCom userid, … (one per channel
    and key; a person may have one on each channel)."""

    __tablename__ = "channel_identity"
    __table_args__ = (UniqueConstraint("channel", "key", name="uq_channel_identity"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True, ondelete="CASCADE")
    channel: str = Field(max_length=16)
    key: str = Field(max_length=128)
    created_at: datetime = created_field()


class LinkCode(SQLModel, table=True):
    """A short-lived code (`/link`) that binds a second channel's identity to a person."""

    __tablename__ = "link_code"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=16, unique=True)
    user_id: int = Field(foreign_key="app_user.id", index=True, ondelete="CASCADE")
    expires_at: datetime = utc_field(nullable=False)
    used_at: datetime | None = utc_field(default=None, nullable=True)
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


# -- audit -------------------------------------------------------------------------------------------


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = created_field()
    actor_id: int | None = Field(default=None, foreign_key="app_user.id", description="None: the command line")
    actor: str = Field(max_length=64, description="display name, telegram id or 'cli'")
    action: str = Field(max_length=32, description="export | import | setrole | setgrid | deactivate | targets")
    detail: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# -- corrections -------------------------------------------------------------------------------------


class Correction(SQLModel, table=True):
    """One correction or void of a record: who, when, why, and the values before and after."""

    __table_args__ = (Index("ix_correction_record", "record_kind", "record_id"),)

    id: int | None = Field(default=None, primary_key=True)
    record_kind: str = Field(max_length=8, description="visit | patrol | issue")
    record_id: int
    actor_id: int = Field(foreign_key="app_user.id")
    at: datetime = created_field()
    action: str = Field(max_length=12, description="corrected | voided")
    reason: str = Field(sa_column=Column(Text, nullable=False))
    old_values: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    new_values: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# -- issues ------------------------------------------------------------------------------------------


class Issue(SQLModel, table=True):
    __table_args__ = (
        Index("ix_issue_grid_status", "grid_id", "status"),
        Index("ix_issue_reported_at", "reported_at"),
        Index("ix_issue_grid_reported_at", "grid_id", "reported_at"),  # migration 0009: many grids, one short period
        Index("ix_issue_assignee_status", "assignee_id", "status"),
        Index("ix_issue_category_latitude", "category", "latitude"),
    )

    id: int | None = Field(default=None, primary_key=True)
    human_id: str = Field(max_length=12, unique=True, description="YYMM-NNNN, per month in the configured zone")
    draft_id: str = Field(max_length=32, unique=True, description="idempotency key of the chat draft")
    grid_id: int = Field(foreign_key="grid.id")
    category: str = Field(max_length=16)
    description: str = Field(sa_column=Column(Text, nullable=False))
    address: str | None = Field(default=None, max_length=200)
    latitude: float | None = None
    longitude: float | None = None
    urgent: bool = Field(default=False)
    status: str = Field(max_length=16)
    reporter_id: int = Field(foreign_key="app_user.id")
    assignee_id: int | None = Field(default=None, foreign_key="app_user.id")
    source: str = Field(default="chat", max_length=16, description="chat | visit | patrol")
    source_id: int | None = None
    reported_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    due_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    # Corrections (models/corrections.py): a voided issue keeps its status and leaves every figure and list.
    voided_at: datetime | None = utc_field(default=None, nullable=True)
    voided_by: int | None = Field(default=None, foreign_key="app_user.id")
    void_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class IssueEvent(SQLModel, table=True):
    __tablename__ = "issue_event"
    __table_args__ = (Index("ix_issue_event_issue_at", "issue_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issue.id", ondelete="CASCADE")
    at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    actor_id: int = Field(foreign_key="app_user.id")
    action: str = Field(max_length=16)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str = Field(max_length=16)
    assignee_id: int | None = Field(default=None, foreign_key="app_user.id")
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    draft_id: str | None = Field(default=None, max_length=32, unique=True, description="idempotency key of an attach")
    # An `extend` event: the deadline before and after it (migration 0011), for reports "as of" a past day.
    due_from: datetime | None = utc_field(default=None, nullable=True)
    due_to: datetime | None = utc_field(default=None, nullable=True)


class IssuePhoto(SQLModel, table=True):
    __tablename__ = "issue_photo"
    __table_args__ = (UniqueConstraint("issue_id", "event_id", "sha256", name="uq_issue_photo_event_sha"),)

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issue.id", ondelete="CASCADE", index=True)
    event_id: int = Field(foreign_key="issue_event.id", ondelete="CASCADE")
    kind: str = Field(max_length=8, description="before | after")
    file_id: str = Field(max_length=200)
    file_unique_id: str | None = Field(default=None, max_length=64)
    sha256: str = Field(max_length=64)


# -- outbox ------------------------------------------------------------------------------------------


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("kind", "period_key", "recipient", "part", name="uq_outbox_key"),
        Index("ix_outbox_state_next", "state", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    period_key: str = Field(max_length=64)
    recipient: str = Field(max_length=96)
    part: int = Field(default=0)
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    payload: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    image: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    urgent: bool = Field(default=False)
    state: str = Field(default="pending", max_length=16)  # models.outbox.PENDING
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime, nullable=False)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


# -- patrols -----------------------------------------------------------------------------------------


class OrderStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"  # a re-inspection found every previously escalated item passing
    VOID = "void"  # the outcome was changed away from rectify_on_site


class Shop(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("grid_id", "name", "address", name="uq_shop_grid_name_address"),
        Index("ix_shop_grid_active", "grid_id", "active"),
    )

    id: int | None = Field(default=None, primary_key=True)
    grid_id: int = Field(foreign_key="grid.id")
    name: str = Field(max_length=100)
    address: str = Field(max_length=200)
    category: str = Field(max_length=16, description="餐饮服务 / 食品销售 / 小作坊 / 其他")
    licence_no: str | None = Field(default=None, max_length=64)
    contact: str | None = Field(default=None, max_length=64)
    active: bool = Field(default=True)
    created_by: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = created_field()


class Patrol(SQLModel, table=True):
    __table_args__ = (
        Index("ix_patrol_patrolled_at", "patrolled_at"),
        Index("ix_patrol_shop_patrolled_at", "shop_id", "patrolled_at"),
        Index("ix_patrol_worker_patrolled_at", "worker_id", "patrolled_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    draft_id: str = Field(max_length=32, unique=True, description="idempotency key of the chat draft")
    shop_id: int = Field(foreign_key="shop.id")
    worker_id: int = Field(foreign_key="app_user.id")
    patrolled_at: datetime = utc_field(nullable=False)
    # The checklist as it was checked: [{"name", "weight", "key", "passed"}], so a later change of
    # the configuration changes neither this patrol nor the risk level computed from it.
    items: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    photos: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = created_field()
    # Corrections (models/corrections.py): a voided patrol and its findings leave every figure.
    voided_at: datetime | None = utc_field(default=None, nullable=True)
    voided_by: int | None = Field(default=None, foreign_key="app_user.id")
    void_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class Finding(SQLModel, table=True):
    __table_args__ = (Index("ix_finding_patrol", "patrol_id"),)

    id: int | None = Field(default=None, primary_key=True)
    patrol_id: int = Field(foreign_key="patrol.id", ondelete="CASCADE")
    item: str = Field(max_length=60)
    weight: float = 1.0
    key: bool = False
    disposition: str = Field(max_length=16, description="corrected | escalated")
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    outcome: str | None = Field(default=None, max_length=16, description="escalated only: pending | rectify_on_site | fined | suspended")
    outcome_by: int | None = Field(default=None, foreign_key="app_user.id")
    outcome_at: datetime | None = utc_field(default=None, nullable=True)


class Rectification(SQLModel, table=True):
    """A rectification order (要求现场整改) of one escalated finding: its deadline and re-inspection."""

    __table_args__ = (
        Index("ix_rectification_status_deadline", "status", "deadline"),
        Index("ix_rectification_shop_status", "shop_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    finding_id: int = Field(foreign_key="finding.id", unique=True, ondelete="CASCADE")
    shop_id: int = Field(foreign_key="shop.id")
    ordered_by: int | None = Field(default=None, foreign_key="app_user.id")
    ordered_at: datetime = utc_field(nullable=False)
    deadline: datetime = utc_field(nullable=False)
    status: str = Field(default=OrderStatus.OPEN.value, max_length=8)
    reinspection_patrol_id: int | None = Field(default=None, foreign_key="patrol.id", description="latest re-inspection")
    closed_at: datetime | None = utc_field(default=None, nullable=True)
    reminded_at: datetime | None = utc_field(default=None, nullable=True)


class FindingEvent(SQLModel, table=True):
    """History of a finding: each outcome recorded or changed, each re-inspection of its order."""

    __tablename__ = "finding_event"
    __table_args__ = (Index("ix_finding_event_finding", "finding_id"),)

    id: int | None = Field(default=None, primary_key=True)
    finding_id: int = Field(foreign_key="finding.id", ondelete="CASCADE")
    kind: str = Field(max_length=16, description="outcome | reinspection")
    actor_id: int | None = Field(default=None, foreign_key="app_user.id")
    at: datetime = created_field()
    from_outcome: str | None = Field(default=None, max_length=16)
    to_outcome: str | None = Field(default=None, max_length=16)
    deadline: datetime | None = utc_field(default=None, nullable=True)
    patrol_id: int | None = Field(default=None, foreign_key="patrol.id")
    passed: bool | None = None


# -- reminders ---------------------------------------------------------------------------------------


class JobRun(SQLModel, table=True):
    __tablename__ = "job_run"

    name: str = Field(max_length=64, primary_key=True)
    last_scheduled_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    last_run_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class ReminderSnooze(SQLModel, table=True):
    """One user's repeated reminder of one kind (SNOOZABLE) kept quiet until `until` (暂缓一天)."""

    __tablename__ = "reminder_snooze"

    user_id: int = Field(foreign_key="app_user.id", primary_key=True, ondelete="CASCADE")
    kind: str = Field(max_length=32, primary_key=True)
    until: datetime = Field(sa_type=UTCDateTime, nullable=False)


class ProcessLease(SQLModel, table=True):
    __tablename__ = "process_lease"

    name: str = Field(max_length=32, primary_key=True)
    holder: str = Field(max_length=128)
    host: str = Field(max_length=128)
    pid: int
    acquired_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    heartbeat_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class DisabledChannel(SQLModel, table=True):
    __tablename__ = "disabled_channel"

    recipient: str = Field(max_length=96, primary_key=True)
    reason: str = Field(max_length=200)
    disabled_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
