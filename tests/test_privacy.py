"""Privacy: /forget_me (with a confirmation button) and /forget USER (admin) anonymise a departing user; every view and
export that shows personal data (names, phone numbers, household heads, addresses) shows it only within the viewer's scope,
masked for non-admin exports and group chats, and ID numbers typed into free text are masked before they are stored."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta

from openpyxl import load_workbook
from sqlalchemy import update
from sqlmodel import select

from bot import cli
from jobs.reminders import run_job
from models import audit, clock
from models.issues import Issue
from models.tables import ChannelIdentity, Household, PersistedState, User, Visit
from models.users import forgotten_name
from sandbox.localapi import buttons
from tests.conftest import ADMIN_ID, TOKEN, Tg, texts
from tests.seed import SUPERVISOR_A, WORKER_A, WORKER_B
from tests.seed_issues import SUPERVISOR_B, WORKER_A2, put_issue, seed_issues


async def user_row(db, user_id: int) -> User:  # noqa: ANN001 - by user id: forgetting deletes the Telegram identity
    async with db.session() as s:
        return (await s.exec(select(User).where(User.id == user_id))).one()


async def persisted_user_data(db, telegram_id: int) -> list:  # noqa: ANN001
    """What is stored of the user's chat data (PTB recreates an empty blob when a closed account writes again)."""
    async with db.session() as s:
        rows = (await s.exec(select(PersistedState).where(PersistedState.kind == "user_data", PersistedState.key == str(telegram_id)))).all()
    return [r.data for r in rows if r.data]


async def test_forget_me_needs_confirmation_and_acts_once(app, api, db):
    s = await seed_issues(db)
    async with db.session() as sess:
        await sess.exec(update(User).where(User.id == s.worker_a.id).values(phone="13812345678"))
    reported = await put_issue(db, s.grid_a, s.worker_a.id, "reported")
    assigned = await put_issue(db, s.grid_a, s.supervisor_a.id, "assigned", assignee_id=s.worker_a.id)
    await Tg(app, api, SUPERVISOR_A).send("/help")  # the chat exists, to be told about the handed-back issue
    worker = Tg(app, api, WORKER_A)
    await worker.send("/visit")  # a draft in the persisted user data
    await worker.send("/cancel")
    app.user_data[WORKER_A]["note"] = "private"
    await app.engine.write(("telegram", str(WORKER_A)))
    assert await persisted_user_data(db, WORKER_A)

    out = await worker.send("/forget_me")
    assert "cannot be undone" in texts(out) and forgotten_name(s.worker_a.id) in texts(out)
    await worker.press("Keep my account")
    assert "Nothing was changed" in worker.last
    row = await user_row(db, s.worker_a.id)
    assert row.active and row.display_name == "王芳" and row.phone == "13812345678"

    # Someone else's forged confirmation does nothing.
    other = Tg(app, api, WORKER_B)
    await other.send("/help")
    await other.raw(api.press_button(TOKEN, WORKER_B, other.bot_messages()[-1]["message_id"], f"forget:yes:{s.worker_a.id}"))
    assert (await user_row(db, s.worker_a.id)).active and (await user_row(db, s.worker_b.id)).active

    await worker.send("/forget_me")
    confirm = worker.keyboard_message()
    await worker.press("Yes, forget me", confirm)
    await worker.press_data(f"forget:yes:{s.worker_a.id}", confirm)  # the double tap
    row = await user_row(db, s.worker_a.id)
    assert (row.display_name, row.phone, row.active) == (forgotten_name(row.id), None, False)
    assert "personal data has been removed" in worker.message(confirm["message_id"])["text"]
    assert "not registered" in (worker.answers()[-1] or "")  # the second tap: every identity is gone, they are a stranger now
    assert await persisted_user_data(db, WORKER_A) == [] and "note" not in app.user_data.get(WORKER_A, {})
    async with db.session() as sess:
        issues = {i.id: i for i in (await sess.exec(select(Issue))).all()}
        entries = await audit.entries(sess, "forget")
    assert issues[reported].reporter_id == row.id  # records stay
    assert issues[assigned].assignee_id is None and issues[assigned].status == "reported"  # handed back to dispatch
    assert len(entries) == 1 and entries[0].actor == forgotten_name(row.id) and entries[0].detail["user"] == row.id
    assert any("back in your dispatch queue" in m.get("text", "") for m in api.bot_messages(TOKEN, SUPERVISOR_A))
    out = await worker.send("/help")
    assert "not registered" in texts(out)
    async with db.session() as sess:
        assert (await sess.exec(select(ChannelIdentity).where(ChannelIdentity.user_id == row.id))).all() == []
    admin = Tg(app, api, ADMIN_ID)
    out = await admin.send("/users")
    assert forgotten_name(row.id) in texts(out) and "王芳" not in texts(out) and "13812345678" not in texts(out)


