"""Joining with an invitation, configured admins, guests, /help, the command menu, /lang, /grid_add."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlmodel import select

from models import clock
from models.tables import Grid, Invitation, Role, User, UserGrid
from tests.conftest import ADMIN_ID, TOKEN, Tg, texts, users_by_telegram
from tests.seed import WORKER_A, seed


async def users(db) -> dict[int, User]:
    async with db.session() as s:
        return await users_by_telegram(s)


async def join_as_admin(app, api) -> Tg:
    admin = Tg(app, api, ADMIN_ID, first_name="Admin")
    await admin.send("/start")
    await admin.send("Admin Zhao")
    await admin.send("/skip")
    return admin


async def invite(admin: Tg, args: str) -> str:
    out = await admin.send(f"/invite {args}")
    m = re.search(r"start=([A-Za-z0-9_-]+)", texts(out))
    assert m, texts(out)
    return m.group(1)


async def test_configured_admin_creates_grid_and_invites_a_worker_who_joins(app, api, db):
    admin = await join_as_admin(app, api)
    assert (await users(db))[ADMIN_ID].role == Role.ADMIN.value
    assert (await users(db))[ADMIN_ID].display_name == "Admin Zhao"
    out = await admin.send("/grid_add G07 幸福里 第七网格")
    assert "Grid G07 · 幸福里 第七网格 added" in texts(out) and "target is 20%" in texts(out)
    out = await admin.send("/invite worker G07")
    assert "https://t.me/gridbot_test_bot?start=" in texts(out)
    assert "Valid until 2026-05-27 10:00" in texts(out)
    code = re.search(r"start=([A-Za-z0-9_-]+)", texts(out)).group(1)
    # The QR code of that very link, for signing up in person.
    from handlers.admin import qr_png

    qr = out[-1]
    assert qr["caption"].startswith("📷 Scan to join: grid worker, G07")
    assert api.file_by_id(TOKEN, qr["photo"][-1]["file_id"]) == qr_png(f"https://t.me/gridbot_test_bot?start={code}")

    worker = Tg(app, api, 3001, first_name="Fang")
    out = await worker.send(f"/start {code}")
    assert "You joined as grid worker; grids: G07 幸福里 第七网格" in texts(out)
    assert "What name should colleagues see?" in texts(out)
    out = await worker.send("王芳")
    assert out[-1].get("reply_keyboard") is not None  # the share-contact button
    out = await worker.contact("+8613812345678")
    assert "You are all set" in texts(out) and "/visit" in texts(out) and "/invite" not in texts(out)
    user = (await users(db))[3001]
    assert (user.display_name, user.phone, user.role) == ("王芳", "+8613812345678", "worker")
    async with db.session() as s:
        (grid,) = (await s.exec(select(Grid).where(Grid.code == "G07"))).all()
        assert (await s.exec(select(UserGrid.grid_id).where(UserGrid.user_id == user.id))).all() == [grid.id]
        inv = (await s.exec(select(Invitation))).one()
        assert inv.used_by == user.id and inv.used_at == clock.now()
    # The worker's command menu lists exactly their commands.
    menu = api.commands(TOKEN, {"type": "chat", "chat_id": 3001})
    assert {c["command"] for c in menu} == {"visit", "my", "patrol", "shop", "report", "tasks", "issue", "void", "correct", "due", "link", "forget_me",
                                                 "menu", "lang", "cancel", "help"}


@pytest.mark.parametrize("case", ["used", "expired", "unknown"])
async def test_bad_invitation_codes_are_refused(app, api, db, case):
    admin = await join_as_admin(app, api)
    await admin.send("/grid_add G01 一网格")
    code = await invite(admin, "worker G01")
    if case == "used":
        await Tg(app, api, 3001).send(f"/start {code}")
    elif case == "expired":
        clock.advance(timedelta(days=7, seconds=1))
    else:
        code = "nosuchcode"
    newcomer = Tg(app, api, 3002)
    out = await newcomer.send(f"/start {code}")
    expected = {"used": "already been used", "expired": "has expired", "unknown": "not valid"}[case]
    assert expected in texts(out)
    assert 3002 not in await users(db)
    out = await newcomer.send("/visit")
    assert "You are not registered" in texts(out)


async def test_unregistered_user_gets_an_explanation_in_their_language(app, api, db):
    guest = Tg(app, api, 4001, language_code="en")
    for text in ("/visit", "/help", "hello", "/my"):
        out = await guest.send(text)
        assert "You are not registered with gridbot yet" in texts(out), text
    chinese_guest = Tg(app, api, 4002, language_code="zh-hans")
    out = await chinese_guest.send("/my")
    assert "您还没有注册" in texts(out)
    french_guest = Tg(app, api, 4003, language_code="fr")  # no catalog: the default (zh_CN)
    out = await french_guest.send("/visit")
    assert "您还没有注册" in texts(out)
    assert await users(db) == {}


async def test_help_lists_exactly_the_roles_commands(app, api, db):
    await seed(db)
    admin = await join_as_admin(app, api)
    out = await admin.send("/help")
    assert {"/visit", "/my", "/invite", "/grid_add", "/lang", "/help"} <= set(re.findall(r"/\w+", texts(out)))
    worker = Tg(app, api, WORKER_A)
    out = await worker.send("/help")
    assert set(re.findall(r"/\w+", texts(out))) == {"/visit", "/my", "/patrol", "/shop", "/report", "/tasks", "/issue",
                                                          "/void", "/correct", "/due", "/link", "/forget_me", "/menu", "/lang", "/cancel",
                                                          "/help"}
    out = await worker.send("/invite worker G01")
    assert "not available for your role" in texts(out)
    out = await worker.send("/grid_add G09 x")
    assert "not available for your role" in texts(out)


async def test_admin_command_errors_are_clear(app, api, db):
    admin = await join_as_admin(app, api)
    await admin.send("/grid_add G01 一网格")
    cases = {
        "/grid_add G01 again": "already exists",
        "/grid_add bad!code name": "not a valid grid code",
        "/grid_add G02": "Usage: /grid_add",
        "/invite boss G01": "Unknown role «boss»",
        "/invite worker G99": "no grid with code «G99»",
        "/invite worker": "need at least one grid",
        "/invite": "Usage: /invite",
        "/invite worker <b>": "no grid with code «&lt;b&gt;»",
    }
    for command, expected in cases.items():
        out = await admin.send(command)
        assert expected in out[0]["text"] or expected.replace("&lt;", "<").replace("&gt;", ">") in out[0]["text"], command
    async with db.session() as s:
        assert len((await s.exec(select(Grid))).all()) == 1
        assert (await s.exec(select(Invitation))).all() == []


async def test_admin_invite_without_grid_and_registered_user_keeps_code(app, api, db):
    admin = await join_as_admin(app, api)
    code = await invite(admin, "admin")
    out = await admin.send(f"/start {code}")
    assert "already registered; the invitation was not used" in texts(out)
    new_admin = Tg(app, api, 5001)
    await new_admin.send(f"/start {code}")
    assert (await users(db))[5001].role == "admin"


async def test_phone_step_validation(app, api, db):
    admin = await join_as_admin(app, api)
    await admin.send("/grid_add G01 一网格")
    code = await invite(admin, "supervisor G01")
    u = Tg(app, api, 3001)
    await u.send(f"/start {code}")
    out = await u.send("x" * 40)
    assert "1 to 32 characters" in texts(out)
    await u.send("张伟")
    out = await u.contact("+8613900000000", own=False)
    assert "your own number" in texts(out)
    out = await u.send("call me")
    assert "does not look like a phone number" in texts(out)
    out = await u.sticker()
    assert "This step expects" in texts(out)
    await u.send("139 0000 1111")
    user = (await users(db))[3001]
    assert (user.display_name, user.phone, user.role) == ("张伟", "139 0000 1111", "supervisor")


async def test_lang_switch_changes_replies_and_menu(app, api, db):
    await seed(db)
    u = Tg(app, api, WORKER_A)
    await u.send("/lang")
    await u.press("中文")
    assert "语言" in u.last
    out = await u.send("/help")
    assert "您的身份是网格员" in texts(out)
    assert (await users(db))[WORKER_A].language == "zh_CN"
    menu = api.commands(TOKEN, {"type": "chat", "chat_id": WORKER_A})
    assert any(c["command"] == "visit" and "走访" in c["description"] for c in menu)


async def test_default_menu_for_guests(app, api):
    from bot.channels.telegram import GridApplication  # noqa: F401
    from handlers import on_startup

    await on_startup(app.runtime)
    zh = api.commands(TOKEN, None)
    en = api.commands(TOKEN, None, language_code="en")
    assert [c["command"] for c in zh] == ["start", "help"] and "邀请" in zh[0]["description"]
    assert "invitation" in en[0]["description"]


async def test_group_chats_are_ignored(app, api, db):
    await seed(db)
    before = len(api.calls)
    update = api.send_text(TOKEN, WORKER_A, "/visit", chat_id=-100123, chat_type="supergroup")
    from telegram import Update

    await app.process_update(Update.de_json(update, app.bot))
    assert [m for m, _ in api.calls[before:] if m.startswith("send")] == []


async def test_edited_message_changes_nothing(app, api, db):
    await seed(db)
    u = Tg(app, api, WORKER_A)
    await u.send("/visit")
    sent = await u.send("3栋")
    first_user_message = [m for m in api.chat_messages(TOKEN, WORKER_A) if not m["from_bot"]][-1]
    out = await u.raw(api.edit_text(TOKEN, WORKER_A, first_user_message["message_id"], "9栋"))
    assert "Editing a sent message changes nothing" in texts(out)
    assert u.draft["data"]["query"] == "3栋" and sent
