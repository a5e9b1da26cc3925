"""Admin tools through the real Application: figures, scope per role, users and their menus, deactivation."""

from __future__ import annotations

import re

from sqlmodel import select

from models import audit
from models.issues import Issue, IssueEvent
from models.tables import Role
from models.users import create_user
from tests.conftest import ADMIN_ID, TOKEN, Tg, by_telegram, texts
from tests.seed import SUPERVISOR_A, WORKER_A, WORKER_B, seed
from tests.test_join import join_as_admin

MANAGER_COMMANDS = ("/stats", "/overdue", "/workers", "/grids", "/summary 2026H1", "/export visits 2026H1", "/users")
ADMIN_ONLY = ("/targets half 25", "/setrole 1001 supervisor", "/setgrid 1001 G02", "/deactivate 1001", "/import households")


async def test_workers_have_none_of_the_admin_commands(app, api, db):
    await seed(db)
    worker = Tg(app, api, WORKER_A)
    for command in MANAGER_COMMANDS + ADMIN_ONLY:
        out = await worker.send(command)
        assert "not available for your role" in texts(out), command
    supervisor = Tg(app, api, SUPERVISOR_A)
    for command in ADMIN_ONLY:
        out = await supervisor.send(command)
        assert "not available for your role" in texts(out), command
    out = await worker.send("/help")
    assert not {"/stats", "/users", "/export", "/import"} & set(re.findall(r"/\w+", texts(out)))


async def test_supervisor_sees_only_their_grids(app, api, db):
    await seed(db)
    supervisor = Tg(app, api, SUPERVISOR_A)
    out = await supervisor.send("/stats 2026H1 G02")
    assert "not one of your grids" in texts(out)
    out = await supervisor.send("/stats 2026H1 G01")
    assert "Figures 2026H1" in texts(out) and "of 8 = coverage" in texts(out)
    out = await supervisor.send("/stats")
    assert "of 8 = coverage" in texts(out)  # only G01's 8 households, not G02's 2
    out = await supervisor.send("/grids")
    assert "G01" in texts(out) and "G02" not in texts(out)
    out = await supervisor.send("/users")
    assert "王芳" in texts(out) and "李强" not in texts(out)
    out = await supervisor.send("/overdue G02")
    assert "not one of your grids" in texts(out)
    out = await supervisor.send("/stats 2026X9")
    assert "no grid with code «2026X9»" in texts(out)  # what is not a period is taken as a grid code
    out = await supervisor.send("/stats 2026H1 G99")
    assert "no grid with code «G99»" in texts(out)
    # Periods as people say them, grid codes in any letter case (the clock: 2026-05-20).
    for said, label in (("2026上半年", "2026H1"), ("本月", "2026-05"), ("上周", "2026-W20"), ("今年", "2026"), ("去年下半年", "2025H2"),
                        ("2026年5月", "2026-05"), ("last month", "2026-04")):
        out = await supervisor.send(f"/stats {said} g01")
        assert f"Figures {label}" in texts(out), (said, texts(out))
    out = await supervisor.send("/stats g02")
    assert "not one of your grids" in texts(out)


async def test_admin_sees_every_grid(app, api, db):
    await seed(db)
    admin = await join_as_admin(app, api)
    out = await admin.send("/stats")
    assert "of 10 = coverage" in texts(out)
    out = await admin.send("/grids")
    assert "G01" in texts(out) and "G02" in texts(out) and "8 households" in texts(out)
    out = await admin.send("/users")
    assert "王芳" in texts(out) and "李强" in texts(out) and "张伟" in texts(out)


async def test_setrole_and_setgrid_change_the_menu_at_once(app, api, db):
    await seed(db)
    await Tg(app, api, WORKER_A).send("/help")  # the chat exists (Telegram sets menus of known chats only)
    admin = await join_as_admin(app, api)
    out = await admin.send(f"/setrole {WORKER_A} supervisor")
    assert "is now supervisor" in texts(out)
    menu = {c["command"] for c in api.commands(TOKEN, {"type": "chat", "chat_id": WORKER_A})}
    assert {"stats", "users", "export"} <= menu and "setrole" not in menu
    out = await admin.send("/setgrid 王芳 G01,G02")
    assert "G01" in texts(out) and "G02" in texts(out)
    async with db.session() as s:
        user = (await s.exec(by_telegram(WORKER_A))).one()
        assert user.role == "supervisor"
    out = await Tg(app, api, WORKER_A).send("/grids")
    assert "G02" in texts(out)
    out = await admin.send("/setrole nobody admin")
    assert "No user «nobody»" in texts(out)
    out = await admin.send(f"/setrole {ADMIN_ID} worker")
    assert "your own account" in texts(out)
    async with db.session() as s:
        actions = [e.action for e in await audit.entries(s)]
    assert actions == ["setrole", "setgrid"]


