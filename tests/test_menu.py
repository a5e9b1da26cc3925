"""The main menu: buttons for people who do not type commands, each role its own."""

from __future__ import annotations

from sandbox.localapi import buttons
from tests.conftest import Tg, texts
from tests.seed import SUPERVISOR_A, WORKER_A, seed


async def test_a_worker_works_from_the_menu_without_typing_commands(app, api, db):
    await seed(db)
    u = Tg(app, api, WORKER_A)
    out = await u.send("/help")
    assert [t for t, _ in buttons(out[-1])] == ["🏠 Visit", "🍽 Patrol", "📝 Report", "📋 To do", "📊 Mine"]
    out = await u.send("hello")  # not waiting for anything: the menu comes with the answer
    assert "not waiting for anything" in texts(out) and buttons(out[-1])
    out = await u.press("🏠 Visit")
    assert "Step 1/7 · Household" in texts(out) and u.draft["flow"] == "visit"
    out = await u.press("📊 Mine", u.bot_messages()[-2])  # the menu of the answer before: the form is offered back, nothing lost
    await u.send("/cancel")
    out = await u.press("📊 Mine", next(m for m in reversed(u.bot_messages()) if "🏠 Visit" in str(buttons(m))))
    assert "Your visits" in texts(out)
    out = await u.press("📋 To do", next(m for m in reversed(u.bot_messages()) if "🏠 Visit" in str(buttons(m))))
    assert "No open tasks" in texts(out)


async def test_a_supervisor_has_no_report_button_and_a_forged_one_is_refused(app, api, db):
    await seed(db)
    sup = Tg(app, api, SUPERVISOR_A)
    out = await sup.send("/menu")
    assert [t for t, _ in buttons(out[-1])] == ["🏠 Visit", "🍽 Patrol", "📋 To do", "📊 Mine"]
    await sup.press_data("menu:report", out[-1])
    assert "reported by grid workers" in (sup.answers()[-1] or "") and sup.draft is None
