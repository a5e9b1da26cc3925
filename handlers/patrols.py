"""Food-safety patrols (食品安全巡查): `/patrol`, `/shop_add`, `/shop`, and the supervisors' outcome buttons.

`/patrol`:

```mermaid
stateDiagram-v2
    [*] --> SHOP: /patrol
    SHOP --> SHOP: name or address text (paged results)
    SHOP --> CHECKLIST: pick a shop
    SHOP --> NEW_NAME: ➕ new shop
    NEW_NAME --> NEW_ADDRESS: name
    NEW_ADDRESS --> NEW_GRID: address (several grids)
    NEW_ADDRESS --> NEW_CATEGORY: address (one grid)
    NEW_GRID --> NEW_CATEGORY: grid
    NEW_CATEGORY --> CHECKLIST: category
    CHECKLIST --> CHECKLIST: tap an item (✅ pass / ❌ fail)
    CHECKLIST --> DISPOSITION: done, with failed items
    CHECKLIST --> PHOTOS: done, all passed
    DISPOSITION --> NOTE: corrected on the spot / escalate
    NOTE --> DISPOSITION: note or /skip (next failed item)
    NOTE --> PHOTOS: note or /skip (last failed item)
    PHOTOS --> CONFIRM: /done
    CONFIRM --> [*]: save / cancel
    CONFIRM --> SHOP: edit a field (then back to CONFIRM)
```

`/shop_add` (supervisors, admins):

```mermaid
stateDiagram-v2
    [*] --> NAME: /shop_add
    NAME --> ADDRESS: name
    ADDRESS --> GRID: address (several grids)
    ADDRESS --> CATEGORY: address (one grid)
    GRID --> CATEGORY: grid
    CATEGORY --> LICENCE: category
    LICENCE --> CONTACT: text or /skip
    CONTACT --> CONFIRM: text or /skip
    CONFIRM --> [*]: save / cancel
    CONFIRM --> NAME: edit a field (then back to CONFIRM)
```
Every state: /cancel discards the draft; a wrong kind of input is answered and the step stays.

Outside the conversations: an escalation reaches the grid's supervisors with one message per
escalated finding carrying outcome buttons (`po:<finding>:<current>:<new>[:<days>]`, a
compare-and-set on the current outcome); `/shop NAME` shows a shop card (`shop:<id>` buttons).
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

from bot.chat import Button, Buttons, Inbound
from bot.context import GridContext
from bot.engine import Command, OnButton
from bot.i18n import N_, gettext_for, resolve_language
from handlers.common import address_of, esc, local_time, requires
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
    notify,
    paged_markup,
    register_flow,
    rule_message,
    send_stored_photo,
    summary_line,
    tell_outcome,
    undo_row,
    with_row,
)
from handlers.issues import report_button
from jobs import reinspection
from models import clock, vocabulary
from models.checklist import CATEGORY_LABELS, ITEM_LABELS, SHOP_CATEGORIES, category_label, item_label
from models.errors import RuleError
from models.patrols import (
    MAX_PHOTOS,
    RECTIFY_DAYS,
    Disposition,
    FindingContext,
    FindingView,
    Outcome,
    PatrolDraft,
    PatrolView,
    Recipient,
    Risk,
    SavedPatrol,
    ShopDraft,
    ShopRow,
    add_shop,
    finding_context,
    get_shop,
    grid_supervisors,
    patrol_view,
    patroller,
    risk_level,
    save_patrol,
    search_shops,
    set_outcome,
    shop_card,
    validate_contact,
    validate_licence,
    validate_note,
    validate_shop_address,
    validate_shop_name,
)
from models.tables import Role
from models.text import mask_id_numbers, one_line
from models.users import grids_by_ids, scope_grid_ids

log = logging.getLogger(__name__)

SHOP, NEW_NAME, NEW_ADDRESS, NEW_GRID, NEW_CATEGORY = "SHOP", "NEW_NAME", "NEW_ADDRESS", "NEW_GRID", "NEW_CATEGORY"
CHECKLIST, DISPOSITION, NOTE, PHOTOS, CONFIRM = "CHECKLIST", "DISPOSITION", "NOTE", "PHOTOS", "CONFIRM"
NAME, ADDRESS, GRID, CATEGORY, LICENCE, CONTACT, ADD_CONFIRM = "NAME", "ADDRESS", "GRID", "CATEGORY", "LICENCE", "CONTACT", "CONFIRM"
PAGE_SIZE = 6
SHOP_LIST_SIZE = 8

DISPOSITION_LABELS = {Disposition(code): w.en for code, w in vocabulary.DISPOSITION.items()}  # models/vocabulary
OUTCOME_LABELS = {Outcome(code): w.en for code, w in vocabulary.OUTCOME.items()}
RISK_LABELS = {Risk.LOW: N_("Low"), Risk.MEDIUM: N_("Medium"), Risk.HIGH: N_("High")}
OUTCOME_CODES = {"p": Outcome.PENDING, "r": Outcome.RECTIFY, "f": Outcome.FINED, "s": Outcome.SUSPENDED}
CODE_OF = {v.value: k for k, v in OUTCOME_CODES.items()}
RULE_MESSAGES = {
    "shop_name_length": N_("The shop name must be {min} to {max} characters, e.g. 老王面馆."),
    "shop_address_length": N_("The address must be {min} to {max} characters, e.g. 幸福路12号."),
    "licence_length": N_("The licence number can be at most {max} characters."),
    "contact_length": N_("The contact can be at most {max} characters."),
    "note_length": N_("A note can be at most {max} characters; yours has {n}. Please shorten it."),
    "shop_exists": N_("«{name}» at this address is already registered in that grid."),
}


def shop_line(shop: ShopRow | dict) -> str:
    if isinstance(shop, dict):
        return esc(f"{shop['name']} · {shop['address']}")
    return esc(f"{shop.name} · {shop.address} · {shop.grid_code}")


# -- shared: entering a new shop (the patrol's "add on the spot" and /shop_add) ----------------

# The step that follows each shop-entry step, per flow.
NEXT = {
    "patrol": {"name": NEW_ADDRESS, "grid": NEW_GRID, "category": NEW_CATEGORY, "after": CHECKLIST},
    "shop_add": {"name": ADDRESS, "grid": GRID, "category": CATEGORY, "after": LICENCE},
}


async def ask_shop_name(event: Inbound, context: GridContext, draft: dict) -> None:
    await context.reply(context._("🏪 The shop's name as on its sign, e.g. <code>老王面馆</code>."))


async def shop_name_text(event: Inbound, context: GridContext, draft: dict) -> str | None:
    try:
        name = validate_shop_name(event.text)
    except RuleError as err:
        await context.reply(rule_message(context, err, RULE_MESSAGES))
        return STAY
    draft["data"].setdefault("new_shop", {})["name"] = name
    return NEXT[draft["flow"]]["name"]


async def ask_shop_address(event: Inbound, context: GridContext, draft: dict) -> None:
    await context.reply(context._("📍 The shop's address, e.g. <code>幸福路12号</code>."))


async def shop_address_text(event: Inbound, context: GridContext, draft: dict) -> str | None:
    try:
        address = validate_shop_address(event.text)
    except RuleError as err:
        await context.reply(rule_message(context, err, RULE_MESSAGES))
        return STAY
    data = draft["data"]
    data["new_shop"]["address"] = address
    if len(data["grid_ids"]) == 1:
        data["new_shop"]["grid_id"] = data["grid_ids"][0]
        if data["new_shop"].get("category"):  # editing the address of a shop being added
            return NEXT[draft["flow"]]["after"]
        return NEXT[draft["flow"]]["category"]
    return NEXT[draft["flow"]]["grid"]


async def ask_shop_grid(event: Inbound, context: GridContext, draft: dict) -> None:
    async with context.db.session() as session:
        grids = await grids_by_ids(session, draft["data"]["grid_ids"])
    await context.reply(context._("Which grid is this shop in?"),
                markup=keyboard([[button(f"{g.code} · {g.name}", draft, "grid", g.id)] for g in grids]))


async def shop_grid_button(event: Inbound, context: GridContext, draft: dict, action: str, arg: str) -> str | None:
    data = draft["data"]
    if action != "grid" or not arg.isdigit() or int(arg) not in data["grid_ids"]:
        return STALE
    async with context.db.session() as session:
        (grid,) = await grids_by_ids(session, [int(arg)])
    data["new_shop"].update(grid_id=grid.id, grid_code=grid.code)
    await context.edit(context._("Grid: {grid}").format(grid=esc(f"{grid.code} · {grid.name}")))
    if draft["flow"] == "shop_add" and data["new_shop"].get("category"):
        return NEXT[draft["flow"]]["after"]
    return NEXT[draft["flow"]]["category"]


async def ask_shop_category(event: Inbound, context: GridContext, draft: dict) -> None:
    rows = [[button(context._(CATEGORY_LABELS[c]), draft, "cat", i)] for i, c in enumerate(SHOP_CATEGORIES)]
    await context.reply(context._("What kind of shop is it?"), markup=keyboard(rows))


async def shop_category_button(event: Inbound, context: GridContext, draft: dict, action: str, arg: str) -> str | None:
    if action != "cat" or not arg.isdigit() or int(arg) >= len(SHOP_CATEGORIES):
        return STALE
    category = SHOP_CATEGORIES[int(arg)]
    data = draft["data"]
    data["new_shop"]["category"] = category
    await context.edit(context._("Category: {category}").format(category=category_label(context._, category)))
    if draft["flow"] == "patrol":
        data.update(shop_id=None, grid_id=data["new_shop"]["grid_id"])
        _use_category(context, draft, category)
    return NEXT[draft["flow"]]["after"]


# -- /patrol step 1: shop ---------------------------------------------------------------------


async def ask_shop(event: Inbound, context: GridContext, draft: dict) -> None:
    await context.reply(
        context._("🏪 <b>Step 1/5 · Shop</b>\nType part of the shop's name or address to find it, or add a new shop."),
        markup=keyboard([[button(context._("➕ New shop"), draft, "new")]]),
    )


async def _results(context: GridContext, draft: dict) -> tuple[str, Buttons]:
    data = draft["data"]
    query, page = data["query"], data.get("page", 0)
    async with context.db.session() as session:
        rows, total = await search_shops(session, data["grid_ids"], query, page * PAGE_SIZE, PAGE_SIZE)
    if total == 0:
        text = context._("No shop of your grids matches «{query}». Try another part of the name or address, or add it as a new shop.").format(
            query=esc(query))
    else:
        text = context._("Shops matching «{query}»: {total} (page {page}/{pages}). Pick one:").format(
            query=esc(query), total=total, page=page + 1, pages=math.ceil(total / PAGE_SIZE))
    choices = [(f"{r.name} · {r.address} · {r.grid_code}", r.id) for r in rows]
    return text, paged_markup(context, draft, choices, page, total, PAGE_SIZE, [button(context._("➕ New shop"), draft, "new")])


async def shop_text(event: Inbound, context: GridContext, draft: dict) -> str | None:
    query = mask_id_numbers(one_line(event.text))[:100]  # as the household search: control characters dropped, ID numbers masked
    if not query:
        await context.reply(context._("Type at least one character of the shop's name or address."))
        return STAY
    draft["data"].update(query=query, page=0)
    text, markup = await _results(context, draft)
    await context.reply(text, markup=markup)
    return STAY


def _use_category(context: GridContext, draft: dict, category: str) -> None:
    """Take the category's checklist; a different checklist means the checklist is asked again."""
    data = draft["data"]
    if data.get("category") == category and data.get("checklist"):
        return
    data["category"] = category
    data["checklist"] = [i.as_dict() for i in context.settings.patrol_checklist[category]]
    data.update(failed=[], findings=[], disp_index=0)
    draft["editing"] = False  # a new checklist must be filled in, not skipped back to the summary


