"""The /patrol conversation, escalations, outcome buttons, re-inspection: the real Application, real Updates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from jobs.reinspection import send_due_reminders
from models import clock
from models.patrols import Finding, FindingEvent, Patrol, Rectification, Shop
from sandbox.localapi import buttons
from tests.conftest import NOW, TOKEN, Tg, texts
from tests.seed import SUPERVISOR_A, WORKER_A, WORKER_B
from tests.seed_patrols import SUPERVISOR_B, seed_patrols

SH = ZoneInfo("Asia/Shanghai")
JPEG = b"\xff\xd8\xff\xe0" + b"patrol-photo" * 10
HYGIENE, SAMPLES, HEALTH = "Environmental hygiene", "Food sample retention", "Staff health certificates"


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH).astimezone(UTC)


async def rows(db, model) -> list:
    async with db.session() as s:
        return list((await s.exec(select(model).order_by(model.id))).all())


async def db_snapshot(db) -> tuple:
    """What the ledgers hold (persisted chat state is not a ledger)."""
    return (
        [(p.id, p.shop_id, p.items) for p in await rows(db, Patrol)],
        [(f.id, f.item, f.disposition, f.outcome) for f in await rows(db, Finding)],
        [(s.id, s.name, s.active) for s in await rows(db, Shop)],
        [(r.id, r.status) for r in await rows(db, Rectification)],
        [e.id for e in await rows(db, FindingEvent)],
    )


async def walk_to(u: Tg, step: str) -> None:
    """Fill the form up to `step` with valid answers: 老王面馆, hygiene corrected, samples escalated, one photo."""
    await u.send("/patrol")
    if step == "SHOP":
        return
    if step.startswith("NEW_"):
        await u.press("New shop")
        if step == "NEW_NAME":
            return
        await u.send("张姐早餐")
        if step == "NEW_ADDRESS":
            return
        await u.send("幸福路30号")
        assert step == "NEW_CATEGORY"
        return
    await u.send("面馆")
    await u.press("老王面馆")
    if step == "CHECKLIST":
        return
    await u.press(HYGIENE)
    await u.press(SAMPLES)
    await u.press("Done")
    if step == "DISPOSITION":
        return
    await u.press("Corrected on the spot")
    if step == "NOTE":
        return
    await u.send("Swept the kitchen floor with the owner")
    await u.press("Escalate")
    await u.send("No samples kept since Monday")
    if step == "PHOTOS":
        return
    await u.photo(JPEG)
    await u.send("/done")
    assert step == "CONFIRM"


async def tap(who: Tg, label: str, message: dict) -> list[dict]:
    """Press `label` on the current state of `message` (its keyboard may have changed)."""
    return await who.press(label, who.message(message["message_id"]))


async def patrol(u: Tg, shop: str, failed: dict[str, str] | None = None) -> list[dict]:
    """A whole patrol of `shop`: {item label: "c" | "e"} failed items, no notes or photos; returns the save's messages."""
    failed = failed or {}
    await u.send("/patrol")
    await u.send(shop)
    await u.press(shop)
    for label in failed:
        await u.press(label)
    await u.press("Done")
    for disposition in failed.values():
        await u.press("Corrected on the spot" if disposition == "c" else "Escalate")
        await u.send("/skip")
    await u.send("/done")
    return await u.press("Save")