async def test_deactivate_hands_back_open_issues_and_tells_supervisors(app, api, db):
    s = await seed(db)
    worker = Tg(app, api, WORKER_A)
    await worker.send("/help")
    await Tg(app, api, SUPERVISOR_A).send("/help")
    # A report by worker A, assigned to worker A by the supervisor.
    from datetime import timedelta

    from models import clock
    from models.issues import ASSIGNED

    async with db.session() as session:
        now = clock.now()
        issue = Issue(human_id="2605-0001", draft_id="d1", grid_id=s.grid_a, category="市容环境", description="垃圾", status=ASSIGNED,
                      reporter_id=s.worker_a.id, assignee_id=s.worker_a.id, reported_at=now, due_at=now + timedelta(days=3), updated_at=now)
        session.add(issue)
        await session.flush()
        session.add_all([IssueEvent(issue_id=issue.id, at=now, actor_id=s.worker_a.id, action="submit", to_status="reported"),
                         IssueEvent(issue_id=issue.id, at=now, actor_id=s.supervisor_a.id, action="assign", from_status="reported",
                                    to_status=ASSIGNED, assignee_id=s.worker_a.id)])
    admin = await join_as_admin(app, api)
    out = await admin.send(f"/deactivate {WORKER_A} left the office")
    assert "deactivated" in texts(out) and "Issues handed back to the supervisors: 1" in texts(out)
    assert "2605-0001" in Tg(app, api, SUPERVISOR_A).last and "back in your dispatch queue" in Tg(app, api, SUPERVISOR_A).last
    out = await worker.send("/visit")
    assert "deactivated" in texts(out)
    async with db.session() as session:
        row = (await session.exec(select(Issue))).one()
        assert (row.status, row.assignee_id) == ("reported", None)
        last = (await session.exec(select(IssueEvent).order_by(IssueEvent.id.desc()))).first()
        assert (last.action, last.note) == ("hand_back", "left the office")
        assert (await session.exec(by_telegram(WORKER_A))).one().active is False
    out = await admin.send(f"/deactivate {WORKER_A}")
    assert "already deactivated" in texts(out)


async def test_targets_and_workers(app, api, db):
    await seed(db)
    admin = await join_as_admin(app, api)
    out = await admin.send("/targets half 25 G01")
    assert "25% for 1 grid" in texts(out)
    out = await admin.send("/targets half 0")
    assert "above 0" in texts(out)
    out = await admin.send("/targets month 25")
    assert "Usage: /targets" in texts(out)
    out = await admin.send("/grids")
    assert re.search(r"G01 .*target 25%", texts(out)) and re.search(r"G02 .*target 20%", texts(out))
    out = await admin.send("/workers 2026-05")
    assert "王芳" in texts(out) and "0 / 0 / 0" in texts(out)
    workers, supervisors = texts(out).split("Supervisors")
    assert "王芳" in workers and "李强" in workers and "张伟" not in workers and "张伟" in supervisors  # 张伟 supervises G01


async def test_help_fits_the_role(app, api, db):
    await seed(db)
    worker = Tg(app, api, WORKER_A)
    text = texts(await worker.send("/help"))
    assert "/tasks — your assigned issues: start, resolve or hand back each" in text
    assert "dispatch" not in text and "verify" not in text and "Daily work" not in text
    admin = await join_as_admin(app, api)
    text = texts(await admin.send("/help"))
    assert "/users — every user, with role and grids" in text and "your grids" not in text.split("/users")[1].split("\n")[0]
    headings = [h for h in ("Daily work", "Figures", "People", "Ledgers", "Other") if h in text]
    assert headings == ["Daily work", "Figures", "People", "Ledgers", "Other"]
    assert text.index("/import") > text.index("Ledgers") > text.index("/invite") > text.index("People")
    supervisor = Tg(app, api, SUPERVISOR_A)
    text = texts(await supervisor.send("/help"))
    assert "/users — the users of your grids" in text and "/tasks — issues waiting for you: to do, to dispatch, to verify" in text


async def test_role_of_new_user_without_grid_is_refused(db):
    async with db.session() as s:
        await create_user(s, 7001, Role.ADMIN, [], "新管理员", "en")
    # set_role to worker needs a grid
    from models.admin import find_user, set_role
    from models.errors import RuleError

    async with db.session() as s:
        admin = await create_user(s, 7002, Role.ADMIN, [], "A", "en")
        target = await find_user(s, "新管理员")
        try:
            await set_role(s, admin, target, Role.WORKER)
        except RuleError as err:
            assert err.code == "role_needs_grid"
        else:
            raise AssertionError("refused expected")


async def test_worker_b_unaffected(app, api, db):
    await seed(db)
    out = await Tg(app, api, WORKER_B).send("/my")
    assert "Your visits" in texts(out)