async def test_admin_forget(app, api, db):
    s = await seed_issues(db)
    worker = Tg(app, api, WORKER_A)
    await worker.send("/visit")
    assert worker.draft is not None
    assert await persisted_user_data(db, WORKER_A)
    out = await Tg(app, api, SUPERVISOR_A).send("/forget 王芳")
    assert "not available for your role" in texts(out)
    admin = Tg(app, api, ADMIN_ID)
    assert "Usage: /forget USER" in texts(await admin.send("/forget"))
    assert "cannot change your own account" in texts(await admin.send(f"/forget {ADMIN_ID}"))
    out = await admin.send("/forget 王芳")
    assert "王芳 is forgotten" in texts(out) and forgotten_name(s.worker_a.id) in texts(out)
    row = await user_row(db, s.worker_a.id)
    assert (row.display_name, row.phone, row.active) == (forgotten_name(row.id), None, False)
    assert await persisted_user_data(db, WORKER_A) == [] and worker.draft is None
    assert "already been forgotten" in texts(await admin.send(f"#{s.worker_a.id}".join(["/forget ", ""])))
    assert "No user «王芳»" in texts(await admin.send("/forget 王芳"))
    async with db.session() as sess:
        assert len(await audit.entries(sess, "forget")) == 1
    # An account an admin had deactivated can still be forgotten.
    assert "is deactivated" in texts(await admin.send(f"/deactivate {WORKER_B}"))
    assert "李强 is forgotten" in texts(await admin.send(f"/forget {WORKER_B}"))
    assert (await user_row(db, s.worker_b.id)).display_name == forgotten_name(s.worker_b.id)


# -- personal data per view and export: within the viewer's scope, absent (or masked) outside it ---------------------------
#
# Grid A (G01): workers 王芳 (13812345678) and 赵敏, supervisor 张伟, household 3栋1单元101 headed by 刘老伯 (13700001111).
# Grid B (G02): worker 李强 (13987654321), supervisor 陈静, household 3栋1单元201 headed by 孙阿姨 (13600002222).

ID_NUMBER, ID_MASKED = "110101199003071234", "110101********1234"
A_PRIVATE = ("刘老伯", "13700001111", "13812345678")
B_PRIVATE = ("李强", "孙阿姨", "13600002222", "13987654321", "3栋1单元201")
GROUP = -1009876


async def private_street(db):  # noqa: ANN001, ANN201
    s = await seed_issues(db)
    async with db.session() as sess:
        await sess.exec(update(User).where(User.id == s.worker_a.id).values(phone="13812345678"))
        await sess.exec(update(User).where(User.id == s.worker_b.id).values(phone="13987654321"))
        await sess.exec(update(Household).where(Household.id == s.base.households_a[0]).values(head_name="刘老伯", head_phone="13700001111"))
        await sess.exec(update(Household).where(Household.id == s.base.households_b[0]).values(head_name="孙阿姨", head_phone="13600002222"))
        yesterday = clock.now() - timedelta(days=1)
        sess.add(Visit(draft_id="pa1", household_id=s.base.households_a[0], worker_id=s.worker_a.id, visited_at=yesterday, people_met=1))
        sess.add(Visit(draft_id="pb1", household_id=s.base.households_b[0], worker_id=s.worker_b.id, visited_at=yesterday, people_met=1))
    return s