async def test_patrol_with_a_correction_an_escalation_and_a_photo(app, api, db, settings):
    s = await seed_patrols(db)
    sup = Tg(app, api, SUPERVISOR_A)
    await sup.send("/help")  # the supervisor has a chat with the bot
    other_sup = Tg(app, api, SUPERVISOR_B)
    await other_sup.send("/help")
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "CONFIRM")
    summary = u.last
    assert "老王面馆 · 幸福路12号 · G01" in summary and "Checklist: 7/9 passed · failed: Environmental hygiene、Food sample retention" in summary
    assert "• Environmental hygiene: corrected on the spot — Swept the kitchen floor with the owner" in summary
    assert "• Food sample retention: escalated — No samples kept since Monday" in summary
    assert "Photos: 1" in summary and "Risk level (internal aid): Medium" in summary
    out = await u.press("Save")
    assert "Patrol #1 saved" in texts(out) and "escalated items went to your grid's supervisors" in texts(out)

    (p,) = await rows(db, Patrol)
    assert p.shop_id == s.shops_a[0] and p.worker_id == s.base.worker_a.id and p.patrolled_at == clock.now()
    assert [(i["name"], i["passed"]) for i in p.items if not i["passed"]] == [("环境卫生", False), ("食品留样", False)]
    assert len(p.items) == 9
    (photo,) = p.photos
    assert (settings.media_dir / photo["sha256"][:2] / f"{photo['sha256']}.jpg").read_bytes() == JPEG
    corrected, escalated = await rows(db, Finding)
    assert (corrected.item, corrected.disposition, corrected.outcome) == ("环境卫生", "corrected", None)
    assert corrected.note == "Swept the kitchen floor with the owner"
    assert (escalated.item, escalated.disposition, escalated.outcome) == ("食品留样", "escalated", "pending")
    assert u.draft is None and buttons(u.bot_messages()[-2]) == []

    # The grid's supervisor got the escalation: text, the photo, one message with outcome buttons per escalated finding.
    got = sup.bot_messages()[1:]
    assert "Escalation from patrol #1" in got[0]["text"] and "老王面馆" in got[0]["text"] and "Patrolled by 王芳" in got[0]["text"]
    assert "No samples kept since Monday" in got[0]["text"]
    assert "photo" in got[1] and got[1]["photo"][-1]["file_unique_id"] == photo["file_unique_id"]
    assert f"Escalated finding #{escalated.id}" in got[2]["text"] and "Outcome: pending" in got[2]["text"]
    assert [t for t, _ in buttons(got[2])] == ["🛠 Rectify on site", "💴 Fined", "🚫 Close for rectification"]
    assert len(got) == 3
    assert len(other_sup.bot_messages()) == 1  # grid B's supervisor heard nothing


