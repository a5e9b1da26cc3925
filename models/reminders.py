"""What reminders, digests and the process lease read and write (SQL lives here).

- `job_run`: each scheduled job's last covered run, written in the same transaction as the outbox
  rows it produced; at start-up a run missed while the bot was down is made once.
- `process_lease`: one bot process per database (heartbeat + expiry).
- `disabled_channel`: a delivery channel that must not be used any more (a WeCom robot whose key
  was refused).
- due lists (care-tag frequencies), the resolution reminder's issues and orders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import DisabledChannel, Grid, Household, JobRun, ProcessLease, ReminderSnooze, Role, User, UserGrid, Visit
from models.users import reach

# Care tags and their visit frequency in days (DESIGN.md §2): 独居老人 weekly, 困难家庭 monthly.
CARE_VISIT_DAYS: dict[str, int] = {"独居老人": 7, "困难家庭": 30}
MAX_HOUSEHOLDS = 10


SNOOZABLE = ("overdue",)  # the daily one; never an escalation, a digest or an urgent issue (visit pace comes twice a week)
SNOOZE = timedelta(days=1)


async def snooze(session: AsyncSession, user_id: int, kind: str, now: datetime) -> datetime:
    """Keep `kind` quiet for this user for a day from now (again: a day from the new now)."""
    if kind not in SNOOZABLE:
        raise ValueError(kind)
    until = now + SNOOZE
    row = await session.get(ReminderSnooze, (user_id, kind))
    if row is None:
        session.add(ReminderSnooze(user_id=user_id, kind=kind, until=until))
    else:
        row.until = until
    await session.flush()
    return until


async def snoozed(session: AsyncSession, kind: str, at: datetime) -> set[int]:
    """The users whose `kind` reminder is quiet at `at`."""
    return set((await session.exec(select(ReminderSnooze.user_id).where(ReminderSnooze.kind == kind, ReminderSnooze.until > at))).all())


def _insert(session: AsyncSession):  # noqa: ANN202
    return postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert


# -- job runs ---------------------------------------------------------------------------------------


async def last_run(session: AsyncSession, name: str) -> JobRun | None:
    return (await session.exec(select(JobRun).where(JobRun.name == name))).first()


async def all_runs(session: AsyncSession) -> dict[str, JobRun]:
    return {r.name: r for r in (await session.exec(select(JobRun))).all()}


async def claim_run(session: AsyncSession, name: str, scheduled: datetime, now: datetime) -> bool:
    """Record that the run scheduled at `scheduled` is made (compare-and-set); False if it was made already.

    Called in the transaction that writes the run's outbox rows: both commit, or neither.
    """
    moved = await session.exec(  # type: ignore[call-overload]
        update(JobRun).where(JobRun.name == name, JobRun.last_scheduled_at < scheduled).values(last_scheduled_at=scheduled, last_run_at=now))
    if moved.rowcount == 1:
        return True
    stmt = _insert(session)(JobRun).values(name=name, last_scheduled_at=scheduled, last_run_at=now).on_conflict_do_nothing(index_elements=["name"])
    inserted = await session.exec(stmt)  # type: ignore[call-overload]
    return inserted.rowcount == 1


async def set_baseline(session: AsyncSession, name: str, scheduled: datetime, now: datetime) -> None:
    """First start: nothing was missed; the next run to make is the next scheduled one."""
    stmt = _insert(session)(JobRun).values(name=name, last_scheduled_at=scheduled, last_run_at=now).on_conflict_do_nothing(index_elements=["name"])
    await session.exec(stmt)  # type: ignore[call-overload]


# -- the process lease ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    holder: str
    host: str
    pid: int
    heartbeat_at: datetime
    expires_at: datetime


async def acquire_lease(
    session: AsyncSession, holder: str, host: str, pid: int, now: datetime, ttl: timedelta,
    holder_gone: Callable[[str, int], bool] = lambda host, pid: False, name: str = "bot",
) -> Lease | None:
    """Take the lease; None when taken, else the lease of the live process that holds it.

    A lease is free when it has expired (no heartbeat for `ttl`) or `holder_gone(host, pid)` says
    its process is dead (a SIGKILLed bot on this host does not block a restart).
    """
    row = (await session.exec(select(ProcessLease).where(ProcessLease.name == name))).first()
    values = {"holder": holder, "host": host, "pid": pid, "acquired_at": now, "heartbeat_at": now, "expires_at": now + ttl}
    if row is None:
        stmt = _insert(session)(ProcessLease).values(name=name, **values).on_conflict_do_nothing(index_elements=["name"])
        if (await session.exec(stmt)).rowcount == 1:  # type: ignore[call-overload]
            return None
        row = (await session.exec(select(ProcessLease).where(ProcessLease.name == name))).one()
    if row.holder == holder or row.expires_at <= now or holder_gone(row.host, row.pid):
        taken = await session.exec(  # type: ignore[call-overload]
            update(ProcessLease).where(ProcessLease.name == name, ProcessLease.holder == row.holder).values(**values))
        if taken.rowcount == 1:
            return None
        row = (await session.exec(select(ProcessLease).where(ProcessLease.name == name))).one()
    return Lease(row.holder, row.host, row.pid, row.heartbeat_at, row.expires_at)


async def renew_lease(session: AsyncSession, holder: str, now: datetime, ttl: timedelta, name: str = "bot") -> bool:
    """Heartbeat; False when the lease is no longer ours."""
    done = await session.exec(  # type: ignore[call-overload]
        update(ProcessLease).where(ProcessLease.name == name, ProcessLease.holder == holder).values(heartbeat_at=now, expires_at=now + ttl))
    return done.rowcount == 1


async def release_lease(session: AsyncSession, holder: str, name: str = "bot") -> None:
    from sqlalchemy import delete

    await session.exec(delete(ProcessLease).where(ProcessLease.name == name, ProcessLease.holder == holder))  # type: ignore[call-overload]


# -- disabled channels -----------------------------------------------------------------------------------


async def disable_channel(session: AsyncSession, recipient: str, reason: str, now: datetime) -> bool:
    """True when this call disabled it (the first time)."""
    stmt = _insert(session)(DisabledChannel).values(recipient=recipient, reason=reason[:200], disabled_at=now).on_conflict_do_nothing(
        index_elements=["recipient"])
    return (await session.exec(stmt)).rowcount == 1  # type: ignore[call-overload]


async def disabled_channels(session: AsyncSession) -> set[str]:
    return set((await session.exec(select(DisabledChannel.recipient))).all())


# -- people --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    user_id: int
    recipient: str | None  # where the outbox reaches them (models.users.reach); None: nowhere
    name: str | None
    language: str | None
    role: str


async def grid_people(session: AsyncSession, role: Role, grid_ids: list[int] | None = None) -> dict[int, list[Person]]:
    """Active members of `role` per grid, in one query: {grid id: [Person]}."""
    query = (select(UserGrid.grid_id, User.id, reach(User.id), User.display_name, User.language, User.role)
             .join(User, col(User.id) == UserGrid.user_id).where(User.role == role.value, col(User.active).is_(True)))
    if grid_ids is not None:
        query = query.where(col(UserGrid.grid_id).in_(grid_ids))
    out: dict[int, list[Person]] = {}
    for gid, uid, tid, name, lang, r in (await session.exec(query.order_by(UserGrid.grid_id, User.id))).all():
        out.setdefault(gid, []).append(Person(uid, tid, name, lang, r))
    return out


async def admins(session: AsyncSession) -> list[Person]:
    rows = await session.exec(select(User.id, reach(User.id), User.display_name, User.language, User.role)
                              .where(User.role == Role.ADMIN.value, col(User.active).is_(True)).order_by(User.id))
    return [Person(*r) for r in rows.all()]


async def people_by_ids(session: AsyncSession, user_ids: list[int]) -> dict[int, Person]:
    if not user_ids:
        return {}
    rows = await session.exec(select(User.id, reach(User.id), User.display_name, User.language, User.role)
                              .where(col(User.id).in_(user_ids), col(User.active).is_(True)))
    return {r[0]: Person(*r) for r in rows.all()}


async def grids(session: AsyncSession) -> list[tuple[int, str, str]]:
    return [tuple(r) for r in (await session.exec(select(Grid.id, Grid.code, Grid.name).order_by(Grid.code))).all()]


# -- households to visit ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HouseholdToVisit:
    household_id: int
    grid_id: int
    address: str
    head_name: str | None
    tags: tuple[str, ...]
    last_visit: datetime | None
    due: bool  # its care-tag frequency says it is due


def is_due(tags: list[str] | tuple[str, ...], last_visit: datetime | None, at: datetime, care_days: dict[str, int]) -> bool:
    days = [care_days[t] for t in tags if t in care_days]
    if not days:
        return False
    return last_visit is None or at - last_visit > timedelta(days=min(days))


async def households_to_visit(
    session: AsyncSession, grid_ids: list[int], at: datetime, behind: set[int], care_days: dict[str, int] | None = None,
    limit: int = MAX_HOUSEHOLDS,
) -> dict[int, list[HouseholdToVisit]]:
    """Per grid, up to `limit` households to visit next: first those due under their care tag (longest
    unvisited first); then, for grids in `behind`, the longest since their last visit (never first)."""
    if not grid_ids:
        return {}
    care_days = CARE_VISIT_DAYS if care_days is None else care_days
    last = select(Visit.household_id, func.max(Visit.visited_at).label("last")).where(Visit.visited_at <= at, col(Visit.voided_at).is_(None))
    last = last.group_by(Visit.household_id).subquery()
    rows = await session.exec(
        select(Household.id, Household.grid_id, Household.address, Household.head_name, Household.tags, last.c.last)
        .outerjoin(last, last.c.household_id == Household.id)
        .where(col(Household.grid_id).in_(grid_ids), col(Household.active).is_(True))
    )
    per_grid: dict[int, list[HouseholdToVisit]] = {}
    for hid, gid, address, head, tags, last_at in rows.all():
        if last_at is not None and last_at.tzinfo is None:  # SQLite aggregates lose the column type
            from datetime import UTC
            last_at = last_at.replace(tzinfo=UTC)
        elif isinstance(last_at, str):
            from datetime import UTC
            last_at = datetime.fromisoformat(last_at).replace(tzinfo=UTC)
        tags = tuple(tags or ())
        per_grid.setdefault(gid, []).append(HouseholdToVisit(hid, gid, address, head, tags, last_at, is_due(tags, last_at, at, care_days)))
    out: dict[int, list[HouseholdToVisit]] = {}
    never = datetime.min.replace(tzinfo=at.tzinfo)
    for gid, items in per_grid.items():
        items.sort(key=lambda h: (not h.due, h.last_visit or never, h.address))
        chosen = [h for h in items if h.due or gid in behind][:limit]
        if chosen:
            out[gid] = chosen
    return out


async def half_year_visits_by_worker(session: AsyncSession, worker_ids: list[int], start: datetime, end: datetime) -> dict[int, int]:
    if not worker_ids:
        return {}
    rows = await session.exec(select(Visit.worker_id, func.count()).where(col(Visit.worker_id).in_(worker_ids), Visit.visited_at >= start,
                                                                       Visit.visited_at < end, col(Visit.voided_at).is_(None)).group_by(Visit.worker_id))
    return {w: int(n) for w, n in rows.all()}


# -- the resolution reminder ------------------------------------------------------------------------------


async def open_issues_due_by(session: AsyncSession, before: datetime):  # noqa: ANN201 - list[IssueView]
    """Open issues (not resolved, closed or rejected) whose due time is before `before`, by due time."""
    from models.issues import DONE_STATUSES, REJECTED, Issue, _views

    return await _views(session, [col(Issue.status).not_in((*DONE_STATUSES, REJECTED)), Issue.due_at < before,
                                  col(Issue.voided_at).is_(None)], [Issue.due_at, Issue.id])


@dataclass(frozen=True)
class OverdueOrder:
    order_id: int
    grid_id: int
    shop_name: str
    item: str
    deadline: datetime


async def overdue_orders(session: AsyncSession, at: datetime, tz: ZoneInfo) -> list[OverdueOrder]:
    """Open rectification orders whose re-inspection day is over (deadline day before today)."""
    from models.patrols import Finding, OrderStatus, Patrol, Rectification, Shop, local_day_start

    today = local_day_start(at, tz)
    rows = await session.exec(
        select(Rectification.id, Shop.grid_id, Shop.name, Finding.item, Rectification.deadline)
        .join(Finding, col(Finding.id) == Rectification.finding_id).join(Shop, col(Shop.id) == Rectification.shop_id)
        .join(Patrol, col(Patrol.id) == Finding.patrol_id)
        .where(Rectification.status == OrderStatus.OPEN.value, Rectification.deadline < today, col(Patrol.voided_at).is_(None))
        .order_by(Rectification.deadline, Rectification.id)
    )
    return [OverdueOrder(*r) for r in rows.all()]