async def chats(app, api, *ids: int) -> dict[int, Tg]:  # noqa: ANN001
    out = {}
    for uid in ids:
        out[uid] = Tg(app, api, uid)
        await out[uid].send("/help")
    return out


def everything(messages: list[dict]) -> str:
    """All a user can read in these messages: texts, captions and button labels."""
    return "\n".join([m.get("text", "") or m.get("caption", "") for m in messages] + [label for m in messages for label, _ in buttons(m)])


def absent(text: str, words) -> list[str]:  # noqa: ANN001
    return [w for w in words if w in text]


async def test_visit_search_and_saved_notes_stay_in_the_grid_and_mask_id_numbers(app, api, db):
    s = await private_street(db)
    a, b = Tg(app, api, WORKER_A), Tg(app, api, WORKER_B)
    await a.send("/visit")
    seen = everything(await a.send("3栋"))
    assert "3栋1单元101" in seen and absent(seen, B_PRIVATE) == [] and absent(seen, A_PRIVATE) == []  # no head data in the picker
    await b.send("/visit")
    seen = everything(await b.send("3栋"))
    assert "3栋1单元201" in seen and "3栋1单元101" not in seen and "刘老伯" not in seen
    # A forged pick of the other grid's household shows nothing of it.
    out = await b.press_data(f"visit:{b.draft['id'][:8]}:pick:{s.base.households_a[0]}")
    assert out == [] and "not in your grids" in (b.answers()[-1] or "") and b.draft["step"] == "HOUSEHOLD"
    # Notes with an ID number: masked in the draft, the summary, the saved row.
    await a.press("3栋1单元101")
    await a.send("2")
    await a.press("Normal")
    await a.press("Done")
    await a.send(f"户主身份证 {ID_NUMBER} 已核对")
    assert ID_MASKED in a.draft["data"]["notes"] and ID_NUMBER not in str(a.draft)
    await a.send("/done")
    summary = await a.send("/skip")
    assert ID_MASKED in everything(summary) and ID_NUMBER not in everything(summary)
    await a.press("Save")
    async with db.session() as sess:
        notes = [v.notes for v in (await sess.exec(select(Visit))).all() if v.notes]
    assert notes == [f"户主身份证 {ID_MASKED} 已核对"]
    assert ID_NUMBER not in everything(a.bot_messages())


async def test_issue_card_history_and_tasks_stay_in_the_grid(app, api, db):
    from tests.test_issues import report

    await private_street(db)
    users = await chats(app, api, WORKER_A, WORKER_B, SUPERVISOR_A, SUPERVISOR_B, WORKER_A2)
    a, sup_a, sup_b = users[WORKER_A], users[SUPERVISOR_A], users[SUPERVISOR_B]
    await report(a, description=f"楼道堆物，住户身份证{ID_NUMBER}掉落")
    await a.press("Submit")
    async with db.session() as sess:
        issue = (await sess.exec(select(Issue))).one()
    assert ID_MASKED in issue.description and ID_NUMBER not in issue.description
    told_a = everything(sup_a.bot_messages())
    assert issue.human_id in told_a and "王芳" in told_a and ID_MASKED in told_a and ID_NUMBER not in told_a
    assert issue.human_id not in everything(sup_b.bot_messages())  # the other grid's supervisor is not told
    await sup_a.press("Assign", sup_a.keyboard_message())
    await sup_a.press("赵敏")
    await users[WORKER_A2].press("Hand back")
    await users[WORKER_A2].send("不是我片区的事，电话13912345678")

    card = everything(await sup_a.send(f"/issue {issue.human_id}"))
    assert "王芳" in card and "赵敏" in card and "张伟" in card and ID_MASKED in card and ID_NUMBER not in card  # history: who did what
    for outsider in (users[WORKER_B], sup_b):
        seen = everything(await outsider.send(f"/issue {issue.human_id}"))
        assert absent(seen, ("王芳", "赵敏", "张伟", "楼道堆物", "13912345678", ID_MASKED)) == [], seen
        seen = everything(await outsider.send("/tasks"))
        assert issue.human_id not in seen and "楼道堆物" not in seen and "王芳" not in seen
    tasks = everything(await sup_a.send("/tasks"))
    assert issue.human_id in tasks and "楼道堆物" in tasks


