"""Issue reports (问题上报 / 事件): tables, the transition table (DESIGN.md §2) and the one function
that moves an issue through it.

Every status change goes through `transition()` (or `create_issue()` for the two "(new)" rows):
the rule check, a compare-and-set UPDATE on the expected current status, and one `IssueEvent` row,
all in the caller's transaction. Anything the table does not allow raises `RuleError` and writes
nothing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import clock
from models.errors import RuleError
from models.tables import Grid, Household, Issue, IssueEvent, IssuePhoto, Role, User, UserGrid, Visit
from models.text import clean_text, mask_id_numbers, one_line
from models.users import Member, member_by_id

# -- configuration ------------------------------------------------------------------------------

# Category -> deadline in calendar days (DESIGN.md §2); ISSUE_CATEGORIES_FILE replaces the list.
DEFAULT_CATEGORIES: dict[str, float] = {
    "市容环境": 3, "户外招牌": 7, "违规地锁": 3, "僵尸车": 7, "违规种菜": 7, "油烟扰民": 3,
    "排水污水": 3, "垃圾分类": 1, "安全隐患": 1, "矛盾纠纷": 3, "其他": 7,
}
MAX_PHOTOS = 10
MAX_DESCRIPTION = 1000
MAX_NOTE = 500
MAX_ADDRESS = 200
DUPLICATE_RADIUS_M = 50.0
EARTH_RADIUS_M = 6_371_008.8


def load_categories(path: Path) -> dict[str, float]:
    """Read a categories file: a JSON object {"category": deadline days, ...}; ValueError says what is wrong."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f'{str(path)!r} must be a JSON object of categories and deadline days, e.g. {{"市容环境": 3}}')
    out: dict[str, float] = {}
    for name, days in raw.items():
        label = one_line(str(name))
        if not 1 <= len(label) <= 16:
            raise ValueError(f"category {name!r} in {str(path)!r} must be 1 to 16 characters")
        if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= 365:
            raise ValueError(f"deadline of {label!r} in {str(path)!r} must be a number of days from 1 to 365, got {days!r}")
        out[label] = days
    return out


def due_at_for(reported_at: datetime, days: float, urgent: bool) -> datetime:
    """Deadline in calendar days (holidays are not skipped); urgent halves it (3 d -> 36 h)."""
    return reported_at + timedelta(days=days) / (2 if urgent else 1)


# -- statuses, actions and the transition table (DESIGN.md §2 — the law) -------------------------

NEW = "new"  # not a stored status: the "(new)" rows of the table
REPORTED, ASSIGNED, IN_PROGRESS, RESOLVED = "reported", "assigned", "in_progress", "resolved"
CLOSED, REJECTED, REOPENED = "closed", "rejected", "reopened"
STATUSES = (REPORTED, ASSIGNED, IN_PROGRESS, RESOLVED, CLOSED, REJECTED, REOPENED)
OPEN_STATUSES = (REPORTED, ASSIGNED, IN_PROGRESS, REOPENED)
DONE_STATUSES = (RESOLVED, CLOSED)
# One letter per status for button data (`iss:<action>:<issue id>:<letter>`), to keep it short.
STATUS_CODE = {REPORTED: "r", ASSIGNED: "a", IN_PROGRESS: "p", RESOLVED: "s", CLOSED: "c", REJECTED: "x", REOPENED: "o"}
CODE_STATUS = {v: k for k, v in STATUS_CODE.items()}

# Who may take an action: a worker of the issue's grid, its supervisor (or an admin), its assignee.
REPORTER, SUPERVISOR, ASSIGNEE = "reporter", "supervisor", "assignee"


@dataclass(frozen=True)
class Rule:
    sources: tuple[str, ...]
    target: str
    who: str
    note_required: bool = False