async def test_supervisor_records_rectification_then_reminder_then_reinspection_closes(app, api, db):
    s = await seed_patrols(db)
    sup = Tg(app, api, SUPERVISOR_A)
    await sup.send("/help")
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "CONFIRM")
    await u.press("Save")
    card = sup.keyboard_message()
    (finding,) = [f for f in await rows(db, Finding) if f.disposition == "escalated"]

    # A worker, and a supervisor of another grid, may not record the outcome (the data forged in their own chat).
    rectify = next(d for t, d in buttons(card) if "Rectify" in t)
    for who in (WORKER_A, SUPERVISOR_B):
        other = Tg(app, api, who)
        await other.send("/help")
        await other.raw(api.press_button(TOKEN, who, other.bot_messages()[-1]["message_id"], rectify))
        assert "Only the supervisors of grid G01" in (api.callback_answers[-1].get("text") or "")
    assert (await rows(db, Finding))[1].outcome == "pending" and await rows(db, FindingEvent) == []

    await tap(sup, "Rectify on site", card)
    deadline_buttons = [t for t, _ in buttons(sup.message(card["message_id"]))]
    assert deadline_buttons == ["1 day", "3 days ⭐", "7 days", "↩️ Back"]
    three = next(d for t, d in buttons(sup.message(card["message_id"])) if t.startswith("3 days"))
    await sup.press_data(three, card)
    await sup.press_data(three, card)  # a double tap acts once
    assert "already recorded meanwhile" in (sup.answers()[-1] or "")
    finding = (await rows(db, Finding))[1]
    assert finding.outcome == "rectify_on_site" and finding.outcome_by == s.base.supervisor_a.id
    (order,) = await rows(db, Rectification)
    assert order.status == "open" and order.deadline == NOW + timedelta(days=3) and order.shop_id == s.shops_a[0]
    (event,) = await rows(db, FindingEvent)
    assert (event.kind, event.from_outcome, event.to_outcome, event.actor_id) == ("outcome", "pending", "rectify_on_site", s.base.supervisor_a.id)
    text = sup.message(card["message_id"])["text"]
    assert "Outcome: ordered to rectify on site · deadline 2026-05-23 · recorded by 张伟" in text
    assert [t for t, _ in buttons(sup.message(card["message_id"]))][0] == "✔️ 🛠 Rectify on site"

    # The day before the deadline nothing is due; on the deadline day the grid worker is told, once.
    clock.freeze(local(2026, 5, 22, 8, 17))
    assert await send_due_reminders(app) == 0
    clock.freeze(local(2026, 5, 23, 8, 17))
    before = len(u.bot_messages())
    assert await send_due_reminders(app) == 1
    reminder = u.bot_messages()[-1]["text"]
    assert len(u.bot_messages()) == before + 1
    assert "Re-inspections due" in reminder and "老王面馆 · 幸福路12号 (G01): rectification of «Food sample retention», deadline 2026-05-23" in reminder
    assert "overdue" not in reminder
    assert Tg(app, api, WORKER_B).bot_messages() == []  # another grid's worker hears nothing
    assert await send_due_reminders(app) == 0  # reminded once

    # The re-inspection: every previously escalated item passes -> the order closes.
    clock.freeze(local(2026, 5, 23, 9, 30))
    out = await patrol(u, "老王面馆", {HYGIENE: "c"})
    assert "the rectification order for «Food sample retention» is closed" in texts(out)
    (order,) = await rows(db, Rectification)
    second = (await rows(db, Patrol))[1]
    assert order.status == "closed" and order.reinspection_patrol_id == second.id and order.closed_at == clock.now()
    assert "Re-inspection" in sup.last and "is closed" in sup.last
    assert (await rows(db, FindingEvent))[-1].kind == "reinspection" and (await rows(db, FindingEvent))[-1].passed is True


async def test_failing_reinspection_keeps_the_order_open_and_tells_the_supervisor(app, api, db):
    await seed_patrols(db)
    sup = Tg(app, api, SUPERVISOR_A)
    await sup.send("/help")
    u = Tg(app, api, WORKER_A)
    await patrol(u, "老王面馆", {SAMPLES: "e", HEALTH: "e"})
    cards = [m for m in sup.bot_messages() if buttons(m) and "Escalated finding" in m.get("text", "")]
    assert len(cards) == 2  # one per escalated finding
    await tap(sup, "Rectify on site", cards[0])
    await tap(sup, "7 days", cards[0])
    await tap(sup, "Fined", cards[1])
    orders = await rows(db, Rectification)
    assert [o.status for o in orders] == ["open"]
    # The worker who escalated them hears each outcome.
    told = [m["text"] for m in u.bot_messages() if m.get("text", "").startswith("📬 What came of the finding you escalated")]
    assert len(told) == 2 and "Outcome: <b>" not in told[0] and "deadline" in told[0] and "recorded by 张伟" in told[1]

    clock.advance(timedelta(days=2))
    out = await patrol(u, "老王面馆", {HEALTH: "c"})  # samples pass now, health certificates still fail
    assert "stays open; still failing: Staff health certificates" in texts(out)
    (order,) = await rows(db, Rectification)
    assert order.status == "open" and order.reinspection_patrol_id == (await rows(db, Patrol))[1].id
    assert "stays open; still failing: Staff health certificates" in sup.last

    clock.advance(timedelta(days=1))
    out = await patrol(u, "老王面馆")
    assert "is closed" in texts(out)
    assert [o.status for o in await rows(db, Rectification)] == ["closed"]


