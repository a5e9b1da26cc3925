"""Food-safety patrols (食品安全巡查): shops, patrols, findings, enforcement outcomes, re-inspection.

DESIGN.md §2: each failed checklist item of a patrol is a *finding*, `corrected` on the spot or
`escalated`. An escalated finding gets one enforcement outcome (`pending` until a supervisor records
`rectify_on_site`, `fined` or `suspended`); every change is a `FindingEvent`. `rectify_on_site`
opens a `Rectification` order with a deadline; a later patrol of the shop whose previously
escalated items all pass closes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import clock
from models.checklist import SHOP_CATEGORIES
from models.errors import RuleError
from models.tables import Finding, FindingEvent, Grid, OrderStatus, Patrol, Rectification, Role, Shop, User, UserGrid
from models.text import clean_text, mask_id_numbers, one_line
from models.users import identities_of, key_on, reach

SHOP_NAME_LEN = (1, 100)
SHOP_ADDRESS_LEN = (2, 200)
LICENCE_LEN = 64
CONTACT_LEN = 64
MAX_FINDING_NOTE = 500
MAX_PHOTOS = 10
RECTIFY_DAYS = (1, 60)
RECTIFY_DAYS_DEFAULT = 3  # the settings' default (RECTIFY_DAYS_DEFAULT); imports use the configured one


class Disposition(StrEnum):
    CORRECTED = "corrected"  # 现场指正
    ESCALATED = "escalated"  # 上报


class Outcome(StrEnum):
    PENDING = "pending"
    RECTIFY = "rectify_on_site"  # 要求现场整改
    FINED = "fined"  # 处罚
    SUSPENDED = "suspended"  # 停业整改


class Risk(StrEnum):
    LOW = "低"
    MEDIUM = "中"
    HIGH = "高"


# -- rules ----------------------------------------------------------------------------------------

RISK_MEDIUM_FROM = 0.10  # weighted share of failed items: below 10 % 低
RISK_HIGH_FROM = 0.30  # from 30 % 高
RISK_HIGH_KEY_FAILS = 2  # two failed key items = 高 whatever the share


def risk_level(items: list[dict] | None) -> Risk | None:
    """The shop's risk level from its latest patrol's items ({"weight", "key", "passed"}).

    An internal aid (DESIGN.md §2), never the regulator's official grade: weighted share of failed
    items < 10 % 低, < 30 % 中, otherwise 高; two or more failed key items are 高. None: no patrol.
    """
    if not items:
        return None
    total = sum(float(i.get("weight", 1)) for i in items)
    failed = [i for i in items if not i.get("passed", True)]
    if sum(1 for i in failed if i.get("key")) >= RISK_HIGH_KEY_FAILS:
        return Risk.HIGH
    share = sum(float(i.get("weight", 1)) for i in failed) / total if total > 0 else 0.0
    if share < RISK_MEDIUM_FROM - 1e-9:
        return Risk.LOW
    if share < RISK_HIGH_FROM - 1e-9:
        return Risk.MEDIUM
    return Risk.HIGH


def local_day_start(at: datetime, tz: ZoneInfo, days: int = 0) -> datetime:
    """Start (aware UTC) of the local calendar day of `at`, shifted by `days`."""
    day = at.astimezone(tz).date() + timedelta(days=days)
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)


def deadline_day(deadline: datetime, tz: ZoneInfo) -> date:
    return deadline.astimezone(tz).date()


def _text(value: str, limits: tuple[int, int], code: str) -> str:
    text = one_line(value)
    if not limits[0] <= len(text) <= limits[1]:
        raise RuleError(code, min=limits[0], max=limits[1])
    return mask_id_numbers(text)


def validate_shop_name(value: str) -> str:
    return _text(value, SHOP_NAME_LEN, "shop_name_length")


def validate_shop_address(value: str) -> str:
    return _text(value, SHOP_ADDRESS_LEN, "shop_address_length")


def validate_licence(value: str) -> str:
    return _text(value, (1, LICENCE_LEN), "licence_length")


def validate_contact(value: str) -> str:
    return _text(value, (1, CONTACT_LEN), "contact_length")


def validate_note(value: str) -> str | None:
    text = clean_text(value)
    if len(text) > MAX_FINDING_NOTE:
        raise RuleError("note_length", max=MAX_FINDING_NOTE, n=len(text))
    return mask_id_numbers(text) or None


# -- shops --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShopRow:
    id: int
    grid_id: int
    grid_code: str
    name: str
    address: str
    category: str
    licence_no: str | None = None
    contact: str | None = None
    active: bool = True


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _shop_row(shop: Shop, code: str) -> ShopRow:
    return ShopRow(shop.id, shop.grid_id, code, shop.name, shop.address, shop.category, shop.licence_no, shop.contact, shop.active)


async def search_shops(session: AsyncSession, grid_ids: list[int], query: str, offset: int = 0, limit: int = 6) -> tuple[list[ShopRow], int]:
    """Active shops of `grid_ids` whose name or address contains every word of `query`."""
    if not grid_ids:
        return [], 0
    conditions = [col(Shop.grid_id).in_(grid_ids), col(Shop.active).is_(True)]
    for word in one_line(query).split():
        pattern = f"%{_escape_like(word)}%"
        conditions.append(or_(col(Shop.name).ilike(pattern, escape="\\"), col(Shop.address).ilike(pattern, escape="\\")))
    total = (await session.exec(select(func.count()).select_from(Shop).where(*conditions))).one()
    rows = await session.exec(
        select(Shop, Grid.code).join(Grid, col(Grid.id) == Shop.grid_id).where(*conditions)
        .order_by(Shop.name, Shop.address, Shop.id).offset(offset).limit(limit)
    )
    return [_shop_row(s, code) for s, code in rows.all()], total


async def get_shop(session: AsyncSession, shop_id: int, grid_ids: list[int]) -> ShopRow | None:
    """An active shop, only if it is in the caller's grids."""
    row = (
        await session.exec(
            select(Shop, Grid.code).join(Grid, col(Grid.id) == Shop.grid_id)
            .where(Shop.id == shop_id, col(Shop.grid_id).in_(grid_ids), col(Shop.active).is_(True))
        )
    ).first()
    return _shop_row(*row) if row else None


