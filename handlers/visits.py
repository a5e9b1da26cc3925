"""Home visits (入户走访): the `/visit` conversation and `/my`.

```mermaid
stateDiagram-v2
    [*] --> HOUSEHOLD: /visit
    HOUSEHOLD --> HOUSEHOLD: address text (paged results)
    HOUSEHOLD --> PEOPLE: pick a household
    HOUSEHOLD --> NEW_ADDRESS: ➕ new household
    NEW_ADDRESS --> NEW_ADDRESS: address already registered (offered)
    NEW_ADDRESS --> PEOPLE: 🏠 the registered household
    NEW_ADDRESS --> NEW_GRID: address (several grids)
    NEW_ADDRESS --> NEW_TAGS: address (one grid)
    NEW_GRID --> NEW_TAGS: grid
    NEW_TAGS --> PEOPLE: done
    PEOPLE --> SITUATION: 0-20
    SITUATION --> NOTES: done (one or more)
    NOTES --> PHOTOS: text or /skip
    PHOTOS --> LOCATION: /done
    LOCATION --> CONFIRM: location or /skip
    CONFIRM --> [*]: save / cancel
    CONFIRM --> HOUSEHOLD: edit a field (then back to CONFIRM)
```
Every state: /cancel discards the draft; a wrong kind of input is answered and the step stays.
"""

from __future__ import annotations

import contextlib
import logging
import math
from datetime import datetime

from bot.chat import Inbound
from bot.context import GridContext
from bot.engine import Command, OnButton
from bot.i18n import N_
from handlers.common import esc, local_time, percent, requires
from handlers.flow import (
    END,
    STALE,
    STAY,
    Flow,
    Step,
    Summary,
    add_photo,
    button,
    keyboard,
    paged_markup,
    register_flow,
    rule_message,
    summary_line,
    tell_outcome,
    toggle,
    toggle_markup,
    undo_row,
    with_row,
)
from handlers.issues import visit_report_markup
from models import clock, corrections, periods, stats
from models.errors import RuleError
from models.issues import my_reports
from models.residents import ResidentRow, household_residents
from models.tables import Role
from models.text import clean_text, mask_id_numbers, parse_count
from models.users import grids_by_ids, scope_grid_ids
from models.visits import (
    HOUSEHOLD_TAGS,
    MAX_NOTES,
    MAX_PEOPLE_MET,
    MAX_PHOTOS,
    SITUATIONS,
    HouseholdRow,
    VisitDraft,
    get_household,
    get_visit,
    households_at,
    last_visit_at,
    save_visit,
    search_households,
    validate_address,
)
from models.vocabulary import category_label, status_label

log = logging.getLogger(__name__)

HOUSEHOLD, NEW_ADDRESS, NEW_GRID, NEW_TAGS = "HOUSEHOLD", "NEW_ADDRESS", "NEW_GRID", "NEW_TAGS"
PEOPLE, SITUATION, NOTES, PHOTOS, LOCATION, CONFIRM = "PEOPLE", "SITUATION", "NOTES", "PHOTOS", "LOCATION", "CONFIRM"
PAGE_SIZE = 6

SITUATION_LABELS = {
    "正常": N_("Normal"), "需帮扶": N_("Needs help"), "矛盾纠纷": N_("Dispute"),
    "安全隐患": N_("Safety hazard"), "其他": N_("Other"),
}
TAG_LABELS = {
    "独居老人": N_("Elderly living alone"), "困难家庭": N_("Family in hardship"), "退役军人": N_("Veteran"),
    "残疾人": N_("Person with disability"), "留守儿童": N_("Left-behind child"),
}
RULE_MESSAGES = {
    "address_length": N_("The address must be {min} to {max} characters, e.g. 3栋2单元501."),
    "people_range": N_("The number of people met must be 0 to 20."),
    "situation_required": N_("Choose at least one situation."),
}


def _labels(context: GridContext, values: list[str], table: dict[str, str]) -> str:
    return "、".join(esc(context._(table.get(v, v))) for v in values) if values else "—"


# -- step 1: household ------------------------------------------------------------------------


async def ask_household(event: Inbound, context: GridContext, draft: dict) -> None:
    await context.reply(
        context._("🏠 <b>Step 1/7 · Household</b>\nType part of the address (e.g. <code>3栋2单元</code>) to find the household, or add a new one."),
        markup=keyboard([[button(context._("➕ New household"), draft, "new")]]),
    )