async def shop_button(event: Inbound, context: GridContext, draft: dict, action: str, arg: str) -> str | None:
    data = draft["data"]
    if action == "new":
        data["new_shop"] = {}
        return NEW_NAME
    if action == "page" and arg.isdigit() and "query" in data:
        data["page"] = int(arg)
        text, markup = await _results(context, draft)
        await context.edit(text, markup)
        return STAY
    if action == "pick" and arg.isdigit():
        async with context.db.session() as session:
            shop = await get_shop(session, int(arg), data["grid_ids"])
        if shop is None:
            context.notice = context._("That shop is not in your grids (or no longer active).")
            return STAY
        data.update(shop_id=shop.id, grid_id=shop.grid_id, new_shop=None,
                    shop={"name": shop.name, "address": shop.address, "grid_code": shop.grid_code})
        await context.edit(context._("🏪 Shop: {shop}").format(shop=shop_line(shop)))
        _use_category(context, draft, shop.category)
        return CHECKLIST
    return STALE


# -- step 2: checklist ------------------------------------------------------------------------


def _checklist_markup(context: GridContext, draft: dict) -> Buttons:
    failed = draft["data"]["failed"]
    rows = [
        [button(("❌ " if i["name"] in failed else "✅ ") + context._(ITEM_LABELS.get(i["name"], i["name"])) + (" ★" if i["key"] else ""), draft, "t", n)]
        for n, i in enumerate(draft["data"]["checklist"])
    ]
    rows.append([button(context._("Done ✔️"), draft, "done")])
    return keyboard(rows)