@dataclass
class ShopDraft:
    grid_id: int
    name: str
    address: str
    category: str
    licence_no: str | None = None
    contact: str | None = None


def _check_shop(draft: ShopDraft) -> ShopDraft:
    if draft.category not in SHOP_CATEGORIES:
        raise RuleError("shop_category")
    return ShopDraft(
        draft.grid_id, validate_shop_name(draft.name), validate_shop_address(draft.address), draft.category,
        validate_licence(draft.licence_no) if draft.licence_no else None, validate_contact(draft.contact) if draft.contact else None,
    )


async def add_shop(session: AsyncSession, draft: ShopDraft, created_by: int | None) -> Shop:
    """Register a shop (`/shop_add`); RuleError("shop_exists") when the grid already has it."""
    draft = _check_shop(draft)
    existing = (
        await session.exec(select(Shop).where(Shop.grid_id == draft.grid_id, Shop.name == draft.name, Shop.address == draft.address))
    ).first()
    if existing is not None and existing.active:
        raise RuleError("shop_exists", name=draft.name)
    if existing is not None:  # re-registering a deactivated shop brings it back
        existing.active, existing.category = True, draft.category
        existing.licence_no, existing.contact = draft.licence_no, draft.contact
        await session.flush()
        return existing
    shop = Shop(grid_id=draft.grid_id, name=draft.name, address=draft.address, category=draft.category,
                licence_no=draft.licence_no, contact=draft.contact, created_by=created_by)
    session.add(shop)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise RuleError("shop_exists", name=draft.name) from None
    return shop