TRANSITIONS: dict[str, Rule] = {
    "submit": Rule((NEW,), REPORTED, REPORTER),
    "resolve_on_spot": Rule((NEW,), RESOLVED, REPORTER, note_required=True),
    "assign": Rule((REPORTED, REOPENED), ASSIGNED, SUPERVISOR),
    "reject": Rule((REPORTED, REOPENED), REJECTED, SUPERVISOR, note_required=True),
    "start": Rule((ASSIGNED,), IN_PROGRESS, ASSIGNEE),
    "resolve": Rule((ASSIGNED, IN_PROGRESS), RESOLVED, ASSIGNEE, note_required=True),
    "hand_back": Rule((ASSIGNED, IN_PROGRESS), REPORTED, ASSIGNEE, note_required=True),
    "verify": Rule((RESOLVED,), CLOSED, SUPERVISOR),
    "reopen": Rule((RESOLVED, CLOSED, REJECTED), REOPENED, SUPERVISOR, note_required=True),
}
ACTIONS = tuple(TRANSITIONS)
ATTACH = "attach"  # a duplicate report added to an open issue: an event, no status change


# -- the tables are in models/tables.py ------------------------------------------------------------


NOT_VOIDED = col(Issue.voided_at).is_(None)  # voided issues (models/corrections.py) leave every list and figure


# -- plain values handlers see ------------------------------------------------------------------


@dataclass(frozen=True)
class IssueView:
    id: int
    human_id: str
    grid_id: int
    grid_code: str
    grid_name: str
    category: str
    description: str
    address: str | None
    latitude: float | None
    longitude: float | None
    urgent: bool
    status: str
    reporter_id: int
    reporter_name: str | None
    assignee_id: int | None
    assignee_name: str | None
    reported_at: datetime
    due_at: datetime
    photos: int
    voided_at: datetime | None = None  # voided (models/corrections.py): no longer acted on or counted

    def overdue(self, at: datetime) -> bool:
        return self.status not in (*DONE_STATUSES, REJECTED) and self.due_at < at


@dataclass(frozen=True)
class EventView:
    id: int
    at: datetime
    actor_name: str | None
    action: str
    from_status: str | None
    to_status: str
    assignee_name: str | None
    note: str | None
    photos: int


@dataclass(frozen=True)
class PhotoView:
    kind: str
    file_id: str
    sha256: str


@dataclass(frozen=True)
class TransitionResult:
    issue: IssueView
    event_id: int
    from_status: str | None
    to_status: str
    action: str
    created: bool = True  # False when an idempotent call found the earlier result


@dataclass
class IssueDraft:
    """Everything the chat collected; written once, at the confirm step."""

    draft_id: str
    grid_id: int
    category: str
    description: str
    urgent: bool = False
    address: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    photos: list[dict] = field(default_factory=list)
    source: str = "chat"
    source_id: int | None = None
    resolution_note: str | None = None  # set = resolved on the spot
    after_photos: list[dict] = field(default_factory=list)


# -- validation of what the reporter types --------------------------------------------------------


def validate_description(text: str) -> str:
    text = clean_text(text)
    if not 2 <= len(text) <= MAX_DESCRIPTION:
        raise RuleError("description_length", min=2, max=MAX_DESCRIPTION, n=len(text))
    return mask_id_numbers(text)


def validate_note(text: str | None) -> str | None:
    text = clean_text(text or "")
    if not text:
        return None
    if len(text) > MAX_NOTE:
        raise RuleError("note_length", max=MAX_NOTE, n=len(text))
    return mask_id_numbers(text)


def validate_address(text: str) -> str:
    address = one_line(text)
    if not 2 <= len(address) <= MAX_ADDRESS:
        raise RuleError("address_length", min=2, max=MAX_ADDRESS)
    return mask_id_numbers(address)


# -- reading --------------------------------------------------------------------------------------