async def ask_checklist(event: Inbound, context: GridContext, draft: dict) -> None:
    data = draft["data"]
    await context.reply(
        context._("📋 <b>Step 2/5 · Checklist</b> ({category})\nEvery item starts as passed ✅. Tap each item that fails to mark it ❌ "
                  "(tap again to undo), then Done. ★ = key item.").format(category=category_label(context._, data["category"])),
        markup=_checklist_markup(context, draft),
    )


def _checklist_summary(context: GridContext, data: dict) -> str:
    total, failed = len(data["checklist"]), data["failed"]
    text = context._("{passed}/{total} passed").format(passed=total - len(failed), total=total)
    if failed:
        text += " · " + context._("failed: {items}").format(items="、".join(item_label(context._, f) for f in failed))
    return text


async def checklist_button(event: Inbound, context: GridContext, draft: dict, action: str, arg: str) -> str | None:
    data = draft["data"]
    names = [i["name"] for i in data["checklist"]]
    if action == "t":
        if not arg.isdigit() or int(arg) >= len(names):
            return STALE
        name = names[int(arg)]
        if name in data["failed"]:
            data["failed"].remove(name)
        else:
            data["failed"].append(name)
        data["failed"].sort(key=names.index)
        await context.edit(None, _checklist_markup(context, draft))
        return STAY
    if action == "done":
        await context.edit(context._("📋 Checklist: {result}").format(result=_checklist_summary(context, data)))
        data["findings"] = [{"item": name, "disposition": None, "note": None} for name in data["failed"]]
        data["disp_index"] = 0
        return DISPOSITION if data["findings"] else PHOTOS
    return STALE


# -- step 3: what was done about each failed item ----------------------------------------------


async def ask_disposition(event: Inbound, context: GridContext, draft: dict) -> None:
    data = draft["data"]
    idx = data["disp_index"]
    item = data["findings"][idx]["item"]
    await context.reply(
        context._("⚠️ <b>Step 3/5 · Failed item {n}/{total}</b>: {item}\nDid you correct it on the spot, or does it need "
                  "escalating to the street office / market regulator?").format(n=idx + 1, total=len(data["findings"]), item=item_label(context._, item)),
        markup=keyboard([[button(context._("✔️ Corrected on the spot"), draft, "c", idx), button(context._("📣 Escalate"), draft, "e", idx)]]),
    )