async def _shop_for(session: AsyncSession, shop_id: int | None, new: dict | None, worker_id: int) -> int:
    if shop_id is not None:
        return shop_id
    draft = _check_shop(ShopDraft(new["grid_id"], new["name"], new["address"], new["category"]))
    existing = (
        await session.exec(select(Shop).where(Shop.grid_id == draft.grid_id, Shop.name == draft.name, Shop.address == draft.address))
    ).first()
    if existing is not None:
        existing.active = True
        return existing.id
    shop = Shop(grid_id=draft.grid_id, name=draft.name, address=draft.address, category=draft.category, created_by=worker_id)
    session.add(shop)
    await session.flush()
    return shop.id


# -- saving a patrol ------------------------------------------------------------------------------


@dataclass
class PatrolDraft:
    """Everything the chat collected; written once, at the confirm step."""

    draft_id: str
    worker_id: int
    patrolled_at: datetime
    items: list[dict]  # [{"name", "weight", "key", "passed"}]
    findings: list[dict]  # one per failed item, in checklist order: [{"item", "disposition", "note"}]
    shop_id: int | None = None
    new_shop: dict | None = None  # {"grid_id", "name", "address", "category"}
    photos: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class ReinspectionResult:
    order_id: int
    finding_id: int
    item: str
    closed: bool
    failing: tuple[str, ...]  # previously escalated items that still fail (or were not checked)


@dataclass(frozen=True)
class SavedPatrol:
    patrol_id: int
    created: bool
    shop_id: int
    escalated: tuple[int, ...] = ()  # finding ids
    reinspections: tuple[ReinspectionResult, ...] = ()


def _check_patrol(draft: PatrolDraft) -> None:
    if not draft.items:
        raise RuleError("checklist_empty")
    failed = [i["name"] for i in draft.items if not i["passed"]]
    if [f["item"] for f in draft.findings] != failed:
        raise RuleError("findings_mismatch")
    if any(f["disposition"] not in (Disposition.CORRECTED, Disposition.ESCALATED) for f in draft.findings):
        raise RuleError("disposition_required")
    if len(draft.photos) > MAX_PHOTOS:
        raise RuleError("too_many_photos", max=MAX_PHOTOS)


async def find_patrol_by_draft(session: AsyncSession, draft_id: str) -> Patrol | None:
    return (await session.exec(select(Patrol).where(Patrol.draft_id == draft_id))).first()


async def save_patrol(session: AsyncSession, draft: PatrolDraft) -> SavedPatrol:
    """Write the patrol, its findings (and a shop added on the spot) in one transaction, and check
    the shop's open rectification orders against it. Idempotent on `draft_id` (created=False).
    """
    existing = await find_patrol_by_draft(session, draft.draft_id)
    if existing is not None:
        return SavedPatrol(existing.id, False, existing.shop_id)
    _check_patrol(draft)
    try:
        async with session.begin_nested():
            shop_id = await _shop_for(session, draft.shop_id, draft.new_shop, draft.worker_id)
            patrol = Patrol(
                draft_id=draft.draft_id, shop_id=shop_id, worker_id=draft.worker_id, patrolled_at=draft.patrolled_at,
                items=[{"name": i["name"], "weight": float(i["weight"]), "key": bool(i["key"]), "passed": bool(i["passed"])} for i in draft.items],
                photos=list(draft.photos),
            )
            session.add(patrol)
            await session.flush()
            by_name = {i["name"]: i for i in draft.items}
            findings = []
            for f in draft.findings:
                escalated = f["disposition"] == Disposition.ESCALATED
                finding = Finding(
                    patrol_id=patrol.id, item=f["item"][:60], weight=float(by_name[f["item"]]["weight"]), key=bool(by_name[f["item"]]["key"]),
                    disposition=str(f["disposition"]), note=mask_id_numbers(f["note"]) if f.get("note") else None,
                    outcome=Outcome.PENDING.value if escalated else None,
                )
                session.add(finding)
                findings.append(finding)
            await session.flush()
            results = await _reinspect(session, shop_id, patrol)
    except IntegrityError:
        # Another delivery of the same confirm won the race on the unique draft_id.
        existing = await find_patrol_by_draft(session, draft.draft_id)
        if existing is None:
            raise
        return SavedPatrol(existing.id, False, existing.shop_id)
    escalated = tuple(f.id for f in findings if f.disposition == Disposition.ESCALATED)
    return SavedPatrol(patrol.id, True, shop_id, escalated, tuple(results))


