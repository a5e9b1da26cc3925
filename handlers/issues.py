"""Issue reports (问题上报): `/report`, the dispatch and work buttons, `/tasks`, `/issue`.

The report form (`report` flow):

```mermaid
stateDiagram-v2
    [*] --> CATEGORY: /report, or 📝 on a saved visit (or patrol)
    CATEGORY --> GRID: category (reporter has several grids)
    CATEGORY --> DESCRIPTION: category
    GRID --> DESCRIPTION: grid
    DESCRIPTION --> WHERE: text
    DESCRIPTION --> URGENCY: text (from a visit or patrol: place and photos carried over)
    WHERE --> WHERE: location or address (the other is asked for)
    WHERE --> PHOTOS: both given, or /done with one
    PHOTOS --> URGENCY: /done (0-10 photos)
    URGENCY --> CONFIRM: urgent / normal
    CONFIRM --> [*]: submit, or add to a nearby open issue, or cancel
    CONFIRM --> SPOT_NOTE: resolved on the spot
    SPOT_NOTE --> SPOT_PHOTO: what was done
    SPOT_PHOTO --> [*]: after-photo(s), then /done
    CONFIRM --> CATEGORY: edit a field (then back to CONFIRM)
```

A reason or a resolution note (`issue_note` flow), entered from a button on an issue:

```mermaid
stateDiagram-v2
    [*] --> NOTE: ❌ Reject / 🔁 Reopen / ↩️ Hand back / ✅ Resolved
    NOTE --> [*]: reason (reject, reopen, hand back): the transition is made
    NOTE --> AFTER_PHOTO: note (resolve)
    AFTER_PHOTO --> [*]: after-photos then /done, or /skip: the transition is made
```
Every state: /cancel discards the draft; a wrong kind of input is answered and the step stays.

Everything else is a plain button (`iss:<action>:<issue id>:<status letter>[:<arg>]`) that works
whatever the user is doing: assign (pick a worker or oneself), start, verify. Each button carries
the status it was drawn for, so a stale button or a double tap is refused by the compare-and-set in
`models.issues.transition` and changes nothing.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Callable
from datetime import datetime

from bot.chat import Button, Buttons, ChannelError, Inbound
from bot.context import GridContext
from bot.engine import Command, OnButton
from bot.i18n import N_, gettext_for, resolve_language
from handlers.common import address_of, esc, requires
from handlers.flow import (
    END,
    FLOW_BY_NAME,
    STALE,
    STAY,
    Flow,
    Step,
    add_photo,
    button,
    keyboard,
    notify,
    register_flow,
    rule_message,
    send_pin,
    send_stored_photo,
    summary_line,
    tell_outcome,
)
from models import clock, vocabulary
from models.errors import RuleError
from models.issues import (
    ASSIGNED,
    CODE_STATUS,
    EXTEND_DAYS,
    IN_PROGRESS,
    MAX_PHOTOS,
    STATUS_CODE,
    IssueDraft,
    IssueView,
    PhotoView,
    TransitionResult,
    allowed_actions,
    attach_to_issue,
    check,
    check_extend,
    create_issue,
    dispatchers,
    due_at_for,
    event_photos,
    extend_due,
    find_issue,
    get_issue,
    grid_workers,
    issue_history,
    issue_photos,
    may_view,
    nearby_open_issues,
    open_task_counts,
    open_tasks,
    supervisor_queue,
    transition,
    validate_address,
    validate_description,
    validate_note,
    visit_prefill,
)
from models.tables import Role
from models.text import clean_text
from models.users import Member, grids_by_ids, member_by_id
from models.vocabulary import category_label, status_label

log = logging.getLogger(__name__)

CATEGORY, GRID, DESCRIPTION, WHERE, PHOTOS, URGENCY = "CATEGORY", "GRID", "DESCRIPTION", "WHERE", "PHOTOS", "URGENCY"
CONFIRM, SPOT_NOTE, SPOT_PHOTO = "CONFIRM", "SPOT_NOTE", "SPOT_PHOTO"
NOTE, AFTER_PHOTO = "NOTE", "AFTER_PHOTO"
ALL = (Role.WORKER, Role.SUPERVISOR, Role.ADMIN)
VISIT_HAZARDS = {"安全隐患", "矛盾纠纷"}  # a visit with one of these offers "report an issue"

ACTION_LABELS = {
    "submit": N_("reported it"), "resolve_on_spot": N_("resolved it on the spot"), "assign": N_("assigned it to {name}"),
    "reject": N_("rejected it"), "start": N_("started work"), "resolve": N_("resolved it"), "hand_back": N_("handed it back"),
    "verify": N_("verified and closed it"), "reopen": N_("reopened it"), "attach": N_("added a report of the same problem"),
    "void": N_("voided it (left out of every figure and list)"),
    "extend": N_("gave it more time"),
}
ACTION_NAMES = {code: w.en for code, w in vocabulary.ACTION.items()}
RULE_MESSAGES = {
    "not_found": N_("That issue does not exist."),
    "voided": N_("That issue has been voided; nothing more can be done with it."),
    "wrong_grid": N_("That issue belongs to another grid; you cannot act on it."),
    "not_your_role": N_("Your role cannot {action} an issue."),
    "not_assignee": N_("Only the person the issue is assigned to can do that."),
    "stale_status": N_("Nothing was changed: this button was for a {expected} issue, and the issue is now {status}."),
    "not_allowed": N_("Nothing was changed: an issue that is {status} cannot be given the action «{action}»."),
    "reason_required": N_("A reason is required; nothing was changed."),
    "bad_assignee": N_("That person cannot take this issue: only an active worker of its grid (or you yourself)."),
    "description_length": N_("The description must be {min} to {max} characters; yours has {n}."),
    "note_length": N_("The note can be at most {max} characters; yours has {n}. Please shorten it."),
    "address_length": N_("The address must be {min} to {max} characters."),
    "where_required": N_("Share a location or type an address first."),
    "bad_category": N_("The category «{category}» is no longer offered; edit the category."),
    "after_photo_required": N_("Send at least one photo of the fixed problem, then /done."),
    "not_open": N_("That issue is no longer open ({status}); submit your report as a new issue instead."),
    "extend_days": N_("More time is given in {min} to {max} days."),
    "not_your_visit": N_("Only the worker who logged that visit can report an issue from it."),
    "already_reported": N_("An issue was already reported from this visit: {human_id}. /issue {human_id} shows it."),
}
NOTE_PROMPTS = {
    "reject": N_("❌ Why is issue {id} rejected? Send the reason as text (/cancel to leave it as it is)."),
    "reopen": N_("🔁 Why is issue {id} reopened? Send the reason as text (/cancel to leave it as it is)."),
    "hand_back": N_("↩️ Why are you handing issue {id} back? Send the reason as text (/cancel to keep it)."),
    "resolve": N_("✅ What was done to resolve issue {id}? Send a short note (/cancel to leave it open)."),
    "extend": N_("⏳ Why does issue {id} need more time? Send the reason; it is kept in the history (/cancel keeps the deadline)."),
}
DONE_MESSAGES = {
    "assign": N_("👤 Issue {id} is assigned to {name}."),
    "reject": N_("❌ Issue {id} is rejected."),
    "start": N_("▶️ Work on issue {id} has started."),
    "resolve": N_("✅ Issue {id} is resolved; a supervisor will verify it."),
    "hand_back": N_("↩️ Issue {id} is handed back for dispatch."),
    "verify": N_("✔️ Issue {id} is verified and closed."),
    "reopen": N_("🔁 Issue {id} is reopened and back with {name}, who resolved it."),
    "extend": N_("⏳ Issue {id}: the deadline is now {due}."),
}
REOPENED_FOR_DISPATCH = N_("🔁 Issue {id} is reopened and waits for dispatch: assign it below.")


# -- text helpers -------------------------------------------------------------------------------


def _t_for(context: GridContext, member: Member) -> Callable[[str], str]:
    return gettext_for(resolve_language(member.language, None, context.settings.default_language))


def _when(context: GridContext, at: datetime) -> str:
    return at.astimezone(context.settings.tz).strftime("%Y-%m-%d %H:%M")


def deadline_text(t: Callable[[str], str], days: float, urgent: bool) -> str:
    hours = days * 24 / (2 if urgent else 1)
    if hours % 24 == 0:
        return t("{n} d").format(n=int(hours // 24))
    return t("{n} h").format(n=f"{hours:g}")


def issue_rule_message(context: GridContext, err: RuleError, t: Callable[[str], str] | None = None) -> str:
    t = t or context._
    details = dict(err.details)
    for key in ("status", "expected"):
        if key in details:
            details[key] = status_label(t, str(details[key]))
    if "action" in details:
        details["action"] = t(ACTION_NAMES.get(str(details["action"]), str(details["action"])))
    return rule_message(context, RuleError(err.code, **details), RULE_MESSAGES)


def card(context: GridContext, t: Callable[[str], str], issue: IssueView) -> str:
    """An issue in a few lines (HTML; every user text escaped)."""
    now = clock.now()
    head = f"📌 <b>{issue.human_id}</b> · {esc(category_label(t, issue.category))}"
    if issue.urgent:
        head += " · " + t("🔴 urgent")
    status = status_label(t, issue.status)
    if issue.assignee_name and issue.status in ("assigned", "in_progress"):
        status += f" → {esc(issue.assignee_name)}"
    due = _when(context, issue.due_at)
    if issue.overdue(now):
        due += " " + t("⏰ overdue")
    lines = [
        head,
        summary_line(t("Grid"), esc(f"{issue.grid_code} · {issue.grid_name}")),
        summary_line(t("Status"), status),
        summary_line(t("Reported"), t("{when} by {name}").format(when=_when(context, issue.reported_at), name=esc(issue.reporter_name or "?"))),
        summary_line(t("Due"), due),
        summary_line(t("Description"), esc(issue.description)),
    ]
    if issue.address:
        lines.append(summary_line(t("Address"), esc(issue.address)))
    if issue.latitude is not None:
        lines.append(summary_line(t("Location"), f"{issue.latitude:.5f}, {issue.longitude:.5f}"))
    if issue.photos:
        lines.append(summary_line(t("Photos"), str(issue.photos)))
    return "\n".join(lines)


def _data(action: str, issue: IssueView, arg: str | int = "") -> str:
    data = f"iss:{action}:{issue.id}:{STATUS_CODE[issue.status]}"
    return data + (f":{arg}" if arg != "" else "")


def _note_data(action: str, issue: IssueView) -> str:
    return f"issn:{action}:{issue.id}:{STATUS_CODE[issue.status]}"


BUTTONS = {
    "assign": (N_("👤 Assign"), lambda i: _data("pick", i)),
    "reject": (N_("❌ Reject"), lambda i: _note_data("reject", i)),
    "start": (N_("▶️ Start"), lambda i: _data("start", i)),
    "resolve": (N_("✅ Resolved"), lambda i: _note_data("resolve", i)),
    "hand_back": (N_("↩️ Hand back"), lambda i: _note_data("hand_back", i)),
    "verify": (N_("✔️ Verify and close"), lambda i: _data("verify", i)),
    "reopen": (N_("🔁 Reopen"), lambda i: _note_data("reopen", i)),
}


def action_markup(t: Callable[[str], str], issue: IssueView, member: Member) -> Buttons | None:
    """The buttons `member` may press on `issue` now (from the transition table), and for a
    supervisor of an issue being worked on, ⏳ Extend (more time, for one that waits on others)."""
    row = [Button(t(BUTTONS[a][0]), data=BUTTONS[a][1](issue)) for a in allowed_actions(issue, member) if a in BUTTONS]
    if issue.status in (ASSIGNED, IN_PROGRESS) and may_extend(issue, member):
        row.append(Button(t("⏳ Extend"), data=_data("ext", issue)))
    return Buttons.of([row[i:i + 2] for i in range(0, len(row), 2)]) if row else None


def may_extend(issue: IssueView, member: Member) -> bool:
    try:
        check_extend(issue, member, None, EXTEND_DAYS[0], "-")
    except RuleError:
        return False
    return True


def _extend_markup(t: Callable[[str], str], issue: IssueView) -> Buttons:
    days = [Button(t("+{n} d").format(n=n), data=f"issn:extend:{issue.id}:{STATUS_CODE[issue.status]}:{n}") for n in (3, 7, 15, 30)]
    return Buttons.of([days[:2], days[2:], [Button(t("↩️ Back"), data=_data("back", issue))]])


async def _send(context: GridContext, member: Member, text: str, markup: Buttons | None = None) -> None:
    """Tell another user; a failed notification never undoes what was committed (see flow.notify)."""
    await notify(context, member, text, markup)


# -- notifications -------------------------------------------------------------------------------


async def notify_dispatchers(context: GridContext, issue: IssueView, headline: str, actor: Member | None = None, note: str | None = None,
                             photos: list[PhotoView] = ()) -> None:
    """The grid's supervisors (admins when it has none) get the issue with their buttons, after the
    evidence (`photos`: what a resolution shows, so it is verified from the photo)."""
    async with context.db.session() as session:
        members = await dispatchers(session, issue.grid_id)
    for m in members:
        if actor is not None and m.id == actor.id:
            continue
        t = _t_for(context, m)
        for photo in photos:
            await send_stored_photo(context, address_of(m, context.channel.name), photo.file_id, photo.sha256,
                                    t("{id}: photo after resolving").format(id=issue.human_id))
        await send_pin(context, address_of(m, context.channel.name), issue.latitude, issue.longitude)
        text = t(headline).format(id=issue.human_id) + "\n\n" + card(context, t, issue)
        if note:
            text += "\n" + summary_line(t("Note"), esc(note))
        await _send(context, m, text, action_markup(t, issue, m))


async def notify_change(context: GridContext, result: TransitionResult, actor: Member, note: str | None) -> None:
    """After a transition: who must hear of it (the reporter always; assignee, supervisors as the step needs)."""
    issue, action = result.issue, result.action
    async with context.db.session() as session:
        reporter = await member_by_id(session, issue.reporter_id)
        assignee = await member_by_id(session, issue.assignee_id) if issue.assignee_id else None
    told: set[int] = {actor.id}
    if action == "assign" and assignee is not None and assignee.id not in told:
        t = _t_for(context, assignee)
        await send_pin(context, address_of(assignee, context.channel.name), issue.latitude, issue.longitude)  # where to go
        await _send(context, assignee, t("📥 A new task for you, from {name}:").format(name=esc(actor.display_name or "?")) + "\n\n"
                    + card(context, t, issue), action_markup(t, issue, assignee))
        told.add(assignee.id)
    if action == "extend" and assignee is not None and assignee.id not in told:
        t = _t_for(context, assignee)
        text = t("⏳ {name} gave issue {id} more time: it is now due {due}.").format(
            name=esc(actor.display_name or "?"), id=issue.human_id, due=_when(context, issue.due_at))
        await _send(context, assignee, text + ("\n" + summary_line(t("Reason"), esc(note)) if note else ""), action_markup(t, issue, assignee))
        told.add(assignee.id)
    if action == "reopen" and assignee is not None and assignee.id not in told:
        t = _t_for(context, assignee)
        text = t("🔁 {name} reopened issue {id}, which you resolved: it is back with you.").format(name=esc(actor.display_name or "?"), id=issue.human_id)
        text += "\n\n" + card(context, t, issue) + ("\n" + summary_line(t("Reason"), esc(note)) if note else "")
        await _send(context, assignee, text, action_markup(t, issue, assignee))
        told.add(assignee.id)
    if action in ("resolve", "hand_back") or (action == "reopen" and assignee is None):
        evidence = []
        if action == "resolve":
            async with context.db.session() as session:
                evidence = [p for p in await event_photos(session, result.event_id) if p.kind == "after"]
        headline = {"resolve": N_("✅ Issue {id} is resolved: please verify it."), "hand_back": N_("↩️ Issue {id} was handed back: please dispatch it again."),
                    "reopen": N_("🔁 Issue {id} was reopened: please dispatch it again.")}[action]
        await notify_dispatchers(context, issue, headline, actor, note, evidence)
    if reporter is not None and reporter.id not in told:
        t = _t_for(context, reporter)
        text = t("🔔 Your issue {id} ({category}) is now {status}: {who} {what}.").format(
            id=issue.human_id, category=esc(category_label(t, issue.category)), status=status_label(t, issue.status),
            who=esc(actor.display_name or "?"), what=t(ACTION_LABELS[action]).format(name=esc(issue.assignee_name or "?")))
        if note:
            text += "\n" + summary_line(t("Note"), esc(note))
        await _send(context, reporter, text)


# -- the report form: steps ---------------------------------------------------------------------------


def _categories(context: GridContext) -> list[str]:
    return list(context.settings.issue_categories)


async def ask_category(event: Inbound, context: GridContext, draft: dict) -> None:
    cats = context.settings.issue_categories
    labels = [button(f"{category_label(context._, c)} · {deadline_text(context._, days, False)}", draft, "cat", i) for i, (c, days) in enumerate(cats.items())]
    rows = [labels[i:i + 2] for i in range(0, len(labels), 2)]
    text = context._("🗂 <b>Step 1/6 · Category</b>\nWhat kind of problem is it? (The deadline of each category is shown.)")
    source = draft["data"].get("source")
    if source != "chat":
        text += "\n" + context._("The place and photos of the {source} are carried over.").format(source=context._(SOURCE_NAMES.get(source, source)))
    await context.reply(text, markup=keyboard(rows))


SOURCE_NAMES = {"visit": N_("visit"), "patrol": N_("patrol")}


async def category_button(event: Inbound, context: GridContext, draft: dict, action: str, arg: str) -> str | None:
    cats = _categories(context)
    if action != "cat" or not arg.isdigit() or int(arg) >= len(cats):
        return STALE
    data = draft["data"]
    data["category"] = cats[int(arg)]
    await context.edit(context._("🗂 Category: {category}").format(category=esc(category_label(context._, data["category"]))))
    return GRID if data.get("grid_id") is None else DESCRIPTION


async def ask_grid(event: Inbound, context: GridContext, draft: dict) -> None:
    async with context.db.session() as session:
        grids = await grids_by_ids(session, draft["data"]["grid_ids"])
    await context.reply(context._("Which grid is the problem in?"),
                markup=keyboard([[button(f"{g.code} · {g.name}", draft, "grid", g.id)] for g in grids]))


async def grid_button(event: Inbound, context: GridContext, draft: dict, action: str, arg: str) -> str | None:
    data = draft["data"]
    if action != "grid" or not arg.isdigit() or int(arg) not in data["grid_ids"]:
        return STALE
    data["grid_id"] = int(arg)
    async with context.db.session() as session:
        (grid,) = await grids_by_ids(session, [int(arg)])
    await context.edit(context._("Grid: {grid}").format(grid=esc(f"{grid.code} · {grid.name}")))
    return DESCRIPTION


async def ask_description(event: Inbound, context: GridContext, draft: dict) -> None:
    await context.reply(context._("📝 <b>Step 2/6 · Description</b>\nDescribe the problem in a few words."))


async def description_text(event: Inbound, context: GridContext, draft: dict) -> str | None:
    try:
        draft["data"]["description"] = validate_description(event.text)
    except RuleError as err:
        await context.reply(issue_rule_message(context, err))
        return STAY
    return URGENCY if draft["data"].get("source") != "chat" and not draft.get("editing") else WHERE


async def ask_where(event: Inbound, context: GridContext, draft: dict) -> None:
    if not context.channel.abilities.location:  # this platform cannot send a pin: the address is the place
        await context.reply(context._("📍 <b>Step 3/6 · Where</b>\nType the address, e.g. <code>幸福路12号门口</code>."))
        return
    await context.reply(context._(
        "📍 <b>Step 3/6 · Where</b>\nShare the location (📎 → Location) and/or type the address, e.g. <code>幸福路12号门口</code>."))


async def where_location(event: Inbound, context: GridContext, draft: dict) -> str | None:
    assert event.location is not None
    data = draft["data"]
    data.update(latitude=event.location[0], longitude=event.location[1])
    if data.get("address"):
        return PHOTOS
    await context.reply(context._("📍 Location received. Type the address too if it helps, or /done."))
    return STAY


async def where_text(event: Inbound, context: GridContext, draft: dict) -> str | None:
    data = draft["data"]
    try:
        data["address"] = validate_address(event.text)
    except RuleError as err:
        await context.reply(issue_rule_message(context, err))
        return STAY
    if data.get("latitude") is not None or not context.channel.abilities.location:
        return PHOTOS
    await context.reply(context._("🏷 Address noted. Share the location too (📎 → Location) so nearby reports can be matched, or /done."))
    return STAY


async def where_done(event: Inbound, context: GridContext, draft: dict) -> str | None:
    data = draft["data"]
    if data.get("latitude") is None and not data.get("address"):
        await context.reply(context._("Share a location or type an address first."))
        return STAY
    return PHOTOS


async def ask_photos(event: Inbound, context: GridContext, draft: dict) -> None:
    text = context._("📷 <b>Step 4/6 · Photos</b>\nSend up to {max} photos of the problem (none is fine), then /done.")
    await context.reply(text.format(max=MAX_PHOTOS))





async def photo_received(event: Inbound, context: GridContext, draft: dict) -> str | None:
    await add_photo(event, context, draft["data"].setdefault("photos", []), MAX_PHOTOS)
    return STAY


async def photos_done(event: Inbound, context: GridContext, draft: dict) -> str | None:
    return URGENCY


async def ask_urgency(event: Inbound, context: GridContext, draft: dict) -> None:
    await context.reply(context._("⏱ <b>Step 5/6 · Urgency</b>\nIs it urgent? Urgent halves the deadline."),
                markup=keyboard([[button(context._("🔴 Urgent"), draft, "urgent", 1), button(context._("🟢 Normal"), draft, "urgent", 0)]]))


async def urgency_button(event: Inbound, context: GridContext, draft: dict, action: str, arg: str) -> str | None:
    if action != "urgent" or arg not in ("0", "1"):
        return STALE
    draft["data"]["urgent"] = arg == "1"
    await context.edit(context._("⏱ Urgent") if arg == "1" else context._("⏱ Normal"))
    return CONFIRM


# -- the summary --------------------------------------------------------------------------------------

EDITABLE = [(CATEGORY, N_("Category")), (DESCRIPTION, N_("Description")), (WHERE, N_("Where")), (PHOTOS, N_("Photos")), (URGENCY, N_("Urgency"))]


def summary_text(context: GridContext, draft: dict, nearby: list[tuple[IssueView, float]]) -> str:
    d = draft["data"]
    days = context.settings.issue_categories.get(d["category"], 0)
    due = due_at_for(clock.now(), days, d["urgent"])
    lines = [
        context._("🧾 <b>Step 6/6 · Check and submit the report</b>"),
        summary_line(context._("Category"), esc(category_label(context._, d["category"]))),
        summary_line(context._("Description"), esc(d["description"])),
        summary_line(context._("Address"), esc(d["address"]) if d.get("address") else "—"),
        summary_line(context._("Location"), f"{d['latitude']:.5f}, {d['longitude']:.5f}" if d.get("latitude") is not None else context._("not given")),
        summary_line(context._("Photos"), str(len(d.get("photos", [])))),
        summary_line(context._("Urgency"), context._("🔴 urgent") if d["urgent"] else context._("normal")),
        summary_line(context._("Deadline"), context._("{deadline}, due {when} if submitted now").format(
            deadline=deadline_text(context._, days, d["urgent"]), when=_when(context, due))),
    ]
    for issue, distance in nearby:
        lines += ["", context._("⚠️ An open issue of the same category is {m} m away: <b>{id}</b> ({status}, reported {when}): {description}").format(
            m=round(distance), id=issue.human_id, status=status_label(context._, issue.status), when=_when(context, issue.reported_at),
            description=esc(issue.description[:80]))]
    if nearby:
        lines.append(context._("If it is the same problem, add your report to it instead of opening a new one."))
    return "\n".join(lines)


def _confirm_markup(context: GridContext, draft: dict, nearby: list[tuple[IssueView, float]]):  # noqa: ANN202
    rev = draft["rev"]
    rows = [[button(context._("📎 Add to {id} ({m} m)").format(id=i.human_id, m=round(m)), draft, "attach", i.id)] for i, m in nearby]
    rows += [
        [button(context._("✅ Submit"), draft, "submit", rev), button(context._("🛠 Resolved on the spot"), draft, "spot", rev)],
        [button(context._("✏️ Edit"), draft, "edit", rev), button(context._("❌ Cancel"), draft, "cancel", rev)],
    ]
    return keyboard(rows)


async def _nearby(context: GridContext, draft: dict) -> list[tuple[IssueView, float]]:
    d = draft["data"]
    if d.get("latitude") is None:
        return []
    async with context.db.session() as session:
        found = await nearby_open_issues(session, d["grid_ids"], d["category"], d["latitude"], d["longitude"])
    return found[:3]


async def ask_confirm(event: Inbound, context: GridContext, draft: dict) -> None:
    draft["rev"] += 1  # buttons of an older summary of this draft stop working
    nearby = await _nearby(context, draft)
    draft["data"]["nearby"] = [i.id for i, _m in nearby]
    await context.reply(summary_text(context, draft, nearby), markup=_confirm_markup(context, draft, nearby))


async def confirm_button(event: Inbound, context: GridContext, draft: dict, action: str, arg: str) -> str | None:
    data = draft["data"]
    if action in ("submit", "spot", "edit", "cancel", "back") and arg != str(draft["rev"]):
        context.notice = context._("This summary is out of date; use the latest one below.")
        return STAY
    if action == "submit":
        return await _submit(event, context, draft)
    if action == "attach" and arg.isdigit() and int(arg) in data.get("nearby", []):
        return await _attach(event, context, draft, int(arg))
    if action == "spot":
        await context.edit(None, None)
        return SPOT_NOTE
    if action == "cancel":
        await context.edit(None, None)
        await context.reply(context._("❌ Cancelled; nothing was reported."))
        return END
    if action == "edit":
        rows = [[button(context._(label), draft, "field", step)] for step, label in EDITABLE]
        rows.append([button(context._("↩️ Back"), draft, "back", draft["rev"])])
        await context.edit(None, keyboard(rows))
        return STAY
    if action == "back":
        await context.edit(None, _confirm_markup(context, draft, await _nearby(context, draft)))
        return STAY
    if action == "field" and arg in dict(EDITABLE):
        await context.edit(None, None)
        draft["editing"] = True
        if arg == PHOTOS:
            data["photos"] = []  # editing photos means sending the set again
        if arg == WHERE:
            data.update(address=None, latitude=None, longitude=None)
        return arg
    return STALE


async def ask_spot_note(event: Inbound, context: GridContext, draft: dict) -> None:
    await context.reply(context._("🛠 <b>Resolved on the spot</b>\nWhat did you do? Send a short note."))


async def spot_note_text(event: Inbound, context: GridContext, draft: dict) -> str | None:
    try:
        note = validate_note(event.text)
    except RuleError as err:
        await context.reply(issue_rule_message(context, err))
        return STAY
    if not note:
        await context.reply(context._("Please write what you did."))
        return STAY
    draft["data"]["resolution_note"] = note
    return SPOT_PHOTO


async def ask_spot_photo(event: Inbound, context: GridContext, draft: dict) -> None:
    await context.reply(context._("📷 Send a photo of the fixed problem (an after-photo), then /done."))


async def spot_photo_received(event: Inbound, context: GridContext, draft: dict) -> str | None:
    await add_photo(event, context, draft["data"].setdefault("after_photos", []), MAX_PHOTOS)
    return STAY


async def spot_photos_done(event: Inbound, context: GridContext, draft: dict) -> str | None:
    if not draft["data"].get("after_photos"):
        await context.reply(context._("Send at least one photo of the fixed problem, then /done."))
        return STAY
    return await _submit(event, context, draft)


async def _submit(event: Inbound, context: GridContext, draft: dict) -> str | None:
    d, member = draft["data"], context.member
    assert member is not None
    issue_draft = IssueDraft(
        draft_id=draft["id"], grid_id=d["grid_id"], category=d["category"], description=d["description"], urgent=d["urgent"],
        address=d.get("address"), latitude=d.get("latitude"), longitude=d.get("longitude"), photos=d.get("photos", []),
        source=d.get("source", "chat"), source_id=d.get("source_id"), resolution_note=d.get("resolution_note"),
        after_photos=d.get("after_photos", []),
    )
    try:
        async with context.db.session() as session:
            result = await create_issue(session, issue_draft, member, context.settings.issue_categories, context.settings.tz)
    except RuleError as err:
        text = issue_rule_message(context, err)
        if event.is_button:
            context.notice = text
        else:
            await context.reply(text)
        return STAY
    # The issue is committed; whatever happens to the messages below, it stays reported once.
    issue = result.issue
    if result.action == "resolve_on_spot":
        text = context._("✅ Recorded as issue {id}, resolved on the spot. A supervisor may verify it. /issue {id} shows it.")
    else:
        text = context._("✅ Reported as issue {id}. Deadline: {due}. The grid's supervisors have been told; /issue {id} shows it.")
    await tell_outcome(event, context, draft, [(text.format(id=issue.human_id, due=_when(context, issue.due_at)), None)], drop_buttons=True)
    if result.created and result.action == "submit":
        await notify_dispatchers(context, issue, N_("🆕 New issue {id} to dispatch:"), member)
    return END


async def _attach(event: Inbound, context: GridContext, draft: dict, issue_id: int) -> str | None:
    d, member = draft["data"], context.member
    assert member is not None
    try:
        async with context.db.session() as session:
            issue, created = await attach_to_issue(session, issue_id, member, draft["id"], d["description"][:500], d.get("photos", []))
    except RuleError as err:
        context.notice = issue_rule_message(context, err)
        return STAY
    await tell_outcome(event, context, draft, [(
        context._("📎 Your report was added to issue {id}; no new issue was opened. /issue {id} shows it.").format(id=issue.human_id), None)],
        drop_buttons=True)
    if created:
        async with context.db.session() as session:
            others = [m for uid in {issue.reporter_id, issue.assignee_id} if uid and uid != member.id and (m := await member_by_id(session, uid))]
        for m in others:
            t = _t_for(context, m)
            await _send(context, m, t("📎 {name} reported the same problem again and added it to issue {id}:").format(
                name=esc(member.display_name or "?"), id=issue.human_id) + "\n" + esc(d["description"][:500]))
    return END


# -- starting a report: /report, or a button on a saved visit or patrol ----------------------------------


def _prefills(context: GridContext) -> dict:
    assert context.user_data is not None
    return context.user_data.setdefault("issue_prefills", {})


def report_button(context: GridContext, text: str, *, location: tuple[float, float] | None, photos: list[dict], grid_id: int,
                  source: str, source_id: int | None = None, address: str | None = None) -> Button:
    """A button that opens /report pre-filled with a place and photos (for the patrol flow and others).

    `photos` are dicts {"file_id", "file_unique_id", "sha256"} as the flows keep them. The pre-fill
    waits in user_data under a short token (the newest five are kept).
    """
    prefills = _prefills(context)
    while len(prefills) >= 5:
        prefills.pop(next(iter(prefills)))
    token = secrets.token_hex(4)
    prefills[token] = {"latitude": location[0] if location else None, "longitude": location[1] if location else None,
                       "photos": list(photos)[:MAX_PHOTOS], "grid_id": grid_id, "source": source, "source_id": source_id, "address": address}
    return Button(text, data=f"issue:new:{token}")


async def start_report_from(event: Inbound, context: GridContext, *, location: tuple[float, float] | None, photos: list[dict], grid_id: int,
                            source: str, source_id: int | None = None, address: str | None = None) -> None:
    """Offer to turn a hazard found on a visit or patrol into an issue report: one button, place and photos carried over."""
    label = context._("📝 Report an issue from this {source}").format(source=context._(SOURCE_NAMES.get(source, source)))
    markup = Buttons.of([[report_button(context, label, location=location, photos=photos, grid_id=grid_id, source=source,
                                                  source_id=source_id, address=address)]])
    await context.reply(context._("Did you find a problem that someone must fix? Report it as an issue:"), markup=markup)


def visit_report_markup(context: GridContext, visit_id: int, situations: list[str]) -> Buttons | None:
    """For a saved visit that found a hazard or a dispute: the button that reports it as an issue."""
    member = context.member
    if member is None or member.role != Role.WORKER or not VISIT_HAZARDS.intersection(situations):
        return None
    return Buttons.of([[Button(context._("📝 Report an issue from this visit"), data=f"issue:visit:{visit_id}")]])


async def begin_report(event: Inbound, context: GridContext) -> dict | None:
    member = context.member
    assert member is not None
    if member.role != Role.WORKER:
        text = context._("Issues are reported by grid workers; supervisors dispatch and verify them (see /tasks).")
        if event.is_button:
            await context.toast(text, alert=True)
        else:
            await context.reply(text)
        return None
    if not member.grid_ids:
        await context.toast()
        await context.reply(context._("You have no grid yet, so there is nowhere to report. Ask an administrator to assign you a grid."))
        return None
    data: dict = {"grid_ids": list(member.grid_ids), "grid_id": member.grid_ids[0] if len(member.grid_ids) == 1 else None,
                  "category": None, "description": None, "address": None, "latitude": None, "longitude": None,
                  "photos": [], "after_photos": [], "urgent": False, "source": "chat", "source_id": None}
    if not event.is_button:
        return data
    kind, _sep, ref = event.button.removeprefix("issue:").partition(":")
    if kind == "visit" and ref.isdigit():
        try:
            async with context.db.session() as session:
                pre = await visit_prefill(session, int(ref), member)
        except RuleError as err:
            await context.toast(issue_rule_message(context, err), alert=True)
            return None
        prefill = {"grid_id": pre.grid_id, "address": pre.address, "latitude": pre.latitude, "longitude": pre.longitude,
                   "photos": pre.photos, "source": pre.source, "source_id": pre.source_id}
    else:
        prefill = _prefills(context).pop(ref, None)
        if prefill is None or prefill["grid_id"] not in member.grid_ids:
            await context.toast(context._("This button has expired; send /report to report the issue."), alert=True)
            return None
    await context.toast()
    data.update(prefill)
    return data


async def _enter_by_button(flow: Flow, event: Inbound, context: GridContext) -> object:
    """A flow entered from a button: answer the button when the flow only offers the open form back."""
    open_draft = context.draft
    if open_draft is not None and open_draft.get("flow") in FLOW_BY_NAME and not FLOW_BY_NAME[open_draft["flow"]].expired(context, open_draft):
        await context.toast()
    return await flow.start(event, context)


async def _report_by_button(event: Inbound, context: GridContext) -> object:
    return await _enter_by_button(REPORT_FLOW, event, context)


REPORT_FLOW = register_flow(Flow(
    name="report",
    title=N_("issue report"),
    command="report",
    confirm=CONFIRM,
    begin=begin_report,
    entry=[OnButton(r"^issue:(visit:\d+|new:[0-9a-f]{8})$", _report_by_button)],
    steps=[
        Step(CATEGORY, ask_category, N_("a category, chosen with the buttons"), on_button=category_button),
        Step(GRID, ask_grid, N_("a grid, chosen with the buttons"), on_button=grid_button, main=False),
        Step(DESCRIPTION, ask_description, N_("a description of the problem as text"), on_text=description_text),
        Step(WHERE, ask_where, N_("a location (📎 → Location) or the address as text, then /done"),
             on_location=where_location, on_text=where_text, on_done=where_done),
        Step(PHOTOS, ask_photos, N_("photos, then /done"), on_photo=photo_received, on_done=photos_done, on_skip=photos_done),
        Step(URGENCY, ask_urgency, N_("urgent or normal, chosen with the buttons"), on_button=urgency_button),
        Step(CONFIRM, ask_confirm, N_("a choice from the summary buttons: submit, resolved on the spot, edit or cancel"), on_button=confirm_button),
        Step(SPOT_NOTE, ask_spot_note, N_("a note of what you did, as text"), on_text=spot_note_text, main=False),
        Step(SPOT_PHOTO, ask_spot_photo, N_("an after-photo, then /done"), on_photo=spot_photo_received, on_done=spot_photos_done,
             on_skip=spot_photos_done, main=False),  # /skip: told the after-photo is required
    ],
))


# -- a reason or a resolution note: the issue_note flow -------------------------------------------------


def _parse(data: str) -> tuple[str, int, str | None, str]:
    """`iss[n]:<action>:<issue id>:<status letter>[:<arg>]` -> (action, issue id, expected status, arg)."""
    parts = data.split(":")
    if len(parts) < 4 or not parts[2].isdigit():
        return "", 0, None, ""
    return parts[1], int(parts[2]), CODE_STATUS.get(parts[3]), parts[4] if len(parts) > 4 else ""


async def begin_note(event: Inbound, context: GridContext) -> dict | None:
    member = context.member
    assert member is not None
    if not event.is_button:
        await context.reply(context._("Reasons and notes are written from the buttons on an issue; /tasks lists yours."))
        return None
    action, issue_id, expected, _arg = _parse(event.button)
    if action not in NOTE_PROMPTS or expected is None:
        await context.toast(context._("This button has expired."))
        return None
    async with context.db.session() as session:
        issue = await get_issue(session, issue_id)
    days = int(_arg) if action == "extend" and _arg.isdigit() else 0
    try:
        if issue is None:
            raise RuleError("not_found")
        if action == "extend":
            check_extend(issue, member, expected, days, "-")
        else:
            check(issue, action, member, expected, note="-")
    except RuleError as err:
        await context.toast(issue_rule_message(context, err), alert=True)
        if issue is not None and err.code == "stale_status":
            await _refresh(event, context, issue, member)
        return None
    await context.toast()
    return {"issue_id": issue_id, "human_id": issue.human_id, "action": action, "expected": expected, "note": None, "photos": [], "days": days}


async def ask_note(event: Inbound, context: GridContext, draft: dict) -> None:
    d = draft["data"]
    await context.reply(context._(NOTE_PROMPTS[d["action"]]).format(id=d["human_id"]))


async def note_text(event: Inbound, context: GridContext, draft: dict) -> str | None:
    try:
        note = validate_note(event.text)
    except RuleError as err:
        await context.reply(issue_rule_message(context, err))
        return STAY
    if not note:
        await context.reply(context._("A reason is required; nothing was changed."))
        return STAY
    draft["data"]["note"] = note
    if draft["data"]["action"] == "resolve":
        return AFTER_PHOTO
    return await _apply_note(event, context, draft)


async def ask_after_photo(event: Inbound, context: GridContext, draft: dict) -> None:
    await context.reply(context._("📷 Send an after-photo if you have one, then /done; or /skip."))


async def after_photo_received(event: Inbound, context: GridContext, draft: dict) -> str | None:
    await add_photo(event, context, draft["data"].setdefault("photos", []), MAX_PHOTOS)
    return STAY


async def after_photo_done(event: Inbound, context: GridContext, draft: dict) -> str | None:
    return await _apply_note(event, context, draft)


async def _apply_note(event: Inbound, context: GridContext, draft: dict) -> str:
    d, member = draft["data"], context.member
    assert member is not None
    try:
        async with context.db.session() as session:
            if d["action"] == "extend":
                result = await extend_due(session, d["issue_id"], member, d["expected"], d.get("days", 0), d["note"])
            else:
                result = await transition(session, d["issue_id"], d["action"], member, d["expected"], d["note"], photos=d.get("photos"))
    except RuleError as err:
        await context.reply(issue_rule_message(context, err))
        return END
    # A reopened issue nobody could take back: the supervisor who reopened it dispatches it from here.
    markup = action_markup(context._, result.issue, member) if result.action == "reopen" and result.issue.assignee_id is None else None
    await tell_outcome(event, context, draft, [(_done_text(context, result), markup)])
    await notify_change(context, result, member, d["note"])
    return END


async def _note_by_button(event: Inbound, context: GridContext) -> object:
    return await _enter_by_button(NOTE_FLOW, event, context)


NOTE_FLOW = register_flow(Flow(
    name="issue_note",
    title=N_("issue note"),
    command="note",
    confirm=NOTE,
    begin=begin_note,
    entry=[OnButton(r"^issn:", _note_by_button)],
    steps=[
        Step(NOTE, ask_note, N_("the reason or note as text"), on_text=note_text),
        Step(AFTER_PHOTO, ask_after_photo, N_("an after-photo then /done, or /skip"), on_photo=after_photo_received, on_done=after_photo_done,
             on_skip=after_photo_done),
    ],
))


# -- plain buttons: assign, start, verify (outside any conversation) ---------------------------------------


def _done_text(context: GridContext, result: TransitionResult) -> str:
    issue = result.issue
    message = REOPENED_FOR_DISPATCH if result.action == "reopen" and issue.assignee_id is None else DONE_MESSAGES[result.action]
    return context._(message).format(id=issue.human_id, name=esc(issue.assignee_name or "?"), due=_when(context, issue.due_at))


async def _refresh(event: Inbound, context: GridContext, issue: IssueView, member: Member) -> None:
    """Redraw the message a button sat on with the issue as it is now and the buttons that fit now."""
    try:
        await context.edit(card(context, context._, issue), action_markup(context._, issue, member))
    except ChannelError:
        log.info("could not redraw the issue message", exc_info=True)


async def _pick_markup(context: GridContext, issue: IssueView, member: Member) -> Buttons:
    async with context.db.session() as session:
        workers = await grid_workers(session, issue.grid_id)
        load = await open_task_counts(session, [w.id for w in workers])
    rows = [[Button(context._("👷 {name} · {n} open").format(name=w.display_name or w.handle, n=load.get(w.id, 0)),
                                  data=_data("asg", issue, w.id))] for w in workers if w.id != member.id]
    rows.append([Button(context._("🙋 Me"), data=_data("asg", issue, member.id))])
    rows.append([Button(context._("↩️ Back"), data=_data("back", issue))])
    return Buttons.of(rows)


async def issue_button(event: Inbound, context: GridContext) -> None:
    member = context.member
    assert member is not None
    action, issue_id, expected, arg = _parse(event.button)
    async with context.db.session() as session:
        issue = await get_issue(session, issue_id)
    if issue is None or expected is None:
        await context.toast(context._("That issue does not exist."), alert=True)
        return
    if not may_view(issue, member):  # forged data: another grid's issue is neither shown nor touched
        await context.toast(issue_rule_message(context, RuleError("wrong_grid")), alert=True)
        return
    if action == "back":
        await context.toast()
        await _refresh(event, context, issue, member)
        return
    if action == "pick":
        try:
            check(issue, "assign", member, expected)
        except RuleError as err:
            await context.toast(issue_rule_message(context, err), alert=True)
            if err.code == "stale_status":
                await _refresh(event, context, issue, member)
            return
        await context.toast()
        await context.edit(card(context, context._, issue) + "\n\n" + context._("Assign to whom?"), await _pick_markup(context, issue, member))
        return
    if action == "ext":
        try:
            check_extend(issue, member, expected, EXTEND_DAYS[0], "-")
        except RuleError as err:
            await context.toast(issue_rule_message(context, err), alert=True)
            return
        await context.toast()
        await context.edit(card(context, context._, issue) + "\n\n" + context._("⏳ How many more days? (The reason comes next.)"),
                           _extend_markup(context._, issue))
        return
    kinds = {"asg": "assign", "start": "start", "verify": "verify"}
    if action not in kinds or (action == "asg" and not arg.isdigit()):
        await context.toast(context._("This button has expired."))
        return
    try:
        async with context.db.session() as session:
            result = await transition(session, issue_id, kinds[action], member, expected, assignee_id=int(arg) if arg else None)
    except RuleError as err:
        await context.toast(issue_rule_message(context, err), alert=True)
        if err.code == "stale_status":
            async with context.db.session() as session:
                now = await get_issue(session, issue_id)
            if now is not None:
                await _refresh(event, context, now, member)
        return
    # Committed: the messages below cannot undo it.
    await context.toast(_done_text(context, result))
    await _refresh(event, context, result.issue, member)
    await notify_change(context, result, member, None)


# -- /tasks and /issue ------------------------------------------------------------------------------------


@requires(*ALL)
async def tasks_command(event: Inbound, context: GridContext) -> None:
    """What waits for the caller, in one message: a single task as its card with its buttons; several
    as a paged list, each with a button that opens its card."""
    member = context.member
    assert member is not None
    mine, queue = await _task_lists(context, member)
    if not mine and not queue:
        await context.reply(context._(NO_TASKS))
        return
    if len(mine) + len(queue) == 1:
        (issue,) = mine or queue
        await context.reply(_tasks_header(context, mine, queue) + "\n\n" + card(context, context._, issue),
                    markup=action_markup(context._, issue, member))
        return
    text, markup = _tasks_page(context, mine, queue, 0)
    await context.reply(text, markup=markup)


TASKS_PAGE, TASKS_MAX = 6, 200
NO_TASKS = N_("✅ No open tasks: nothing is assigned to you and nothing waits for you.")


async def _task_lists(context: GridContext, member: Member) -> tuple[list[IssueView], list[IssueView]]:
    """What /tasks shows: the caller's assigned issues, and those waiting for them as a supervisor."""
    async with context.db.session() as session:
        return await open_tasks(session, member, TASKS_MAX), await supervisor_queue(session, member, TASKS_MAX)


