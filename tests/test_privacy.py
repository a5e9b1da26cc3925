"""Privacy: /forget_me (with a confirmation button) and /forget USER (admin) anonymise a departing user."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import select

from models import audit
from models.issues import Issue
from models.tables import PersistedState, User
from models.users import forgotten_name
from tests.conftest import ADMIN_ID, TOKEN, Tg, texts
from tests.seed import SUPERVISOR_A, WORKER_A, WORKER_B
from tests.seed_issues import put_issue, seed_issues


async def user_row(db, telegram_id: int) -> User:  # noqa: ANN001
    async with db.session() as s:
        return (await s.exec(select(User).where(User.telegram_id == telegram_id))).one()


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
    app.mark_data_for_update_persistence(user_ids=WORKER_A)
    await app.update_persistence()
    assert await persisted_user_data(db, WORKER_A)

    out = await worker.send("/forget_me")
    assert "cannot be undone" in texts(out) and forgotten_name(s.worker_a.id) in texts(out)
    await worker.press("Keep my account")
    assert "Nothing was changed" in worker.last
    row = await user_row(db, WORKER_A)
    assert row.active and row.display_name == "王芳" and row.phone == "13812345678"

    # Someone else's forged confirmation does nothing.
    other = Tg(app, api, WORKER_B)
    await other.send("/help")
    await other.raw(api.press_button(TOKEN, WORKER_B, other.bot_messages()[-1]["message_id"], f"forget:yes:{s.worker_a.id}"))
    assert (await user_row(db, WORKER_A)).active and (await user_row(db, WORKER_B)).active

    await worker.send("/forget_me")
    confirm = worker.keyboard_message()
    await worker.press("Yes, forget me", confirm)
    await worker.press_data(f"forget:yes:{s.worker_a.id}", confirm)  # the double tap
    row = await user_row(db, WORKER_A)
    assert (row.display_name, row.phone, row.active) == (forgotten_name(row.id), None, False)
    assert "personal data has been removed" in worker.message(confirm["message_id"])["text"]
    assert "deactivated" in (worker.answers()[-1] or "")  # the second tap meets a closed account
    assert await persisted_user_data(db, WORKER_A) == [] and "note" not in app.user_data.get(WORKER_A, {})
    async with db.session() as sess:
        issues = {i.id: i for i in (await sess.exec(select(Issue))).all()}
        entries = await audit.entries(sess, "forget")
    assert issues[reported].reporter_id == row.id  # records stay
    assert issues[assigned].assignee_id is None and issues[assigned].status == "reported"  # handed back to dispatch
    assert len(entries) == 1 and entries[0].actor == forgotten_name(row.id) and entries[0].detail["user"] == row.id
    assert any("back in your dispatch queue" in m.get("text", "") for m in api.bot_messages(TOKEN, SUPERVISOR_A))
    out = await worker.send("/help")
    assert "deactivated" in texts(out)
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
    row = await user_row(db, WORKER_A)
    assert (row.display_name, row.phone, row.active) == (forgotten_name(row.id), None, False)
    assert await persisted_user_data(db, WORKER_A) == [] and worker.draft is None
    assert "already been forgotten" in texts(await admin.send(f"#{s.worker_a.id}".join(["/forget ", ""])))
    assert "No user «王芳»" in texts(await admin.send("/forget 王芳"))
    async with db.session() as sess:
        assert len(await audit.entries(sess, "forget")) == 1
    # An account an admin had deactivated can still be forgotten.
    assert "is deactivated" in texts(await admin.send(f"/deactivate {WORKER_B}"))
    assert "李强 is forgotten" in texts(await admin.send(f"/forget {WORKER_B}"))
    assert (await user_row(db, WORKER_B)).display_name == forgotten_name(s.worker_b.id)