async def _results(context: GridContext, draft: dict) -> tuple[str, object]:
    data = draft["data"]
    query, page = data["query"], data.get("page", 0)
    async with context.db.session() as session:
        rows, total = await search_households(session, data["grid_ids"], query, page * PAGE_SIZE, PAGE_SIZE)
    if total == 0:
        text = context._("No household of your grids matches «{query}». Try another part of the address, or add it as a new household.").format(
            query=esc(query))
    else:
        text = context._("Matches for «{query}»: {total} (page {page}/{pages}). Pick one:").format(
            total=total, query=esc(query), page=page + 1, pages=math.ceil(total / PAGE_SIZE))
    choices = [(f"{r.address} · {r.grid_code}" + (" · " + "、".join(r.tags) if r.tags else ""), r.id) for r in rows]
    extra = [button(context._("➕ New household"), draft, "new")]
    return text, paged_markup(context, draft, choices, page, total, PAGE_SIZE, extra)


async def household_text(event: Inbound, context: GridContext, draft: dict) -> str | None:
    query = mask_id_numbers(clean_text(event.text))[:100]  # an ID number typed here is never kept whole
    if len(query) < 1:
        await context.reply(context._("Type at least one character of the address."))
        return STAY
    draft["data"].update(query=query, page=0)
    text, markup = await _results(context, draft)
    await context.reply(text, markup=markup)
    return STAY


async def household_button(event: Inbound, context: GridContext, draft: dict, action: str, arg: str) -> str | None:
    data = draft["data"]
    if action == "new":
        return NEW_ADDRESS
    if action == "page" and arg.isdigit() and "query" in data:
        data["page"] = int(arg)
        text, markup = await _results(context, draft)
        await context.edit(text, markup=markup)
        return STAY
    if action == "pick" and arg.isdigit():
        card = await _choose_household(context, draft, int(arg))
        if card is None:
            context.notice = context._("That household is not in your grids (or no longer active).")
            return STAY
        await context.edit(card)
        return PEOPLE
    return STALE


async def _choose_household(context: GridContext, draft: dict, household_id: int) -> str | None:
    """Put the household in the draft, if it is one of the worker's; its card, or None."""
    data = draft["data"]
    async with context.db.session() as session:
        household = await get_household(session, household_id, data["grid_ids"])
        if household is None:
            return None
        people = await household_residents(session, household.id, mask=context.member.role != Role.ADMIN)
        last = await last_visit_at(session, household.id)
    data.update(household_id=household.id, address=household.address, grid_code=household.grid_code, new_household=None)
    return household_card(context, household, people, last)


async def visit_household_button(event: Inbound, context: GridContext) -> object:
    """`vgo:<household>` (the buttons of /due): /visit with that household chosen."""
    await context.toast()
    household_id = int(event.button.split(":")[1])

    async def prefill(draft: dict) -> str | None:
        card = await _choose_household(context, draft, household_id)
        if card is None:
            await context.reply(context._("That household is not in your grids (or no longer active)."))
            return None
        await context.reply(card)
        return PEOPLE

    return await VISIT_FLOW.start(event, context, prefill)


def household_card(context: GridContext, household: HouseholdRow, people: list[ResidentRow], last: datetime | None) -> str:
    """The household as the worker meets it: address, tags, who lives there, the last visit."""
    _ = context._
    lines = [_("🏠 Household: {address}").format(address=esc(household.address))]
    if household.tags:
        lines.append("🏷 " + "、".join(esc(t) for t in household.tags))
    if people:
        names = "、".join(esc(p.name) + (f"（{esc(p.relation)}）" if p.relation else "") + ("·" + "、".join(esc(t) for t in p.tags) if p.tags else "")
                         for p in people)
        lines.append(_("👪 Residents ({n}): {names}").format(n=len(people), names=names))
    lines.append(_("Last visit: {when}").format(when=local_time(context, last, "%Y-%m-%d")) if last else _("Not visited before."))
    return "\n".join(lines)


async def ask_new_address(event: Inbound, context: GridContext, draft: dict) -> None:
    await context.reply(context._("➕ Type the new household's address as building/unit/room, e.g. <code>3栋2单元501</code>."))