async def _reinspect(session: AsyncSession, shop_id: int, patrol: Patrol) -> list[ReinspectionResult]:
    """Link the shop's open orders to this patrol; close those whose escalated items all pass."""
    orders = (
        await session.exec(
            select(Rectification, Finding).join(Finding, col(Finding.id) == Rectification.finding_id)
            .join(Patrol, col(Patrol.id) == Finding.patrol_id)
            .where(Rectification.shop_id == shop_id, Rectification.status == OrderStatus.OPEN.value, Finding.patrol_id != patrol.id,
                   col(Patrol.voided_at).is_(None))
            .order_by(Rectification.id)
        )
    ).all()
    passing = {i["name"] for i in patrol.items if i["passed"]}
    now = clock.now()
    results = []
    for order, finding in orders:
        escalated_items = (
            await session.exec(
                select(Finding.item).where(Finding.patrol_id == finding.patrol_id, Finding.disposition == Disposition.ESCALATED.value)
                .order_by(Finding.id)
            )
        ).all()
        failing = tuple(i for i in escalated_items if i not in passing)
        order.reinspection_patrol_id = patrol.id
        if not failing:
            order.status, order.closed_at = OrderStatus.CLOSED.value, now
        session.add(FindingEvent(finding_id=finding.id, kind="reinspection", actor_id=patrol.worker_id, at=now,
                                 patrol_id=patrol.id, passed=not failing))
        results.append(ReinspectionResult(order.id, finding.id, finding.item, not failing, failing))
    await session.flush()
    return results


async def replay_reinspections(session: AsyncSession, patrol_ids: set[int]) -> int:
    """Re-inspect the open orders of the shops of `patrol_ids` (just imported) with their later
    patrols, in the order they happened, as the chat would have: each later patrol is a
    re-inspection event at its own time; the first one with every escalated item of the order's
    patrol passing closes the order then. Only pairs where the order or the patrol is new are
    replayed, so a second import repeats nothing. Returns the number of orders closed."""
    if not patrol_ids:
        return 0
    ids = sorted(patrol_ids)
    shop_ids: set[int] = set()
    for i in range(0, len(ids), 1000):
        shop_ids |= set((await session.exec(select(Patrol.shop_id).where(col(Patrol.id).in_(ids[i:i + 1000])))).all())
    closed = 0
    shops = sorted(shop_ids)
    for i in range(0, len(shops), 500):
        chunk = shops[i:i + 500]
        orders = (await session.exec(
            select(Rectification, Finding.patrol_id, Patrol.patrolled_at)
            .join(Finding, col(Finding.id) == Rectification.finding_id).join(Patrol, col(Patrol.id) == Finding.patrol_id)
            .where(col(Rectification.shop_id).in_(chunk), Rectification.status == OrderStatus.OPEN.value, col(Patrol.voided_at).is_(None))
            .order_by(Patrol.patrolled_at, Rectification.id)
        )).all()
        if not orders:
            continue
        visits: dict[int, list[Patrol]] = {}
        for p in (await session.exec(select(Patrol).where(col(Patrol.shop_id).in_(chunk), col(Patrol.voided_at).is_(None))
                                     .order_by(Patrol.patrolled_at, Patrol.id))).all():
            visits.setdefault(p.shop_id, []).append(p)
        escalated: dict[int, list[str]] = {}
        order_patrols = sorted({pid for _o, pid, _at in orders})
        for pid, item in (await session.exec(select(Finding.patrol_id, Finding.item).where(
                col(Finding.patrol_id).in_(order_patrols), Finding.disposition == Disposition.ESCALATED.value))).all():
            escalated.setdefault(pid, []).append(item)
        for order, order_patrol, ordered_at in orders:
            for p in visits.get(order.shop_id, []):
                if p.patrolled_at <= ordered_at or (order_patrol not in patrol_ids and p.id not in patrol_ids):
                    continue
                passing = {i["name"] for i in p.items if i["passed"]}
                ok = all(item in passing for item in escalated.get(order_patrol, []))
                order.reinspection_patrol_id = p.id
                session.add(FindingEvent(finding_id=order.finding_id, kind="reinspection", actor_id=p.worker_id, at=p.patrolled_at,
                                         patrol_id=p.id, passed=ok))
                if ok:
                    order.status, order.closed_at = OrderStatus.CLOSED.value, p.patrolled_at
                    closed += 1
                    break
            session.add(order)
    await session.flush()
    return closed