async def _views(session: AsyncSession, where: list, order: list | None = None, limit: int | None = None) -> list[IssueView]:
    reporter = User.__table__.alias("reporter")
    assignee = User.__table__.alias("assignee")
    photos = select(IssuePhoto.issue_id, func.count().label("n")).group_by(IssuePhoto.issue_id).subquery()
    query = (
        select(Issue, Grid.code, Grid.name, reporter.c.display_name, assignee.c.display_name,
               func.coalesce(photos.c.n, 0))
        .join(Grid, col(Grid.id) == Issue.grid_id)
        .join(reporter, reporter.c.id == Issue.reporter_id)
        .outerjoin(assignee, assignee.c.id == Issue.assignee_id)
        .outerjoin(photos, photos.c.issue_id == Issue.id)
        .where(*where)
        .order_by(*(order or [Issue.id]))
    )
    if limit is not None:
        query = query.limit(limit)
    rows = (await session.exec(query)).all()
    return [
        IssueView(i.id, i.human_id, i.grid_id, code, name, i.category, i.description, i.address, i.latitude, i.longitude, i.urgent,
                  i.status, i.reporter_id, rname, i.assignee_id, aname, i.reported_at, i.due_at, int(n), i.voided_at)
        for i, code, name, rname, aname, n in rows
    ]


async def get_issue(session: AsyncSession, issue_id: int) -> IssueView | None:
    views = await _views(session, [col(Issue.id) == issue_id])
    return views[0] if views else None


async def find_issue(session: AsyncSession, ref: str) -> IssueView | None:
    """An issue by its human id (`2605-0042`, also `#2605-0042`) or its number."""
    ref = ref.strip().lstrip("#")
    if ref.isdigit() and len(ref) < 8:
        return await get_issue(session, int(ref))
    views = await _views(session, [col(Issue.human_id) == ref.upper()])
    return views[0] if views else None


async def issue_history(session: AsyncSession, issue_id: int) -> list[EventView]:
    actor = User.__table__.alias("actor")
    assignee = User.__table__.alias("assignee")
    photos = select(IssuePhoto.event_id, func.count().label("n")).where(IssuePhoto.issue_id == issue_id).group_by(IssuePhoto.event_id).subquery()
    rows = await session.exec(
        select(IssueEvent, actor.c.display_name, assignee.c.display_name, func.coalesce(photos.c.n, 0))
        .join(actor, actor.c.id == IssueEvent.actor_id)
        .outerjoin(assignee, assignee.c.id == IssueEvent.assignee_id)
        .outerjoin(photos, photos.c.event_id == IssueEvent.id)
        .where(IssueEvent.issue_id == issue_id)
        .order_by(IssueEvent.at, IssueEvent.id)
    )
    return [EventView(e.id, e.at, an, e.action, e.from_status, e.to_status, asn, e.note, int(n)) for e, an, asn, n in rows.all()]


async def issue_photos(session: AsyncSession, issue_id: int) -> list[PhotoView]:
    rows = await session.exec(select(IssuePhoto).where(IssuePhoto.issue_id == issue_id).order_by(IssuePhoto.id))
    return [PhotoView(p.kind, p.file_id, p.sha256) for p in rows.all()]


async def event_photos(session: AsyncSession, event_id: int) -> list[PhotoView]:
    """The photos one step added (the after-photos of a resolution)."""
    rows = await session.exec(select(IssuePhoto).where(IssuePhoto.event_id == event_id).order_by(IssuePhoto.id))
    return [PhotoView(p.kind, p.file_id, p.sha256) for p in rows.all()]


def may_view(issue: IssueView, member: Member) -> bool:
    return member.is_admin or issue.grid_id in member.grid_ids or member.id in (issue.reporter_id, issue.assignee_id)


async def open_tasks(session: AsyncSession, member: Member, limit: int = 20) -> list[IssueView]:
    """Issues assigned to `member` that are still to do, most urgent deadline first."""
    return await _views(session, [Issue.assignee_id == member.id, col(Issue.status).in_((ASSIGNED, IN_PROGRESS)), NOT_VOIDED],
                        [Issue.due_at, Issue.id], limit)