async def disposition_button(event: Inbound, context: GridContext, draft: dict, action: str, arg: str) -> str | None:
    data = draft["data"]
    if action not in ("c", "e") or arg != str(data["disp_index"]):
        return STALE
    finding = data["findings"][data["disp_index"]]
    finding["disposition"] = Disposition.CORRECTED.value if action == "c" else Disposition.ESCALATED.value
    await context.edit("⚠️ {item}: {what}".format(
        item=item_label(context._, finding["item"]), what=esc(context._(DISPOSITION_LABELS[Disposition(finding["disposition"])]))))
    return NOTE


async def ask_note(event: Inbound, context: GridContext, draft: dict) -> None:
    data = draft["data"]
    item = data["findings"][data["disp_index"]]["item"]
    await context.reply(context._("📝 A note on «{item}» (what you saw, what was agreed), or /skip.").format(item=item_label(context._, item)))


async def _next_finding(draft: dict) -> str:
    data = draft["data"]
    data["disp_index"] += 1
    return DISPOSITION if data["disp_index"] < len(data["findings"]) else PHOTOS


async def note_text(event: Inbound, context: GridContext, draft: dict) -> str | None:
    try:
        note = validate_note(event.text)
    except RuleError as err:
        await context.reply(rule_message(context, err, RULE_MESSAGES))
        return STAY
    draft["data"]["findings"][draft["data"]["disp_index"]]["note"] = note
    return await _next_finding(draft)


async def note_skip(event: Inbound, context: GridContext, draft: dict) -> str | None:
    draft["data"]["findings"][draft["data"]["disp_index"]]["note"] = None
    return await _next_finding(draft)


# -- step 4: photos ---------------------------------------------------------------------------


async def ask_photos(event: Inbound, context: GridContext, draft: dict) -> None:
    await context.reply(context._("📷 <b>Step 4/5 · Photos</b>\nSend photos of what you found (none is fine), then /done."))


async def photo_received(event: Inbound, context: GridContext, draft: dict) -> str | None:
    return await add_photo(event, context, draft["data"].setdefault("photos", []), MAX_PHOTOS)


async def photos_done(event: Inbound, context: GridContext, draft: dict) -> str | None:
    return CONFIRM


# -- step 5: summary --------------------------------------------------------------------------


def _finding_line(_, f: dict) -> str:  # noqa: ANN001
    line = "• {item}: {what}".format(item=item_label(_, f["item"]), what=esc(_(DISPOSITION_LABELS[Disposition(f["disposition"])])))
    return line + (f" — {esc(f['note'])}" if f.get("note") else "")


def _draft_items(data: dict) -> list[dict]:
    return [{**i, "passed": i["name"] not in data["failed"]} for i in data["checklist"]]


def summary_text(context: GridContext, draft: dict) -> str:
    d = draft["data"]
    if d.get("new_shop"):
        place = shop_line(d["new_shop"]) + " " + context._("(new shop)")
    else:
        place = esc(f"{d['shop']['name']} · {d['shop']['address']} · {d['shop']['grid_code']}")
    risk = risk_level(_draft_items(d))
    lines = [
        context._("🧾 <b>Step 5/5 · Check and save the patrol</b>"),
        summary_line(context._("Shop"), place),
        summary_line(context._("Category"), category_label(context._, d["category"])),
        summary_line(context._("Patrolled at"), local_time(context, datetime.fromisoformat(d["patrolled_at"]))),
        summary_line(context._("Checklist"), _checklist_summary(context, d)),
    ]
    lines += [_finding_line(context._, f) for f in d["findings"]]
    lines.append(summary_line(context._("Photos"), str(len(d.get("photos", [])))))
    if risk is not None:
        lines.append(summary_line(context._("Risk level (internal aid)"), esc(context._(RISK_LABELS[risk]))))
    return "\n".join(lines)


EDITABLE = [(SHOP, N_("Shop")), (CHECKLIST, N_("Checklist")), (DISPOSITION, N_("Failed items")), (PHOTOS, N_("Photos"))]


def _editable(context: GridContext, draft: dict) -> list[tuple[str, str]]:
    return [(step, label) for step, label in EDITABLE if step != DISPOSITION or draft["data"]["findings"]]


def _on_edit(draft: dict, step: str) -> None:
    if step == PHOTOS:
        draft["data"]["photos"] = []  # editing photos means sending the set again
    if step == DISPOSITION:
        draft["data"]["disp_index"] = 0


async def _save(event: Inbound, context: GridContext, draft: dict) -> str | None:
    d, member = draft["data"], context.member
    assert member is not None
    patrol = PatrolDraft(
        draft_id=draft["id"], worker_id=member.id, patrolled_at=datetime.fromisoformat(d["patrolled_at"]),
        items=_draft_items(d), findings=[dict(f) for f in d["findings"]], shop_id=d.get("shop_id"),
        new_shop=d.get("new_shop"), photos=d.get("photos", []),
    )
    async with context.db.session() as session:
        scope = await scope_grid_ids(session, member)
        if patrol.shop_id is not None and await get_shop(session, patrol.shop_id, scope) is None:
            context.notice = context._("That shop is no longer in your grids; edit the shop.")
            return STAY
        if patrol.new_shop is not None and patrol.new_shop["grid_id"] not in scope:
            context.notice = context._("You no longer work in that grid; edit the shop.")
            return STAY
        saved = await save_patrol(session, patrol)
    # The record is committed; whatever happens to the messages below, it stays saved once.
    lines = [context._("✅ Patrol #{id} saved. Thank you! /patrol logs the next one, /shop shows a shop's record.").format(id=saved.patrol_id)]
    if saved.escalated:
        lines.append(context._("📣 The escalated items went to your grid's supervisors."))
    for r in saved.reinspections:
        lines.append(_reinspection_line(context._, r))
    markup = None
    if d["findings"] and member.role == Role.WORKER:
        # A problem found on the patrol can become an issue report, with the patrol's photos.
        shop_address = (d.get("shop") or d.get("new_shop") or {}).get("address")
        button_ = report_button(context, context._("📝 Report an issue from this patrol"), location=None, photos=d.get("photos", []),
                                grid_id=d["grid_id"], source="patrol", source_id=saved.patrol_id, address=shop_address)
        markup = Buttons.of([[button_]])
    markup = with_row(markup, undo_row(context, "patrol", saved.patrol_id, edit=False))  # ↩️ for a patrol saved by mistake
    await tell_outcome(event, context, draft, [("\n".join(lines), markup)],
                       summary=summary_text(context, draft) + "\n\n" + context._("✅ Saved as patrol #{id}.").format(id=saved.patrol_id))
    if saved.created:
        await notify_supervisors(context, saved)
    return END


