"""The local Bot API imitation works with real PTB, in-process and over HTTP, and is strict."""

from __future__ import annotations

import asyncio
import html
import json
import os
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import httpx
import pytest
from telegram import BotCommand, BotCommandScopeChat, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.request import HTTPXRequest

from sandbox.localapi import (
    LocalAPIUser,
    LocalBotAPI,
    LocalBotAPIServer,
    buttons,
    parse_html,
    parse_markdown_v2,
    serve_in_thread,
)

TOKEN = "123456:TEST-local_token"
USER = 1001
ROOT = Path(__file__).resolve().parents[1]


def tiny_png(width: int = 3, height: int = 2) -> bytes:
    """A valid PNG, so the server's image check accepts it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------- a tiny bot


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("确认", callback_data="ok:1")]])
    await update.effective_message.reply_text(
        f"欢迎 {' '.join(context.args)}", reply_markup=keyboard
    )


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    text = update.effective_message.text
    await update.effective_message.reply_text(f"<b>你说</b>：{html.escape(text)}", parse_mode="HTML")


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    await query.answer("已确认", show_alert=True)
    await query.edit_message_text(f"已完成 {query.data}")


def add_handlers(app: Application) -> None:
    app.add_handler(CommandHandler("start", start))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    app.add_handler(CallbackQueryHandler(on_button))


def in_process_app(api: LocalBotAPI) -> Application:
    return (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url("http://localapi/bot")
        .base_file_url("http://localapi/file/bot")
        .request(HTTPXRequest(httpx_kwargs={"transport": api.transport()}))
        .get_updates_request(HTTPXRequest(httpx_kwargs=api.httpx_kwargs()))
        .build()
    )


@pytest.fixture
def api() -> LocalBotAPI:
    return LocalBotAPI()


@pytest.fixture
async def app(api: LocalBotAPI):
    application = in_process_app(api)
    add_handlers(application)
    await application.initialize()
    yield application
    await application.shutdown()


async def feed(app: Application, update: dict) -> None:
    await app.process_update(Update.de_json(update, app.bot))


# --------------------------------------------------------------------------- in-process


async def test_in_process_conversation(api: LocalBotAPI, app: Application) -> None:
    assert app.bot.username == "gridbot_local_bot"
    assert app.bot.id == 123456

    await feed(app, api.send_text(TOKEN, USER, "/start abc", first_name="张三"))
    await feed(app, api.send_text(TOKEN, USER, "a < b & c"))

    messages = api.chat_messages(TOKEN, USER)
    assert [(m["message_id"], m["from_bot"]) for m in messages] == [
        (1, False), (2, True), (3, False), (4, True),
    ]  # fmt: skip
    welcome, reply = messages[1], messages[3]
    assert welcome["text"] == "欢迎 abc"
    assert buttons(welcome) == [("确认", "ok:1")]
    assert welcome["from"]["is_bot"] is True
    assert isinstance(welcome["date"], int)
    # HTML is parsed like Telegram: plain text plus entities (UTF-16 offsets).
    assert reply["text"] == "你说：a < b & c"
    assert reply["entities"] == [{"type": "bold", "offset": 0, "length": 2}]

    await feed(app, api.press_button(TOKEN, USER, welcome["message_id"], "ok:1"))
    edited = api.chat_messages(TOKEN, USER)[1]
    assert edited["text"] == "已完成 ok:1"
    assert edited["edited"] == 1
    assert buttons(edited) == []  # editMessageText without reply_markup drops the keyboard
    [answer] = api.callback_answers
    assert answer["text"] == "已确认" and answer["show_alert"] is True
    assert api.presses[-1]["on_keyboard"] is True

    assert api.call_counts()["sendMessage"] == 2
    assert api.last_bot_message(TOKEN, USER)["message_id"] == 4


async def test_forged_callback_data_is_delivered_and_recorded(api: LocalBotAPI, app: Application) -> None:
    await feed(app, api.send_text(TOKEN, USER, "/start"))
    mid = api.last_bot_message(TOKEN, USER)["message_id"]
    update = api.press_button(TOKEN, USER, mid, "admin:delete_all")
    assert update["callback_query"]["data"] == "admin:delete_all"
    assert update["callback_query"]["message"]["message_id"] == mid
    assert api.presses[-1]["on_keyboard"] is False


async def test_files_round_trip(api: LocalBotAPI, app: Application) -> None:
    photo = tiny_png(40, 30)
    update = Update.de_json(api.send_photo(TOKEN, USER, photo, caption="门牌"), app.bot)
    sizes = update.message.photo
    assert len(sizes) == 2 and sizes[-1].width == 40 and sizes[-1].height == 30
    assert sizes[0].width <= sizes[-1].width
    file = await sizes[-1].get_file()
    assert file.file_path.startswith("http://localapi/file/bot")
    assert bytes(await file.download_as_bytearray()) == photo

    doc = Update.de_json(api.send_document(TOKEN, USER, b"%PDF-1.4 x", "report.pdf"), app.bot)
    assert doc.message.document.mime_type == "application/pdf"
    assert bytes(await (await doc.message.document.get_file()).download_as_bytearray()) == b"%PDF-1.4 x"

    # The bot uploads a photo (multipart), then re-sends the user's photo by file_id.
    sent = await app.bot.send_photo(USER, photo=photo, caption="<i>ok</i>", parse_mode="HTML")
    assert sent.caption == "ok" and sent.photo[-1].file_size == len(photo)
    assert bytes(await (await sent.photo[-1].get_file()).download_as_bytearray()) == photo
    again = await app.bot.send_photo(USER, photo=sizes[-1].file_id)
    assert again.photo[-1].file_id == sizes[-1].file_id
    with pytest.raises(BadRequest, match="(?i)wrong file identifier/HTTP URL specified"):
        await app.bot.send_photo(USER, photo="no-such-file-id")
    with pytest.raises(BadRequest, match="(?i)IMAGE_PROCESS_FAILED"):
        await app.bot.send_photo(USER, photo=b"not an image")
    sent_doc = await app.bot.send_document(USER, document=b"a,b\n1,2\n", filename="visits.csv")
    assert sent_doc.document.file_name == "visits.csv"
    assert api.calls_for(TOKEN, "sendDocument")[0]["document"].startswith("<upload visits.csv")

    loc = await app.bot.send_location(USER, latitude=31.23, longitude=121.47)
    assert loc.location.latitude == pytest.approx(31.23)
    await app.bot.send_chat_action(USER, "typing")
    assert api.chat_actions(TOKEN, USER) == ["typing"]


async def test_user_side_update_kinds(api: LocalBotAPI, app: Application) -> None:
    bot = app.bot
    contact = Update.de_json(api.send_contact(TOKEN, USER, "+8613800000000"), bot).message.contact
    assert contact.user_id == USER and contact.phone_number == "+8613800000000"
    other = Update.de_json(api.send_contact(TOKEN, USER, "+861", own=False), bot).message.contact
    assert other.user_id is None
    assert Update.de_json(api.send_location(TOKEN, USER, 31.2, 121.5), bot).message.location.longitude == 121.5
    assert Update.de_json(api.send_sticker(TOKEN, USER), bot).message.sticker.emoji == "👍"
    assert Update.de_json(api.send_voice(TOKEN, USER), bot).message.voice.mime_type == "audio/ogg"
    fwd = Update.de_json(api.send_text(TOKEN, USER, "转发的", forward=True), bot).message
    assert fwd.forward_origin is not None
    group = Update.de_json(
        api.send_text(TOKEN, USER, "/visit@gridbot_local_bot 12", chat_id=-100500, chat_type="supergroup"),
        bot,
    ).message
    assert group.chat.type == "supergroup"
    assert group.entities[0].type == "bot_command" and group.entities[0].length == len("/visit@gridbot_local_bot")
    original = api.send_text(TOKEN, USER, "旧")["message"]
    edited = Update.de_json(api.edit_text(TOKEN, USER, original["message_id"], "新"), bot)
    assert edited.edited_message.text == "新"
    no_lang = api.send_text(TOKEN, 2002, "hi", language_code=None)["message"]["from"]
    assert "language_code" not in no_lang and no_lang["first_name"] == "User2002"
    ids = [u["update_id"] for u in api.pending_updates(TOKEN)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


async def test_formatting_strictness(api: LocalBotAPI, app: Application) -> None:
    api.send_text(TOKEN, USER, "hi")
    bot = app.bot
    for bad in ("<b>x", "a < b", "Tom & Jerry", "<i>x</b>", "<span>x</span>", "<foo>x</foo>"):
        with pytest.raises(BadRequest, match="(?i)can't parse entities"):
            await bot.send_message(USER, bad, parse_mode="HTML")
    ok = await bot.send_message(
        USER, "<b>粗</b> &amp; <a href='https://example.org'>链接</a> &#128512;", parse_mode="HTML"
    )
    assert ok.text == "粗 & 链接 😀"
    assert [(e.type, e.offset, e.length) for e in ok.entities] == [("bold", 0, 1), ("text_link", 4, 2)]
    with pytest.raises(BadRequest, match="(?i)Character '.' is reserved"):
        await bot.send_message(USER, "1.5", parse_mode="MarkdownV2")
    assert (await bot.send_message(USER, "*粗* 1\\.5", parse_mode="MarkdownV2")).text == "粗 1.5"
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(USER, "x" * 4097)
    assert len((await bot.send_message(USER, "x" * 4096)).text) == 4096
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(USER, "   ")
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(USER, "<b></b>", parse_mode="HTML")

    assert parse_html("a &lt;b&gt;") == ("a <b>", [])
    assert parse_markdown_v2("__u__ ||s||")[1] == [
        {"type": "underline", "offset": 0, "length": 1},
        {"type": "spoiler", "offset": 2, "length": 1},
    ]


async def test_keyboard_strictness(api: LocalBotAPI, app: Application) -> None:
    api.send_text(TOKEN, USER, "hi")
    bot = app.bot
    for data in ("a" * 65, "网" * 22):  # 65 bytes; 66 bytes of UTF-8
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data=data)]])
        with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
            await bot.send_message(USER, "t", reply_markup=markup)
    ok = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="a" * 64)]])
    assert (await bot.send_message(USER, "t", reply_markup=ok)).reply_markup is not None
    status, body = await api.handle(
        TOKEN, "sendMessage",
        {"chat_id": str(USER), "text": "t", "reply_markup": json.dumps({"inline_keyboard": [[{"callback_data": "x"}]]})},
    )  # fmt: skip
    assert status == 400 and "Field \"text\"" in body["description"]


async def test_telegram_errors(api: LocalBotAPI, app: Application) -> None:
    bot = app.bot
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(USER, "hello")
    api.send_text(TOKEN, USER, "hi")
    msg = await bot.send_message(USER, "same", reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data="d")]]))
    with pytest.raises(BadRequest, match="(?i)message is not modified: specified new message content"):
        await bot.edit_message_text("same", USER, msg.message_id, reply_markup=msg.reply_markup)
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_reply_markup(USER, msg.message_id, reply_markup=msg.reply_markup)
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("x", USER, 999)
    with pytest.raises(BadRequest, match="(?i)message can't be edited"):
        await bot.edit_message_text("x", USER, 1)
    assert await bot.delete_message(USER, msg.message_id) is True
    with pytest.raises(BadRequest, match="(?i)message to delete not found"):
        await bot.delete_message(USER, msg.message_id)
    assert [m["message_id"] for m in api.chat_messages(TOKEN, USER)] == [1]

    api.block(USER)
    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(USER, "still there?")
    api.send_text(TOKEN, USER, "/start")  # writing again unblocks, like pressing Restart
    assert (await bot.send_message(USER, "welcome back")).text == "welcome back"
    assert any("my_chat_member" in u for u in api.pending_updates(TOKEN))

    api.send_text(TOKEN, 3003, "/x", chat_id=-42, chat_type="group")
    with pytest.raises(Forbidden, match="(?i)can't initiate conversation"):
        await bot.send_message(3003, "hi")

    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await bot.answer_callback_query("nope")
    assert await api.handle(TOKEN, "noSuchMethod", {}) == (
        404, {"ok": False, "error_code": 404, "description": "Not Found"},
    )  # fmt: skip
    assert (await api.handle(TOKEN, "GETME", {}))[1]["result"]["username"] == "gridbot_local_bot"


async def test_faults_in_process(api: LocalBotAPI, app: Application) -> None:
    api.send_text(TOKEN, USER, "hi")
    bot = app.bot
    api.inject_fault("sendMessage", status=429, retry_after=3)
    with pytest.raises(RetryAfter, match="Retry in 3"):
        await bot.send_message(USER, "flood")
    assert (await bot.send_message(USER, "after")).text == "after"

    api.inject_fault("sendMessage", count=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match="(?i)Internal Server Error"):
            await bot.send_message(USER, "x")
    api.inject_fault("getMe", drop=True)
    with pytest.raises(NetworkError, match="(?i)RemoteProtocolError"):
        await bot.get_me()
    api.inject_fault("getChat", delay_ms=300)
    with pytest.raises(TimedOut):
        await bot.get_chat(USER, read_timeout=0.05)
    api.inject_fault("sendMessage", status=400, description="Bad Request: custom")
    with pytest.raises(BadRequest, match="(?i)custom"):
        await bot.send_message(USER, "x")
    api.inject_fault("sendMessage")
    api.clear_faults()
    assert api.pending_faults() == []
    assert (await bot.send_message(USER, "fine")).text == "fine"


async def test_get_updates_offset_and_long_poll(api: LocalBotAPI) -> None:
    async def get_updates(**params: object) -> list[dict]:
        status, body = await api.handle(TOKEN, "getUpdates", {k: str(v) for k, v in params.items()})
        assert status == 200, body
        return body["result"]

    first = [api.send_text(TOKEN, USER, f"m{i}")["update_id"] for i in range(3)]
    got = await get_updates(timeout=0)
    assert [u["update_id"] for u in got] == first
    assert [u["update_id"] for u in await get_updates(timeout=0)] == first  # not confirmed yet
    assert await get_updates(offset=first[-1] + 1, timeout=0) == []  # confirmed: gone for good
    assert await get_updates(timeout=0) == []
    assert [u["update_id"] for u in await get_updates(offset=first[0], timeout=0, limit=1)] == []

    # A long poll wakes up as soon as an update arrives.
    poll = asyncio.create_task(get_updates(offset=first[-1] + 1, timeout=5))
    await asyncio.sleep(0.05)
    assert not poll.done()
    new = api.send_text(TOKEN, USER, "wake")
    result = await asyncio.wait_for(poll, 1)
    assert [u["update_id"] for u in result] == [new["update_id"]]

    # A second poller terminates the first one with 409, as Telegram does.
    older = asyncio.create_task(api.handle(TOKEN, "getUpdates", {"offset": str(new["update_id"] + 1), "timeout": "5"}))
    await asyncio.sleep(0.05)
    assert await get_updates(offset=new["update_id"] + 1, timeout=0) == []
    status, body = await asyncio.wait_for(older, 1)
    assert status == 409 and "terminated by other getUpdates request" in body["description"]

    await api.handle(TOKEN, "setWebhook", {"url": "https://example.org/hook"})
    status, body = await api.handle(TOKEN, "getUpdates", {})
    assert status == 409 and "webhook is active" in body["description"]


async def test_commands_per_scope(api: LocalBotAPI, app: Application) -> None:
    api.send_text(TOKEN, USER, "hi")
    bot = app.bot
    await bot.set_my_commands([BotCommand("start", "开始"), BotCommand("visit", "走访")])
    await bot.set_my_commands([BotCommand("start", "Start")], language_code="en")
    await bot.set_my_commands(
        [BotCommand("start", "开始"), BotCommand("admin", "管理")], scope=BotCommandScopeChat(USER)
    )
    assert [c["command"] for c in api.commands(TOKEN)] == ["start", "visit"]
    assert api.commands(TOKEN, language_code="en") == [{"command": "start", "description": "Start"}]
    assert [c["command"] for c in api.commands(TOKEN, {"type": "chat", "chat_id": USER})] == ["start", "admin"]
    assert [c.command for c in await bot.get_my_commands(scope=BotCommandScopeChat(USER))] == ["start", "admin"]
    assert [c["command"] for c in api.menu_for(TOKEN, USER, "zh-hans")] == ["start", "admin"]
    assert [c["command"] for c in api.menu_for(TOKEN, 999, "en")] == ["start"]
    with pytest.raises(BadRequest, match="(?i)invalid language code"):
        await bot.set_my_commands([BotCommand("start", "x")], language_code="zh-hans")
    with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Start", "x")])
    await bot.delete_my_commands(scope=BotCommandScopeChat(USER))
    assert api.commands(TOKEN, {"type": "chat", "chat_id": USER}) == []
    assert await bot.set_chat_menu_button()
    assert (await bot.get_chat(USER)).first_name == f"User{USER}"


# --------------------------------------------------------------------------- over HTTP


async def test_polling_over_http_survives_dropped_get_updates(api: LocalBotAPI) -> None:
    server = LocalBotAPIServer(api, port=0)
    await server.start()
    assert server.port != 0
    application = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(server.base_url)
        .base_file_url(server.file_base_url)
        .build()
    )
    add_handlers(application)
    user = LocalAPIUser(f"http://127.0.0.1:{server.port}", TOKEN, USER)
    try:
        await application.initialize()
        await application.start()
        await application.updater.start_polling(poll_interval=0, timeout=1)

        await asyncio.to_thread(user.send_command, "start", "xyz")
        welcome = await asyncio.to_thread(user.wait_for_bot_message, "欢迎", 5.0)
        assert welcome["text"] == "欢迎 xyz" and buttons(welcome) == [("确认", "ok:1")]

        await asyncio.to_thread(user.click, "确认")
        done = await asyncio.to_thread(user.wait_for_bot_message, lambda m: m["text"].startswith("已完成"), 5.0)
        assert done["message_id"] == welcome["message_id"] and done["edited"] == 1
        assert api.callback_answers[-1]["text"] == "已确认"

        # The file URL serves the bytes over HTTP too.
        photo_update = api.send_photo(TOKEN, USER, tiny_png())
        file = await application.bot.get_file(photo_update["message"]["photo"][-1]["file_id"])
        assert bytes(await file.download_as_bytearray()) == tiny_png()

        # A dropped getUpdates connection: PTB logs a NetworkError, backs off and recovers.
        api.inject_fault("getUpdates", drop=True)
        for _ in range(200):
            if not api.pending_faults():
                break
            await asyncio.sleep(0.02)
        assert not api.pending_faults()
        await asyncio.to_thread(user.send_text, "还在吗")
        echoed = await asyncio.to_thread(user.wait_for_bot_message, "还在吗", 5.0)
        assert echoed["text"] == "你说：还在吗"
        texts = [m["text"] for m in await asyncio.to_thread(user.bot_messages)]
        assert texts.count("你说：还在吗") == 1  # not redelivered after the drop
    finally:
        user.close()
        if application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        await application.shutdown()
        await server.stop()


def test_control_api_in_thread() -> None:
    api = LocalBotAPI()
    with serve_in_thread(api) as server:
        root = f"http://127.0.0.1:{server.port}"
        with LocalAPIUser(root + "/bot", TOKEN, USER, first_name="李四") as user, httpx.Client(base_url=root) as http:
            update = user.send_text("/start")
            assert update["message"]["entities"][0]["type"] == "bot_command"
            assert update["message"]["from"]["first_name"] == "李四"
            me = http.get(f"/bot{TOKEN}/getMe").json()
            assert me["ok"] and me["result"]["is_bot"]
            sent = http.post(
                f"/bot{TOKEN}/sendMessage",
                data={"chat_id": str(USER), "text": "收到", "reply_markup": json.dumps({"inline_keyboard": [[{"text": "好", "callback_data": "g"}]]})},
            ).json()
            assert sent["ok"], sent
            assert user.wait_for_bot_message("收到", 2.0)["message_id"] == sent["result"]["message_id"]
            query = user.press_button(sent["result"]["message_id"], "g")
            assert query["callback_query"]["data"] == "g"
            with pytest.raises(TimeoutError, match="(?i)收到"):
                user.wait_for_bot_message("never", 0.2)

            http.post("/_local/faults", json={"method": "sendMessage", "status": 502})
            failed = http.post(f"/bot{TOKEN}/sendMessage", data={"chat_id": str(USER), "text": "x"})
            assert failed.status_code == 502 and failed.json()["ok"] is False
            calls = http.get("/_local/calls", params={"token": TOKEN}).json()
            assert calls["counts"]["sendMessage"] == 2
            photo = user.send_photo(tiny_png(), caption="图")
            file_id = photo["message"]["photo"][-1]["file_id"]
            info = http.get(f"/bot{TOKEN}/getFile", params={"file_id": file_id}).json()["result"]
            assert http.get(f"/file/bot{TOKEN}/{info['file_path']}").content == tiny_png()
            assert http.get(f"/file/bot{TOKEN}/photos/nope.jpg").status_code == 404
            history = http.get("/_local/chat_messages", params={"token": TOKEN, "user_id": USER}).json()
            assert [m["from_bot"] for m in history["result"]] == [False, True, False]
            assert user.send_location(31.0, 121.0)["message"]["location"]["latitude"] == 31.0
            assert user.send_contact("+86100")["message"]["contact"]["user_id"] == USER
            assert "sticker" in user.send_sticker()["message"]
            unknown = http.post("/_local/nope", json={})
            assert unknown.status_code == 404


def test_standalone_cli_serves_until_sigterm() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "sandbox.localapi", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ) as proc:
        try:
            line = proc.stdout.readline()
            assert "base_url=http://127.0.0.1:" in line, line
            base_url = line.split("base_url=")[1].split()[0]
            assert httpx.get(f"{base_url}{TOKEN}/getMe").json()["ok"] is True
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(5) == 0