async def my_reports(session: AsyncSession, member: Member, since: datetime, limit: int = 10) -> tuple[list[IssueView], int]:
    """The issues `member` reported since `since`, newest first (at most `limit`), and how many there are."""
    where = [Issue.reporter_id == member.id, Issue.reported_at >= since, NOT_VOIDED]
    total = (await session.exec(select(func.count()).select_from(Issue).where(*where))).one()
    return await _views(session, where, [col(Issue.reported_at).desc(), col(Issue.id).desc()], limit), int(total)


async def supervisor_queue(session: AsyncSession, member: Member, limit: int = 20) -> list[IssueView]:
    """Issues waiting for a supervisor of `member`'s grids: to dispatch (reported, reopened) or to verify (resolved)."""
    if member.role == Role.WORKER:
        return []
    where = [col(Issue.status).in_((REPORTED, REOPENED, RESOLVED)), NOT_VOIDED]
    if not member.is_admin:
        where.append(col(Issue.grid_id).in_(list(member.grid_ids)))
    return await _views(session, where, [Issue.due_at, Issue.id], limit)


async def _grid_members(session: AsyncSession, grid_id: int, role: Role) -> list[Member]:
    ids = (await session.exec(
        select(User.id).join(UserGrid, col(UserGrid.user_id) == User.id)
        .where(UserGrid.grid_id == grid_id, User.role == role.value, col(User.active).is_(True)).order_by(User.id)
    )).all()
    return [m for uid in ids if (m := await member_by_id(session, uid)) is not None]


async def grid_workers(session: AsyncSession, grid_id: int) -> list[Member]:
    return await _grid_members(session, grid_id, Role.WORKER)


async def open_task_counts(session: AsyncSession, user_ids: list[int]) -> dict[int, int]:
    """How many open issues each user is assigned now (what a dispatcher weighs before assigning)."""
    rows = await session.exec(
        select(Issue.assignee_id, func.count()).where(col(Issue.assignee_id).in_(user_ids), col(Issue.status).in_((ASSIGNED, IN_PROGRESS)),
                                                      NOT_VOIDED).group_by(Issue.assignee_id))
    return {uid: int(n) for uid, n in rows.all()}


async def dispatchers(session: AsyncSession, grid_id: int) -> list[Member]:
    """Who gets a new report: the grid's active supervisors; the admins when the grid has none."""
    members = await _grid_members(session, grid_id, Role.SUPERVISOR)
    if members:
        return members
    ids = (await session.exec(select(User.id).where(User.role == Role.ADMIN.value, col(User.active).is_(True)).order_by(User.id))).all()
    return [m for uid in ids if (m := await member_by_id(session, uid)) is not None]


# -- the rules --------------------------------------------------------------------------------------


def _in_grid(actor: Member, grid_id: int) -> bool:
    return actor.is_admin or grid_id in actor.grid_ids


def check(issue: Issue | IssueView, action: str, actor: Member, expected_status: str | None = None, note: str | None = None) -> Rule:
    """The rule that lets `actor` take `action` on `issue` now, or RuleError. Writes nothing."""
    rule = TRANSITIONS.get(action)
    if rule is None or NEW in rule.sources:
        raise RuleError("not_allowed", action=action, status=issue.status)
    if not actor.active:
        raise RuleError("not_your_role", action=action)
    if issue.voided_at is not None:
        raise RuleError("voided")
    if not _in_grid(actor, issue.grid_id) and actor.id != issue.assignee_id:
        raise RuleError("wrong_grid")
    if expected_status is not None and expected_status != issue.status:
        raise RuleError("stale_status", expected=expected_status, status=issue.status)
    if issue.status not in rule.sources:
        raise RuleError("not_allowed", action=action, status=issue.status)
    if rule.who == SUPERVISOR:
        if actor.role == Role.WORKER:
            raise RuleError("not_your_role", action=action)
        if not _in_grid(actor, issue.grid_id):
            raise RuleError("wrong_grid")
    elif rule.who == ASSIGNEE and actor.id != issue.assignee_id:
        raise RuleError("not_assignee")
    if rule.note_required and not (note or "").strip():
        raise RuleError("reason_required", action=action)
    return rule