async def new_address_text(event: Inbound, context: GridContext, draft: dict) -> str | None:
    try:
        address = validate_address(event.text)
    except RuleError as err:
        await context.reply(rule_message(context, err, RULE_MESSAGES))
        return STAY
    data = draft["data"]
    async with context.db.session() as session:
        existing = await households_at(session, data["grid_ids"], address)
    data.update(taken_grids=[h.grid_id for h in existing], typed_address=address)
    if existing:
        # Already registered: the worker means that household (a new one only in a grid without it).
        rows = [[button(f"🏠 {h.address} · {h.grid_code}", draft, "pick", h.id)] for h in existing]
        if len(existing) < len(data["grid_ids"]):
            rows.append([button(context._("➕ A new household in another grid"), draft, "elsewhere")])
        await context.reply(context._("🏠 «{address}» is already registered. Tap it to visit that household, or type another address.").format(
            address=esc(address)), markup=keyboard(rows))
        return STAY
    return _new_household(data, address)


def _new_household(data: dict, address: str) -> str:
    free = [g for g in data["grid_ids"] if g not in data.get("taken_grids", [])]
    data.update(household_id=None, address=address, new_household={"address": address, "tags": [], "grid_id": None})
    if len(free) == 1:
        data["new_household"]["grid_id"] = free[0]
        return NEW_TAGS
    return NEW_GRID


async def new_address_button(event: Inbound, context: GridContext, draft: dict, action: str, arg: str) -> str | None:
    data = draft["data"]
    if action == "pick":
        return await household_button(event, context, draft, "pick", arg)  # checks the household is in the worker's grids
    if action == "elsewhere" and data.get("typed_address") and len(data.get("taken_grids", [])) < len(data["grid_ids"]):
        return _new_household(data, data["typed_address"])
    return STALE


async def ask_new_grid(event: Inbound, context: GridContext, draft: dict) -> None:
    data = draft["data"]
    async with context.db.session() as session:
        grids = await grids_by_ids(session, [g for g in data["grid_ids"] if g not in data.get("taken_grids", [])])
    await context.reply(
        context._("Which grid is this household in?"),
        markup=keyboard([[button(f"{g.code} · {g.name}", draft, "grid", g.id)] for g in grids]),
    )


async def new_grid_button(event: Inbound, context: GridContext, draft: dict, action: str, arg: str) -> str | None:
    data = draft["data"]
    if action != "grid" or not arg.isdigit() or int(arg) not in data["grid_ids"] or int(arg) in data.get("taken_grids", []):
        return STALE
    data["new_household"]["grid_id"] = int(arg)
    async with context.db.session() as session:
        (grid,) = await grids_by_ids(session, [int(arg)])
    data["grid_code"] = grid.code
    await context.edit(context._("Grid: {grid}").format(grid=esc(f"{grid.code} · {grid.name}")))
    return NEW_TAGS


async def ask_new_tags(event: Inbound, context: GridContext, draft: dict) -> None:
    tags = draft["data"]["new_household"]["tags"]
    await context.reply(context._("Tags for this household (optional): tap to toggle, then Done."),
                markup=toggle_markup(context, draft, HOUSEHOLD_TAGS, tags, TAG_LABELS))


async def new_tags_button(event: Inbound, context: GridContext, draft: dict, action: str, arg: str) -> str | None:
    tags = draft["data"]["new_household"]["tags"]
    if action == "t":
        return await toggle(event, context, draft, arg, HOUSEHOLD_TAGS, tags, TAG_LABELS)
    if action == "done":
        return await new_tags_done(event, context, draft)
    return STALE


async def new_tags_done(event: Inbound, context: GridContext, draft: dict) -> str | None:
    return PEOPLE


# -- steps 2-6 --------------------------------------------------------------------------------


async def ask_people(event: Inbound, context: GridContext, draft: dict) -> None:
    await context.reply(context._("👥 <b>Step 2/7 · People met</b>\nHow many people did you meet? Send a number from 0 to 20."))


async def people_text(event: Inbound, context: GridContext, draft: dict) -> str | None:
    count = parse_count(event.text)  # 2, ２, 2人, 两个, 三人, 十二位
    if count is None or not 0 <= count <= MAX_PEOPLE_MET:
        await context.reply(context._("Please send a number from 0 to {max}, e.g. 2.").format(max=MAX_PEOPLE_MET))
        return STAY
    draft["data"]["people_met"] = count
    return SITUATION


async def ask_situation(event: Inbound, context: GridContext, draft: dict) -> None:
    chosen = draft["data"].setdefault("situations", [])
    await context.reply(context._("📋 <b>Step 3/7 · Situation</b>\nTap every situation that applies, then Done."),
                markup=toggle_markup(context, draft, SITUATIONS, chosen, SITUATION_LABELS))


