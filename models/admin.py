"""Admin tools on users and grids: find, list, change role and grids, deactivate, targets, overdue.

Handlers check who may call these (scope and role); these functions check the rules of the change
itself and raise RuleError with nothing written when it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, update
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.errors import RuleError
from models.issues import ASSIGNED, CLOSED, IN_PROGRESS, OPEN_STATUSES, REJECTED, RESOLVED, Issue, IssueView, _views, dispatchers, transition
from models.patrols import Shop
from models.tables import ChannelIdentity, Grid, Household, Role, User, UserGrid
from models.users import Member, grids_by_codes, member_by_id

# -- masking (exports and lists for non-admins) ---------------------------------------------------


def mask_name(name: str | None) -> str | None:
    """张三丰 -> 张**, Li Wei -> L*****: the first character stays."""
    if not name:
        return name
    return name[0] + "*" * max(1, len(name) - 1)


def mask_phone(phone: str | None) -> str | None:
    """13812345678 -> 138****5678; short numbers keep only their last two digits."""
    if not phone:
        return phone
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) >= 7:
        return digits[:3] + "****" + digits[-4:]
    return "*" * max(0, len(digits) - 2) + digits[-2:]


# -- users ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserRow:
    id: int
    handle: str  # their first channel identity's key (a Telegram id), else #id
    name: str | None
    phone: str | None
    role: str
    active: bool
    grid_codes: tuple[str, ...]


async def find_user(session: AsyncSession, ref: str) -> Member:
    """A user by a channel identity (a Telegram id, a WeCom userid), `#<user id>` or exact display
    name; RuleError user_unknown / user_ambiguous."""
    ref = ref.strip().lstrip("@")
    if ref.startswith("#") and ref[1:].isdigit():
        ids = list((await session.exec(select(User.id).where(User.id == int(ref[1:])))).all())
    else:
        by_key = select(ChannelIdentity.user_id).where(ChannelIdentity.key == ref)
        ids = list((await session.exec(by_key.distinct())).all())
        if not ids and not ref.isdigit():
            ids = list((await session.exec(select(User.id).where(User.display_name == ref))).all())
    if not ids:
        raise RuleError("user_unknown", user=ref)
    if len(ids) > 1:
        raise RuleError("user_ambiguous", user=ref)
    member = await member_by_id(session, ids[0])
    assert member is not None
    return member


async def list_users(session: AsyncSession, grid_ids: list[int] | None) -> list[UserRow]:
    """Users of `grid_ids` (None: everyone, admins included), by role then name."""
    users = (await session.exec(select(User).order_by(User.role, User.display_name, User.id))).all()
    first_key = {}
    for uid, key in (await session.exec(select(ChannelIdentity.user_id, ChannelIdentity.key).order_by(ChannelIdentity.id))).all():
        first_key.setdefault(uid, key)
    links = (await session.exec(select(UserGrid.user_id, Grid.code, Grid.id).join(Grid, col(Grid.id) == UserGrid.grid_id).order_by(Grid.code))).all()
    codes: dict[int, list[str]] = {}
    gids: dict[int, set[int]] = {}
    for uid, code, gid in links:
        codes.setdefault(uid, []).append(code)
        gids.setdefault(uid, set()).add(gid)
    wanted = None if grid_ids is None else set(grid_ids)
    return [
        UserRow(u.id, first_key.get(u.id, f"#{u.id}"), u.display_name, u.phone, u.role, u.active, tuple(codes.get(u.id, [])))
        for u in users
        if wanted is None or gids.get(u.id, set()) & wanted
    ]


async def set_role(session: AsyncSession, actor: Member, target: Member, role: Role) -> Member:
    if target.id == actor.id:
        raise RuleError("not_yourself")
    if role != Role.ADMIN and not target.grid_ids:
        raise RuleError("role_needs_grid", user=target.display_name or target.handle)
    await session.exec(update(User).where(col(User.id) == target.id).values(role=role.value))  # type: ignore[call-overload]
    member = await member_by_id(session, target.id)
    assert member is not None
    return member


def parse_grid_codes(text: str) -> list[str]:
    return [c.strip() for c in text.replace("，", ",").replace("、", ",").split(",") if c.strip()]


async def set_grids(session: AsyncSession, target: Member, codes: list[str]) -> tuple[Member, list[Grid]]:
    grids = await grids_by_codes(session, codes)
    if not grids:
        raise RuleError("invite_needs_grid")
    await session.exec(delete(UserGrid).where(col(UserGrid.user_id) == target.id))  # type: ignore[call-overload]
    session.add_all([UserGrid(user_id=target.id, grid_id=g.id) for g in sorted({g.id: g for g in grids}.values(), key=lambda g: g.id)])
    await session.flush()
    member = await member_by_id(session, target.id)
    assert member is not None
    return member, grids


@dataclass(frozen=True)
class HandedBack:
    issue: IssueView
    supervisors: list[Member]


async def deactivate(session: AsyncSession, actor: Member, target: Member, note: str, *, allow_self: bool = False) -> list[HandedBack]:
    """The user can no longer use gridbot; their records stay; their open assigned issues go back to dispatch.

    Each such issue is handed back (an event row by the assignee's account, with `note`) before the
    account closes, and the grid's supervisors (the admins if none) are returned to be told.
    """
    if target.id == actor.id and not allow_self:  # allow_self: /forget_me closes one's own account
        raise RuleError("not_yourself")
    if not target.active:
        raise RuleError("already_inactive", user=target.display_name or target.handle)
    open_ids = (await session.exec(
        select(Issue.id, Issue.status).where(Issue.assignee_id == target.id, col(Issue.status).in_((ASSIGNED, IN_PROGRESS)),
                                             col(Issue.voided_at).is_(None)).order_by(Issue.id)
    )).all()
    out = []
    for issue_id, status in open_ids:
        result = await transition(session, issue_id, "hand_back", target, status, note)
        out.append(HandedBack(result.issue, await dispatchers(session, result.issue.grid_id)))
    await session.exec(update(User).where(col(User.id) == target.id).values(active=False))  # type: ignore[call-overload]
    # The one being deactivated is no one's dispatcher any more.
    return [HandedBack(h.issue, [m for m in h.supervisors if m.id != target.id]) for h in out]


# -- grids ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridRow:
    id: int
    code: str
    name: str
    community: str | None
    target: float
    households: int
    shops: int
    workers: int
    supervisors: tuple[str, ...]


async def grid_rows(session: AsyncSession, grid_ids: list[int]) -> list[GridRow]:
    if not grid_ids:
        return []
    hh = dict((await session.exec(select(Household.grid_id, func.count()).where(col(Household.grid_id).in_(grid_ids), col(Household.active).is_(True))
                                  .group_by(Household.grid_id))).all())
    sh = dict((await session.exec(select(Shop.grid_id, func.count()).where(col(Shop.grid_id).in_(grid_ids), col(Shop.active).is_(True))
                                  .group_by(Shop.grid_id))).all())
    people = (await session.exec(select(UserGrid.grid_id, User.role, User.display_name).join(User, col(User.id) == UserGrid.user_id)
                                 .where(col(UserGrid.grid_id).in_(grid_ids), col(User.active).is_(True)).order_by(User.id))).all()
    workers: dict[int, int] = {}
    sups: dict[int, list[str]] = {}
    for gid, role, name in people:
        if role == Role.WORKER.value:
            workers[gid] = workers.get(gid, 0) + 1
        elif role == Role.SUPERVISOR.value:
            sups.setdefault(gid, []).append(name or "?")
    grids = (await session.exec(select(Grid).where(col(Grid.id).in_(grid_ids)).order_by(Grid.code))).all()
    return [GridRow(g.id, g.code, g.name, g.community, g.target_coverage, int(hh.get(g.id, 0)), int(sh.get(g.id, 0)), workers.get(g.id, 0),
                    tuple(sups.get(g.id, []))) for g in grids]


async def set_targets(session: AsyncSession, grid_ids: list[int], percent: float) -> int:
    """Set the half-year visit-coverage target of `grid_ids` to `percent` %; returns how many grids changed."""
    if not 0 < percent <= 100:
        raise RuleError("target_range")
    if not grid_ids:
        return 0
    result = await session.exec(update(Grid).where(col(Grid.id).in_(grid_ids)).values(target_coverage=percent / 100))  # type: ignore[call-overload]
    return int(result.rowcount or 0)


async def overdue_issues(session: AsyncSession, grid_ids: list[int], at: datetime, limit: int = 50) -> tuple[list[IssueView], int]:
    """Open issues of `grid_ids` past their due time, most overdue first, and how many there are."""
    if not grid_ids:
        return [], 0
    where = [col(Issue.grid_id).in_(grid_ids), col(Issue.status).in_(OPEN_STATUSES), Issue.due_at < at, col(Issue.voided_at).is_(None)]
    total = (await session.exec(select(func.count()).select_from(Issue).where(*where))).one()
    return await _views(session, where, [Issue.due_at, Issue.id], limit), int(total)


# -- export rows ----------------------------------------------------------------------------------
# Plain rows (tuples of cells) of the ledgers of a period and grids; masking is the caller's choice.

from zoneinfo import ZoneInfo  # noqa: E402

from models import vocabulary  # noqa: E402
from models.issues import IssueEvent  # noqa: E402
from models.patrols import Finding, OrderStatus, Outcome, Patrol, Rectification  # noqa: E402
from models.periods import Period  # noqa: E402
from models.tables import Visit  # noqa: E402


def _local(at: datetime | None, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if at else ""


def _maskers(mask: bool):  # noqa: ANN202
    return (mask_name, mask_phone) if mask else ((lambda v: v), (lambda v: v))


async def visit_rows(session: AsyncSession, grid_ids: list[int], period: Period, tz: ZoneInfo, mask: bool) -> list[tuple]:
    name, phone = _maskers(mask)
    rows = await session.exec(
        select(Visit, Household, Grid.code, User.display_name)
        .join(Household, col(Household.id) == Visit.household_id).join(Grid, col(Grid.id) == Household.grid_id)
        .join(User, col(User.id) == Visit.worker_id)
        .where(col(Household.grid_id).in_(grid_ids), Visit.visited_at >= period.start, Visit.visited_at < period.end,
               col(Visit.voided_at).is_(None))
        .order_by(Visit.visited_at, Visit.id)
    )
    return [
        (v.id, _local(v.visited_at, tz), code, h.address, name(h.head_name) or "", phone(h.head_phone) or "", name(w) or "", v.people_met,
         "、".join(v.situations), v.notes or "")
        for v, h, code, w in rows.all()
    ]


async def patrol_rows(session: AsyncSession, grid_ids: list[int], period: Period, tz: ZoneInfo, mask: bool) -> list[tuple]:
    """One row per finding (a patrol without findings: one row with the finding cells empty)."""
    name, _phone = _maskers(mask)
    rows = (await session.exec(
        select(Patrol, Shop, Grid.code, User.display_name)
        .join(Shop, col(Shop.id) == Patrol.shop_id).join(Grid, col(Grid.id) == Shop.grid_id).join(User, col(User.id) == Patrol.worker_id)
        .where(col(Shop.grid_id).in_(grid_ids), Patrol.patrolled_at >= period.start, Patrol.patrolled_at < period.end,
               col(Patrol.voided_at).is_(None))
        .order_by(Patrol.patrolled_at, Patrol.id)
    )).all()
    findings: dict[int, list[Finding]] = {}
    ids = [p.id for p, *_ in rows]
    for chunk in range(0, len(ids), 1000):
        for f in (await session.exec(select(Finding).where(col(Finding.patrol_id).in_(ids[chunk:chunk + 1000])).order_by(Finding.id))).all():
            findings.setdefault(f.patrol_id, []).append(f)
    deadlines: dict[int, datetime] = {}
    fids = [f.id for fs in findings.values() for f in fs if f.outcome == Outcome.RECTIFY]
    for chunk in range(0, len(fids), 1000):
        deadlines.update(dict((await session.exec(
            select(Rectification.finding_id, Rectification.deadline)
            .where(col(Rectification.finding_id).in_(fids[chunk:chunk + 1000]), Rectification.status != OrderStatus.VOID.value))).all()))
    out = []
    for p, shop, code, worker in rows:
        base = (p.id, _local(p.patrolled_at, tz), code, shop.name, shop.address, shop.category, name(shop.contact) or "", name(worker) or "",
                len(p.items), sum(1 for i in p.items if not i.get("passed", True)))
        for f in findings.get(p.id) or [None]:
            if f is None:
                out.append(base + ("", "", "", "", ""))
                continue
            deadline = deadlines.get(f.id)
            out.append(base + (f.item, vocabulary.zh(vocabulary.DISPOSITION, f.disposition), vocabulary.zh(vocabulary.OUTCOME, f.outcome),
                               deadline.astimezone(tz).strftime("%Y-%m-%d") if deadline else "", f.note or ""))
    return out


async def issue_rows(session: AsyncSession, grid_ids: list[int], period: Period, tz: ZoneInfo, mask: bool) -> tuple[list[tuple], list[tuple]]:
    """Issues reported in the period, and their events, in the vocabulary's words: the import reads
    both sheets back (models/importer), so an export imports again unchanged."""
    name, _phone = _maskers(mask)
    views = await _views(session, [col(Issue.grid_id).in_(grid_ids), Issue.reported_at >= period.start, Issue.reported_at < period.end,
                                    col(Issue.voided_at).is_(None)],
                         [Issue.reported_at, Issue.id])
    human = {v.id: v.human_id for v in views}
    events: list[tuple] = []
    settled: dict[int, datetime] = {}  # issue -> its latest resolution (or rejection): the 解决时间 column
    assignee = aliased(User)
    ids = list(human)
    for chunk in range(0, len(ids), 1000):
        rows = await session.exec(
            select(IssueEvent, User.display_name, assignee.display_name).join(User, col(User.id) == IssueEvent.actor_id)
            .outerjoin(assignee, col(assignee.id) == IssueEvent.assignee_id)
            .where(col(IssueEvent.issue_id).in_(ids[chunk:chunk + 1000])).order_by(IssueEvent.issue_id, IssueEvent.at, IssueEvent.id)
        )
        for e, actor, assigned in rows.all():
            if e.to_status in (RESOLVED, REJECTED):
                settled[e.issue_id] = e.at
            events.append((human[e.issue_id], _local(e.at, tz), name(actor) or "", vocabulary.zh(vocabulary.ACTION, e.action),
                           vocabulary.zh(vocabulary.STATUS, e.from_status), vocabulary.zh(vocabulary.STATUS, e.to_status), name(assigned) or "",
                           e.note or "", _local(e.due_to, tz)))
    issues = [
        (v.human_id, _local(v.reported_at, tz), v.grid_code, v.category, v.description, v.address or "", "是" if v.urgent else "",
         vocabulary.zh(vocabulary.STATUS, v.status), name(v.reporter_name) or "", name(v.assignee_name) or "", _local(v.due_at, tz),
         _local(settled.get(v.id) if v.status in (RESOLVED, CLOSED, REJECTED) else None, tz))
        for v in views
    ]
    return issues, events