def allowed_actions(issue: IssueView, actor: Member) -> list[str]:
    """The actions `actor` may take on `issue` now, in table order (for buttons)."""
    out = []
    for action in ACTIONS:
        try:
            check(issue, action, actor, note="-")
        except RuleError:
            continue
        out.append(action)
    return out


def check_reporter(actor: Member, grid_id: int, action: str = "submit") -> None:
    """The "(new)" rows: only a worker of the grid reports."""
    if not actor.active or actor.role != Role.WORKER:
        raise RuleError("not_your_role", action=action)
    if grid_id not in actor.grid_ids:
        raise RuleError("wrong_grid")


async def _assignee_ok(session: AsyncSession, issue: Issue, actor: Member, assignee_id: int | None) -> None:
    if assignee_id is None:
        raise RuleError("bad_assignee")
    if assignee_id == actor.id:
        return  # a supervisor (or admin) takes it on themselves
    member = await member_by_id(session, assignee_id)
    if member is None or not member.active or member.role != Role.WORKER or issue.grid_id not in member.grid_ids:
        raise RuleError("bad_assignee")


def _photo_rows(issue_id: int, event_id: int, photos: list[dict], kind: str) -> list[IssuePhoto]:
    seen: set[str] = set()
    out = []
    for p in photos[:MAX_PHOTOS]:
        if p["sha256"] in seen:
            continue
        seen.add(p["sha256"])
        out.append(IssuePhoto(issue_id=issue_id, event_id=event_id, kind=kind, file_id=p["file_id"],
                              file_unique_id=p.get("file_unique_id"), sha256=p["sha256"]))
    return out


async def transition(
    session: AsyncSession,
    issue_id: int,
    action: str,
    actor: Member,
    expected_status: str | None,
    note: str | None = None,
    *,
    assignee_id: int | None = None,
    photos: list[dict] | None = None,
) -> TransitionResult:
    """Move an issue along the table: check, compare-and-set on the status, one event row.

    All in the caller's transaction: a refusal (RuleError) writes nothing, and a second delivery of
    the same button finds the status moved on and is refused as `stale_status`.
    """
    issue = (await session.exec(select(Issue).where(Issue.id == issue_id))).first()
    if issue is None:
        raise RuleError("not_found")
    note = validate_note(note)
    rule = check(issue, action, actor, expected_status, note)
    values: dict[str, object] = {"status": rule.target, "updated_at": clock.now()}
    if action == "assign":
        await _assignee_ok(session, issue, actor, assignee_id)
        values["assignee_id"] = assignee_id
    elif action in ("hand_back", "reopen"):
        values["assignee_id"] = None  # back to the dispatch queue
    # A reopened issue goes straight back to whoever resolved it, when they still can take it.
    resolver = await _resolver(session, issue, actor) if action == "reopen" else None
    conditions = [col(Issue.id) == issue_id, col(Issue.status) == issue.status, NOT_VOIDED]
    if rule.who == ASSIGNEE:
        conditions.append(col(Issue.assignee_id) == actor.id)
    from_status = issue.status
    async with session.begin_nested():
        changed = await session.exec(update(Issue).where(*conditions).values(**values))  # type: ignore[call-overload]
        if changed.rowcount != 1:
            raise RuleError("stale_status", expected=from_status, status="?")
        event = IssueEvent(issue_id=issue_id, at=values["updated_at"], actor_id=actor.id, action=action, from_status=from_status,
                           to_status=rule.target, assignee_id=assignee_id if action == "assign" else None, note=note)
        session.add(event)
        await session.flush()
        if photos:
            session.add_all(_photo_rows(issue_id, event.id, photos, "after"))
            await session.flush()
        event_id = event.id
        to_status = rule.target
        if resolver is not None:
            to_status = TRANSITIONS["assign"].target
            await session.exec(update(Issue).where(col(Issue.id) == issue_id).values(status=to_status, assignee_id=resolver))  # type: ignore[call-overload]
            session.add(IssueEvent(issue_id=issue_id, at=values["updated_at"], actor_id=actor.id, action="assign", from_status=rule.target,
                                   to_status=to_status, assignee_id=resolver))
            await session.flush()
    session.expire_all()
    view = await get_issue(session, issue_id)
    assert view is not None
    return TransitionResult(view, event_id, from_status, to_status, action)