async def test_changing_an_outcome_later_is_an_event_and_voids_the_order(app, api, db):
    s = await seed_patrols(db)
    sup = Tg(app, api, SUPERVISOR_A)
    await sup.send("/help")
    await patrol(Tg(app, api, WORKER_A), "老王面馆", {SAMPLES: "e"})
    card = sup.keyboard_message()
    await tap(sup, "Rectify on site", card)
    await tap(sup, "↩️ Back", card)
    assert await rows(db, FindingEvent) == []  # looking at the deadlines changes nothing
    await tap(sup, "Rectify on site", card)
    await tap(sup, "1 day", card)
    await tap(sup, "Fined", card)
    events = await rows(db, FindingEvent)
    assert [(e.from_outcome, e.to_outcome) for e in events] == [("pending", "rectify_on_site"), ("rectify_on_site", "fined")]
    assert all(e.actor_id == s.base.supervisor_a.id for e in events)
    (order,) = await rows(db, Rectification)
    assert order.status == "void"
    assert "Outcome: fined" in sup.message(card["message_id"])["text"]
    # An admin may change it too; back to rectification re-opens the order with the new deadline.
    from models.tables import Role
    from models.users import create_user
    from tests.conftest import ADMIN_ID

    async with db.session() as sess:
        await create_user(sess, ADMIN_ID, Role.ADMIN, [], "Admin", "en")
    admin = Tg(app, api, ADMIN_ID)
    await admin.send("/help")
    fid = (await rows(db, Finding))[0].id
    await admin.raw(api.press_button(TOKEN, ADMIN_ID, admin.bot_messages()[-1]["message_id"], f"po:{fid}:f:r:7"))
    (order,) = await rows(db, Rectification)
    assert order.status == "open" and order.deadline == NOW + timedelta(days=7) and order.ordered_by != s.base.supervisor_a.id
    assert len(await rows(db, FindingEvent)) == 3


async def test_overdue_order_is_reminded_after_downtime_and_marked(app, api, db):
    await seed_patrols(db)
    sup = Tg(app, api, SUPERVISOR_A)
    await sup.send("/help")
    u = Tg(app, api, WORKER_A)
    await patrol(u, "老王面馆", {SAMPLES: "e"})
    await sup.press("Rectify on site")
    await sup.press("1 day")
    clock.freeze(local(2026, 5, 24, 8, 17))  # the bot was down on the 21st
    assert await send_due_reminders(app) == 1
    assert "deadline 2026-05-21 (overdue)" in u.last


WRONG_INPUTS = ["sticker", "photo", "text", "location", "stale_button", "skip", "done"]
ACCEPTS = {
    "SHOP": {"text"}, "NEW_NAME": {"text"}, "NEW_ADDRESS": {"text"}, "NEW_CATEGORY": set(), "CHECKLIST": set(),
    "DISPOSITION": set(), "NOTE": {"text", "skip"}, "PHOTOS": {"photo", "done", "skip"}, "CONFIRM": set(),
}


@pytest.mark.parametrize("step", list(ACCEPTS))
async def test_every_step_refuses_every_wrong_kind_of_input(app, api, db, step):
    await seed_patrols(db)
    u = Tg(app, api, WORKER_A)
    await u.send("/patrol")
    await u.send("/cancel")
    old_button = u.bot_messages()[-2]  # a button of an earlier draft must stay harmless
    await walk_to(u, step)
    assert u.draft["step"] == step
    before_draft, before_db = u.draft, await db_snapshot(db)
    for kind in WRONG_INPUTS:
        if kind in ACCEPTS[step]:
            continue
        if kind == "sticker":
            out = await u.sticker()
        elif kind == "photo":
            out = await u.photo()
        elif kind == "text":
            out = await u.send("hello")
        elif kind == "location":
            out = await u.location(1.0, 2.0)
        elif kind == "skip":
            out = await u.send("/skip")
        elif kind == "done":
            out = await u.send("/done")
        else:
            out = await u.press_data(buttons(old_button)[0][1], old_button)
            assert "earlier form" in (u.answers()[-1] or ""), kind
            assert out == []
        if kind != "stale_button":
            assert len(out) == 1 and out[0]["text"].startswith("This step expects:"), (kind, texts(out))
        assert u.draft == before_draft, kind
        assert await db_snapshot(db) == before_db, kind