SUMMARY = Summary(text=summary_text, fields=_editable, save=_save, on_edit=_on_edit)


def _reinspection_line(_, r) -> str:  # noqa: ANN001
    if r.closed:
        return _("🔁 Re-inspection: the rectification order for «{item}» is closed; every previously escalated item passes now.").format(
            item=item_label(_, r.item))
    return _("🔁 Re-inspection: the rectification order for «{item}» stays open; still failing: {failing}.").format(
        item=item_label(_, r.item), failing="、".join(item_label(_, i) for i in r.failing))


# -- escalations reach the supervisors ---------------------------------------------------------


def _voice(context: GridContext, recipient: Recipient):  # noqa: ANN202
    return gettext_for(resolve_language(recipient.language, None, context.settings.default_language))


def escalation_text(_, view: PatrolView, tz) -> str:  # noqa: ANN001
    lines = [
        _("📣 <b>Escalation from patrol #{id}</b>").format(id=view.id),
        _("Shop: {shop}").format(shop=shop_line(view.shop)),
        _("Patrolled by {worker} at {at}").format(worker=esc(view.worker_name or "?"), at=view.patrolled_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")),
        _("Checklist: {passed}/{total} passed").format(passed=sum(1 for i in view.items if i["passed"]), total=len(view.items)),
    ]
    for f in view.findings:
        lines.append(_finding_line(_, {"item": f.item, "disposition": f.disposition, "note": f.note}))
    lines.append(_("Photos: {n}").format(n=len(view.photos)))
    return "\n".join(lines)


def finding_text(_, fc: FindingContext, tz) -> str:  # noqa: ANN001
    f = fc.finding
    lines = [
        _("📣 <b>Escalated finding #{id}</b>: {item}").format(id=f.id, item=item_label(_, f.item) + (" ★" if f.key else "")),
        _("Shop: {shop}").format(shop=shop_line(fc.shop)),
    ]
    if f.note:
        lines.append(_("Note: {note}").format(note=esc(f.note)))
    outcome = Outcome(f.outcome or Outcome.PENDING)
    text = _("Outcome: <b>{outcome}</b>").format(outcome=esc(_(OUTCOME_LABELS[outcome])))
    if outcome == Outcome.RECTIFY and f.deadline is not None:
        text += " · " + _("deadline {date}").format(date=f.deadline.astimezone(tz).strftime("%Y-%m-%d"))
        if f.order_status == "closed":
            text += " · " + _("closed by a re-inspection")
    if f.outcome_by_name and f.outcome_at:
        text += " · " + _("recorded by {name} at {at}").format(name=esc(f.outcome_by_name), at=f.outcome_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"))
    lines.append(text)
    return "\n".join(lines)


def outcome_markup(_, f: FindingView) -> Buttons:  # noqa: ANN001
    current = CODE_OF[f.outcome or Outcome.PENDING.value]
    labels = [("r", _("🛠 Rectify on site")), ("f", _("💴 Fined")), ("s", _("🚫 Close for rectification"))]
    return Buttons.of([[
        Button(("✔️ " if code == current else "") + label, data=f"po:{f.id}:{current}:{code}") for code, label in labels
    ]])


def deadline_markup(_, f: FindingView, default_days: int) -> Buttons:  # noqa: ANN001
    current = CODE_OF[f.outcome or Outcome.PENDING.value]
    days = sorted({1, 3, 7, default_days})
    row = [
        Button((_("1 day") if n == 1 else _("{n} days").format(n=n)) + (" ⭐" if n == default_days else ""),
                             data=f"po:{f.id}:{current}:r:{n}")
        for n in days
    ]
    return Buttons.of([row, [Button(_("↩️ Back"), data=f"po:{f.id}:{current}:back")]])


async def _send(context: GridContext, who: Recipient, text: str, markup: Buttons | None = None) -> bool:
    return await notify(context, who, text, markup)


async def notify_supervisors(context: GridContext, saved: SavedPatrol) -> None:
    """Escalations (with photos and outcome buttons) and re-inspection results, to the grid's supervisors."""
    if not saved.escalated and not saved.reinspections:
        return
    tz = context.settings.tz
    async with context.db.session() as session:
        view = await patrol_view(session, saved.patrol_id)
        assert view is not None
        recipients = await grid_supervisors(session, view.shop.grid_id)
        contexts = [await finding_context(session, fid) for fid in saved.escalated]
    for r in recipients:
        _ = _voice(context, r)
        if saved.escalated:
            here = r.key_on(context.channel.name) is not None  # else they hear it on their own platform, by the outbox
            if not await _send(context, r, escalation_text(_, view, tz)) and here:
                continue
            for photo in view.photos if here else ():
                await send_stored_photo(context, address_of(r, context.channel.name), photo["file_id"], photo["sha256"])
            for fc in contexts:
                if fc is not None:
                    await _send(context, r, finding_text(_, fc, tz), markup=outcome_markup(_, fc.finding))
        if saved.reinspections:
            lines = [_("🔁 <b>Re-inspection</b> of {shop} by {worker}, patrol #{id}:").format(
                shop=shop_line(view.shop), worker=esc(view.worker_name or "?"), id=view.id)]
            lines += [_reinspection_line(_, x) for x in saved.reinspections]
            await _send(context, r, "\n".join(lines))


def _may_decide(member, grid_id: int) -> bool:  # noqa: ANN001
    return member is not None and member.active and (
        member.role == Role.ADMIN or (member.role == Role.SUPERVISOR and grid_id in member.grid_ids))


async def outcome_button(event: Inbound, context: GridContext) -> None:
    """`po:<finding>:<current>:<new>[:<days>]`, `po:<finding>:<current>:back`: record an enforcement outcome."""
    parts = event.button.split(":")
    if len(parts) not in (4, 5) or not parts[1].isdigit() or parts[2] not in OUTCOME_CODES or parts[3] not in ("r", "f", "s", "back"):
        await context.toast(context._("This button has expired."))
        return
    finding_id, cur, new = int(parts[1]), parts[2], parts[3]
    tz, default_days = context.settings.tz, context.settings.rectify_days_default
    async with context.db.session() as session:
        fc = await finding_context(session, finding_id)
    if fc is None:
        await context.toast(context._("This finding no longer exists."))
        return
    if not _may_decide(context.member, fc.shop.grid_id):
        await context.toast(context._("Only the supervisors of grid {grid} or an administrator can record the outcome.").format(grid=fc.shop.grid_code),
                           alert=True)
        return
    _ = context._
    if cur != CODE_OF[fc.finding.outcome or Outcome.PENDING.value]:
        await context.toast(_("The outcome was already recorded meanwhile; here is the current state."))
        await context.edit(finding_text(_, fc, tz), outcome_markup(_, fc.finding))
        return
    if new == "back":
        await context.toast()
        await context.edit(None, outcome_markup(_, fc.finding))
        return
    deadline = None
    if new == "r":
        if len(parts) == 4:
            await context.toast(_("Choose the deadline of the rectification."))
            await context.edit(None, deadline_markup(_, fc.finding, default_days))
            return
        if not parts[4].isdigit() or not RECTIFY_DAYS[0] <= int(parts[4]) <= RECTIFY_DAYS[1]:
            await context.toast(_("This button has expired."))
            return
        deadline = clock.now() + timedelta(days=int(parts[4]))
    elif len(parts) == 5:
        await context.toast(_("This button has expired."))
        return
    outcome = OUTCOME_CODES[new]
    async with context.db.session() as session:
        done = await set_outcome(session, finding_id, fc.finding.outcome or Outcome.PENDING.value, outcome, context.member.id, deadline)
        fc = await finding_context(session, finding_id)
    assert fc is not None
    if done:
        await context.toast(_("Recorded: {outcome}.").format(outcome=_(OUTCOME_LABELS[outcome])))
        async with context.db.session() as session:
            worker = await patroller(session, fc.patrol_id)
        if worker is not None and worker.user_id != context.member.id:
            # The worker who escalated it hears what came of it.
            w_ = _voice(context, worker)
            await _send(context, worker, w_("📬 What came of the finding you escalated:") + "\n" + finding_text(w_, fc, tz))
    else:
        await context.toast(_("The outcome was already recorded meanwhile; here is the current state."))
    await context.edit(finding_text(_, fc, tz), outcome_markup(_, fc.finding))


# -- the patrol flow --------------------------------------------------------------------------


async def begin_patrol(event: Inbound, context: GridContext) -> dict | None:
    member = context.member
    assert member is not None
    async with context.db.session() as session:
        grid_ids = await scope_grid_ids(session, member)
    if not grid_ids:
        await context.reply(context._("You have no grid yet, so there are no shops to patrol. Ask an administrator to assign you a grid."))
        return None
    return {"grid_ids": grid_ids, "patrolled_at": clock.now().isoformat(), "failed": [], "findings": [], "photos": []}


PATROL_FLOW = register_flow(Flow(
    name="patrol",
    title=N_("food-safety patrol"),
    command="patrol",
    confirm=CONFIRM,
    begin=begin_patrol,
    steps=[
        Step(SHOP, ask_shop, N_("part of a shop's name or address to search, or a button"), on_text=shop_text, on_button=shop_button),
        Step(NEW_NAME, ask_shop_name, N_("the new shop's name as text"), on_text=shop_name_text, main=False),
        Step(NEW_ADDRESS, ask_shop_address, N_("the new shop's address as text"), on_text=shop_address_text, main=False),
        Step(NEW_GRID, ask_shop_grid, N_("a grid, chosen with the buttons"), on_button=shop_grid_button, main=False),
        Step(NEW_CATEGORY, ask_shop_category, N_("a shop category, chosen with the buttons"), on_button=shop_category_button, main=False),
        Step(CHECKLIST, ask_checklist, N_("checklist items tapped to mark them failed, then Done"), on_button=checklist_button),
        Step(DISPOSITION, ask_disposition, N_("a choice with the buttons: corrected on the spot or escalate"), on_button=disposition_button, main=False),
        Step(NOTE, ask_note, N_("a note as text, or /skip"), on_text=note_text, on_skip=note_skip, main=False),
        Step(PHOTOS, ask_photos, N_("photos, then /done"), on_photo=photo_received, on_done=photos_done, on_skip=photos_done),
        Step(CONFIRM, SUMMARY.ask, N_("a choice from the summary buttons: save, edit or cancel"), on_button=SUMMARY.on_button),
    ],
))


# -- /shop_add --------------------------------------------------------------------------------


async def begin_shop_add(event: Inbound, context: GridContext) -> dict | None:
    member = context.member
    assert member is not None
    if member.role not in (Role.SUPERVISOR, Role.ADMIN):
        await context.reply(context._("This command is not available for your role. Send /help to see yours."))
        return None
    async with context.db.session() as session:
        grid_ids = await scope_grid_ids(session, member)
    if not grid_ids:
        await context.reply(context._("There is no grid to add a shop to yet. Create one with /grid_add first."))
        return None
    await context.reply(context._("🏪 <b>Register a shop</b> (/cancel to stop)."))
    return {"grid_ids": grid_ids, "new_shop": {}}


async def ask_licence(event: Inbound, context: GridContext, draft: dict) -> None:
    await context.reply(context._("🪪 The food business licence number, or /skip."))


async def licence_text(event: Inbound, context: GridContext, draft: dict) -> str | None:
    try:
        draft["data"]["new_shop"]["licence_no"] = validate_licence(event.text)
    except RuleError as err:
        await context.reply(rule_message(context, err, RULE_MESSAGES))
        return STAY
    return CONTACT


async def licence_skip(event: Inbound, context: GridContext, draft: dict) -> str | None:
    draft["data"]["new_shop"]["licence_no"] = None
    return CONTACT


async def ask_contact(event: Inbound, context: GridContext, draft: dict) -> None:
    await context.reply(context._("☎️ A contact person or phone number, or /skip."))


async def contact_text(event: Inbound, context: GridContext, draft: dict) -> str | None:
    try:
        draft["data"]["new_shop"]["contact"] = validate_contact(event.text)
    except RuleError as err:
        await context.reply(rule_message(context, err, RULE_MESSAGES))
        return STAY
    return ADD_CONFIRM


async def contact_skip(event: Inbound, context: GridContext, draft: dict) -> str | None:
    draft["data"]["new_shop"]["contact"] = None
    return ADD_CONFIRM


ADD_EDITABLE = [(NAME, N_("Name")), (ADDRESS, N_("Address")), (GRID, N_("Grid")), (CATEGORY, N_("Category")),
                (LICENCE, N_("Licence number")), (CONTACT, N_("Contact"))]


def shop_add_summary(context: GridContext, draft: dict) -> str:
    s = draft["data"]["new_shop"]
    return "\n".join([
        context._("🧾 <b>Check and register the shop</b>"),
        summary_line(context._("Name"), esc(s["name"])),
        summary_line(context._("Address"), esc(s["address"])),
        summary_line(context._("Grid"), esc(s.get("grid_code") or "")) if len(draft["data"]["grid_ids"]) > 1 else "",
        summary_line(context._("Category"), category_label(context._, s["category"])),
        summary_line(context._("Licence number"), esc(s["licence_no"]) if s.get("licence_no") else "—"),
        summary_line(context._("Contact"), esc(s["contact"]) if s.get("contact") else "—"),
    ]).replace("\n\n", "\n")


async def _save_shop(event: Inbound, context: GridContext, draft: dict) -> str | None:
    s, member = draft["data"]["new_shop"], context.member
    try:
        async with context.db.session() as session:
            if s["grid_id"] not in await scope_grid_ids(session, member):
                context.notice = context._("You no longer work in that grid; edit the grid.")
                return STAY
            shop = await add_shop(session, ShopDraft(s["grid_id"], s["name"], s["address"], s["category"], s.get("licence_no"), s.get("contact")),
                                  member.id)
            shop_id = shop.id
    except RuleError as err:
        await context.reply(rule_message(context, err, RULE_MESSAGES))
        return STAY
    await tell_outcome(event, context, draft, [],
                       summary=shop_add_summary(context, draft) + "\n\n" + context._("✅ Registered as shop #{id}.").format(id=shop_id))
    return END


def _add_editable(context: GridContext, draft: dict) -> list[tuple[str, str]]:
    return [(step, label) for step, label in ADD_EDITABLE if step != GRID or len(draft["data"]["grid_ids"]) > 1]


ADD_SUMMARY = Summary(text=shop_add_summary, fields=_add_editable, save=_save_shop)


SHOP_ADD_FLOW = register_flow(Flow(
    name="shop_add",
    title=N_("shop registration"),
    command="shop_add",
    confirm=ADD_CONFIRM,
    begin=begin_shop_add,
    steps=[
        Step(NAME, ask_shop_name, N_("the shop's name as text"), on_text=shop_name_text),
        Step(ADDRESS, ask_shop_address, N_("the shop's address as text"), on_text=shop_address_text),
        Step(GRID, ask_shop_grid, N_("a grid, chosen with the buttons"), on_button=shop_grid_button),
        Step(CATEGORY, ask_shop_category, N_("a shop category, chosen with the buttons"), on_button=shop_category_button),
        Step(LICENCE, ask_licence, N_("the licence number as text, or /skip"), on_text=licence_text, on_skip=licence_skip),
        Step(CONTACT, ask_contact, N_("a contact as text, or /skip"), on_text=contact_text, on_skip=contact_skip),
        Step(ADD_CONFIRM, ADD_SUMMARY.ask, N_("a choice from the summary buttons: save, edit or cancel"), on_button=ADD_SUMMARY.on_button),
    ],
))


# -- /shop ------------------------------------------------------------------------------------


def card_text(context: GridContext, card) -> str:  # noqa: ANN001 - models.patrols.ShopCard
    _, shop = context._, card.shop
    lines = [
        f"🏪 <b>{esc(shop.name)}</b>",
        esc(f"{shop.address} · {shop.grid_code}"),
        summary_line(_("Category"), category_label(_, shop.category)),
    ]
    if shop.licence_no:
        lines.append(summary_line(_("Licence number"), esc(shop.licence_no)))
    if shop.contact:
        lines.append(summary_line(_("Contact"), esc(shop.contact)))
    if card.risk is None:
        lines.append(summary_line(_("Risk level"), _("not patrolled yet")))
    else:
        lines.append(summary_line(_("Risk level"), esc(_(RISK_LABELS[card.risk])))
                     + " " + _("(an internal aid from the latest patrol, not the regulator's official grade)"))
    for item, deadline in card.open_orders:
        lines.append(_("🛠 Open rectification order: {item}, deadline {date}").format(item=item_label(_, item), date=local_time(context, deadline, "%Y-%m-%d")))
    lines += ["", _("<b>Last patrols</b>") if card.patrols else _("No patrols yet.")]
    for p in card.patrols:
        failed = p.findings
        line = _("#{id} {at} · {worker} · {passed}/{total} passed").format(
            id=p.id, at=local_time(context, p.patrolled_at), worker=esc(p.worker_name or "?"),
            passed=sum(1 for i in p.items if i["passed"]), total=len(p.items))
        if failed:
            parts = []
            for f in failed:
                what = _(DISPOSITION_LABELS[Disposition(f.disposition)])
                if f.disposition == Disposition.ESCALATED:
                    what += " → " + _(OUTCOME_LABELS[Outcome(f.outcome or Outcome.PENDING)])
                parts.append(f"{item_label(_, f.item)} ({esc(what)})")
            line += "\n   " + "、".join(parts)
        lines.append(line)
    return "\n".join(lines)


@requires(Role.WORKER, Role.SUPERVISOR, Role.ADMIN)
async def shop_command(event: Inbound, context: GridContext) -> None:
    query = one_line(" ".join(context.args or []))[:100]
    if not query.strip():
        await context.reply(context._("Usage: /shop NAME — part of a shop's name or address, e.g. /shop 面馆"))
        return
    member = context.member
    async with context.db.session() as session:
        scope = await scope_grid_ids(session, member)
        rows, total = await search_shops(session, scope, query, 0, SHOP_LIST_SIZE)
        card = await shop_card(session, rows[0].id, scope) if total == 1 else None
    if total == 0:
        await context.reply(context._("No shop of your grids matches «{query}».").format(query=esc(query)))
    elif card is not None:
        await context.reply(card_text(context, card))
    else:
        text = context._("Shops matching «{query}»: {total}. Pick one:").format(query=esc(query), total=total)
        if total > SHOP_LIST_SIZE:
            text += "\n" + context._("(the first {n}; add words to narrow the search)").format(n=SHOP_LIST_SIZE)
        await context.reply(text, markup=Buttons.of(
            [[Button(f"{r.name} · {r.address} · {r.grid_code}", data=f"shop:{r.id}")] for r in rows]))


async def shop_button_outside(event: Inbound, context: GridContext) -> None:
    member = context.member
    if member is None or not member.active:
        await context.toast()
        return
    async with context.db.session() as session:
        card = await shop_card(session, int((event.button or "shop:0").split(":")[1]), await scope_grid_ids(session, member))
    if card is None:
        await context.toast(context._("That shop is not in your grids (or no longer active)."))
        return
    await context.toast()
    await context.reply(card_text(context, card))


# -- start-up: the daily re-inspection reminder --------------------------------------------------


async def on_startup(runtime) -> None:  # noqa: ANN001
    """Schedule the daily re-inspection reminder; catch up today's if the bot starts after its time."""
    at = runtime.settings.reinspection_time
    runtime.scheduler.daily("reinspection-reminders", reinspection.daily_job, at)
    now = clock.now().astimezone(runtime.settings.tz)
    if now.timetz().replace(tzinfo=None) >= at.replace(tzinfo=None):
        runtime.scheduler.once("reinspection-reminders-catch-up", reinspection.daily_job, 30)


FLOWS = [PATROL_FLOW, SHOP_ADD_FLOW]
HANDLERS = [
    Command("shop", shop_command),
    OnButton(r"^po:", outcome_button),
    OnButton(r"^shop:\d+$", shop_button_outside),
]
