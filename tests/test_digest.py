"""The weekly digest: content on known data for supervisors, admins and group chats, the chart,
/digest_now and /schedule."""

from __future__ import annotations

from datetime import timedelta

from handlers.reminders import on_startup
from jobs import reminders as rjobs
from jobs.reminders import run_job
from models import clock
from models.patrols import Finding, Patrol, Shop
from sandbox.localapi import buttons
from tests.conftest import ADMIN_ID, TOKEN, Tg
from tests.seed import SUPERVISOR_A, WORKER_A, WORKER_B
from tests.seed_issues import SUPERVISOR_B, WORKER_A2, put_issue, seed_issues
from tests.test_reminders import add_visit, drain_all, hello, local, rows

GROUP = -100111


async def known_week(db):  # noqa: ANN001, ANN201
    """Week 2026-W20 (May 11-17) and the week before, in grid G01; G02 quiet."""
    s = await seed_issues(db)
    for n, day in enumerate((11, 12, 14)):
        await add_visit(db, s.base.households_a[n], s.worker_a.id, local(2026, 5, day, 10, 0), n)
    await add_visit(db, s.base.households_a[3], s.worker_a.id, local(2026, 5, 6, 10, 0), 9)  # W19
    await put_issue(db, s.grid_a, s.worker_a.id, "resolved", at=local(2026, 5, 12, 9, 0))  # resolved on time
    await put_issue(db, s.grid_a, s.worker_a.id, "reported", at=local(2026, 5, 11, 9, 0))  # due the 14th: overdue
    await put_issue(db, s.grid_a, s.worker_a.id, "resolved", at=local(2026, 5, 5, 9, 0))  # W19: 1 of 1 resolved
    async with db.session() as sess:
        shop = Shop(grid_id=s.grid_a, name="老王面馆", address="幸福路12号", category="餐饮服务")
        sess.add(shop)
        await sess.flush()
        patrol = Patrol(draft_id="p1", shop_id=shop.id, worker_id=s.worker_a.id, patrolled_at=local(2026, 5, 13, 10, 0), items=[])
        sess.add(patrol)
        await sess.flush()
        sess.add_all([Finding(patrol_id=patrol.id, item="a", disposition="corrected"), Finding(patrol_id=patrol.id, item="b", disposition="corrected"),
                      Finding(patrol_id=patrol.id, item="c", disposition="escalated", outcome="pending")])
    return s


async def test_weekly_digest_for_supervisors_admins_and_a_group(app, api, db):
    await known_week(db)
    # Jobs write in each recipient's stored language, else DEFAULT_LANGUAGE: English here, to read the figures.
    app.settings = app.settings.model_copy(update={"digest_chats": {"G01": [GROUP]}, "default_language": "en"})
    hello(api, SUPERVISOR_A, SUPERVISOR_B, ADMIN_ID)
    api.send_text(TOKEN, WORKER_A, "hi", chat_id=GROUP, chat_type="group", first_name="u")
    clock.freeze(local(2026, 5, 18, 8, 7))
    assert await run_job(app, "digest") > 0
    assert await run_job(app, "digest") is None
    await drain_all(app)
    sup = Tg(app, api, SUPERVISOR_A).bot_messages()
    text = sup[-2]["text"]
    assert "Weekly digest May 11\u2009–\u200917" in text and "Figures as at May 17, 2026." in text and "G01 · 幸福里第一网格" in text and "G02" not in text
    # G01: 8 households, 4 visited this half-year (cut-off = end of the week) = 50.0 %.
    assert "Visits: 3 (+2 on the week before) · coverage 50.0% (target 20.0%; " in text
    assert "Patrols: 1 (+1) · corrected on the spot 2 · escalated 1" in text
    assert "Issues: reported 2 (+1) · resolved 1 · overdue 1 · resolution 50.0% (-50.0 percentage points) · on time 100.0%" in text
    assert "Logged nothing this week: 赵敏" in text
    chart = sup[-1]
    assert "photo" in chart and "visits (bars)" in chart["caption"]
    assert [r for r in await rows(db) if r.kind == "digest_chart"][0].image.startswith(b"\x89PNG")
    g02 = Tg(app, api, SUPERVISOR_B).bot_messages()[-2]["text"]
    assert "G02 · 幸福里第二网格" in g02 and "Issues: none reported (+0)" in g02 and "Logged nothing this week: 李强" in g02
    admin = Tg(app, api, ADMIN_ID).bot_messages()[-2]["text"]
    assert "G01" in admin and "G02" in admin and "All 2 grids" in admin and "Visits: 3 (+2" in admin.split("All 2 grids")[1]
    group = [m for m in api.bot_messages(TOKEN, GROUP)]
    assert "Weekly digest May 11\u2009–\u200917" in group[0]["text"] and "G02" not in group[0]["text"] and "photo" in group[1]
    assert {r.recipient for r in await rows(db)} == {f"tg:{SUPERVISOR_A}", f"tg:{SUPERVISOR_B}", f"tg:{ADMIN_ID}", f"tg:{GROUP}"}
    assert Tg(app, api, WORKER_A).bot_messages() == [] and Tg(app, api, WORKER_B).bot_messages() == [] and WORKER_A2


async def test_digest_now_and_schedule_for_admins(app, api, db):
    await known_week(db)
    clock.freeze(local(2026, 5, 14, 18, 0))  # Thursday of W20
    await on_startup(app.runtime)
    admin = Tg(app, api, ADMIN_ID)
    out = await admin.send("/digest_now G01")
    assert "Weekly digest May 11\u2009–\u200917" in out[0]["text"] and "G02" not in out[0]["text"] and "Visits: 3" in out[0]["text"]
    assert "photo" in out[-1]
    assert (await admin.send("/digest_now G99"))[-1]["text"] == "No grid G99."
    assert await rows(db) == []  # to the caller only, not through the outbox
    out = await admin.send("/schedule")
    text = out[-1]["text"]
    assert "quiet hours 21:00-08:00" in text and "visit-pace reminder: next" in text and "(Mon, Thu 09:07)" in text
    assert "weekly digest: next Mon May 18 08:07 (Mon 08:07) · last Mon May 11 08:07" in text and "outbox sender: every 2 s" in text
    lines = [line for line in text.splitlines() if line.startswith("•")]
    assert lines[0].startswith("• overdue reminder: next Fri May 15 08:37 (daily 08:37)")  # soonest first
    assert "visit-pace reminder: next Mon May 18 09:07 (Mon, Thu 09:07) · last Thu May 14 09:07" in text
    worker = Tg(app, api, WORKER_A)
    assert "not available for your role" in (await worker.send("/digest_now"))[-1]["text"]

    # The clock moves on past Monday's digest: the last run is that digest, the next one a week on (never before the last).
    clock.advance(timedelta(days=4))
    assert "digest" in await rjobs.catch_up(app)
    zh = Tg(app, api, ADMIN_ID, language_code="zh-hans")
    out = await zh.send("/lang")
    # The /lang message itself: the outbox sender (every 2 s, real time) may deliver the overdue reminder meanwhile.
    await zh.press("中文", next(m for m in out if any("中文" in label for label, _data in buttons(m))))
    text = (await zh.send("/schedule"))[-1]["text"]
    assert "每周摘要：下次 周一 5月25日 08:07（周一 08:07） · 上次 周一 5月18日 08:07" in text
    assert "走访进度提醒：下次 周四 5月21日 09:07（周一、周四 09:07）" in text and "消息发送：每 2 秒" in text
    assert "逾期提醒：下次 周二 5月19日 08:37（每天 08:37）" in text
    assert "digest" not in text and "mon" not in text