async def test_wrong_values_and_forged_buttons_stay_on_the_step(app, api, db):
    s = await seed_patrols(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "SHOP")
    key = u.draft["id"][:8]
    await u.press_data(f"patrol:{key}:pick:{s.shops_b[0]}")  # another grid's shop
    assert "not in your grids" in (u.answers()[-1] or "") and u.draft["step"] == "SHOP"
    out = await u.send("李记")
    assert "No shop of your grids matches «李记»" in texts(out)
    await u.send("面馆")
    await u.press("老王面馆")
    await u.press_data(f"patrol:{key}:t:99")  # no such item
    assert "no longer active" in (u.answers()[-1] or "") and u.draft["data"]["failed"] == []
    await u.press(HYGIENE)
    await u.press("Done")
    stale_disposition = u.keyboard_message()
    await u.press("Escalate")
    await u.press_data(f"patrol:{key}:c:0", stale_disposition)  # the first item's buttons, now at its note
    assert u.draft["step"] == "NOTE" and u.draft["data"]["findings"][0]["disposition"] == "escalated"
    out = await u.send("x" * 501)
    assert "at most 500 characters; yours has 501" in texts(out) and u.draft["step"] == "NOTE"
    await u.send("身份证 11010519491231002X <b>老板</b>")
    await u.send("/done")
    assert "<b>老板</b>" in u.last and "110105********002X" in u.last
    await u.press("Save")
    (finding,) = await rows(db, Finding)
    assert finding.note == "身份证 110105********002X <b>老板</b>"


async def test_new_shop_on_the_spot_and_all_passed(app, api, db):
    s = await seed_patrols(db)
    sup = Tg(app, api, SUPERVISOR_A)
    await sup.send("/help")
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "NEW_NAME")
    out = await u.send("x" * 101)
    assert "The shop name must be 1 to 100 characters" in texts(out)
    await u.send("张姐早餐")
    out = await u.send("幸")
    assert "The address must be 2 to 200 characters" in texts(out)
    await u.send("幸福路30号")
    await u.press("Food retail")
    assert "Checklist (Food retail)" in u.last
    assert len(buttons(u.keyboard_message())) == 6  # five items of 食品销售, then Done
    await u.press("Done")
    out = await u.send("/done")
    assert "(new shop)" in u.last and "5/5 passed" in u.last and "Risk level (internal aid): Low" in u.last
    await u.press("Save")
    shop = (await rows(db, Shop))[-1]
    assert (shop.name, shop.address, shop.category, shop.grid_id, shop.created_by) == ("张姐早餐", "幸福路30号", "食品销售", s.base.grid_a, s.base.worker_a.id)
    (p,) = await rows(db, Patrol)
    assert p.shop_id == shop.id and await rows(db, Finding) == []
    assert len(sup.bot_messages()) == 1  # nothing escalated, nothing sent


async def test_edit_from_the_summary(app, api, db):
    await seed_patrols(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "CONFIRM")
    old_summary = u.keyboard_message()
    await u.press("Edit")
    await u.press("Failed items")
    await u.press("Escalate")
    await u.send("/skip")
    await u.press("Corrected on the spot")
    out = await u.send("/skip")
    assert "Check and save the patrol" in texts(out)
    assert "• Environmental hygiene: escalated\n• Food sample retention: corrected on the spot\nPhotos: 1" in u.last
    await u.press("Save", old_summary)
    assert "out of date" in (u.answers()[-1] or "") and await rows(db, Patrol) == []
    # Another shop of another category: its checklist must be filled in again.
    await u.press("Edit")
    await u.press("Shop")
    await u.send("超市")
    out = await u.press("幸福超市")
    assert "Checklist (Food retail)" in texts(out)
    await u.press("Done")
    await u.send("/done")
    assert "幸福超市" in u.last and "5/5 passed" in u.last and "Photos: 1" in u.last
    await u.press("Save")
    (p,) = await rows(db, Patrol)
    assert len(p.items) == 5 and await rows(db, Finding) == []