# -- escalations and outcomes ---------------------------------------------------------------------


@dataclass(frozen=True)
class FindingView:
    id: int
    item: str
    key: bool
    disposition: str
    note: str | None
    outcome: str | None
    outcome_by_name: str | None
    outcome_at: datetime | None
    deadline: datetime | None  # of an open or closed order
    order_status: str | None


@dataclass(frozen=True)
class PatrolView:
    id: int
    shop: ShopRow
    worker_name: str | None
    patrolled_at: datetime
    items: list[dict]
    photos: list[dict]
    findings: list[FindingView]


async def _finding_views(session: AsyncSession, patrol_ids: list[int]) -> dict[int, list[FindingView]]:
    if not patrol_ids:
        return {}
    rows = await session.exec(
        select(Finding, User.display_name, Rectification)
        .outerjoin(User, col(User.id) == Finding.outcome_by)
        .outerjoin(Rectification, col(Rectification.finding_id) == Finding.id)
        .where(col(Finding.patrol_id).in_(patrol_ids))
        .order_by(Finding.id)
    )
    out: dict[int, list[FindingView]] = {}
    for f, name, order in rows.all():
        out.setdefault(f.patrol_id, []).append(FindingView(
            f.id, f.item, f.key, f.disposition, f.note, f.outcome, name, f.outcome_at,
            order.deadline if order and order.status != OrderStatus.VOID else None,
            order.status if order else None,
        ))
    return out


async def patrol_view(session: AsyncSession, patrol_id: int) -> PatrolView | None:
    row = (
        await session.exec(
            select(Patrol, Shop, Grid.code, User.display_name)
            .join(Shop, col(Shop.id) == Patrol.shop_id).join(Grid, col(Grid.id) == Shop.grid_id)
            .join(User, col(User.id) == Patrol.worker_id).where(Patrol.id == patrol_id)
        )
    ).first()
    if row is None:
        return None
    patrol, shop, code, worker_name = row
    findings = (await _finding_views(session, [patrol.id])).get(patrol.id, [])
    return PatrolView(patrol.id, _shop_row(shop, code), worker_name, patrol.patrolled_at, patrol.items, patrol.photos, findings)


@dataclass(frozen=True)
class FindingContext:
    finding: FindingView
    patrol_id: int
    shop: ShopRow


async def finding_context(session: AsyncSession, finding_id: int) -> FindingContext | None:
    """An escalated finding with its shop (for the outcome buttons)."""
    row = (
        await session.exec(
            select(Finding.patrol_id, Shop, Grid.code).join(Patrol, col(Patrol.id) == Finding.patrol_id)
            .join(Shop, col(Shop.id) == Patrol.shop_id).join(Grid, col(Grid.id) == Shop.grid_id)
            .where(Finding.id == finding_id, Finding.disposition == Disposition.ESCALATED.value)
        )
    ).first()
    if row is None:
        return None
    patrol_id, shop, code = row
    view = next(f for f in (await _finding_views(session, [patrol_id]))[patrol_id] if f.id == finding_id)
    return FindingContext(view, patrol_id, _shop_row(shop, code))


@dataclass(frozen=True)
class Recipient:
    user_id: int
    recipient: str | None  # where the outbox reaches them (models.users.reach); None: nowhere
    language: str | None
    identities: tuple[tuple[str, str], ...] = ()  # (channel, key): where a handler reaches them live

    def key_on(self, channel: str) -> str | None:
        return key_on(self.identities, channel)


