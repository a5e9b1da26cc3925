"""Corrections (issue 6): void and correct visits, patrols and issue reports — who may, the trail, and
every figure, list and export leaving voided records out. Through the Application and directly."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from models import admin as admin_model
from models import clock, corrections, periods, reminders, stats
from models.corrections import Correction, RecordRef, may_correct, refusal
from models.errors import RuleError
from models.issues import ASSIGNED, Issue, IssueEvent, find_issue, open_tasks, supervisor_queue, transition
from models.patrols import Finding, Patrol, Shop
from models.tables import Role, Visit
from models.users import create_user, get_member
from sandbox.localapi import buttons
from tests.conftest import ADMIN_ID, Tg, texts
from tests.seed import SUPERVISOR_A, WORKER_A, WORKER_B, seed
from tests.test_export import sent_workbook
from tests.test_join import join_as_admin

SUPERVISOR_B = 2002


def _tz():  # noqa: ANN202
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Shanghai")


async def add_visit(db, household_id: int, worker_id: int, saved_days_ago: float = 0, people: int = 2) -> int:  # noqa: ANN001
    now = clock.now()
    async with db.session() as s:
        v = Visit(draft_id=f"v{household_id}-{worker_id}-{saved_days_ago}-{people}", household_id=household_id, worker_id=worker_id,
                  visited_at=now - timedelta(days=saved_days_ago), people_met=people, situations=["正常"], notes="ok",
                  created_at=now - timedelta(days=saved_days_ago))
        s.add(v)
        await s.flush()
        return v.id


async def add_patrol(db, grid_id: int, worker_id: int) -> int:  # noqa: ANN001
    now = clock.now()
    async with db.session() as s:
        shop = Shop(grid_id=grid_id, name="老王面馆", address="幸福路1号", category="餐饮服务")
        s.add(shop)
        await s.flush()
        p = Patrol(draft_id=f"p{shop.id}", shop_id=shop.id, worker_id=worker_id, patrolled_at=now, created_at=now,
                   items=[{"name": "证照公示", "weight": 1, "key": False, "passed": False}])
        s.add(p)
        await s.flush()
        s.add_all([Finding(patrol_id=p.id, item="证照公示", disposition="escalated", outcome="fined"),
                   Finding(patrol_id=p.id, item="卫生", disposition="corrected")])
        return p.id


async def add_issue(db, grid_id: int, reporter_id: int, assignee_id: int | None = None, human_id: str = "2605-0001") -> int:  # noqa: ANN001
    now = clock.now()
    async with db.session() as s:
        status = ASSIGNED if assignee_id else "reported"
        issue = Issue(human_id=human_id, draft_id=f"d{human_id}", grid_id=grid_id, category="市容环境", description="垃圾堆放",
                      status=status, reporter_id=reporter_id, assignee_id=assignee_id, reported_at=now - timedelta(days=5),
                      due_at=now - timedelta(days=2), updated_at=now)
        s.add(issue)
        await s.flush()
        s.add(IssueEvent(issue_id=issue.id, at=now - timedelta(days=5), actor_id=reporter_id, action="submit", to_status="reported"))
        if assignee_id:
            s.add(IssueEvent(issue_id=issue.id, at=now - timedelta(days=4), actor_id=reporter_id, action="assign", from_status="reported",
                             to_status=ASSIGNED, assignee_id=assignee_id))
        return issue.id


# -- who may (direct) ----------------------------------------------------------------------------


async def test_may_correct_author_within_7_days_supervisor_of_grid_admin(db):
    s = await seed(db)
    async with db.session() as session:
        sup_b = await create_user(session, SUPERVISOR_B, Role.SUPERVISOR, [s.grid_b], "赵六", "en")
        admin = await create_user(session, ADMIN_ID, Role.ADMIN, [], "Admin", "en")
    now = clock.now()
    fresh = RecordRef("visit", 1, "#1", s.grid_a, s.worker_a.id, now - timedelta(days=6, hours=23), None)
    old = RecordRef("visit", 2, "#2", s.grid_a, s.worker_a.id, now - timedelta(days=7, minutes=1), None)
    assert may_correct(s.worker_a, fresh, now)
    assert not may_correct(s.worker_a, old, now) and refusal(s.worker_a, old, now) == "correct_too_late"
    assert refusal(s.worker_b, fresh, now) == "correct_not_allowed"
    assert may_correct(s.supervisor_a, old, now)  # supervisor of the grid: any time
    assert refusal(sup_b, fresh, now) == "correct_not_allowed"
    assert may_correct(admin, old, now)
    # A worker who also works in the grid is no supervisor: someone else's record stays theirs.
    async with db.session() as session:
        colleague = await create_user(session, 1003, Role.WORKER, [s.grid_a], "孙七", "en")
    assert not may_correct(colleague, fresh, now)


# -- the trail and the rules (direct) -------------------------------------------------------------


async def test_correct_visit_keeps_old_values_and_requires_a_reason(db):
    s = await seed(db)
    vid = await add_visit(db, s.households_a[0], s.worker_a.id, people=2)
    async with db.session() as session:
        with pytest.raises(RuleError) as err:
            await corrections.correct_visit(session, vid, s.worker_a, "   ", {"people_met": 3})
        assert err.value.code == "reason_missing"
    async with db.session() as session:
        with pytest.raises(RuleError) as err:
            await corrections.correct_visit(session, vid, s.worker_b, "wrong", {"people_met": 3})
        assert err.value.code == "correct_not_allowed"
    async with db.session() as session:
        with pytest.raises(RuleError) as err:
            await corrections.correct_visit(session, vid, s.worker_a, "x", {"household_id": 3})
        assert err.value.code == "field_not_correctable"
    async with db.session() as session:
        record, old, new = await corrections.correct_visit(
            session, vid, s.worker_a, "miscounted, ID 110101199003071234", {"people_met": 3, "situations": ["需帮扶"], "notes": ""})
    assert old == {"people_met": 2, "situations": ["正常"], "notes": "ok"} and new == {"people_met": 3, "situations": ["需帮扶"], "notes": None}
    async with db.session() as session:
        visit = (await session.exec(select(Visit).where(Visit.id == vid))).one()
        assert (visit.people_met, visit.situations, visit.notes, visit.voided_at) == (3, ["需帮扶"], None, None)
        (row,) = await corrections.corrections_of(session, "visit", vid)
        assert (row.action, row.actor_id, row.old_values["people_met"], row.new_values["people_met"]) == ("corrected", s.worker_a.id, 2, 3)
        assert "110101********1234" in row.reason and "19900307" not in row.reason


async def test_void_is_final_and_refusals_change_nothing(db):
    s = await seed(db)
    vid = await add_visit(db, s.households_a[0], s.worker_a.id)
    old = await add_visit(db, s.households_a[1], s.worker_a.id, saved_days_ago=8)
    async with db.session() as session:
        with pytest.raises(RuleError) as err:
            await corrections.void_record(session, "visit", old, s.worker_a, "late")
        assert err.value.code == "correct_too_late"
        with pytest.raises(RuleError) as err:
            await corrections.void_record(session, "visit", vid, s.worker_a, "")
        assert err.value.code == "reason_missing"
        with pytest.raises(RuleError) as err:
            await corrections.void_record(session, "visit", 999, s.worker_a, "x")
        assert err.value.code == "record_not_found"
    async with db.session() as session:
        assert (await session.exec(select(Correction))).all() == []
        await corrections.void_record(session, "visit", vid, s.worker_a, "entered twice")
    async with db.session() as session:
        with pytest.raises(RuleError) as err:
            await corrections.void_record(session, "visit", vid, s.supervisor_a, "again")
        assert err.value.code == "already_voided"
        with pytest.raises(RuleError) as err:
            await corrections.correct_visit(session, vid, s.supervisor_a, "after void", {"people_met": 1})
        assert err.value.code == "already_voided"
    async with db.session() as session:
        visit = (await session.exec(select(Visit).where(Visit.id == vid))).one()
        assert visit.voided_by == s.worker_a.id and visit.void_reason == "entered twice" and visit.voided_at == clock.now()
        rows = (await session.exec(select(Correction))).all()
        assert [(r.record_kind, r.record_id, r.action) for r in rows] == [("visit", vid, "voided")]
        assert rows[0].old_values["people_met"] == 2 and rows[0].new_values["voided_by"] == s.worker_a.id
        # The supervisor voids the worker's 8-day-old visit: allowed at any time.
        await corrections.void_record(session, "visit", old, s.supervisor_a, "household moved away before")


async def test_voided_visit_leaves_every_visit_figure(db):
    s = await seed(db)
    keep = await add_visit(db, s.households_a[0], s.worker_a.id)
    gone = await add_visit(db, s.households_a[1], s.worker_a.id)
    now, tz = clock.now(), _tz()
    half = periods.current("half", now, tz)

    async def figures() -> tuple:
        async with db.session() as session:
            cov = (await stats.grid_coverage(session, [s.grid_a], half, now))[0]
            mine = await stats.my_summary(session, s.worker_a.id, [s.grid_a], now, tz)
            rows = await admin_model.visit_rows(session, [s.grid_a], half, tz, False)
            activity = {a.user_id: a.visits for a in await stats.worker_activity(session, [s.grid_a], half)}
            due = await reminders.households_to_visit(session, [s.grid_a], now, {s.grid_a})
            last = {h.household_id: h.last_visit for h in due.get(s.grid_a, [])}
            weekly = await stats.weekly_visits_by_grid(session, [s.grid_a], [periods.current("week", now, tz)])
            by_worker = await reminders.half_year_visits_by_worker(session, [s.worker_a.id], half.start, half.end)
            return (await stats.visit_count(session, half), cov.visits, cov.households_visited, mine.half, sorted(r[0] for r in rows),
                    activity[s.worker_a.id], last.get(s.households_a[1]) is not None, weekly[s.grid_a][0], by_worker[s.worker_a.id])

    assert await figures() == (2, 2, 2, 2, sorted([keep, gone]), 2, True, 2, 2)
    async with db.session() as session:
        await corrections.void_record(session, "visit", gone, s.worker_a, "wrong household")
    assert await figures() == (1, 1, 1, 1, [keep], 1, False, 1, 1)


async def test_voided_patrol_and_issue_leave_figures_lists_and_transitions(db):
    s = await seed(db)
    pid = await add_patrol(db, s.grid_a, s.worker_a.id)
    iid = await add_issue(db, s.grid_a, s.worker_a.id, assignee_id=s.worker_a.id)
    now, tz = clock.now(), _tz()
    half = periods.current("half", now, tz)
    async with db.session() as session:
        (pf,) = await stats.patrol_figures(session, [s.grid_a], half, now, tz)
        assert (pf.patrols, pf.corrections, pf.escalations, pf.fined) == (1, 1, 1, 1)
        (inf,) = await stats.issue_figures(session, half, now, [s.grid_a], by=())
        assert (inf.reported, inf.overdue) == (1, 1)
        assert len(await open_tasks(session, s.worker_a)) == 1
        assert (await admin_model.overdue_issues(session, [s.grid_a], now))[1] == 1
    async with db.session() as session:
        with pytest.raises(RuleError) as err:
            await corrections.correct_visit(session, pid, s.worker_a, "x", {"people_met": 1})  # a patrol id is not a visit
        assert err.value.code in ("record_not_found", "correct_not_allowed")
        await corrections.void_record(session, "patrol", pid, s.supervisor_a, "wrong shop")
        record = await corrections.void_record(session, "issue", "2605-0001", s.worker_a, "duplicate of a phone report")
        assert record.id == iid
    async with db.session() as session:
        (pf,) = await stats.patrol_figures(session, [s.grid_a], half, now, tz)
        assert (pf.patrols, pf.shops_covered, pf.corrections, pf.escalations, pf.fined) == (0, 0, 0, 0, 0)
        assert await stats.issue_figures(session, half, now, [s.grid_a], by=()) == []
        assert await open_tasks(session, s.worker_a) == [] and await supervisor_queue(session, s.supervisor_a) == []
        assert (await admin_model.overdue_issues(session, [s.grid_a], now))[1] == 0
        assert await admin_model.patrol_rows(session, [s.grid_a], half, tz, False) == []
        assert (await admin_model.issue_rows(session, [s.grid_a], half, tz, False)) == ([], [])
        activity = {a.user_id: (a.patrols, a.reports) for a in await stats.worker_activity(session, [s.grid_a], half)}
        assert activity[s.worker_a.id] == (0, 0)
        issue = (await session.exec(select(Issue).where(Issue.id == iid))).one()
        assert issue.status == ASSIGNED and issue.void_reason == "duplicate of a phone report"  # the status stays
        events = (await session.exec(select(IssueEvent).where(IssueEvent.issue_id == iid).order_by(IssueEvent.id))).all()
        assert (events[-1].action, events[-1].from_status, events[-1].to_status) == ("void", ASSIGNED, ASSIGNED)
        view = await find_issue(session, "2605-0001")
        assert view is not None and view.voided_at is not None
        with pytest.raises(RuleError) as err:
            await transition(session, iid, "start", s.worker_a, ASSIGNED)
        assert err.value.code == "voided"
        with pytest.raises(RuleError) as err:
            await corrections.correct_issue(session, iid, s.supervisor_a, "typo", "垃圾堆放在楼道")
        assert err.value.code == "already_voided"


async def test_correct_issue_description_only(db):
    s = await seed(db)
    iid = await add_issue(db, s.grid_a, s.worker_a.id)
    async with db.session() as session:
        with pytest.raises(RuleError) as err:
            await corrections.correct_issue(session, iid, s.worker_b, "typo", "垃圾堆放在楼道")
        assert err.value.code == "correct_not_allowed"
        _record, old, new = await corrections.correct_issue(session, "2605-0001", s.worker_a, "typo", "垃圾堆放在楼道")
    assert old == {"description": "垃圾堆放"} and new == {"description": "垃圾堆放在楼道"}
    async with db.session() as session:
        assert (await session.exec(select(Issue.description).where(Issue.id == iid))).one() == "垃圾堆放在楼道"
        assert [c.action for c in await corrections.corrections_of(session, "issue", iid)] == ["corrected"]


# -- through the Application -----------------------------------------------------------------------


async def test_worker_voids_own_visit_in_chat_and_my_drops_it(app, api, db):
    s = await seed(db)
    keep = await add_visit(db, s.households_a[0], s.worker_a.id)
    gone = await add_visit(db, s.households_a[1], s.worker_a.id)
    late = await add_visit(db, s.households_a[2], s.worker_a.id, saved_days_ago=8)
    worker = Tg(app, api, WORKER_A)
    out = await worker.send("/my")
    assert "This half-year (2026H1): 3" in texts(out)
    out = await worker.send(f"/void visit {gone}")
    assert "Give a reason" in texts(out)
    out = await worker.send(f"/void visit {gone} entered twice by mistake")
    assert f"Visit #{gone} voided" in texts(out)
    out = await worker.send(f"/void visit {gone} again")
    assert "already voided" in texts(out)
    out = await worker.send(f"/void visit {late} old one")
    assert "more than 7 days ago" in texts(out)
    out = await Tg(app, api, WORKER_B).send(f"/void visit {keep} not mine")
    assert "You may not change visit #" in texts(out)
    out = await worker.send("/my")
    assert "This half-year (2026H1): 2" in texts(out)
    out = await worker.send("/void")
    assert "Usage: /void" in texts(out)
    out = await worker.send("/void shop 1 x")
    assert "use visit, patrol or issue" in texts(out)
    async with db.session() as session:
        voided = (await session.exec(select(Visit.id).where(Visit.voided_at.is_not(None)))).all()
        assert voided == [gone]
        assert len((await session.exec(select(Correction))).all()) == 1


async def test_correct_visit_in_chat(app, api, db):
    s = await seed(db)
    vid = await add_visit(db, s.households_a[0], s.worker_a.id, people=2)
    worker = Tg(app, api, WORKER_A)
    out = await worker.send(f"/correct visit {vid} people 3")
    assert "Usage: /correct" in texts(out)
    out = await worker.send(f"/correct visit {vid} people 3 --")
    assert "Give a reason" in texts(out)
    out = await worker.send(f"/correct visit {vid} people 30 -- miscounted")
    assert "from 0 to 20" in texts(out)
    out = await worker.send(f"/correct visit {vid} people 3 -- miscounted")
    assert f"Visit #{vid} corrected: people met: 2 → 3" in texts(out)
    out = await worker.send(f"/correct visit {vid} situation 需帮扶, Dispute -- both found")
    assert "situation: Normal → Needs help、Dispute" in texts(out)
    out = await worker.send(f"/correct visit {vid} household 3 -- x")
    assert "cannot be corrected here" in texts(out) and "people met, situation, notes" in texts(out)
    out = await Tg(app, api, SUPERVISOR_A).send(f"/correct visit {vid} notes 老人住院 -- told by neighbour")
    assert "notes: ok → 老人住院" in texts(out)
    async with db.session() as session:
        visit = (await session.exec(select(Visit).where(Visit.id == vid))).one()
        assert (visit.people_met, visit.situations, visit.notes) == (3, ["需帮扶", "矛盾纠纷"], "老人住院")
        trail = await corrections.corrections_of(session, "visit", vid)
        assert [(c.old_values, c.actor_id) for c in trail] == [
            ({"people_met": 2}, s.worker_a.id), ({"situations": ["正常"]}, s.worker_a.id), ({"notes": "ok"}, s.supervisor_a.id)]


async def test_supervisor_and_admin_scope_in_chat_and_stats_and_export(app, api, db):
    s = await seed(db)
    async with db.session() as session:
        await create_user(session, SUPERVISOR_B, Role.SUPERVISOR, [s.grid_b], "赵六", "en")
    old_visit = await add_visit(db, s.households_a[0], s.worker_a.id, saved_days_ago=30)
    await add_visit(db, s.households_a[1], s.worker_a.id, saved_days_ago=30)
    pid = await add_patrol(db, s.grid_a, s.worker_a.id)
    await add_issue(db, s.grid_a, s.worker_a.id)
    other = Tg(app, api, SUPERVISOR_B)
    out = await other.send(f"/void visit {old_visit} not my grid")
    assert "You may not change visit" in texts(out)
    out = await other.send("/void issue 2605-0001 not my grid")
    assert "You may not change issue 2605-0001" in texts(out)
    supervisor = Tg(app, api, SUPERVISOR_A)
    out = await supervisor.send("/stats 2026H1")
    assert "Visits: 2" in texts(out) and "Patrols: 1;" in texts(out) and "Problems collected: 1 (" in texts(out)
    out = await supervisor.send(f"/void visit {old_visit} a test entry")  # 30 days old: a supervisor of the grid may
    assert "voided" in texts(out)
    out = await supervisor.send(f"/correct patrol {pid} notes x -- y")
    assert "cannot be corrected here" in texts(out) and "/void" in texts(out)
    out = await supervisor.send(f"/void patrol {pid} wrong shop")
    assert f"Patrol #{pid} voided" in texts(out)
    admin = await join_as_admin(app, api)
    out = await admin.send("/correct issue 2605-0001 description 楼道垃圾堆放 -- clearer")
    assert "description: 垃圾堆放 → 楼道垃圾堆放" in texts(out)
    out = await admin.send("/void issue 2605-0001 duplicate")
    assert "Issue 2605-0001 voided" in texts(out)
    out = await admin.send("/stats 2026H1")
    assert "Visits: 1" in texts(out) and "Patrols: 0;" in texts(out) and "Problems collected: 0 (" in texts(out)
    out = await supervisor.send("/overdue")
    assert "No overdue issue" in texts(out)
    out = await supervisor.send("/issue 2605-0001")
    assert "Voided" in texts(out) and "duplicate" in texts(out)
    await admin.send("/export visits 2026H1")
    _name, wb = sent_workbook(api, ADMIN_ID)
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    assert len(rows) == 1 + 1 and old_visit not in [r[0] for r in rows[1:]]
    await admin.send("/export issues 2026H1")
    _name, wb = sent_workbook(api, ADMIN_ID)
    assert len(list(wb.worksheets[0].iter_rows(values_only=True))) == 1
    async with db.session() as session:
        assert (await get_member(session, ADMIN_ID)).is_admin
        trail = (await session.exec(select(Correction.record_kind, Correction.action).order_by(Correction.id))).all()
    assert trail == [("visit", "voided"), ("patrol", "voided"), ("issue", "corrected"), ("issue", "voided")]


async def test_help_lists_void_and_correct_for_workers(app, api, db):
    await seed(db)
    out = await Tg(app, api, WORKER_A).send("/help")
    assert "/void" in texts(out) and "/correct" in texts(out)


# -- ✏️ Edit / ↩️ Undo right after saving ------------------------------------------------------------


async def db_rows(db, model) -> list:  # noqa: ANN001
    async with db.session() as s:
        return list((await s.exec(select(model).order_by(model.id))).all())


async def test_undo_right_after_saving_voids_the_visit_with_its_trail(app, api, db):
    from tests.test_visit import walk_to

    await seed(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "CONFIRM")
    out = await u.press("Save")
    saved = out[-1]
    assert [t for t, _ in buttons(saved)] == ["✏️ Edit", "↩️ Undo"]
    await u.press("↩️ Undo", saved)
    assert u.answers()[-1] == "↩️ Undone."
    assert "Visit #1 was undone" in u.message(saved["message_id"])["text"]
    async with db.session() as s:
        (visit,) = (await s.exec(select(Visit))).all()
        (trail,) = (await s.exec(select(Correction))).all()
    assert visit.voided_at == clock.now() and (trail.action, trail.reason) == ("voided", "Undone by its author right after saving")
    await u.press_data("aft:visit:1:undo", saved)  # twice: nothing more
    assert len(await db_rows(db, Correction)) == 1
    # An undone visit can no longer become an issue report (its confirmation's button is void).
    from models.issues import visit_prefill

    async with db.session() as s:
        with pytest.raises(RuleError) as refused:
            await visit_prefill(s, 1, await get_member(s, WORKER_A))
    assert refused.value.code == "not_found"


async def test_edit_right_after_saving_reopens_the_summary_and_the_new_save_replaces_the_old(app, api, db):
    from tests.test_visit import walk_to

    await seed(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "CONFIRM")
    saved = (await u.press("Save"))[-1]
    out = await u.press("✏️ Edit", saved)
    assert "Saving replaces visit #1" in texts(out) and u.draft["step"] == "CONFIRM"
    await u.press("Edit")
    await u.press("People met")
    await u.send("5")
    await u.press("Save")
    visits = await db_rows(db, Visit)
    assert [(v.id, v.people_met, v.voided_at is not None) for v in visits] == [(1, 2, True), (2, 5, False)]
    (trail,) = await db_rows(db, Correction)
    assert trail.reason == "Replaced by visit #2 (edited right after saving)" and trail.record_id == 1
    assert visits[1].notes == visits[0].notes and visits[1].photos == visits[0].photos  # everything else carried over


async def test_edit_and_undo_close_after_ten_minutes_and_are_the_authors_only(app, api, db):
    from tests.test_visit import walk_to

    await seed(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "CONFIRM")
    saved = (await u.press("Save"))[-1]
    other = Tg(app, api, SUPERVISOR_A)  # a forged button in another user's chat
    await other.press_data("aft:visit:1:undo", (await other.send("/help"))[-1])
    assert "for whoever saved it" in (other.answers()[-1] or "")
    clock.advance(timedelta(minutes=11))
    await u.press("↩️ Undo", saved)
    assert "/void visit 1 REASON" in (u.answers()[-1] or "")
    await u.press("✏️ Edit", saved)
    assert "/correct visit 1" in (u.answers()[-1] or "") and u.draft is None
    assert [v.voided_at for v in await db_rows(db, Visit)] == [None] and await db_rows(db, Correction) == []


async def test_a_patrol_saved_by_mistake_is_undone_from_its_confirmation(app, api, db):
    from tests.seed_patrols import seed_patrols
    from tests.test_patrols import patrol

    await seed_patrols(db)
    u = Tg(app, api, WORKER_A)
    out = await patrol(u, "老王面馆")
    saved = next(m for m in reversed(out) if "↩️ Undo" in str(buttons(m)))
    assert "✏️ Edit" not in str(buttons(saved))  # a patrol is undone and logged again, not edited
    await u.press("↩️ Undo", saved)
    (row,) = await db_rows(db, Patrol)
    assert row.voided_at is not None and "Patrol #1 was undone" in u.message(saved["message_id"])["text"]