async def situation_button(event: Inbound, context: GridContext, draft: dict, action: str, arg: str) -> str | None:
    chosen = draft["data"].setdefault("situations", [])
    if action == "t":
        return await toggle(event, context, draft, arg, SITUATIONS, chosen, SITUATION_LABELS)
    if action == "done":
        if not chosen:
            context.notice = context._("Choose at least one situation.")
            return STAY
        await context.edit(context._("📋 Situation: {situations}").format(situations=_labels(context, chosen, SITUATION_LABELS))
        )
        return NOTES
    return STALE


async def ask_notes(event: Inbound, context: GridContext, draft: dict) -> None:
    await context.reply(context._("📝 <b>Step 4/7 · Notes</b>\nWrite what you found, or /skip."))


async def notes_text(event: Inbound, context: GridContext, draft: dict) -> str | None:
    notes = clean_text(event.text)
    if len(notes) > MAX_NOTES:
        await context.reply(context._("Notes can be at most {max} characters; yours has {n}. Please shorten them.").format(max=MAX_NOTES, n=len(notes)))
        return STAY
    draft["data"]["notes"] = mask_id_numbers(notes) or None
    return PHOTOS


async def notes_skip(event: Inbound, context: GridContext, draft: dict) -> str | None:
    draft["data"]["notes"] = None
    return PHOTOS


async def ask_photos(event: Inbound, context: GridContext, draft: dict) -> None:
    await context.reply(context._("📷 <b>Step 5/7 · Photos</b>\nSend photos of the visit (none is fine), then /done."))


async def photo_received(event: Inbound, context: GridContext, draft: dict) -> str | None:
    return await add_photo(event, context, draft["data"].setdefault("photos", []), MAX_PHOTOS)


async def photos_done(event: Inbound, context: GridContext, draft: dict) -> str | None:
    return LOCATION


async def ask_location(event: Inbound, context: GridContext, draft: dict) -> None:
    await context.reply(context._("📍 <b>Step 6/7 · Location</b>\nShare your location (📎 → Location), or /skip."))


async def location_received(event: Inbound, context: GridContext, draft: dict) -> str | None:
    assert event.location is not None
    latitude, longitude = event.location
    draft["data"].update(latitude=latitude, longitude=longitude)
    return CONFIRM


async def location_skip(event: Inbound, context: GridContext, draft: dict) -> str | None:
    draft["data"].update(latitude=None, longitude=None)
    return CONFIRM


# -- step 7: summary --------------------------------------------------------------------------

EDITABLE = [(HOUSEHOLD, N_("Household")), (PEOPLE, N_("People met")), (SITUATION, N_("Situation")),
            (NOTES, N_("Notes")), (PHOTOS, N_("Photos")), (LOCATION, N_("Location"))]


def summary_text(context: GridContext, draft: dict) -> str:
    d = draft["data"]
    place = d.get("address", "?")
    if d.get("new_household"):
        place += " " + context._("(new household)")
        if d["new_household"]["tags"]:
            place += " · " + "、".join(d["new_household"]["tags"])
    location = f"{d['latitude']:.5f}, {d['longitude']:.5f}" if d.get("latitude") is not None else context._("not given")
    lines = [
        context._("🧾 <b>Step 7/7 · Check and save the visit</b>"),
        summary_line(context._("Household"), esc(place)),
        summary_line(context._("Visited at"), datetime.fromisoformat(d["visited_at"]).astimezone(context.settings.tz).strftime("%Y-%m-%d %H:%M")),
        summary_line(context._("People met"), str(d["people_met"])),
        summary_line(context._("Situation"), _labels(context, d["situations"], SITUATION_LABELS)),
        summary_line(context._("Notes"), esc(d["notes"]) if d.get("notes") else "—"),
        summary_line(context._("Photos"), str(len(d.get("photos", [])))),
        summary_line(context._("Location"), location),
    ]
    if d.get("replaces"):
        lines.append(context._("✏️ Saving replaces visit #{id} (it is voided, with the reason kept).").format(id=d["replaces"]))
    return "\n".join(lines)


def _editable(context: GridContext, draft: dict) -> list[tuple[str, str]]:
    return EDITABLE


def _on_edit(draft: dict, step: str) -> None:
    if step == PHOTOS:
        draft["data"]["photos"] = []  # editing photos means sending the set again