async def test_due_list_and_visit_pace_reminder_hold_only_the_workers_grid(app, api, db):
    from tests.test_reminders import drain_all, local

    await private_street(db)
    users = await chats(app, api, WORKER_A, WORKER_B)
    a, b = users[WORKER_A], users[WORKER_B]
    due_a, due_b = everything(await a.send("/due")), everything(await b.send("/due"))
    assert "3栋1单元101" in due_a and absent(due_a, B_PRIVATE) == [] and "刘老伯" not in due_a and "13700001111" not in due_a
    assert "G02" in due_b and "3栋1单元101" not in due_b and "G01" not in due_b and "刘老伯" not in due_b
    clock.freeze(local(2026, 5, 18, 9, 7))
    assert await run_job(app, "visit_pace")
    await drain_all(app)
    reminded_a = everything(a.bot_messages()[-1:])
    assert "G01" in reminded_a and absent(reminded_a, B_PRIVATE) == [] and "G02" not in reminded_a


async def test_weekly_digest_names_idle_workers_only_in_scope_and_masked_in_groups(app, api, db):
    from tests.test_reminders import drain_all, local

    await private_street(db)
    app.settings = app.settings.model_copy(update={"digest_chats": {"G01": [GROUP]}, "default_language": "en"})
    users = await chats(app, api, SUPERVISOR_A, SUPERVISOR_B, ADMIN_ID)
    api.send_text(TOKEN, WORKER_A, "hi", chat_id=GROUP, chat_type="group", first_name="u")
    clock.freeze(local(2026, 5, 25, 8, 7))  # the digest of 2026-W21: 王芳 and 李强 visited, 赵敏 (G01) logged nothing
    assert await run_job(app, "digest")
    await drain_all(app)
    sup_a = everything(users[SUPERVISOR_A].bot_messages())
    assert "Logged nothing this week:" in sup_a and "赵敏" in sup_a and "李强" not in sup_a
    sup_b = everything(users[SUPERVISOR_B].bot_messages())
    assert "Weekly digest" in sup_b and "赵敏" not in sup_b and "赵*" not in sup_b
    group = everything(api.bot_messages(TOKEN, GROUP))
    assert "Logged nothing this week:" in group and "赵*" in group
    assert absent(group, ("赵敏", "王芳", "李强", "13812345678")) == [], group


async def test_exports_in_the_chat_hold_the_callers_grids_masked_for_non_admins(app, api, db):
    from tests.test_export import sent_workbook

    s = await private_street(db)
    await put_issue(db, s.grid_a, s.worker_a.id, "assigned", assignee_id=s.worker_a2.id)
    await put_issue(db, s.grid_b, s.worker_b.id, "reported")
    users = await chats(app, api, SUPERVISOR_A, ADMIN_ID, WORKER_A)

    def cells(chat_id: int, sheet: int = 0) -> str:
        _name, wb = sent_workbook(api, chat_id)
        return "\n".join(str(c) for r in wb.worksheets[sheet].iter_rows(values_only=True) for c in r if c is not None)

    await users[SUPERVISOR_A].send("/export visits 2026-05")
    visits = cells(SUPERVISOR_A)
    assert "3栋1单元101" in visits and "刘**" in visits and "137****1111" in visits and "王*" in visits
    assert absent(visits, ("刘老伯", "13700001111", "王芳", *B_PRIVATE, "孙*")) == []
    await users[SUPERVISOR_A].send("/export issues 2026-05")
    issues, events = cells(SUPERVISOR_A), cells(SUPERVISOR_A, 1)
    assert "王*" in issues and "赵*" in issues and "王*" in events
    assert absent(issues + events, ("王芳", "赵敏", "李强", "李*")) == []
    out = await users[SUPERVISOR_A].send("/export visits 2026-05 G02")
    assert not any(m.get("document") for m in out) and "孙" not in everything(out)

    await users[ADMIN_ID].send("/export visits 2026-05")
    full = cells(ADMIN_ID)
    assert all(w in full for w in ("刘老伯", "13700001111", "王芳", "孙阿姨", "13600002222", "李强"))
    out = await users[WORKER_A].send("/export visits 2026-05")
    assert "not available for your role" in texts(out) and not any(m.get("document") for m in out)