async def _recipients(session: AsyncSession, rows) -> list[Recipient]:  # noqa: ANN001 - (id, recipient, language) rows
    ids = await identities_of(session, [r[0] for r in rows])
    return [Recipient(*r, identities=ids.get(r[0], ())) for r in rows]


async def grid_supervisors(session: AsyncSession, grid_id: int) -> list[Recipient]:
    """Active supervisors whose grids include `grid_id`; active admins when the grid has none."""
    rows = (
        await session.exec(
            select(User.id, reach(User.id), User.language).join(UserGrid, col(UserGrid.user_id) == User.id)
            .where(UserGrid.grid_id == grid_id, User.role == Role.SUPERVISOR.value, col(User.active).is_(True)).order_by(User.id)
        )
    ).all()
    if not rows:
        rows = (
            await session.exec(select(User.id, reach(User.id), User.language).where(User.role == Role.ADMIN.value, col(User.active).is_(True))
                               .order_by(User.id))
        ).all()
    return await _recipients(session, rows)


async def patroller(session: AsyncSession, patrol_id: int) -> Recipient | None:
    """Who made a patrol, while they can still be told (active)."""
    row = (await session.exec(
        select(User.id, reach(User.id), User.language).join(Patrol, col(Patrol.worker_id) == User.id)
        .where(Patrol.id == patrol_id, col(User.active).is_(True)))).first()
    return (await _recipients(session, [row]))[0] if row else None


async def grid_workers(session: AsyncSession, grid_id: int) -> list[Recipient]:
    rows = (
        await session.exec(
            select(User.id, reach(User.id), User.language).join(UserGrid, col(UserGrid.user_id) == User.id)
            .where(UserGrid.grid_id == grid_id, User.role == Role.WORKER.value, col(User.active).is_(True)).order_by(User.id)
        )
    ).all()
    return await _recipients(session, rows)


async def set_outcome(
    session: AsyncSession, finding_id: int, expected: str, outcome: Outcome, actor_id: int,
    deadline: datetime | None = None,
) -> bool:
    """Record (or change) an escalated finding's outcome: a compare-and-set on `expected`.

    Returns False, writing nothing, when the outcome is no longer `expected` (a double tap, or
    another supervisor was quicker). `rectify_on_site` needs a deadline and (re)opens the finding's
    rectification order; another outcome voids an open order. Every change is a FindingEvent.
    """
    if outcome == Outcome.PENDING:
        raise RuleError("outcome_unknown")
    if (outcome == Outcome.RECTIFY) != (deadline is not None):
        raise RuleError("deadline_required")
    now = clock.now()
    changed = await session.exec(  # type: ignore[call-overload]
        update(Finding)
        .where(col(Finding.id) == finding_id, col(Finding.outcome) == expected, col(Finding.disposition) == Disposition.ESCALATED.value)
        .values(outcome=outcome.value, outcome_by=actor_id, outcome_at=now)
    )
    if changed.rowcount != 1:
        return False
    order = (await session.exec(select(Rectification).where(Rectification.finding_id == finding_id))).first()
    if outcome == Outcome.RECTIFY:
        assert deadline is not None
        if order is None:
            shop_id = (await session.exec(select(Patrol.shop_id).join(Finding, col(Finding.patrol_id) == Patrol.id).where(Finding.id == finding_id))).one()
            session.add(Rectification(finding_id=finding_id, shop_id=shop_id, ordered_by=actor_id, ordered_at=now, deadline=deadline))
        else:
            order.ordered_by, order.ordered_at, order.deadline = actor_id, now, deadline
            order.status, order.closed_at, order.reminded_at, order.reinspection_patrol_id = OrderStatus.OPEN.value, None, None, None
    elif order is not None and order.status == OrderStatus.OPEN:
        order.status = OrderStatus.VOID.value
    session.add(FindingEvent(finding_id=finding_id, kind="outcome", actor_id=actor_id, at=now, from_outcome=expected,
                             to_outcome=outcome.value, deadline=deadline))
    await session.flush()
    return True