async def _save(event: Inbound, context: GridContext, draft: dict) -> str | None:
    d, member = draft["data"], context.member
    assert member is not None
    visit = VisitDraft(
        draft_id=draft["id"], worker_id=member.id, visited_at=datetime.fromisoformat(d["visited_at"]),
        people_met=d["people_met"], situations=d["situations"], household_id=d.get("household_id"),
        new_household=d.get("new_household"), notes=d.get("notes"), photos=d.get("photos", []),
        latitude=d.get("latitude"), longitude=d.get("longitude"),
    )
    async with context.db.session() as session:
        scope = await scope_grid_ids(session, member)
        if visit.household_id is not None and await get_household(session, visit.household_id, scope) is None:
            context.notice = context._("That household is no longer in your grids; edit the household.")
            return STAY
        if visit.new_household is not None and visit.new_household["grid_id"] not in scope:
            context.notice = context._("You no longer work in that grid; edit the household.")
            return STAY
        visit_id, _created = await save_visit(session, visit)
        if d.get("replaces"):  # ✏️ Edit right after saving: the new save takes the old one's place, in one transaction
            with contextlib.suppress(RuleError):  # undone meanwhile: nothing left to replace
                await corrections.void_record(session, "visit", d["replaces"], member,
                                              context._("Replaced by visit #{id} (edited right after saving)").format(id=visit_id))
    # The record is committed; whatever happens to the replies below, it stays saved once.

    await tell_outcome(event, context, draft, [(
        context._("✅ Visit #{id} saved. Thank you! /visit logs the next one, /my shows your figures.").format(id=visit_id),
        with_row(visit_report_markup(context, visit_id, d["situations"]), undo_row(context, "visit", visit_id)),
    )], summary=summary_text(context, draft) + "\n\n" + context._("✅ Saved as visit #{id}.").format(id=visit_id))
    return END


async def edit_saved_button(event: Inbound, context: GridContext) -> object:
    """`aft:visit:<id>:edit` (a saved confirmation, within the undo window): the visit back in its
    summary, to change any field; saving it replaces the saved one (voided, with the reason)."""
    member = context.member
    visit_id = int(event.button.split(":")[2])
    async with context.db.session() as session:
        record = await corrections.find_record(session, "visit", visit_id)
        saved = await get_visit(session, visit_id)
    if not corrections.undo_open(member, record, clock.now()):
        await context.toast(undo_closed_text(context, "visit", visit_id), alert=True)
        return END

    async def prefill(draft: dict) -> str | None:
        if await _choose_household(context, draft, saved.household_id) is None:
            await context.reply(context._("That household is not in your grids (or no longer active)."))
            return None
        draft["data"].update(visited_at=saved.visited_at.isoformat(), people_met=saved.people_met, situations=list(saved.situations),
                             notes=saved.notes, photos=list(saved.photos), latitude=saved.latitude, longitude=saved.longitude, replaces=visit_id)
        return CONFIRM

    state = await VISIT_FLOW.start(event, context, prefill)
    await context.toast()
    return state