async def test_save_is_idempotent_double_tap_and_redelivery(app, api, db):
    await seed_patrols(db)
    sup = Tg(app, api, SUPERVISOR_A)
    await sup.send("/help")
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "CONFIRM")
    summary = u.keyboard_message()
    save = next(d for t, d in buttons(summary) if "Save" in t)
    update = api.press_button(TOKEN, WORKER_A, summary["message_id"], save)
    await u.raw(update)
    await u.raw(update)  # the same update delivered again
    await u.press_data(save, summary)  # and a second tap
    assert len(await rows(db, Patrol)) == 1 and len(await rows(db, Finding)) == 2
    assert "expired" in (u.answers()[-1] or "")
    assert sum("Escalation from patrol" in m.get("text", "") for m in sup.bot_messages()) == 1


async def test_redelivered_confirm_after_crash_saves_once(app, api, db):
    await seed_patrols(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "CONFIRM")
    draft = dict(u.draft)
    summary = u.keyboard_message()
    save = next(d for t, d in buttons(summary) if "Save" in t)
    await u.press_data(save, summary)
    app.user_data[WORKER_A]["draft"] = draft
    out = await u.press_data(save, summary)
    assert len(await rows(db, Patrol)) == 1 and "saved" in texts(out)


async def test_cancel_and_timeout(app, api, db):
    await seed_patrols(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "NOTE")
    out = await u.send("/cancel")
    assert "Cancelled. The food-safety patrol draft was discarded" in texts(out)
    assert u.draft is None and await rows(db, Patrol) == []
    await walk_to(u, "CHECKLIST")
    clock.advance(timedelta(minutes=16))
    await u.press(HYGIENE)
    assert "No reply for 15 minutes" in u.last and u.draft is None


async def test_patrol_while_a_visit_is_open_offers_continue_or_discard(app, api, db):
    await seed_patrols(db)
    u = Tg(app, api, WORKER_A)
    await u.send("/visit")
    out = await u.send("/patrol")
    assert "You have an unfinished home visit" in texts(out)
    await u.press("Discard")
    out = await u.send("/patrol")
    assert "Step 1/5" in texts(out)


async def test_other_grid_worker_finds_only_their_shops(app, api, db):
    await seed_patrols(db)
    u = Tg(app, api, WORKER_B)
    await u.send("/patrol")
    out = await u.send("面馆")
    assert "Shops matching «面馆»: 1 " in texts(out) and "李记面馆" in texts(out) or "李记面馆" in str(buttons(out[0]))
    assert "老王面馆" not in str(buttons(out[0]))


async def test_a_problem_found_on_a_patrol_becomes_an_issue_report(app, api, db):
    from models.issues import Issue, IssuePhoto

    await seed_patrols(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "CONFIRM")
    out = await u.press("Save")
    saved = next(m for m in out if buttons(m))
    assert [t for t, _ in buttons(saved)] == ["📝 Report an issue from this patrol", "↩️ Undo"]
    out = await u.press("Report an issue from this patrol", saved)
    assert "carried over" in texts(out)
    await u.press("Restaurant fumes")
    out = await u.send("后厨油烟直排，未开净化器")
    assert "Is it urgent" in texts(out)  # the shop's address and the patrol's photo came along
    out = await u.press("Normal")
    assert "Address: 幸福路" in texts(out) and "Photos: 1" in texts(out)
    await u.press("Submit")
    async with db.session() as s:
        (issue,) = (await s.exec(select(Issue))).all()
        photos = (await s.exec(select(IssuePhoto))).all()
    assert issue.source == "patrol" and issue.category == "油烟扰民" and len(photos) == 1