def _tasks_header(context: GridContext, mine: list[IssueView], queue: list[IssueView]) -> str:
    lines = []
    if mine:
        lines.append(context._("📋 <b>Assigned to you</b>: {n}, by due time.").format(n=len(mine)))
    if queue:
        dispatch = sum(1 for i in queue if i.status != "resolved")
        lines.append(context._("🗂 <b>Waiting for you in your grids</b>: {d} to dispatch, {v} to verify.").format(d=dispatch, v=len(queue) - dispatch))
    return "\n".join(lines)


def _tasks_page(context: GridContext, mine: list[IssueView], queue: list[IssueView], page: int) -> tuple[str, Buttons]:
    items = [(True, i) for i in mine] + [(False, i) for i in queue]
    pages = max(1, math.ceil(len(items) / TASKS_PAGE))
    page = min(max(page, 0), pages - 1)
    now, lines = clock.now(), [_tasks_header(context, mine, queue), ""]
    rows: list[list[Button]] = []
    for n, (assigned, issue) in enumerate(items[page * TASKS_PAGE:(page + 1) * TASKS_PAGE], start=page * TASKS_PAGE + 1):
        where = context._("to do") if assigned else (context._("to verify") if issue.status == "resolved" else context._("to dispatch"))
        late = " " + context._("⏰ overdue") if issue.overdue(now) else ""
        lines.append(f"{n}. <b>{issue.human_id}</b> · {esc(category_label(context._, issue.category))} · {where} · "
                     + context._("due {when}").format(when=_when(context, issue.due_at)) + late)
        rows.append([Button(f"🔎 {n}. {issue.human_id}", data=f"rem:open:{issue.id}")])
    rows = [sum(rows[k:k + 2], []) for k in range(0, len(rows), 2)]
    if pages > 1:
        lines += ["", context._("Page {page}/{pages}").format(page=page + 1, pages=pages)]
        nav = []
        if page > 0:
            nav.append(Button(context._("◀️ Back"), data=f"tasks:page:{page - 1}"))
        if page < pages - 1:
            nav.append(Button(context._("More ▶️"), data=f"tasks:page:{page + 1}"))
        rows.append(nav)
    return "\n".join(lines), Buttons.of(rows)


