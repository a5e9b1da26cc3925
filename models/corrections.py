"""Corrections (issue 6): a saved visit, patrol or issue report corrected or voided, with a reason.

Who may: the record's author within `AUTHOR_DAYS` days of saving it, a supervisor of the record's
grid, an admin — at any time. Every change writes one `Correction` row (old and new values) in
the caller's transaction; a refusal raises `RuleError` and writes nothing.

What may change:
- visit: void, or correct `people_met`, `situations`, `notes`;
- patrol: void only (a finding's disposition or note is not corrected here: void the patrol and
  log it again);
- issue: void, or correct its `description` (its status moves only through `models.issues.transition`).

A voided record stays in the database (`voided_at`, `voided_by`, `void_reason`) and every figure and
list leaves it out (models/stats.py, reminders, /tasks, /overdue, exports). Voiding is final.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import clock
from models.errors import RuleError
from models.issues import Issue, IssueEvent, validate_description
from models.patrols import Patrol, Shop
from models.tables import Correction, Household, Visit
from models.text import clean_text, mask_id_numbers
from models.users import Member
from models.visits import MAX_NOTES, MAX_PEOPLE_MET, SITUATIONS

KINDS = ("visit", "patrol", "issue")
AUTHOR_DAYS = 7
MAX_REASON = 500
CORRECTABLE = {"visit": ("people_met", "situations", "notes"), "patrol": (), "issue": ("description",)}
VOIDED, CORRECTED = "voided", "corrected"


@dataclass(frozen=True)
class RecordRef:
    """What the rules need to know of a record, whatever its kind."""

    kind: str
    id: int
    label: str  # what the user typed it as: visit #12, patrol #3, issue 2605-0042
    grid_id: int
    author_id: int
    saved_at: datetime  # start of the author's correction window
    voided_at: datetime | None


def may_correct(member: Member, record: RecordRef, now: datetime) -> bool:
    """The author within AUTHOR_DAYS of saving; a supervisor of the record's grid; an admin."""
    return refusal(member, record, now) is None


def refusal(member: Member, record: RecordRef, now: datetime) -> str | None:
    """Why `member` may not correct `record` now (a RuleError code), or None when they may."""
    if not member.active:
        return "correct_not_allowed"
    if member.is_admin:
        return None
    if member.role != "worker" and record.grid_id in member.grid_ids:
        return None
    if record.author_id == member.id:
        return None if now - record.saved_at <= timedelta(days=AUTHOR_DAYS) else "correct_too_late"
    return "correct_not_allowed"


def validate_reason(text: str | None) -> str:
    reason = clean_text(text or "")
    if not reason:
        raise RuleError("reason_missing")
    if len(reason) > MAX_REASON:
        raise RuleError("reason_length", max=MAX_REASON)
    return mask_id_numbers(reason)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


async def _load(session: AsyncSession, kind: str, ref: str | int) -> tuple[RecordRef, SQLModel]:
    """The record `ref` of `kind` (visit/patrol: its number; issue: its human id or number), or RuleError."""
    if kind not in KINDS:
        raise RuleError("record_kind", kind=kind)
    text = str(ref).strip().lstrip("#")
    if kind == "issue":
        where = col(Issue.id) == int(text) if text.isdigit() and len(text) < 8 else col(Issue.human_id) == text.upper()
        issue = (await session.exec(select(Issue).where(where))).first()
        if issue is None:
            raise RuleError("record_not_found", kind=kind, ref=text)
        return RecordRef(kind, issue.id, issue.human_id, issue.grid_id, issue.reporter_id, issue.reported_at, issue.voided_at), issue
    if not text.isdigit() or len(text) > 12:
        raise RuleError("record_not_found", kind=kind, ref=text)
    if kind == "visit":
        row = (await session.exec(select(Visit, Household.grid_id).join(Household, col(Household.id) == Visit.household_id)
                                  .where(Visit.id == int(text)))).first()
        if row is None:
            raise RuleError("record_not_found", kind=kind, ref=text)
        visit, grid_id = row
        return RecordRef(kind, visit.id, f"#{visit.id}", grid_id, visit.worker_id, visit.created_at, visit.voided_at), visit
    row = (await session.exec(select(Patrol, Shop.grid_id).join(Shop, col(Shop.id) == Patrol.shop_id).where(Patrol.id == int(text)))).first()
    if row is None:
        raise RuleError("record_not_found", kind=kind, ref=text)
    patrol, grid_id = row
    return RecordRef(kind, patrol.id, f"#{patrol.id}", grid_id, patrol.worker_id, patrol.created_at, patrol.voided_at), patrol


UNDO_WINDOW = timedelta(minutes=10)  # how long a saved confirmation offers ✏️ Edit / ↩️ Undo


def undo_open(member: Member, record: RecordRef, now: datetime) -> bool:
    """The ✏️ / ↩️ buttons of a confirmation work for its author, for UNDO_WINDOW after saving
    (later, /void and /correct remain, under their own rules)."""
    return member.active and record.author_id == member.id and record.voided_at is None and now - record.saved_at <= UNDO_WINDOW


async def find_record(session: AsyncSession, kind: str, ref: str | int) -> RecordRef:
    return (await _load(session, kind, ref))[0]


def _snapshot(kind: str, row: SQLModel) -> dict:
    """The values a void keeps in the trail (the record itself also stays)."""
    if kind == "visit":
        return {"household_id": row.household_id, "worker_id": row.worker_id, "visited_at": _iso(row.visited_at),
                "people_met": row.people_met, "situations": list(row.situations), "notes": row.notes}
    if kind == "patrol":
        return {"shop_id": row.shop_id, "worker_id": row.worker_id, "patrolled_at": _iso(row.patrolled_at)}
    return {"human_id": row.human_id, "status": row.status, "category": row.category, "description": row.description,
            "reporter_id": row.reporter_id, "reported_at": _iso(row.reported_at)}


