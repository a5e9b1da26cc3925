"""Issue reports in the chat: /report, the dispatch and work buttons, /tasks, /issue, duplicates,
deadlines, the visit-to-issue button — driven through the real Application with real Updates."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from models import clock
from models.issues import DEFAULT_CATEGORIES, Issue, IssueDraft, IssueEvent, IssuePhoto, create_issue
from sandbox.localapi import buttons
from tests.conftest import ADMIN_ID, TOKEN, Tg, texts
from tests.seed import SUPERVISOR_A, WORKER_A, WORKER_B
from tests.seed_issues import SUPERVISOR_B, WORKER_A2, put_issue, seed_issues

JPEG = b"\xff\xd8\xff\xe0" + b"issue-photo" * 10
AFTER = b"\xff\xd8\xff\xe0" + b"after-photo" * 10
LAT, LON = 28.17, 112.98


async def rows(db, model) -> list:
    async with db.session() as s:
        return list((await s.exec(select(model).order_by(model.id))).all())


async def events(db, issue_id: int) -> list[tuple]:
    async with db.session() as s:
        found = (await s.exec(select(IssueEvent).where(IssueEvent.issue_id == issue_id).order_by(IssueEvent.id))).all()
        return [(e.action, e.from_status, e.to_status, e.actor_id, e.note) for e in found]


async def users(app, api, *ids: int) -> list[Tg]:
    """Users who have opened the bot (so it can write to them)."""
    out = []
    for uid in ids:
        u = Tg(app, api, uid)
        await u.send("/help")
        out.append(u)
    return out


async def report(u: Tg, category: str = "Outdoor signs", description: str = "招牌松动，有坠落风险", *, lat: float | None = LAT,
                 lon: float | None = LON, address: str | None = "幸福路12号", photos: int = 1, urgent: bool = False) -> list[dict]:
    """Fill /report up to the summary; returns the summary message(s)."""
    await u.send("/report")
    await u.press(category)
    await u.send(description)
    if lat is not None:
        await u.location(lat, lon)
    if address is not None:
        await u.send(address)
    if lat is None or address is None:
        await u.send("/done")
    for _ in range(photos):
        await u.photo(JPEG)
    await u.send("/done")
    return await u.press("Urgent" if urgent else "Normal")


async def test_full_lifecycle_through_the_buttons(app, api, db, settings):
    s = await seed_issues(db)
    worker, assignee, supervisor = await users(app, api, WORKER_A, WORKER_A2, SUPERVISOR_A)
    out = await report(worker)
    summary = texts(out)
    assert "Check and submit" in summary and "Outdoor signs" in summary and "Deadline: 7 d, due 2026-05-27 10:00" in summary
    assert "Address: 幸福路12号" in summary and "Location: 28.17000, 112.98000" in summary and "Photos: 1" in summary
    out = await worker.press("Submit")
    assert "Reported as issue 2605-0001" in texts(out)
    (issue,) = await rows(db, Issue)
    assert (issue.human_id, issue.status, issue.grid_id, issue.reporter_id) == ("2605-0001", "reported", s.grid_a, s.worker_a.id)
    assert issue.due_at == clock.now() + timedelta(days=7) and issue.category == "户外招牌" and not issue.urgent
    (photo,) = await rows(db, IssuePhoto)
    assert (settings.media_dir / photo.sha256[:2] / f"{photo.sha256}.jpg").read_bytes() == JPEG

    # The supervisor gets it at once, with assign / reject.
    assert "New issue 2605-0001 to dispatch" in supervisor.last
    assert [t for t, _ in buttons(supervisor.keyboard_message())] == ["👤 Assign", "❌ Reject"]
    await supervisor.press("Assign")
    labels = [t for t, _ in buttons(supervisor.keyboard_message())]
    assert "👷 赵敏 · 0 open" in labels and "👷 王芳 · 0 open" in labels and "🙋 Me" in labels and not any("李强" in t for t in labels)
    await supervisor.press("赵敏")
    assert "assigned to 赵敏" in (supervisor.answers()[-1] or "")
    assert "A new task for you, from 张伟" in assignee.last and "2605-0001" in assignee.last
    assert assignee.bot_messages()[-2]["location"]["latitude"] == LAT  # where to go, as a pin the map app opens
    assert "Your issue 2605-0001 (Outdoor signs) is now assigned: 张伟 assigned it to 赵敏" in worker.last

    # The assignee works it from /tasks.
    out = await assignee.send("/tasks")
    assert "Assigned to you" in texts(out) and "2605-0001" in texts(out)
    await assignee.press("Start")
    assert "is now in progress" in worker.last
    await assignee.press("Resolved")
    assert "What was done to resolve issue 2605-0001" in assignee.last
    await assignee.send("招牌已拆除加固")
    await assignee.photo(AFTER)
    out = await assignee.send("/done")
    assert "Issue 2605-0001 is resolved" in texts(out)
    assert "please verify" in supervisor.last and "Note: 招牌已拆除加固" in supervisor.last
    # The evidence comes with the buttons: the after-photo and the place's pin just before the notice with verify / reopen.
    evidence, pin, notice = supervisor.bot_messages()[-3:]
    assert (pin["location"]["latitude"], pin["location"]["longitude"]) == (LAT, LON)
    assert "photo" in evidence and evidence["caption"] == "2605-0001: photo after resolving"
    assert api.file_by_id(TOKEN, evidence["photo"][-1]["file_id"]) == AFTER
    assert {"✔️ Verify and close", "🔁 Reopen"} <= {t for t, _ in buttons(notice)}
    assert "is now resolved" in worker.last

    # The supervisor verifies: closed.
    await supervisor.press("Verify")
    assert "is now closed" in worker.last
    (issue,) = await rows(db, Issue)
    assert issue.status == "closed"
    assert [e[:3] for e in await events(db, issue.id)] == [
        ("submit", None, "reported"), ("assign", "reported", "assigned"), ("start", "assigned", "in_progress"),
        ("resolve", "in_progress", "resolved"), ("verify", "resolved", "closed")]
    assert sorted(p.kind for p in await rows(db, IssuePhoto)) == ["after", "before"]

    # /issue shows the issue, its history and its photos.
    out = await worker.send("/issue 2605-0001")
    shown = texts(out)
    assert "2605-0001" in shown and "History" in shown and "assigned it to 赵敏" in shown and "“招牌已拆除加固”" in shown
    assert "(resolved → closed)" in shown
    assert sum(1 for m in out if m.get("photo")) == 2


async def test_double_tap_stale_button_and_foreign_grid(app, api, db):
    s = await seed_issues(db)
    worker, supervisor, other_worker, other_supervisor = await users(app, api, WORKER_A, SUPERVISOR_A, WORKER_B, SUPERVISOR_B)
    await report(worker)
    await worker.press("Submit")
    (issue,) = await rows(db, Issue)
    card = supervisor.keyboard_message()
    await supervisor.press("Assign")
    pick = supervisor.keyboard_message()
    assign = next(d for t, d in buttons(pick) if "赵敏" in t)
    await supervisor.press_data(assign, pick)
    await supervisor.press_data(assign, pick)  # a double tap
    assert "Nothing was changed" in (supervisor.answers()[-1] or "")
    assert [e[0] for e in await events(db, issue.id)] == ["submit", "assign"]
    # The original card's Reject is stale now: refused, nothing changes.
    reject = next(d for t, d in buttons(card) if "Reject" in t)
    await supervisor.press_data(reject, card)
    assert "Nothing was changed" in (supervisor.answers()[-1] or "") and supervisor.draft is None
    # Another grid's people, with forged buttons.
    await other_worker.press_data(f"iss:start:{issue.id}:a", other_worker.bot_messages()[-1])
    assert "another grid" in (other_worker.answers()[-1] or "")
    await other_supervisor.press_data(f"iss:verify:{issue.id}:a", other_supervisor.bot_messages()[-1])
    assert "another grid" in (other_supervisor.answers()[-1] or "")
    await other_supervisor.press_data(f"issn:reject:{issue.id}:a", other_supervisor.bot_messages()[-1])
    assert "another grid" in (other_supervisor.answers()[-1] or "") and other_supervisor.draft is None
    # A worker of the grid who is not the assignee cannot start it.
    await worker.press_data(f"iss:start:{issue.id}:a", worker.bot_messages()[-1])
    assert "Only the person the issue is assigned to" in (worker.answers()[-1] or "") and issue.reporter_id == s.worker_a.id
    assert [e[0] for e in await events(db, issue.id)] == ["submit", "assign"]


async def test_reject_needs_a_reason_and_reopen(app, api, db):
    await seed_issues(db)
    worker, supervisor = await users(app, api, WORKER_A, SUPERVISOR_A)
    await report(worker)
    await worker.press("Submit")
    (issue,) = await rows(db, Issue)
    await supervisor.press("Reject")
    assert "Why is issue 2605-0001 rejected" in supervisor.last
    out = await supervisor.sticker()
    assert texts(out).startswith("This step expects")
    await supervisor.send("/cancel")
    assert (await rows(db, Issue))[0].status == "reported"
    await supervisor.press("Reject", next(m for m in reversed(supervisor.bot_messages()) if "New issue" in m.get("text", "")))
    out = await supervisor.send("不属于本网格管辖 <b>x</b>")
    assert "Issue 2605-0001 is rejected" in texts(out)
    assert "is now rejected" in worker.last and "不属于本网格管辖 <b>x</b>" in worker.last
    # Reopen from /issue, with a reason.
    await supervisor.send("/issue 2605-0001")
    await supervisor.press("Reopen")
    await supervisor.send("复查仍存在")
    assert [e[:3] for e in await events(db, issue.id)][-2:] == [("reject", "reported", "rejected"), ("reopen", "rejected", "reopened")]
    # Nobody resolved it: it waits for dispatch, and the supervisor dispatches it from the confirmation.
    assert "is reopened and waits for dispatch" in supervisor.last
    assert "👤 Assign" in [t for t, _ in buttons(supervisor.bot_messages()[-1])]
    assert "is now reopened" in worker.last


async def resolved_on_the_spot(db, worker: Tg) -> Issue:  # noqa: ANN001
    """A ground lock the worker removed themselves: reported already resolved, with an after-photo."""
    await report(worker, category="Illegal ground locks")
    await worker.press("Resolved on the spot")
    await worker.send("已联系车主拆除地锁")
    await worker.photo(AFTER)
    await worker.send("/done")
    (issue,) = await rows(db, Issue)
    return issue


async def test_a_reopened_issue_goes_back_to_whoever_resolved_it(app, api, db):
    s = await seed_issues(db)
    worker, supervisor = await users(app, api, WORKER_A, SUPERVISOR_A)
    issue = await resolved_on_the_spot(db, worker)
    clock.advance(timedelta(hours=2))
    await supervisor.send("/tasks")
    await supervisor.press("Reopen")
    out = await supervisor.send("地锁又装回去了")
    assert "Issue 2605-0001 is reopened and back with" in texts(out)
    assert [e[:4] for e in await events(db, issue.id)][1:] == [("reopen", "resolved", "reopened", s.base.supervisor_a.id),
                                                               ("assign", "reopened", "assigned", s.base.supervisor_a.id)]
    after = (await rows(db, Issue))[0]
    assert (after.status, after.assignee_id) == ("assigned", s.worker_a.id)
    # The worker is told why, with the buttons to work it, and finds it in /tasks.
    told = worker.bot_messages()[-1]
    assert "reopened issue 2605-0001, which you resolved" in told["text"] and "地锁又装回去了" in told["text"]
    assert {"Start", "Resolved"} <= {t.split(" ", 1)[-1] for t, _ in buttons(told)}
    out = await worker.send("/tasks")
    assert "2605-0001" in texts(out)
    await worker.press("Resolved")
    await worker.send("已再次拆除")
    await worker.send("/skip")
    assert (await rows(db, Issue))[0].status == "resolved"


async def test_a_reopened_issue_whose_resolver_left_waits_for_dispatch(app, api, db):
    await seed_issues(db)
    worker, supervisor = await users(app, api, WORKER_A, SUPERVISOR_A)
    await resolved_on_the_spot(db, worker)
    admin = Tg(app, api, ADMIN_ID)
    await admin.send(f"/deactivate {WORKER_A} 调离")
    await supervisor.send("/issue 2605-0001")
    await supervisor.press("Reopen")
    out = await supervisor.send("地锁又装回去了")
    assert "is reopened and waits for dispatch" in texts(out)
    after = (await rows(db, Issue))[0]
    assert (after.status, after.assignee_id) == ("reopened", None)
    out = await supervisor.press("Assign", supervisor.bot_messages()[-1])
    picker = [t for m in [*out, supervisor.bot_messages()[-1]] for t, _ in buttons(m)]
    assert any("赵敏" in t for t in picker)  # the grid's other worker, still active


async def test_hand_back_returns_it_for_dispatch(app, api, db):
    s = await seed_issues(db)
    assignee, supervisor = await users(app, api, WORKER_A2, SUPERVISOR_A)
    issue_id = await put_issue(db, s.grid_a, s.worker_a.id, "assigned", s.worker_a2.id)
    await assignee.send("/tasks")
    await assignee.press("Hand back")
    await assignee.send("不是我负责的片区")
    assert "handed back" in assignee.last
    assert "please dispatch it again" in supervisor.last and "👤 Assign" in [t for t, _ in buttons(supervisor.keyboard_message())]
    async with db.session() as sess:
        issue = (await sess.exec(select(Issue).where(Issue.id == issue_id))).one()
    assert (issue.status, issue.assignee_id) == ("reported", None)
    out = await assignee.send("/tasks")
    assert "No open tasks" in texts(out)


async def test_nearby_duplicate_can_be_attached(app, api, db):
    s = await seed_issues(db)
    (worker,) = await users(app, api, WORKER_A2)
    near = await put_issue(db, s.grid_a, s.worker_a.id, "assigned", s.worker_a.id, category="户外招牌", latitude=LAT + 0.0002, longitude=LON)
    await put_issue(db, s.grid_a, s.worker_a.id, "reported", category="户外招牌", latitude=LAT + 0.0009, longitude=LON)  # ~100 m
    await put_issue(db, s.grid_a, s.worker_a.id, "reported", category="市容环境", latitude=LAT, longitude=LON)  # other category
    await put_issue(db, s.grid_a, s.worker_a.id, "closed", s.worker_a.id, category="户外招牌", latitude=LAT, longitude=LON)  # not open
    await put_issue(db, s.grid_b, s.worker_b.id, "reported", category="户外招牌", latitude=LAT, longitude=LON)  # other grid
    out = await report(worker)
    summary = texts(out)
    assert summary.count("An open issue of the same category") == 1 and "is 22 m away: 9901-0001" in summary
    labels = [t for t, _ in buttons(worker.keyboard_message())]
    assert "📎 Add to 9901-0001 (22 m)" in labels
    out = await worker.press("Add to 9901-0001")
    assert "added to issue 9901-0001; no new issue was opened" in texts(out)
    assert len(await rows(db, Issue)) == 5
    assert (await events(db, near))[-1][:3] == ("attach", "assigned", "assigned")
    assert [p.issue_id for p in await rows(db, IssuePhoto)] == [near]
    # Far enough or another category: no prompt.
    out = await report(worker, lat=LAT - 0.0005)  # 78 m from the nearest open one
    assert "An open issue" not in texts(out)
    await worker.press("Cancel")
    out = await report(worker, category="City appearance", lat=LAT + 0.0009)  # on top of a 户外招牌 issue
    assert "An open issue" not in texts(out)


@pytest.mark.parametrize(("category", "urgent", "hours"), [
    ("户外招牌", False, 7 * 24), ("户外招牌", True, 84), ("市容环境", False, 72), ("市容环境", True, 36),
    ("垃圾分类", False, 24), ("垃圾分类", True, 12), ("安全隐患", True, 12), ("僵尸车", False, 168), ("其他", True, 84),
])
async def test_deadline_by_category_and_urgency(db, settings, category, urgent, hours):
    s = await seed_issues(db)
    draft = IssueDraft(draft_id="x" * 32, grid_id=s.grid_a, category=category, description="问题描述", urgent=urgent, address="幸福路1号")
    async with db.session() as session:
        result = await create_issue(session, draft, s.worker_a, settings.issue_categories, settings.tz)
    assert result.issue.due_at - result.issue.reported_at == timedelta(hours=hours)
    assert result.issue.due_at.tzinfo is not None


async def test_urgent_report_in_the_chat_shows_the_halved_deadline(app, api, db):
    await seed_issues(db)
    (worker,) = await users(app, api, WORKER_A)
    out = await report(worker, category="City appearance", urgent=True, photos=0, lat=None)
    assert "Deadline: 36 h, due 2026-05-21 22:00" in texts(out) and "Urgency: 🔴 urgent" in texts(out)
    await worker.press("Submit")
    (issue,) = await rows(db, Issue)
    assert issue.urgent and issue.due_at - issue.reported_at == timedelta(hours=36) and issue.latitude is None


async def test_human_ids_count_per_month_and_survive_races(db, settings):
    import asyncio

    s = await seed_issues(db)

    async def one(key: str) -> str:
        draft = IssueDraft(draft_id=key.ljust(32, "0"), grid_id=s.grid_a, category="其他", description="问题描述", address="幸福路1号")
        async with db.session() as session:
            return (await create_issue(session, draft, s.worker_a, DEFAULT_CATEGORIES, settings.tz)).issue.human_id

    assert [await one("a"), await one("b")] == ["2605-0001", "2605-0002"]
    assert await one("a") == "2605-0001"  # the same draft again: the same issue
    clock.advance(timedelta(days=11, hours=14))  # 2026-06-01 00:00 in Shanghai
    assert await one("c") == "2606-0001"
    ids = await asyncio.gather(*(one(f"r{k}") for k in range(4)), return_exceptions=True)
    ok = [i for i in ids if isinstance(i, str)]
    assert len(set(ok)) == len(ok) and len(ok) >= (1 if db.is_sqlite else 4), ids
    assert len(await rows(db, Issue)) == 3 + len(ok)


async def test_resolved_on_the_spot_needs_a_note_and_an_after_photo(app, api, db):
    s = await seed_issues(db)
    worker, supervisor = await users(app, api, WORKER_A, SUPERVISOR_A)
    await report(worker, category="Illegal ground locks")
    await worker.press("Resolved on the spot")
    await worker.send("已联系车主拆除地锁")
    out = await worker.send("/done")
    assert "at least one photo" in texts(out)
    await worker.photo(AFTER)
    out = await worker.send("/done")
    assert "resolved on the spot" in texts(out)
    (issue,) = await rows(db, Issue)
    assert issue.status == "resolved" and await events(db, issue.id) == [("resolve_on_spot", None, "resolved", s.worker_a.id, "已联系车主拆除地锁")]
    assert "New issue" not in supervisor.last  # nothing to dispatch
    out = await supervisor.send("/tasks")
    assert "0 to dispatch, 1 to verify" in texts(out)
    await supervisor.press("Verify")
    assert (await rows(db, Issue))[0].status == "closed"


async def test_visit_hazard_becomes_an_issue_with_one_button(app, api, db):
    s = await seed_issues(db)
    (worker,) = await users(app, api, WORKER_A)
    await worker.send("/visit")
    await worker.send("3栋1单元101")
    await worker.press("3栋1单元101")
    await worker.send("2")
    await worker.press("Safety hazard")
    await worker.press("Done")
    await worker.send("楼道堆放电动车电池")
    await worker.photo(JPEG)
    await worker.send("/done")
    await worker.location(LAT, LON)
    out = await worker.press("Save")
    assert [t for t, _ in buttons(out[-1])] == ["📝 Report an issue from this visit", "✏️ Edit", "↩️ Undo"]
    saved = out[-1]
    out = await worker.press("Report an issue from this visit", saved)
    assert "carried over" in texts(out)
    await worker.press("Safety hazard")
    out = await worker.send("楼道堆放电动车电池，有火灾隐患")
    assert "Is it urgent" in texts(out)  # place and photos came with the visit
    out = await worker.press("Urgent")
    assert "Address: 3栋1单元101" in texts(out) and "Photos: 1" in texts(out) and "Deadline: 12 h" in texts(out)
    await worker.press("Submit")
    (issue,) = await rows(db, Issue)
    assert (issue.source, issue.latitude, issue.longitude, issue.address, issue.grid_id) == ("visit", LAT, LON, "3栋1单元101", s.grid_a)
    assert len(await rows(db, IssuePhoto)) == 1
    await worker.press("Report an issue from this visit", saved)
    assert "already reported from this visit: 2605-0001" in (worker.answers()[-1] or "")
    # A normal visit offers no report button (only ✏️ / ↩️).
    await worker.send("/visit")
    await worker.send("3栋1单元102")
    await worker.press("3栋1单元102")
    await worker.send("1")
    await worker.press("Normal")
    await worker.press("Done")
    await worker.send("/skip")
    await worker.send("/done")
    await worker.send("/skip")
    out = await worker.press("Save")
    assert [t for t, _ in buttons(out[-1])] == ["✏️ Edit", "↩️ Undo"]


async def test_who_may_report_and_see(app, api, db):
    s = await seed_issues(db)
    supervisor, other_worker, admin = await users(app, api, SUPERVISOR_A, WORKER_B, ADMIN_ID)
    out = await supervisor.send("/report")
    assert "reported by grid workers" in texts(out) and supervisor.draft is None
    await put_issue(db, s.grid_a, s.worker_a.id, "reported")
    out = await other_worker.send("/issue 9901-0001")
    assert "No issue 9901-0001 in your grids" in texts(out)
    out = await admin.send("/issue 9901-0001")
    assert "堆放杂物" in texts(out) and "👤 Assign" in [t for t, _ in buttons(out[0])]
    out = await other_worker.send("/issue")
    assert "Which issue?" in texts(out)
    out = await other_worker.send("/help")
    assert "/report" in texts(out) and "/tasks" in texts(out) and "/issue" in texts(out)
    out = await supervisor.send("/help")
    assert "/report" not in texts(out) and "/tasks" in texts(out)


async def test_report_steps_refuse_wrong_input_and_mask_ids(app, api, db):
    await seed_issues(db)
    (worker,) = await users(app, api, WORKER_A)
    await worker.send("/report")
    out = await worker.send("hello")
    assert texts(out).startswith("This step expects: a category")
    await worker.press("Zombie cars")
    out = await worker.photo(JPEG)
    assert texts(out).startswith("This step expects: a description")
    await worker.send("车主身份证 11010519491231002X 僵尸车 <i>x</i>")
    out = await worker.send("/done")
    assert "Share a location or type an address first" in texts(out)
    await worker.send("幸福路3号")
    await worker.send("/done")
    await worker.send("/done")
    out = await worker.press("Normal")
    assert "110105********002X" in texts(out) and "<i>x</i>" in texts(out)
    await worker.press("Edit")
    await worker.press("Urgency")
    out = await worker.press("Urgent")
    assert "Deadline: 84 h" in texts(out)
    await worker.press("Submit")
    (issue,) = await rows(db, Issue)
    assert issue.description == "车主身份证 110105********002X 僵尸车 <i>x</i>" and issue.urgent


async def test_a_failed_notification_does_not_undo_the_report(app, api, db):
    await seed_issues(db)
    worker, supervisor = await users(app, api, WORKER_A, SUPERVISOR_A)
    api.block(SUPERVISOR_A)
    await report(worker)
    out = await worker.press("Submit")
    assert "Reported as issue 2605-0001" in texts(out)
    assert [i.status for i in await rows(db, Issue)] == ["reported"]


async def test_categories_come_from_the_configured_file(app, api, db, settings, tmp_path):
    path = tmp_path / "categories.json"
    path.write_text(json.dumps({"井盖缺失": 2, "其他": 5}, ensure_ascii=False), encoding="utf-8")
    settings.issue_categories_file = path
    settings.__dict__.pop("issue_categories", None)
    await seed_issues(db)
    (worker,) = await users(app, api, WORKER_A)
    out = await worker.send("/report")
    assert [t for t, _ in buttons(out[-1])] == ["井盖缺失 · 2 d", "Other · 5 d"]


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not valid JSON"),
    ('{"市容环境": 0}', "must be a number of days from 1 to 365"),
    ("[]", "must be a JSON object of categories"),
    (None, "cannot read"),
])
def test_bad_categories_file_is_one_clear_line(tmp_path, content, message):
    path = tmp_path / "cats.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "TELEGRAM_BOT_TOKEN": "123456:ABCdef", "DATABASE_URL": "sqlite:///./x.db", "ISSUE_CATEGORIES_FILE": str(path)}
    result = subprocess.run([str(Path(sys.executable).parent / "gridbot"), "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: ISSUE_CATEGORIES_FILE: ") and message in lines[0]


async def test_a_prefilled_report_button_for_other_flows(app, api, db):
    """What the patrol flow gets: handlers.issues.report_button / start_report_from put a place and photos into /report."""
    s = await seed_issues(db)
    (worker,) = await users(app, api, WORKER_A)
    app.user_data[WORKER_A]["issue_prefills"] = {"0badcafe": {
        "latitude": LAT, "longitude": LON, "address": "幸福路8号 餐馆", "grid_id": s.grid_a, "source": "patrol", "source_id": 7,
        "photos": [{"file_id": "patrol-photo", "file_unique_id": "u", "sha256": "c" * 64}]}}
    out = await worker.press_data("issue:new:0badcafe", worker.bot_messages()[-1])
    assert "place and photos of the patrol are carried over" in texts(out)
    await worker.press("Restaurant fumes")
    await worker.send("油烟直排")
    out = await worker.press("Normal")
    assert "Address: 幸福路8号 餐馆" in texts(out) and "Photos: 1" in texts(out) and "Deadline: 3 d" in texts(out)
    await worker.press("Submit")
    (issue,) = await rows(db, Issue)
    assert (issue.source, issue.source_id, issue.category) == ("patrol", 7, "油烟扰民")
    await worker.press_data("issue:new:0badcafe", worker.bot_messages()[-1])  # used up
    assert "expired" in (worker.answers()[-1] or "")


async def test_tasks_are_listed_by_due_time(app, api, db):
    s = await seed_issues(db)
    (assignee,) = await users(app, api, WORKER_A2)
    later = await put_issue(db, s.grid_a, s.worker_a.id, "assigned", s.worker_a2.id, at=clock.now() - timedelta(days=1))
    sooner = await put_issue(db, s.grid_a, s.worker_a.id, "in_progress", s.worker_a2.id, at=clock.now() - timedelta(days=5))
    await put_issue(db, s.grid_a, s.worker_a.id, "assigned", s.worker_a.id)  # someone else's
    await put_issue(db, s.grid_a, s.worker_a.id, "resolved", s.worker_a2.id)  # done
    out = await assignee.send("/tasks")
    assert len(out) == 1 and "Assigned to you: 2, by due time." in out[0]["text"]  # one message, not one per issue
    listed = [line for line in out[0]["text"].splitlines() if line[:2] in ("1.", "2.")]
    assert [line.split()[1] for line in listed] == [f"9901-{sooner:04d}", f"9901-{later:04d}"]
    assert "⏰ overdue" in listed[0] and "⏰ overdue" not in listed[1]
    assert [t for t, _ in buttons(out[0])] == [f"🔎 1. 9901-{sooner:04d}", f"🔎 2. 9901-{later:04d}"]
    card_ = await assignee.press("🔎 1.", out[0])
    assert [t for t, _ in buttons(card_[-1])] == ["✅ Resolved", "↩️ Hand back"]
    card_ = await assignee.press("🔎 2.", out[0])
    assert [t for t, _ in buttons(card_[-1])] == ["▶️ Start", "✅ Resolved", "↩️ Hand back"]


async def test_a_long_task_list_pages_in_one_message(app, api, db):
    s = await seed_issues(db)
    (assignee,) = await users(app, api, WORKER_A2)
    for n in range(14):
        await put_issue(db, s.grid_a, s.worker_a.id, "assigned", s.worker_a2.id, at=clock.now() - timedelta(hours=n))
    out = await assignee.send("/tasks")
    assert len(out) == 1 and "Page 1/3" in out[0]["text"] and len(buttons(out[0])) == 6 + 1
    await assignee.press("More ▶️", out[0])
    page2 = assignee.message(out[0]["message_id"])
    assert "Page 2/3" in page2["text"] and "7. " in page2["text"] and [t for t, _ in buttons(page2)][-2:] == ["◀️ Back", "More ▶️"]
    await assignee.press("More ▶️", page2)
    page3 = assignee.message(out[0]["message_id"])
    assert "Page 3/3" in page3["text"] and "14. " in page3["text"] and "More ▶️" not in str(buttons(page3))
    await assignee.press_data("tasks:page:99", page3)  # a page past the end: the last one
    assert "Page 3/3" in assignee.message(out[0]["message_id"])["text"]


async def test_a_supervisor_extends_a_deadline_with_a_reason_and_past_reports_keep_the_old_one(app, api, db):
    from models import periods, stats

    s = await seed_issues(db)
    assignee, supervisor = await users(app, api, WORKER_A2, SUPERVISOR_A)
    reported = clock.now() - timedelta(days=5)
    issue_id = await put_issue(db, s.grid_a, s.worker_a.id, "assigned", s.worker_a2.id, at=reported)  # due 3 days after: overdue now
    before = clock.now()
    clock.advance(timedelta(hours=1))
    await supervisor.send(f"/issue 9901-{issue_id:04d}")
    await supervisor.press("⏳ Extend")
    assert "How many more days?" in str(supervisor.bot_messages())
    await supervisor.press("+7 d")
    assert "Why does issue" in supervisor.last
    out = await supervisor.send("等待供电公司更换电缆")
    assert "the deadline is now" in texts(out)
    (issue,) = [i for i in await rows(db, Issue) if i.id == issue_id]
    assert issue.due_at == clock.now() + timedelta(days=7) and issue.status == "assigned"
    extend = (await events(db, issue_id))[-1]
    assert extend[:3] == ("extend", "assigned", "assigned") and extend[4] == "等待供电公司更换电缆"
    assert "more time" in assignee.last and "等待供电公司更换电缆" in assignee.last
    # The figures: overdue before the extension (as of then), not overdue now.
    half = periods.current("half", clock.now(), ZoneInfo("Asia/Shanghai"))
    async with db.session() as session:
        (then,) = await stats.issue_figures(session, half, before, [s.grid_a], by=())
        (now,) = await stats.issue_figures(session, half, clock.now(), [s.grid_a], by=())
    assert (then.overdue, now.overdue) == (1, 0)
    # A worker has no such button, and a forged one is refused.
    await assignee.send(f"/issue 9901-{issue_id:04d}")
    assert "⏳ Extend" not in str(buttons(assignee.keyboard_message()))
    await assignee.press_data(f"issn:extend:{issue_id}:a:7", assignee.keyboard_message())
    assert assignee.draft is None and (await rows(db, Issue))[0].due_at == issue.due_at
