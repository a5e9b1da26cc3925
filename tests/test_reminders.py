"""Visit-pace and resolution reminders, care-tag due lists, quiet hours, catch-up after downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from bot import delivery
from handlers.reminders import on_startup
from jobs.reminders import catch_up, run_job
from jobs.scheduling import parse_quiet_hours, parse_schedule
from models import clock, outbox
from models.reminders import JobRun, households_to_visit, is_due
from models.tables import Visit
from sandbox.localapi import buttons
from tests.conftest import ADMIN_ID, TOKEN, Tg, make_app, stop_app, texts
from tests.seed import SUPERVISOR_A, WORKER_A, WORKER_B, seed
from tests.seed_issues import SUPERVISOR_B, put_issue, seed_issues

SH = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH).astimezone(UTC)


def hello(api, *user_ids: int) -> None:  # noqa: ANN001
    """Each user has opened a chat with the bot (Telegram refuses to start one)."""
    for uid in user_ids:
        api.send_text(TOKEN, uid, "hi", first_name="u", language_code="en")


async def drain_all(app, steps: int = 30) -> int:  # noqa: ANN001
    """Drain until nothing is due, moving the set clock a second a pass (the per-chat rate)."""
    sent = 0
    for _ in range(steps):
        result = await delivery.drain(app)
        sent += result.sent
        if not result.waiting and not result.sent:
            break
        clock.advance(timedelta(seconds=1))
    return sent


async def rows(db) -> list[outbox.Row]:
    async with db.session() as s:
        return await outbox.all_rows(s)


async def add_visit(db, household_id: int, worker_id: int, at: datetime, n: int) -> None:  # noqa: ANN001
    async with db.session() as s:
        s.add(Visit(draft_id=f"v{n:08d}", household_id=household_id, worker_id=worker_id, visited_at=at, people_met=1))


# -- schedules and quiet hours ------------------------------------------------------------------------


def test_schedules_use_weekday_names():
    s = parse_schedule("mon,thu 09:07")
    assert str(s) == "mon,thu 09:07" and s.days == frozenset({1, 4})  # ISO: 1 = Monday
    assert parse_schedule("sun 10:00").days == frozenset({7})
    assert str(parse_schedule("daily 08:37")) == "daily 08:37" and str(parse_schedule("fri-mon 7:05")) == "mon,fri,sat,sun 07:05"
    # Wednesday 2026-05-20 10:00: the last Mon/Thu 09:07 was Monday the 18th, the next is Thursday the 21st.
    now = local(2026, 5, 20, 10, 0)
    assert s.previous(now, SH) == local(2026, 5, 18, 9, 7) and s.next(now, SH) == local(2026, 5, 21, 9, 7)
    assert parse_schedule("daily 10:00").previous(now, SH) == now  # a moment counts as passed when reached
    for bad, message in [("1,4 09:07", "names"), ("mon 25:00", "HH:MM"), ("funday 09:00", "unknown weekday"), ("09:07", "DAYS HH:MM")]:
        with pytest.raises(ValueError, match=message):
            parse_schedule(bad)


def test_quiet_hours_wrap_midnight():
    q = parse_quiet_hours("21:00-08:00")
    assert q.release_at(local(2026, 5, 20, 22, 30), SH) == local(2026, 5, 21, 8, 0)
    assert q.release_at(local(2026, 5, 21, 6, 0), SH) == local(2026, 5, 21, 8, 0)
    assert q.release_at(local(2026, 5, 21, 8, 0), SH) is None and q.release_at(local(2026, 5, 20, 20, 59), SH) is None
    assert parse_quiet_hours("off") is None
    assert parse_quiet_hours("12:00-13:30").release_at(local(2026, 5, 20, 12, 10), SH) == local(2026, 5, 20, 13, 30)


# -- care tags: who is due --------------------------------------------------------------------------------


async def test_care_tag_due_list_orders_due_first_then_longest_unvisited(db):
    s = await seed(db)
    now = clock.now()
    async with db.session() as sess:
        from models.tables import Household

        extra = Household(grid_id=s.grid_a, address="5栋1单元101", tags=["困难家庭"])
        sess.add(extra)
        await sess.flush()
        hard_id = extra.id
    elderly = s.households_a[0]  # 独居老人: weekly
    await add_visit(db, elderly, s.worker_a.id, now - timedelta(days=8), 1)  # a week and a day ago: due
    await add_visit(db, hard_id, s.worker_a.id, now - timedelta(days=20), 2)  # 困难家庭, monthly: not due yet
    await add_visit(db, s.households_a[1], s.worker_a.id, now - timedelta(days=2), 3)
    assert is_due(["独居老人"], now - timedelta(days=8), now, {"独居老人": 7}) and not is_due(["困难家庭"], now - timedelta(days=20), now, {"困难家庭": 30})
    assert is_due(["困难家庭"], None, now, {"困难家庭": 30}) and not is_due([], None, now, {"困难家庭": 30})
    async with db.session() as sess:
        behind = await households_to_visit(sess, [s.grid_a], now, behind={s.grid_a})
        on_pace = await households_to_visit(sess, [s.grid_a], now, behind=set())
    listed = behind[s.grid_a]
    assert len(listed) <= 10 and listed[0].household_id == elderly and listed[0].due
    assert [h.last_visit for h in listed[1:]][:6] == [None] * 6  # then never-visited ones ...
    assert len(listed) == 9 and listed[-1].household_id == s.households_a[1]  # ... the most recently visited last
    assert [h.household_id for h in on_pace[s.grid_a]] == [elderly]  # on pace: only the due care household
    await add_visit(db, elderly, s.worker_a.id, now - timedelta(days=1), 4)
    async with db.session() as sess:
        assert await households_to_visit(sess, [s.grid_a], now, behind=set()) == {}


# -- the visit-pace reminder ---------------------------------------------------------------------------------


async def test_visit_pace_reminder_content_and_due_command(app, api, db):
    s = await seed(db)
    hello(api, WORKER_A, WORKER_B, SUPERVISOR_A)
    clock.freeze(local(2026, 5, 18, 9, 7))  # Monday, the scheduled moment
    await add_visit(db, s.households_a[2], s.worker_a.id, local(2026, 5, 1, 10, 0), 1)
    assert await run_job(app, "visit_pace") == 2  # the workers of G01 and G02 (both behind), not the supervisor
    assert await run_job(app, "visit_pace") is None  # the same run again: nothing
    assert await drain_all(app) == 2
    a = Tg(app, api, WORKER_A)
    text = a.last
    # G01: 8 households, 1 visited = 12.5 %; target 20 %, 137.4/181 days gone -> 15.2 % expected -> 1.2 households -> gap 1.
    assert "G01 · 幸福里第一网格" in text and "Behind pace: coverage 12.5% (target 20.0%" in text
    assert "1 more households to visit to catch up" in text and "Your visits this half-year: 1" in text
    lines = [ln for ln in text.splitlines() if ln.startswith("• ")]
    assert len(lines) == 8  # 8 households, all listed (max 10): the due care household first, the visited one last
    assert lines[0] == "• 3栋1单元101 [独居老人] · last visit never visited ⏰ due"
    assert lines[-1] == "• 3栋1单元103 · last visit 2026-05-01"
    assert "G02" in Tg(app, api, WORKER_B).last and Tg(app, api, SUPERVISOR_A).bot_messages() == []
    # /due: the same list at any time.
    out = await a.send("/due")
    assert "3栋1单元101 [独居老人]" in out[-1]["text"] and "Behind pace" in out[-1]["text"]
    # Each listed household has a button that opens /visit with it chosen, at the people-met step.
    labels = [t for t, _ in buttons(out[-1])]
    assert labels[0] == "🏠 3栋1单元101" and len(labels) == 8
    out = await a.press("🏠 3栋1单元101", out[-1])
    assert "Household: 3栋1单元101" in texts(out) and "Step 2/7" in texts(out) and a.draft["step"] == "PEOPLE"
    assert a.draft["data"]["household_id"] == s.households_a[0]


async def test_workers_of_a_grid_on_pace_get_only_due_care_households(app, api, db):
    s = await seed(db, households_a=2)
    hello(api, WORKER_A, WORKER_B)
    clock.freeze(local(2026, 5, 18, 9, 7))
    await add_visit(db, s.households_a[1], s.worker_a.id, local(2026, 5, 17, 10, 0), 1)  # 1 of 2 = 50 %: on pace
    for n, hid in enumerate(s.households_b):
        await add_visit(db, hid, s.worker_b.id, local(2026, 5, 17, 10, 0), 10 + n)  # G02 all visited, no care tag
    await run_job(app, "visit_pace")
    await drain_all(app)
    text = Tg(app, api, WORKER_A).last
    assert "On pace: coverage 50.0%" in text and "3栋1单元101 [独居老人]" in text and "3栋1单元102" not in text
    assert "Your visits" not in text
    assert Tg(app, api, WORKER_B).bot_messages() == []  # on pace, nothing due: no message


# -- quiet hours -----------------------------------------------------------------------------------------------


async def test_quiet_hours_hold_reminders_until_they_end_but_not_escalations(app, api, db):
    s = await seed_issues(db)
    hello(api, WORKER_A, WORKER_B, ADMIN_ID)
    old = local(2026, 5, 10, 9, 0)  # due the 13th: overdue by more than 3 days
    await put_issue(db, s.grid_b, s.worker_b.id, "reported", at=old)
    clock.freeze(local(2026, 5, 18, 22, 30))  # a catch-up run at night
    await run_job(app, "visit_pace", local(2026, 5, 18, 9, 7))
    await run_job(app, "overdue", local(2026, 5, 18, 8, 37))
    await drain_all(app, steps=3)
    assert Tg(app, api, WORKER_A).bot_messages() == []  # held
    assert "is overdue by more than 3 days" in Tg(app, api, ADMIN_ID).last  # an escalation goes at once
    held = [r for r in await rows(db) if r.kind == "visit_pace"]
    assert held and all(r.state == "pending" and r.next_attempt_at == local(2026, 5, 19, 8, 0) for r in held)
    clock.freeze(local(2026, 5, 19, 8, 0))
    await drain_all(app)
    assert "Home visits" in Tg(app, api, WORKER_A).last


# -- the resolution reminder -------------------------------------------------------------------------------------


async def test_overdue_reminder_lists_assignee_and_supervisor_issues_with_open_buttons_and_escalates_once(app, api, db):
    s = await seed_issues(db)
    hello(api, WORKER_A, SUPERVISOR_A, SUPERVISOR_B, ADMIN_ID)
    now = local(2026, 5, 20, 8, 37)
    overdue = await put_issue(db, s.grid_a, s.worker_a.id, "assigned", s.worker_a.id, at=now - timedelta(days=4))  # due 1 day ago
    today = await put_issue(db, s.grid_a, s.worker_a.id, "in_progress", s.worker_a.id, at=now - timedelta(days=3) + timedelta(hours=5))
    await put_issue(db, s.grid_a, s.worker_a.id, "assigned", s.worker_a.id, at=now)  # due in 3 days: not listed
    late = await put_issue(db, s.grid_a, s.worker_a.id, "reported", at=now - timedelta(days=7))  # overdue 4 days: escalated
    await put_issue(db, s.grid_a, s.worker_a.id, "resolved", at=now - timedelta(days=9))  # resolved: never listed
    clock.freeze(now)
    await run_job(app, "overdue")
    await drain_all(app)
    w = Tg(app, api, WORKER_A)
    text = w.last
    assert "Your issues overdue or due today</b>" not in text and "Your issues overdue or due today: 2" in text
    assert "9901-0001" in text and "⏰ overdue" in text and "9901-0002" in text and "due today" in text and "9901-0003" not in text
    message = w.bot_messages()[-1]
    assert [b[1] for b in buttons(message)] == [f"rem:open:{overdue}", f"rem:open:{today}", "snz:overdue"]
    out = await w.press_data(f"rem:open:{overdue}", message)
    assert "📌 <b>9901-0001</b>" not in out[-1]["text"] and "9901-0001" in out[-1]["text"] and buttons(out[-1])  # the card with its buttons
    sup = Tg(app, api, SUPERVISOR_A).last
    assert "Overdue issues in your grids: 2" in sup and "9901-0004" in sup and "9901-0002" not in sup
    assert Tg(app, api, SUPERVISOR_B).bot_messages() == []
    assert "9901-0004" in Tg(app, api, ADMIN_ID).last and "overdue by more than 3 days" in Tg(app, api, ADMIN_ID).last
    # The next day: reminded again, but the escalation is not repeated.
    clock.freeze(now + timedelta(days=1))
    await run_job(app, "overdue")
    await drain_all(app)
    escalations = [r for r in await rows(db) if r.kind == "escalation"]
    assert len(escalations) == 1 and escalations[0].period_key == f"issue:{late}"
    assert len([r for r in await rows(db) if r.kind == "overdue_assignee"]) == 2


async def test_snooze_keeps_the_daily_overdue_reminder_quiet_for_a_day_but_not_an_urgent_issue(app, api, db):
    s = await seed_issues(db)
    hello(api, WORKER_A, SUPERVISOR_A)
    now = local(2026, 5, 20, 8, 37)
    await put_issue(db, s.grid_a, s.worker_a.id, "assigned", s.worker_a.id, at=now - timedelta(days=4))
    clock.freeze(now)
    await run_job(app, "overdue")
    await drain_all(app)
    w = Tg(app, api, WORKER_A)
    await w.press("😴 Snooze for a day", w.bot_messages()[-1])
    assert w.answers()[-1] == "😴 No overdue reminders until 05-21 08:37."
    before = len(w.bot_messages())
    clock.freeze(now + timedelta(days=1) - timedelta(minutes=1))  # the next day's run, a minute early: still quiet
    await run_job(app, "overdue", scheduled=clock.now())
    await drain_all(app)
    assert len(w.bot_messages()) == before and "Overdue issues in your grids" in Tg(app, api, SUPERVISOR_A).last  # only the presser is quiet
    # That run made late (a catch-up after a restart, past the snooze's 24 hours): still quiet, by the run's own moment.
    clock.freeze(now + timedelta(days=1, hours=2))
    await run_job(app, "overdue", scheduled=now + timedelta(days=1, seconds=-45))
    await drain_all(app)
    assert len(w.bot_messages()) == before
    # An urgent issue is said even while snoozed; and the day after, the reminder is back.
    async with db.session() as session:
        from models.issues import Issue

        (issue,) = (await session.exec(select(Issue))).all()
        issue.urgent = True
        await session.commit()
    clock.freeze(now + timedelta(days=1, minutes=-1, seconds=30))
    await run_job(app, "overdue", scheduled=clock.now())
    await drain_all(app)
    assert len(w.bot_messages()) == before + 1 and "😴" not in str(buttons(w.bot_messages()[-1]))  # no snooze for an urgent one
    clock.freeze(now + timedelta(days=2))
    async with db.session() as session:
        (issue,) = (await session.exec(select(Issue))).all()
        issue.urgent = False
        await session.commit()
    await run_job(app, "overdue", scheduled=clock.now())
    await drain_all(app)
    assert len(w.bot_messages()) == before + 2


async def test_open_button_refuses_an_issue_outside_the_users_grids(app, api, db):
    s = await seed_issues(db)
    other = await put_issue(db, s.grid_b, s.worker_b.id, "reported")
    w = Tg(app, api, WORKER_A)
    await w.send("/help")
    await w.raw(api.press_button(TOKEN, WORKER_A, w.bot_messages()[-1]["message_id"], f"rem:open:{other}"))
    assert "not in your grids" in (w.answers()[-1] or "")


# -- a missed run, made once after a restart -------------------------------------------------------------------------


async def test_a_run_missed_while_down_is_made_once_at_start_up(settings, db, api):
    await seed(db)
    hello(api, WORKER_A, WORKER_B)
    clock.freeze(local(2026, 5, 14, 12, 0))  # Thursday, after the 09:07 visit reminder
    app = await make_app(settings, db, api)
    await on_startup(app.runtime)  # first start: baselines, nothing run
    assert await rows(db) == []
    names = {j.name for j in app.scheduler.jobs()}
    assert {"visit_pace", "overdue", "digest", "outbox"} <= names
    job = app.scheduler.get("visit_pace")
    # APScheduler runs on the real clock; its trigger, asked from the set clock, names the next Monday.
    assert job.trigger.get_next_fire_time(None, clock.now().astimezone(SH)) == datetime(2026, 5, 18, 9, 7, tzinfo=SH)
    assert job.misfire_grace_time == 15 * 60 and job.coalesce is True
    await stop_app(app)
    # Down over the weekend and Monday morning: the visit reminder of Monday 09:07 and the digest are missed.
    clock.freeze(local(2026, 5, 18, 11, 0))
    app = await make_app(settings, db, api)
    await on_startup(app.runtime)
    first = await rows(db)
    assert {r.kind for r in first} >= {"visit_pace"} and len([r for r in first if r.kind == "visit_pace"]) == 2
    async with db.session() as sess:
        run = (await sess.exec(select(JobRun).where(JobRun.name == "visit_pace"))).one()
    assert run.last_scheduled_at == local(2026, 5, 18, 9, 7)
    await stop_app(app)
    app = await make_app(settings, db, api)  # started again the same day: nothing more
    assert await catch_up(app) == []
    assert await rows(db) == first
    await stop_app(app)
