"""Corrections: `/void` and `/correct` a saved visit, patrol or issue report, with a reason.

One message each, no form: everything the change needs is on the command line, so a refusal
(out of scope, too late, no reason, bad value) changes nothing and says why at once.

    /void visit|patrol|issue ID REASON…
    /correct visit ID people|situation|notes VALUE -- REASON…
    /correct issue ID description VALUE -- REASON…

Who may (models/corrections.py): the author within 7 days of saving, a supervisor of the record's
grid, an admin. Visits and patrols are addressed by their number (#n in exports and /shop), issues
by their human id (2605-0042). Patrols can only be voided; an issue's description can be corrected.
"""

from __future__ import annotations

import re

from bot.chat import Inbound
from bot.context import GridContext
from bot.engine import Command, OnButton
from bot.i18n import N_
from handlers.common import esc, requires
from handlers.flow import rule_message
from handlers.visits import SITUATION_LABELS, undo_closed_text
from models import clock, corrections
from models.errors import RuleError
from models.tables import Role
from models.text import ascii_digits, clean_text, parse_count

ALL = (Role.WORKER, Role.SUPERVISOR, Role.ADMIN)
KIND_NAMES = {"visit": N_("visit"), "patrol": N_("patrol"), "issue": N_("issue")}
FIELD_NAMES = {"people_met": N_("people met"), "situations": N_("situation"), "notes": N_("notes"), "description": N_("description")}
# What the user may type as the field: field name in the model.
FIELD_ALIASES = {
    "people": "people_met", "people_met": "people_met", "人数": "people_met", "见面人数": "people_met",
    "situation": "situations", "situations": "situations", "情况": "situations",
    "notes": "notes", "note": "notes", "备注": "notes",
    "description": "description", "desc": "description", "描述": "description",
}
RULES = {
    "record_kind": N_("«{kind}» is not something that can be corrected: use visit, patrol or issue."),
    "record_not_found": N_("There is no {kind} «{ref}»."),
    "correct_not_allowed": N_("You may not change {kind} {ref}: only its author (within {days} days), a supervisor of its grid or an admin may."),
    "correct_too_late": N_("{kind} {ref} was saved more than {days} days ago; ask a supervisor of its grid to change it."),
    "already_voided": N_("{kind} {ref} is already voided; nothing was changed."),
    "reason_missing": N_("Give a reason: it is kept with the change."),
    "reason_length": N_("The reason can be at most {max} characters."),
    "people_range": N_("People met must be a whole number from 0 to {max}."),
    "situation_invalid": N_("Situation must be one or more of {choices}, separated by 、 or a comma."),
    "notes_length": N_("Notes can be at most {max} characters."),
    "description_length": N_("The description must be {min} to {max} characters."),
    "field_not_correctable": N_("{field} of a {kind} cannot be corrected here; what can: {fields}. To drop the record, /void it."),
    "nothing_to_correct": N_("That is already the value; nothing was changed."),
}
VOID_USAGE = N_("Usage: /void visit|patrol|issue ID REASON\nExample: /void visit 12 entered twice by mistake")
CORRECT_USAGE = N_(
    "Usage: /correct visit ID people|situation|notes VALUE -- REASON\n"
    "or: /correct issue ID description VALUE -- REASON\n"
    "Example: /correct visit 12 people 3 -- miscounted"
)


def _rest(event: Inbound) -> str:
    """The message text after the command itself (keeps spaces and line breaks of the reason)."""
    text = clean_text(event.text or "")  # a NUL would reach SQL (PostgreSQL refuses it)
    parts = text.split(maxsplit=1)
    return parts[1] if len(parts) == 2 else ""


def _kind(context: GridContext, kind: str) -> str:
    return context._(KIND_NAMES[kind]) if kind in KIND_NAMES else kind


def _rule(context: GridContext, err: RuleError) -> str:
    # Details quote what was typed: escaped, and cut short so that the reply stays one message.
    details = {k: esc(str(v) if len(str(v)) <= 200 else str(v)[:200] + "…") for k, v in err.details.items()}
    if "kind" in details:
        details["kind"] = esc(_kind(context, str(err.details["kind"])[:200]))  # an unknown kind is the user's text
    if err.code == "field_not_correctable":
        fields = corrections.CORRECTABLE.get(str(err.details.get("kind")), ())
        details["fields"] = ", ".join(context._(FIELD_NAMES[f]) for f in fields) or "—"
    text = rule_message(context, RuleError(err.code, **details), RULES)
    return "❌ " + text[:1].upper() + text[1:]