async def finding_events(session: AsyncSession, finding_id: int) -> list[FindingEvent]:
    return list((await session.exec(select(FindingEvent).where(FindingEvent.finding_id == finding_id).order_by(FindingEvent.id))).all())


# -- re-inspection reminders ----------------------------------------------------------------------


@dataclass(frozen=True)
class DueReinspection:
    order_id: int
    shop: ShopRow
    item: str
    deadline: datetime
    patroller_id: int


async def due_reinspections(session: AsyncSession, at: datetime, tz: ZoneInfo) -> list[DueReinspection]:
    """Open orders whose deadline day (local) is today or past, not yet reminded."""
    tomorrow = local_day_start(at, tz, days=1)
    rows = await session.exec(
        select(Rectification, Finding.item, Patrol.worker_id, Shop, Grid.code)
        .join(Finding, col(Finding.id) == Rectification.finding_id).join(Patrol, col(Patrol.id) == Finding.patrol_id)
        .join(Shop, col(Shop.id) == Rectification.shop_id).join(Grid, col(Grid.id) == Shop.grid_id)
        .where(Rectification.status == OrderStatus.OPEN.value, col(Rectification.reminded_at).is_(None), Rectification.deadline < tomorrow,
               col(Patrol.voided_at).is_(None))
        .order_by(Rectification.deadline, Rectification.id)
    )
    return [DueReinspection(o.id, _shop_row(shop, code), item, o.deadline, worker_id) for o, item, worker_id, shop, code in rows.all()]


async def claim_reminder(session: AsyncSession, order_id: int, at: datetime) -> bool:
    """Mark the order reminded (compare-and-set), so a reminder goes out once."""
    done = await session.exec(  # type: ignore[call-overload]
        update(Rectification).where(col(Rectification.id) == order_id, col(Rectification.reminded_at).is_(None)).values(reminded_at=at)
    )
    return done.rowcount == 1


async def reminder_recipients(session: AsyncSession, grid_id: int, patroller_id: int) -> list[Recipient]:
    """The shop's grid workers, plus whoever did the patrol if they still work in that grid."""
    workers = await grid_workers(session, grid_id)
    if all(w.user_id != patroller_id for w in workers):
        row = (
            await session.exec(
                select(User.id, reach(User.id), User.language).join(UserGrid, col(UserGrid.user_id) == User.id)
                .where(User.id == patroller_id, UserGrid.grid_id == grid_id, col(User.active).is_(True))
            )
        ).first()
        if row:
            workers += await _recipients(session, [row])
    return workers


# -- the shop card ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShopCard:
    shop: ShopRow
    risk: Risk | None
    patrols: list[PatrolView]
    open_orders: list[tuple[str, datetime]]  # (item, deadline)


async def shop_card(session: AsyncSession, shop_id: int, grid_ids: list[int], last: int = 5) -> ShopCard | None:
    """What `/shop` shows: the shop, its risk level (latest patrol) and its last patrols."""
    shop = await get_shop(session, shop_id, grid_ids)
    if shop is None:
        return None
    rows = (
        await session.exec(
            select(Patrol, User.display_name).join(User, col(User.id) == Patrol.worker_id)
            .where(Patrol.shop_id == shop_id, col(Patrol.voided_at).is_(None))
            .order_by(col(Patrol.patrolled_at).desc(), col(Patrol.id).desc()).limit(last)
        )
    ).all()
    findings = await _finding_views(session, [p.id for p, _ in rows])
    patrols = [PatrolView(p.id, shop, name, p.patrolled_at, p.items, p.photos, findings.get(p.id, [])) for p, name in rows]
    orders = (
        await session.exec(
            select(Finding.item, Rectification.deadline).join(Finding, col(Finding.id) == Rectification.finding_id)
            .join(Patrol, col(Patrol.id) == Finding.patrol_id)
            .where(Rectification.shop_id == shop_id, Rectification.status == OrderStatus.OPEN.value, col(Patrol.voided_at).is_(None))
            .order_by(Rectification.deadline)
        )
    ).all()
    return ShopCard(shop, risk_level(patrols[0].items) if patrols else None, patrols, [(i, d) for i, d in orders])