async def _resolver(session: AsyncSession, issue: Issue, actor: Member) -> int | None:
    """Who resolved a resolved or closed issue (its latest resolution), if they may still be assigned it."""
    if issue.status not in DONE_STATUSES:
        return None
    resolver = (await session.exec(
        select(IssueEvent.actor_id).where(IssueEvent.issue_id == issue.id, IssueEvent.to_status == RESOLVED)
        .order_by(col(IssueEvent.at).desc(), col(IssueEvent.id).desc()).limit(1))).first()
    if resolver is None:
        return None
    try:
        await _assignee_ok(session, issue, actor, resolver)
    except RuleError:
        return None  # left the grid or the bot: the dispatch queue
    return resolver


# -- creating: human ids, deadlines, idempotent submit ------------------------------------------------


def human_prefix(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%y%m")


async def _next_human_id(session: AsyncSession, prefix: str) -> str:
    last = (await session.exec(select(func.max(Issue.human_id)).where(col(Issue.human_id).like(f"{prefix}-%")))).one()
    n = int(last.split("-")[1]) + 1 if last else 1
    return f"{prefix}-{n:04d}"


async def find_issue_by_draft(session: AsyncSession, draft_id: str) -> Issue | None:
    return (await session.exec(select(Issue).where(Issue.draft_id == draft_id))).first()


async def create_issue(session: AsyncSession, draft: IssueDraft, actor: Member, categories: dict[str, float], tz: ZoneInfo) -> TransitionResult:
    """Write a new issue with its first event (submit, or resolve on the spot) and its photos.

    Idempotent on `draft_id`. The human id is the month's next number: read the month's highest,
    insert, and on a unique-constraint clash (another report took the number) try again.
    """
    on_spot = draft.resolution_note is not None
    action = "resolve_on_spot" if on_spot else "submit"
    existing = await find_issue_by_draft(session, draft.draft_id)
    if existing is not None:
        return await _existing_result(session, existing.id)
    check_reporter(actor, draft.grid_id, action)
    if draft.category not in categories:
        raise RuleError("bad_category", category=draft.category)
    description = validate_description(draft.description)
    if draft.latitude is None and not draft.address:
        raise RuleError("where_required")
    note = validate_note(draft.resolution_note) if on_spot else None
    if on_spot and not note:
        raise RuleError("reason_required", action=action)
    if on_spot and not draft.after_photos:
        raise RuleError("after_photo_required")
    now = clock.now()
    status = TRANSITIONS[action].target
    for _attempt in range(8):
        try:
            async with session.begin_nested():
                issue = Issue(
                    human_id=await _next_human_id(session, human_prefix(now, tz)), draft_id=draft.draft_id, grid_id=draft.grid_id,
                    category=draft.category, description=description,
                    address=validate_address(draft.address) if draft.address else None,
                    latitude=draft.latitude, longitude=draft.longitude, urgent=draft.urgent, status=status, reporter_id=actor.id,
                    source=draft.source, source_id=draft.source_id, reported_at=now,
                    due_at=due_at_for(now, categories[draft.category], draft.urgent), updated_at=now,
                )
                session.add(issue)
                await session.flush()
                event = IssueEvent(issue_id=issue.id, at=now, actor_id=actor.id, action=action, from_status=None, to_status=status, note=note)
                session.add(event)
                await session.flush()
                session.add_all(_photo_rows(issue.id, event.id, draft.photos, "before"))
                if on_spot:
                    session.add_all(_photo_rows(issue.id, event.id, draft.after_photos, "after"))
                await session.flush()
        except IntegrityError:
            existing = await find_issue_by_draft(session, draft.draft_id)
            if existing is not None:  # another delivery of the same confirm won the race
                return await _existing_result(session, existing.id)
            continue  # the human id was taken meanwhile: take the next one
        view = await get_issue(session, issue.id)
        assert view is not None
        return TransitionResult(view, event.id, None, status, action)
    raise RuntimeError("could not allocate an issue number")


async def _existing_result(session: AsyncSession, issue_id: int) -> TransitionResult:
    view = await get_issue(session, issue_id)
    assert view is not None
    first = (await session.exec(select(IssueEvent).where(IssueEvent.issue_id == issue_id).order_by(IssueEvent.id).limit(1))).one()
    return TransitionResult(view, first.id, None, first.to_status, first.action, created=False)


# -- nearby duplicates ---------------------------------------------------------------------------------


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


async def nearby_open_issues(
    session: AsyncSession, grid_ids: list[int] | tuple[int, ...], category: str, lat: float, lon: float, radius_m: float = DUPLICATE_RADIUS_M,
) -> list[tuple[IssueView, float]]:
    """Open issues of `category` in `grid_ids` within `radius_m`: a bounding box in SQL, then haversine."""
    if not grid_ids:
        return []
    dlat = math.degrees(radius_m / EARTH_RADIUS_M) * 1.01
    dlon = dlat / max(math.cos(math.radians(lat)), 0.01)
    views = await _views(session, [
        Issue.category == category, col(Issue.status).in_(OPEN_STATUSES), col(Issue.grid_id).in_(list(grid_ids)), NOT_VOIDED,
        col(Issue.latitude).between(lat - dlat, lat + dlat), col(Issue.longitude).between(lon - dlon, lon + dlon),
    ])
    near = [(v, haversine_m(lat, lon, v.latitude, v.longitude)) for v in views if v.latitude is not None and v.longitude is not None]
    return sorted([(v, d) for v, d in near if d <= radius_m], key=lambda vd: (vd[1], vd[0].id))


async def attach_to_issue(
    session: AsyncSession, issue_id: int, actor: Member, draft_id: str, note: str | None, photos: list[dict],
) -> tuple[IssueView, bool]:
    """Add a duplicate report to an open issue: one `attach` event (status unchanged) and its photos.

    Idempotent on `draft_id`. Returns (issue, created).
    """
    done = (await session.exec(select(IssueEvent.issue_id).where(IssueEvent.draft_id == draft_id))).first()
    if done is not None:
        view = await get_issue(session, done)
        assert view is not None
        return view, False
    issue = (await session.exec(select(Issue).where(Issue.id == issue_id))).first()
    if issue is None:
        raise RuleError("not_found")
    check_reporter(actor, issue.grid_id, ATTACH)
    if issue.status not in OPEN_STATUSES or issue.voided_at is not None:
        raise RuleError("not_open", status=issue.status)
    try:
        async with session.begin_nested():
            event = IssueEvent(issue_id=issue_id, at=clock.now(), actor_id=actor.id, action=ATTACH, from_status=issue.status,
                               to_status=issue.status, note=validate_note(note), draft_id=draft_id)
            session.add(event)
            await session.flush()
            session.add_all(_photo_rows(issue_id, event.id, photos, "before"))
            await session.flush()
    except IntegrityError:
        done = (await session.exec(select(IssueEvent.issue_id).where(IssueEvent.draft_id == draft_id))).first()
        if done is None:
            raise
        created = False
    else:
        created = True
    view = await get_issue(session, issue_id)
    assert view is not None
    return view, created


# -- deadline extensions ---------------------------------------------------------------------------------

EXTEND = "extend"  # an event that moves `due_at` and keeps the status
EXTEND_DAYS = (1, 60)


def check_extend(issue: Issue | IssueView, actor: Member, expected_status: str | None, days: int, reason: str | None) -> None:
    """A supervisor of the grid (or an admin) may give an open issue more time, with a reason —
    for an issue that waits on others (a utility, another department). RuleError otherwise."""
    if not actor.active or actor.role == Role.WORKER:
        raise RuleError("not_your_role", action=EXTEND)
    if issue.voided_at is not None:
        raise RuleError("voided")
    if not _in_grid(actor, issue.grid_id):
        raise RuleError("wrong_grid")
    if expected_status is not None and expected_status != issue.status:
        raise RuleError("stale_status", expected=expected_status, status=issue.status)
    if issue.status not in OPEN_STATUSES:
        raise RuleError("not_allowed", action=EXTEND, status=issue.status)
    if not EXTEND_DAYS[0] <= days <= EXTEND_DAYS[1]:
        raise RuleError("extend_days", min=EXTEND_DAYS[0], max=EXTEND_DAYS[1])
    if not (reason or "").strip():
        raise RuleError("reason_required", action=EXTEND)


async def extend_due(session: AsyncSession, issue_id: int, actor: Member, expected_status: str | None, days: int, reason: str) -> TransitionResult:
    """Move the deadline `days` on from the later of the deadline and now (an overdue issue gets
    `days` from today): one `extend` event with the reason, the status unchanged."""
    issue = (await session.exec(select(Issue).where(Issue.id == issue_id))).first()
    if issue is None:
        raise RuleError("not_found")
    reason = validate_note(reason)
    check_extend(issue, actor, expected_status, days, reason)
    now, due_from, status = clock.now(), issue.due_at, issue.status  # read before the UPDATE refreshes `issue`
    due = max(due_from, now) + timedelta(days=days)
    async with session.begin_nested():
        changed = await session.exec(  # type: ignore[call-overload]
            update(Issue).where(col(Issue.id) == issue_id, col(Issue.status) == status, NOT_VOIDED).values(due_at=due, updated_at=now))
        if changed.rowcount != 1:
            raise RuleError("stale_status", expected=status, status="?")
        event = IssueEvent(issue_id=issue_id, at=now, actor_id=actor.id, action=EXTEND, from_status=status, to_status=status,
                           note=reason, due_from=due_from, due_to=due)
        session.add(event)
        await session.flush()
        event_id = event.id
    session.expire_all()
    view = await get_issue(session, issue_id)
    assert view is not None
    return TransitionResult(view, event_id, status, status, EXTEND)


# -- from a visit (and, later, a patrol) ------------------------------------------------------------------


@dataclass(frozen=True)
class Prefill:
    grid_id: int
    address: str | None
    latitude: float | None
    longitude: float | None
    photos: list[dict]
    source: str
    source_id: int | None


async def visit_prefill(session: AsyncSession, visit_id: int, member: Member) -> Prefill:
    """What a hazard found on a visit carries into a report: its household's grid and address, location, photos."""
    row = (await session.exec(select(Visit, Household).join(Household, col(Household.id) == Visit.household_id).where(Visit.id == visit_id))).first()
    if row is None:
        raise RuleError("not_found")
    visit, household = row
    if visit.voided_at is not None:
        raise RuleError("not_found")  # undone or replaced (✏️ Edit): its confirmation's button no longer reports it
    if visit.worker_id != member.id:
        raise RuleError("not_your_visit")
    check_reporter(member, household.grid_id)
    taken = (await session.exec(select(Issue.human_id).where(Issue.source == "visit", Issue.source_id == visit_id))).first()
    if taken is not None:
        raise RuleError("already_reported", human_id=taken)
    return Prefill(household.grid_id, household.address, visit.latitude, visit.longitude, list(visit.photos), "visit", visit_id)