def _value_text(context: GridContext, name: str, value: object) -> str:
    if value is None or value == "":
        return "—"
    if name == "situations":
        return "、".join(context._(SITUATION_LABELS.get(s, s)) for s in value)  # type: ignore[union-attr]
    return esc(str(value))


def _situations(context: GridContext, text: str) -> list[str]:
    names: dict[str, str] = {}
    for code, label in SITUATION_LABELS.items():
        names[code] = code
        names[label.lower()] = code
        names[context._(label).lower()] = code
    chosen = [part.strip() for part in re.split(r"[、,，;；/]", text) if part.strip()]
    out = [names.get(part.lower(), part) for part in chosen]
    return out


@requires(*ALL)
async def void_command(event: Inbound, context: GridContext) -> None:
    member = context.member
    assert member is not None
    parts = _rest(event).split(maxsplit=2)
    if len(parts) < 2:
        await context.reply(context._(VOID_USAGE))
        return
    kind, ref = parts[0].lower(), ascii_digits(parts[1])
    reason = parts[2] if len(parts) == 3 else ""
    try:
        async with context.db.session() as session:
            record = await corrections.void_record(session, kind, ref, member, reason)
    except RuleError as err:
        await context.reply(_rule(context, err))
        return
    text = context._("🗑 {kind} {ref} voided: it stays on record, with your reason, and is left out of every figure, list and export.")
    await context.reply(text.format(kind=_kind(context, kind).capitalize(), ref=esc(record.label)))


@requires(*ALL)
async def correct_command(event: Inbound, context: GridContext) -> None:
    member = context.member
    assert member is not None
    text = _rest(event)
    head, sep, reason = text.partition("--")
    parts = head.split(maxsplit=3)
    if len(parts) < 3 or not sep:
        await context.reply(context._(CORRECT_USAGE))
        return
    kind, ref, field_text = parts[0].lower(), ascii_digits(parts[1]), parts[2].lower()
    raw = parts[3].strip() if len(parts) == 4 else ""
    name = FIELD_ALIASES.get(field_text, field_text)
    try:
        if kind == "visit":
            if name == "people_met":
                count = parse_count(raw)  # 3, ３, 三人
                value: object = count if count is not None else -1
            elif name == "situations":
                value = _situations(context, raw)
            elif name == "notes":
                value = "" if raw in ("", "-", "—") else raw
            else:
                raise RuleError("field_not_correctable", kind=kind, field=field_text)
            async with context.db.session() as session:
                record, old, new = await corrections.correct_visit(session, ref, member, reason, {name: value})
        elif kind == "issue":
            if name != "description":
                raise RuleError("field_not_correctable", kind=kind, field=field_text)
            async with context.db.session() as session:
                record, old, new = await corrections.correct_issue(session, ref, member, reason, raw)
        elif kind == "patrol":
            raise RuleError("field_not_correctable", kind=kind, field=field_text)
        else:
            raise RuleError("record_kind", kind=kind)
    except RuleError as err:
        await context.reply(_rule(context, err))
        return
    changes = "; ".join(
        f"{context._(FIELD_NAMES[k])}: {_value_text(context, k, old[k])} → {_value_text(context, k, v)}" for k, v in new.items()
    )
    await context.reply(context._("✏️ {kind} {ref} corrected: {changes}. The old value is kept in the correction trail.").format(
        kind=_kind(context, kind).capitalize(), ref=esc(record.label), changes=changes))


async def undo_button(event: Inbound, context: GridContext) -> None:
    """`aft:visit|patrol:<id>:undo` (a saved confirmation): void it at once, as /void would, with the
    reason that it was undone right after saving — for its author, within the undo window."""
    member = context.member
    _aft, kind, ref, _action = event.button.split(":")
    try:
        async with context.db.session() as session:
            record = await corrections.find_record(session, kind, ref)
            if not corrections.undo_open(member, record, clock.now()):
                await context.toast(undo_closed_text(context, kind, ref), alert=True)
                return
            await corrections.void_record(session, kind, ref, member, context._("Undone by its author right after saving"))
    except RuleError as err:
        await context.toast(_rule(context, err), alert=True)
        return
    await context.toast(context._("↩️ Undone."))
    await context.edit(context._("↩️ {kind} {ref} was undone: it is voided and left out of every figure; the correction trail keeps it.").format(
        kind=_kind(context, kind).capitalize(), ref=esc(record.label)))


HANDLERS = [
    Command("void", void_command),
    Command("correct", correct_command),
    OnButton(r"^aft:(visit|patrol):\d{1,12}:undo$", undo_button),
]
