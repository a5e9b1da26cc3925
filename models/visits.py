"""Households and home visits (入户走访)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import String, cast, func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.errors import RuleError
from models.tables import Grid, Household, Visit
from models.text import mask_id_numbers, one_line

SITUATIONS = ("正常", "需帮扶", "矛盾纠纷", "安全隐患", "其他")
HOUSEHOLD_TAGS = ("独居老人", "困难家庭", "退役军人", "残疾人", "留守儿童")
MAX_PEOPLE_MET = 20
MAX_PHOTOS = 10
MAX_NOTES = 1000
ADDRESS_LEN = (2, 200)


@dataclass(frozen=True)
class HouseholdRow:
    id: int
    grid_id: int
    grid_code: str
    address: str
    tags: tuple[str, ...]


@dataclass
class VisitDraft:
    """Everything the chat collected; written once, at the confirm step."""

    draft_id: str
    worker_id: int
    visited_at: datetime
    people_met: int
    situations: list[str]
    household_id: int | None = None
    new_household: dict | None = None  # {"grid_id", "address", "tags"}
    notes: str | None = None
    photos: list[dict] = field(default_factory=list)
    latitude: float | None = None
    longitude: float | None = None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def validate_address(text: str) -> str:
    address = one_line(text)
    if not ADDRESS_LEN[0] <= len(address) <= ADDRESS_LEN[1]:
        raise RuleError("address_length", min=ADDRESS_LEN[0], max=ADDRESS_LEN[1])
    return mask_id_numbers(address)


async def search_households(
    session: AsyncSession, grid_ids: list[int], query: str, offset: int = 0, limit: int = 6
) -> tuple[list[HouseholdRow], int]:
    """Active households of `grid_ids` matching every word of `query`: a part of the address or of
    the head's name, or a part of a tag (独居 finds the 独居老人 households)."""
    if not grid_ids:
        return [], 0
    conditions = [col(Household.grid_id).in_(grid_ids), col(Household.active).is_(True)]
    tags_text = cast(Household.tags, String)
    for word in one_line(query).split():
        like = f"%{_escape_like(word)}%"
        either = [col(Household.address).ilike(like, escape="\\"), col(Household.head_name).ilike(like, escape="\\")]
        for tag in (t for t in HOUSEHOLD_TAGS if word in t):
            # JSON text holds the tag as written or \u-escaped, depending on the serializer: match both.
            either += [tags_text.like(f"%{_escape_like(form)}%", escape="\\") for form in {json.dumps(tag), json.dumps(tag, ensure_ascii=False)}]
        conditions.append(or_(*either))
    total = (await session.exec(select(func.count()).select_from(Household).where(*conditions))).one()
    rows = await session.exec(
        select(Household, Grid.code)
        .join(Grid, col(Grid.id) == Household.grid_id)
        .where(*conditions)
        .order_by(Household.address, Household.id)
        .offset(offset)
        .limit(limit)
    )
    return [HouseholdRow(h.id, h.grid_id, code, h.address, tuple(h.tags)) for h, code in rows.all()], total


async def households_at(session: AsyncSession, grid_ids: list[int], address: str) -> list[HouseholdRow]:
    """The active households of `grid_ids` registered at exactly this address (case and spaces
    aside): a worker adding a "new" household there means one of these. (A moved-out one at the
    address is registered again when the visit is saved.)"""
    key = func.lower(func.replace(Household.address, " ", ""))
    rows = await session.exec(
        select(Household, Grid.code).join(Grid, col(Grid.id) == Household.grid_id)
        .where(col(Household.grid_id).in_(grid_ids), col(Household.active).is_(True), key == "".join(address.split()).lower())
        .order_by(Grid.code)
    )
    return [HouseholdRow(h.id, h.grid_id, code, h.address, tuple(h.tags)) for h, code in rows.all()]


async def get_household(session: AsyncSession, household_id: int, grid_ids: list[int]) -> HouseholdRow | None:
    """A household, only if it is active and in the caller's grids."""
    row = (
        await session.exec(
            select(Household, Grid.code)
            .join(Grid, col(Grid.id) == Household.grid_id)
            .where(Household.id == household_id, col(Household.grid_id).in_(grid_ids), col(Household.active).is_(True))
        )
    ).first()
    if row is None:
        return None
    h, code = row
    return HouseholdRow(h.id, h.grid_id, code, h.address, tuple(h.tags))


async def get_visit(session: AsyncSession, visit_id: int) -> Visit | None:
    return (await session.exec(select(Visit).where(Visit.id == visit_id))).first()


async def last_visit_at(session: AsyncSession, household_id: int) -> datetime | None:
    """When the household was last visited (a voided visit does not count)."""
    return (await session.exec(
        select(func.max(Visit.visited_at)).where(Visit.household_id == household_id, col(Visit.voided_at).is_(None))
    )).one()


async def _household_for(session: AsyncSession, draft: VisitDraft) -> int:
    if draft.household_id is not None:
        return draft.household_id
    new = draft.new_household or {}
    existing = (
        await session.exec(select(Household).where(Household.grid_id == new["grid_id"], Household.address == new["address"]))
    ).first()
    if existing is not None:
        if not existing.active:
            existing.active = True
        return existing.id
    household = Household(grid_id=new["grid_id"], address=new["address"], tags=list(new.get("tags", [])))
    session.add(household)
    await session.flush()
    return household.id


async def find_visit_by_draft(session: AsyncSession, draft_id: str) -> Visit | None:
    return (await session.exec(select(Visit).where(Visit.draft_id == draft_id))).first()


async def save_visit(session: AsyncSession, draft: VisitDraft) -> tuple[int, bool]:
    """Write the visit (and a household added on the spot). Returns (visit id, created).

    Idempotent on `draft_id`: a confirm delivered twice returns the first visit, created=False.
    """
    existing = await find_visit_by_draft(session, draft.draft_id)
    if existing is not None:
        return existing.id, False
    if not 0 <= draft.people_met <= MAX_PEOPLE_MET:
        raise RuleError("people_range")
    if not draft.situations or any(s not in SITUATIONS for s in draft.situations):
        raise RuleError("situation_required")
    try:
        async with session.begin_nested():
            household_id = await _household_for(session, draft)
            visit = Visit(
                draft_id=draft.draft_id,
                household_id=household_id,
                worker_id=draft.worker_id,
                visited_at=draft.visited_at,
                people_met=draft.people_met,
                situations=list(draft.situations),
                notes=mask_id_numbers(draft.notes) if draft.notes else None,
                photos=list(draft.photos),
                latitude=draft.latitude,
                longitude=draft.longitude,
            )
            session.add(visit)
            await session.flush()
    except IntegrityError:
        # Another delivery of the same confirm won the race on the unique draft_id.
        existing = await find_visit_by_draft(session, draft.draft_id)
        if existing is None:
            raise
        return existing.id, False
    return visit.id, True