async def tasks_page_button(event: Inbound, context: GridContext) -> None:
    """`tasks:page:<n>`: the list as it is now, at that page (the message is redrawn)."""
    member = context.member
    assert member is not None
    page = int(event.button.rsplit(":", 1)[1])
    mine, queue = await _task_lists(context, member)
    await context.toast()
    if not mine and not queue:
        await context.edit(context._(NO_TASKS))
        return
    text, markup = _tasks_page(context, mine, queue, page)
    await context.edit(text, markup)


@requires(*ALL)
async def issue_command(event: Inbound, context: GridContext) -> None:
    member = context.member
    assert member is not None
    if not context.args:
        await context.reply(context._("Which issue? Send /issue followed by its number, e.g. /issue 2605-0042."))
        return
    ref = clean_text(context.args[0])[:20]  # no control characters: a NUL breaks the PostgreSQL lookup
    async with context.db.session() as session:
        issue = await find_issue(session, ref)
        if issue is not None and may_view(issue, member):
            history = await issue_history(session, issue.id)
            photos = await issue_photos(session, issue.id)
    if issue is None or not may_view(issue, member):
        await context.reply(context._("No issue {ref} in your grids.").format(ref=esc(ref)))
        return
    lines = [card(context, context._, issue), "", context._("🕘 <b>History</b>")]
    if issue.voided_at is not None:
        lines.insert(1, context._("🗑 Voided: left out of every figure and list."))
    for e in history[-30:]:
        what = context._(ACTION_LABELS.get(e.action, e.action)).format(name=esc(e.assignee_name or "?"))
        line = f"{_when(context, e.at)} · {esc(e.actor_name or '?')} · {what}"
        if e.action not in ("attach", "void"):
            line += f" ({status_label(context._, e.from_status or 'new')} → {status_label(context._, e.to_status)})"
        if e.photos:
            line += " · " + context._("📷 {n}").format(n=e.photos)
        lines.append(line)
        if e.note:
            lines.append(f"    “{esc(e.note)}”")
    await context.reply("\n".join(lines)[:4000], markup=action_markup(context._, issue, member))
    await send_pin(context, context.address, issue.latitude, issue.longitude)
    for photo in photos[:MAX_PHOTOS]:
        caption = context._("{id}: photo after resolving").format(id=issue.human_id) if photo.kind == "after" else issue.human_id
        await send_stored_photo(context, context.address, photo.file_id, photo.sha256, caption)


FLOWS = [REPORT_FLOW, NOTE_FLOW]
HANDLERS = [
    Command("tasks", tasks_command),
    OnButton(r"^tasks:page:\d{1,4}$", tasks_page_button),
    Command("issue", issue_command),
    OnButton(r"^iss:", issue_button),
]