async def test_cli_export_unmasked_for_the_operator_masked_on_request_and_summary_without_personal_data(db, database_url, tmp_path, monkeypatch,
                                                                                                          capsys):
    await private_street(db)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("TIMEZONE", "Asia/Shanghai")

    def cells(path) -> str:  # noqa: ANN001
        wb = load_workbook(io.BytesIO(path.read_bytes()))
        return "\n".join(str(c) for r in wb.worksheets[0].iter_rows(values_only=True) for c in r if c is not None)

    plain, masked = tmp_path / "plain.xlsx", tmp_path / "masked.xlsx"
    assert await asyncio.to_thread(cli.main, ["export", "visits", "2026-05", "G01", "--out", str(plain)]) == 0
    assert await asyncio.to_thread(cli.main, ["export", "visits", "2026-05", "--out", str(masked), "--mask"]) == 0
    full, hidden = cells(plain), cells(masked)
    assert "刘老伯" in full and "13700001111" in full and "王芳" in full and absent(full, B_PRIVATE) == []
    assert "刘**" in hidden and "孙**" in hidden and "136****2222" in hidden
    assert absent(hidden, ("刘老伯", "孙阿姨", "13700001111", "13600002222", "王芳", "李强")) == []
    capsys.readouterr()
    assert await asyncio.to_thread(cli.main, ["summary", "2026-05", "--lang", "both"]) == 0
    printed = capsys.readouterr().out
    assert "2026" in printed and absent(printed, ("王芳", "李强", "赵敏", "刘老伯", "孙阿姨", "13", "3栋")) == [], printed


async def test_manager_lists_show_people_of_their_grids_only(app, api, db):
    await private_street(db)
    users = await chats(app, api, SUPERVISOR_A, WORKER_A)
    sup = users[SUPERVISOR_A]
    listed = everything(await sup.send("/users"))
    assert "王芳" in listed and "13812345678" in listed  # supervisors reach their workers by phone
    assert absent(listed, ("李强", "13987654321", "陈静")) == []
    workers = everything(await sup.send("/workers"))
    assert "王芳" in workers and "李强" not in workers
    grids = everything(await sup.send("/grids"))
    assert "张伟" in grids and "陈静" not in grids and "G02" not in grids
    overdue = everything(await sup.send("/overdue"))
    assert absent(overdue, B_PRIVATE) == []
    mine = everything(await users[WORKER_A].send("/my"))
    assert absent(mine, ("李强", "赵敏", "刘老伯", "13700001111", *B_PRIVATE)) == []
    assert "not available for your role" in texts(await users[WORKER_A].send("/users"))


async def test_corrections_reach_only_the_grids_records_and_mask_id_numbers(app, api, db):
    s = await private_street(db)
    users = await chats(app, api, SUPERVISOR_A, SUPERVISOR_B)
    async with db.session() as sess:
        visit_a = next(v for v in (await sess.exec(select(Visit))).all() if v.household_id == s.base.households_a[0])
    out = everything(await users[SUPERVISOR_B].send(f"/correct visit {visit_a.id} notes 见过户主 -- 补录"))
    assert "You may not change visit" in out and absent(out, ("3栋1单元101", "刘老伯", "王芳", "见过户主")) == []
    out = everything(await users[SUPERVISOR_A].send(f"/correct visit {visit_a.id} notes 户主身份证{ID_NUMBER} -- 补录"))
    assert "corrected" in out and ID_MASKED in out and ID_NUMBER not in out
    async with db.session() as sess:
        notes = (await sess.exec(select(Visit.notes).where(Visit.id == visit_a.id))).one()
    assert notes == f"户主身份证{ID_MASKED}"