MODELS = {"visit": Visit, "patrol": Patrol, "issue": Issue}


async def _checked(session: AsyncSession, kind: str, ref: str | int, actor: Member) -> tuple[RecordRef, SQLModel]:
    record, row = await _load(session, kind, ref)
    code = refusal(actor, record, clock.now())
    if code is not None:
        raise RuleError(code, kind=kind, ref=record.label, days=AUTHOR_DAYS)
    if record.voided_at is not None:
        raise RuleError("already_voided", kind=kind, ref=record.label)
    return record, row


async def void_record(session: AsyncSession, kind: str, ref: str | int, actor: Member, reason: str | None) -> RecordRef:
    """Void a record: compare-and-set on `voided_at IS NULL`, one Correction row (and an IssueEvent for an issue)."""
    reason = validate_reason(reason)
    record, row = await _checked(session, kind, ref, actor)
    old = _snapshot(kind, row)
    now = clock.now()
    model = MODELS[kind]
    async with session.begin_nested():
        changed = await session.exec(
            update(model).where(col(model.id) == record.id, col(model.voided_at).is_(None))  # type: ignore[call-overload]
            .values(voided_at=now, voided_by=actor.id, void_reason=reason)
        )
        if changed.rowcount != 1:
            raise RuleError("already_voided", kind=kind, ref=record.label)
        session.add(Correction(record_kind=kind, record_id=record.id, actor_id=actor.id, at=now, action=VOIDED, reason=reason,
                               old_values=old, new_values={"voided_at": _iso(now), "voided_by": actor.id}))
        if kind == "issue":
            # The status stays; the history says who voided it and why.
            session.add(IssueEvent(issue_id=record.id, at=now, actor_id=actor.id, action="void", from_status=row.status,
                                   to_status=row.status, note=reason))
        await session.flush()
    session.expire_all()
    return RecordRef(kind, record.id, record.label, record.grid_id, record.author_id, record.saved_at, now)


def _visit_changes(changes: dict) -> dict:
    out: dict[str, object] = {}
    for name, value in changes.items():
        if name == "people_met":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PEOPLE_MET:
                raise RuleError("people_range", max=MAX_PEOPLE_MET)
            out[name] = value
        elif name == "situations":
            values = list(dict.fromkeys(value or []))
            if not values or any(s not in SITUATIONS for s in values):
                raise RuleError("situation_invalid", choices="/".join(SITUATIONS))
            out[name] = values
        elif name == "notes":
            notes = clean_text(value or "")
            if len(notes) > MAX_NOTES:
                raise RuleError("notes_length", max=MAX_NOTES)
            out[name] = mask_id_numbers(notes) or None
        else:
            raise RuleError("field_not_correctable", kind="visit", field=name, fields=", ".join(CORRECTABLE["visit"]))
    if not out:
        raise RuleError("nothing_to_correct")
    return out


async def _correct(session: AsyncSession, kind: str, ref: str | int, actor: Member, reason: str | None,
                   changes: dict) -> tuple[RecordRef, dict, dict]:
    reason = validate_reason(reason)
    if kind == "visit":
        values = _visit_changes(changes)
    elif kind == "issue":
        unknown = set(changes) - {"description"}
        if unknown or "description" not in changes:
            raise RuleError("field_not_correctable", kind=kind, field=", ".join(sorted(unknown)) or "—", fields="description")
        values = {"description": validate_description(str(changes["description"] or ""))}
    else:
        raise RuleError("field_not_correctable", kind=kind, field=", ".join(changes) or "—", fields="—")
    record, row = await _checked(session, kind, ref, actor)
    old = {name: getattr(row, name) for name in values}
    old = {k: list(v) if isinstance(v, list) else v for k, v in old.items()}
    if old == values:
        raise RuleError("nothing_to_correct")
    model = MODELS[kind]
    now = clock.now()
    async with session.begin_nested():
        extra = {"updated_at": now} if kind == "issue" else {}
        changed = await session.exec(
            update(model).where(col(model.id) == record.id, col(model.voided_at).is_(None))  # type: ignore[call-overload]
            .values(**values, **extra)
        )
        if changed.rowcount != 1:
            raise RuleError("already_voided", kind=kind, ref=record.label)
        session.add(Correction(record_kind=kind, record_id=record.id, actor_id=actor.id, at=now, action=CORRECTED, reason=reason,
                               old_values=old, new_values=values))
        await session.flush()
    session.expire_all()
    return record, old, values


async def correct_visit(session: AsyncSession, visit_id: int | str, actor: Member, reason: str | None,
                        changes: dict) -> tuple[RecordRef, dict, dict]:
    """Correct a visit's people_met, situations and/or notes. Returns (record, old values, new values)."""
    return await _correct(session, "visit", visit_id, actor, reason, changes)


async def correct_issue(session: AsyncSession, ref: int | str, actor: Member, reason: str | None,
                        description: str) -> tuple[RecordRef, dict, dict]:
    """Correct an issue's description (its status only moves through `transition`)."""
    return await _correct(session, "issue", ref, actor, reason, {"description": description})


async def corrections_of(session: AsyncSession, kind: str, record_id: int) -> list[Correction]:
    return list((await session.exec(
        select(Correction).where(Correction.record_kind == kind, Correction.record_id == record_id).order_by(Correction.id)
    )).all())