def undo_closed_text(context: GridContext, kind: str, ref: object) -> str:
    """Why ✏️ / ↩️ of a confirmation no longer work, and what to use instead."""
    return context._(UNDO_CLOSED).format(minutes=corrections.UNDO_WINDOW.seconds // 60, kind=kind, id=ref)


UNDO_CLOSED = N_("These buttons work for {minutes} minutes after saving, for whoever saved it. Now use /correct {kind} {id} … or /void {kind} {id} REASON.")


SUMMARY = Summary(text=summary_text, fields=_editable, save=_save, on_edit=_on_edit)


# -- the flow ---------------------------------------------------------------------------------


async def begin(event: Inbound, context: GridContext) -> dict | None:
    member = context.member
    assert member is not None
    async with context.db.session() as session:
        grid_ids = await scope_grid_ids(session, member)
    if not grid_ids:
        await context.reply(context._("You have no grid yet, so there are no households to visit. Ask an administrator to assign you a grid."))
        return None
    return {"grid_ids": grid_ids, "visited_at": clock.now().isoformat(), "situations": [], "photos": []}


VISIT_FLOW = register_flow(Flow(
    name="visit",
    title=N_("home visit"),
    command="visit",
    confirm=CONFIRM,
    begin=begin,
    entry=[OnButton(r"^vgo:\d{1,12}$", visit_household_button),
           OnButton(r"^aft:visit:\d{1,12}:edit$", edit_saved_button)],
    steps=[
        Step(HOUSEHOLD, ask_household, N_("part of an address to search, or a button"), on_text=household_text, on_button=household_button),
        Step(NEW_ADDRESS, ask_new_address, N_("the new household's address as text"), on_text=new_address_text, on_button=new_address_button,
             main=False),
        Step(NEW_GRID, ask_new_grid, N_("a grid, chosen with the buttons"), on_button=new_grid_button, main=False),
        Step(NEW_TAGS, ask_new_tags, N_("tags chosen with the buttons, then Done"), on_button=new_tags_button, on_done=new_tags_done, main=False),
        Step(PEOPLE, ask_people, N_("the number of people met, 0 to 20"), on_text=people_text),
        Step(SITUATION, ask_situation, N_("situations chosen with the buttons, then Done"), on_button=situation_button),
        Step(NOTES, ask_notes, N_("notes as text, or /skip"), on_text=notes_text, on_skip=notes_skip),
        Step(PHOTOS, ask_photos, N_("photos, then /done"), on_photo=photo_received, on_done=photos_done, on_skip=photos_done),
        Step(LOCATION, ask_location, N_("a location (📎 → Location), or /skip"), on_location=location_received, on_skip=location_skip),
        Step(CONFIRM, SUMMARY.ask, N_("a choice from the summary buttons: save, edit or cancel"), on_button=SUMMARY.on_button),
    ],
))


# -- /my --------------------------------------------------------------------------------------


@requires(Role.WORKER, Role.SUPERVISOR, Role.ADMIN)
async def my_command(event: Inbound, context: GridContext) -> None:
    member = context.member
    assert member is not None
    async with context.db.session() as session:
        summary = await stats.my_summary(session, member.id, list(member.grid_ids), clock.now(), context.settings.tz)
        patrols = await stats.my_patrols(session, member.id, clock.now(), context.settings.tz)
        half = periods.current("half", clock.now(), context.settings.tz)
        reports, total = await my_reports(session, member, half.start)
    lines = [
        context._("📊 <b>Your visits</b>"),
        context._("This week: {n}").format(n=summary.week),
        context._("This month: {n}").format(n=summary.month),
        context._("This half-year ({half}): {n}").format(half=summary.half_label, n=summary.half),
    ]
    lines += [
        "",
        context._("🍽 <b>Your food-safety patrols</b>"),
        context._("This week: {n}").format(n=patrols.week),
        context._("This month: {n}").format(n=patrols.month),
        context._("This half-year ({half}): {n}").format(half=patrols.half_label, n=patrols.half),
    ]
    for g in summary.grids:
        lines.append("")
        lines.append(context._("🏘 <b>Grid {code} · {name}</b>, {half}").format(code=esc(g.grid_code), name=esc(g.grid_name), half=summary.half_label))
        lines.append(context._("Coverage: {visited}/{households} households = {coverage} (target {target} = {target_n} households)").format(
            visited=g.households_visited, households=g.households, coverage=percent(g.coverage), target=percent(g.target), target_n=g.target_households))
        lines.append(context._("Pace: by now {expected} is due ({elapsed} of the half-year gone).").format(
            expected=percent(g.expected), elapsed=percent(g.elapsed)))
        if g.behind:
            lines.append(context._("⚠️ Behind pace: households still to visit to catch up: {gap}.").format(gap=g.gap_households))
        else:
            lines.append(context._("✅ On pace."))
    if not summary.grids:
        lines += ["", context._("You have no grid assigned.")]
    lines += ["", *my_reports_lines(context, reports, total, summary.half_label)]
    await context.reply("\n".join(lines))


def my_reports_lines(context: GridContext, reports: list, total: int, half: str) -> list[str]:  # noqa: ANN001
    """The issues a worker reported and where each stands, not only those assigned to them."""
    lines = [context._("📝 <b>Your reports</b>, {half}: {n}").format(half=half, n=total)]
    for i in reports:
        lines.append(f"{esc(i.human_id)} · {esc(category_label(context._, i.category))} · {status_label(context._, i.status)}")
    if total > len(reports):
        lines.append(context._("… and {n} more").format(n=total - len(reports)))
    if reports:
        lines.append(context._("/issue NUMBER shows one with its history."))
    return lines


FLOWS = [VISIT_FLOW]
HANDLERS = [Command("my", my_command)]
