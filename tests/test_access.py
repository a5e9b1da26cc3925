"""Every command × every role, through the real Application: who gets what, and refusals change nothing.

The command list is collected from the Application's handlers (so a new command is covered without
editing this file); roles come from handlers.start.COMMANDS. Forged button data from another user or
another grid is refused with nothing changed.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from models import clock, metadata
from models.patrols import Finding, Patrol
from models.tables import Role, User
from models.users import create_user
from tests.conftest import ADMIN_ID, TOKEN, Tg, texts
from tests.seed import SUPERVISOR_A, WORKER_A, WORKER_B, seed
from tests.seed_issues import put_issue

DEACTIVATED, STRANGER, SUPERVISOR_B = 3001, 4242, 2002
ERROR = "Sorry, something went wrong"
NOT_REGISTERED = "You are not registered with gridbot yet"
DEACTIVATED_TEXT = "has been deactivated"
REFUSALS = (
    "not available for your role",
    "Issues are reported by grid workers",  # /report: the command's own refusal
)
# Arguments that are harmless: mutating admin commands target a user that does not exist.
ARGS = {
    "issue": "2605-0001", "shop": "老王面馆", "void": "visit 999999 test", "correct": "visit 999999 notes x -- test",
    "setrole": "999999 worker", "setgrid": "999999 G01", "deactivate": "999999", "import": "households",
    "export": "visits 2026H1", "summary": "2026H1", "stats": "2026H1", "forget": "999999",
}
FLOW_ONLY = {"note": (Role.WORKER, Role.SUPERVISOR, Role.ADMIN)}  # opened from buttons; the command only explains


def registered_commands(app) -> set[str]:  # noqa: ANN001
    from handlers import commands

    return commands()


def allowed_roles(command: str) -> tuple[Role, ...]:
    from handlers.start import COMMANDS

    for name, _desc, roles in COMMANDS:
        if name == command:
            return roles
    if command in FLOW_ONLY:
        return FLOW_ONLY[command]
    raise AssertionError(f"/{command} is registered but has no line in handlers.start.COMMANDS")


async def counts(db) -> dict[str, int]:  # noqa: ANN001
    async with db.session() as s:
        return {t.name: (await s.exec(select(func.count()).select_from(t))).one()[0] for t in metadata.sorted_tables
                if t.name not in ("persisted_state", "processed_update", "job_run", "process_lease")}


@pytest.fixture
async def world(db):  # noqa: ANN201
    base = await seed(db)
    from models.patrols import Shop

    async with db.session() as s:
        await create_user(s, ADMIN_ID, Role.ADMIN, [], "管理员", "en")
        await create_user(s, SUPERVISOR_B, Role.SUPERVISOR, [base.grid_b], "陈静", "en")
        gone = await create_user(s, DEACTIVATED, Role.WORKER, [base.grid_a], "离职", "en")
        await s.exec(update(User).where(User.id == gone.id).values(active=False))
        shop = Shop(grid_id=base.grid_a, name="老王面馆", address="幸福路12号", category="餐饮服务")
        s.add(shop)
        await s.flush()
        patrol = Patrol(draft_id="seedpatrol01", shop_id=shop.id, worker_id=base.worker_a.id, patrolled_at=clock.now() - timedelta(hours=1))
        s.add(patrol)
        await s.flush()
        finding = Finding(patrol_id=patrol.id, item="从业人员健康证", disposition="escalated", outcome="pending")
        s.add(finding)
        await s.flush()
        finding_id = finding.id
    issue_id = await put_issue(db, base.grid_a, base.worker_a.id, "reported")
    return {"base": base, "finding": finding_id, "issue": issue_id}


USERS = {
    "stranger": (STRANGER, None), "worker_a": (WORKER_A, Role.WORKER), "worker_b": (WORKER_B, Role.WORKER),
    "supervisor_a": (SUPERVISOR_A, Role.SUPERVISOR), "admin": (ADMIN_ID, Role.ADMIN), "deactivated": (DEACTIVATED, None),
}


async def test_every_command_for_every_role(app, api, db, world):
    commands = registered_commands(app)
    assert {"start", "help", "visit", "report", "patrol", "shop_add", "stats", "setrole", "import"} <= commands
    problems: list[str] = []
    for who, (telegram_id, role) in USERS.items():
        tg = Tg(app, api, telegram_id)
        for command in sorted(commands):
            text = f"/{command} {ARGS.get(command, '')}".strip()
            before = await counts(db)
            out = texts(await tg.send(text))
            after = await counts(db)
            if who in ("stranger", "deactivated"):
                expected = NOT_REGISTERED if who == "stranger" else DEACTIVATED_TEXT
                if expected not in out or out.count("\n\n") > 1 or before != after:
                    problems.append(f"{who} {text}: {out[:120]!r}")
                continue
            if ERROR in out or not out.strip() and command not in ("export", "summary"):
                problems.append(f"{who} {text}: error or silence {out[:120]!r}")
            if command == "start":
                continue
            if role in allowed_roles(command):
                if any(r in out for r in REFUSALS):
                    problems.append(f"{who} {text}: refused though allowed: {out[:120]!r}")
            else:
                if not any(r in out for r in REFUSALS):
                    problems.append(f"{who} {text}: not refused: {out[:120]!r}")
                if before != after:
                    problems.append(f"{who} {text}: refused but the database changed")
            if tg.draft is not None:
                await tg.send("/cancel")
            app.user_data.get(telegram_id, {}).pop("import_kind", None)
    assert not problems, "\n".join(problems)


async def _press(app, api, telegram_id: int, data: str) -> list[dict]:  # noqa: ANN001
    tg = Tg(app, api, telegram_id)
    await tg.send("/help")
    message = tg.bot_messages()[-1]
    await tg.raw(api.press_button(TOKEN, telegram_id, message["message_id"], data))
    return tg.bot_messages()


async def test_forged_buttons_from_another_grid_are_refused(app, api, db, world):
    issue, finding = world["issue"], world["finding"]
    forged = [
        (WORKER_B, f"iss:back:{issue}:r"), (WORKER_B, f"iss:pick:{issue}:r"),
        (WORKER_B, f"iss:asg:{issue}:r:{world['base'].worker_b.id}"), (SUPERVISOR_B, f"iss:asg:{issue}:r:{world['base'].worker_a.id}"),
        (WORKER_B, f"iss:start:{issue}:r"), (SUPERVISOR_B, f"iss:verify:{issue}:r"),
        (WORKER_B, f"rem:open:{issue}"), (SUPERVISOR_B, f"rem:open:{issue}"),
        (WORKER_A, f"po:{finding}:p:f"), (SUPERVISOR_B, f"po:{finding}:p:s"), (SUPERVISOR_B, f"po:{finding}:p:r:7"),
        (WORKER_B, f"issn:reject:{issue}:r"), (SUPERVISOR_B, f"issn:reject:{issue}:r"),
        (STRANGER, f"iss:back:{issue}:r"), (DEACTIVATED, f"po:{finding}:p:f"),
    ]
    before = await counts(db)
    for telegram_id, data in forged:
        if telegram_id in (STRANGER, DEACTIVATED):
            tg = Tg(app, api, telegram_id)
            await tg.send("/start")
            if not tg.bot_messages():
                continue
            await tg.raw(api.press_button(TOKEN, telegram_id, tg.bot_messages()[-1]["message_id"], data))
            messages = tg.bot_messages()
        else:
            messages = await _press(app, api, telegram_id, data)
        shown = "\n".join(m.get("text", "") for m in messages)
        assert "堆放杂物" not in shown and "9901-" not in shown and "从业人员健康证" not in shown, (telegram_id, data, shown[-300:])
        assert await counts(db) == before, (telegram_id, data)
    answers = [a.get("text") or "" for a in api.callback_answers]
    assert all(ERROR not in a for a in answers)
    async with db.session() as s:
        assert (await s.exec(select(Finding.outcome).where(Finding.id == finding))).one()[0] == "pending"

