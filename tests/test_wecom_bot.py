"""WeCom over the 智能机器人 long connection: the real runtime and engine, the real channel, driven by
real frames from the loopback WeCom (sandbox/wecom_fake.py), asserting on what the person sees and
on the database."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest
from sqlmodel import select

from bot.channels.wecom_bot import NAME, WeComBotChannel, decrypt_media, markdown, split_bytes
from bot.runtime import Runtime, StartError
from models.tables import ChannelIdentity, Visit
from models.users import get_member
from sandbox.wecom_fake import FakeWeCom, encrypt_media
from tests.seed import SUPERVISOR_A, WORKER_A, seed

JPEG = b"\xff\xd8\xff\xe0" + b"wecom-photo" * 40
FAST = {"heartbeat": 0.2, "backoff": (0.05, 0.2), "ack_timeout": 2.0}


@pytest.fixture
async def wecom():
    fake = FakeWeCom()
    await fake.start()
    yield fake
    await fake.stop()


def wecom_settings(settings, fake: FakeWeCom, **more):  # noqa: ANN001, ANN003, ANN201
    return settings.model_copy(update={"telegram_bot_token": None, "wecom_bot_id": fake.bot_id, "wecom_bot_secret": fake.secret,
                                       "wecom_ws_url": fake.url, **more})


async def start(settings, db, fake: FakeWeCom, **channel_options):  # noqa: ANN001, ANN003, ANN201
    runtime = Runtime(wecom_settings(settings, fake), db)
    channel = WeComBotChannel(runtime.settings, **{**FAST, **channel_options})
    runtime.add(channel)
    await runtime.start(receive=True, startup=False)
    return runtime, channel


async def start_with_worker(settings, db, fake: FakeWeCom):  # noqa: ANN001, ANN201
    """The seeded street, worker A known on WeCom as `wangfang`, and the runtime connected to the fake."""
    await seed(db)
    await bind(db, WORKER_A, "wangfang")
    return await start(settings, db, fake)


async def bind(db, telegram_id: int, userid: str) -> None:  # noqa: ANN001
    """A seeded person (registered on Telegram) gets a WeCom identity, as an admin's pre-binding would."""
    async with db.session() as session:
        member = await get_member(session, telegram_id)
        session.add(ChannelIdentity(user_id=member.id, channel=NAME, key=userid))


class Person:
    """One WeCom user at the fake: says something, waits for the bot's answer."""

    def __init__(self, fake: FakeWeCom, userid: str) -> None:
        self.fake, self.userid = fake, userid

    @property
    def seen(self) -> int:
        return len(self.fake.messages_for(self.userid))

    async def _answer(self, before: int, act) -> str:  # noqa: ANN001
        await act
        await self.fake.wait_for(self.userid, before + 1)
        await asyncio.sleep(0.05)  # a turn may send a second frame right after the first
        return "\n".join(s.text for s in self.fake.messages_for(self.userid)[before:])

    async def says(self, text: str) -> str:
        return await self._answer(self.seen, self.fake.send_text(self.userid, text))

    async def presses(self, label: str) -> str:
        return await self._answer(self.seen, self.fake.press(self.userid, label))

    async def photo(self, data: bytes) -> str:
        return await self._answer(self.seen, self.fake.send_image(self.userid, data))

    @property
    def last_card(self) -> dict | None:
        for shown in reversed(self.fake.messages_for(self.userid)):
            if shown.card:
                return shown.card
        return None


async def visits(db):  # noqa: ANN001, ANN201
    async with db.session() as s:
        return (await s.exec(select(Visit))).all()


async def test_a_worker_logs_a_visit_with_a_photo_typed_numbers_and_card_buttons(settings, db, wecom):
    runtime, channel = await start_with_worker(settings, db, wecom)
    try:
        u = Person(wecom, "wangfang")
        out = await u.says("走访")  # the word people type for /visit
        assert "Step 1/7" in out and "`1` ➕ New household" in out  # numbered as well as on the card
        assert u.last_card["card_type"] == "button_interaction"
        out = await u.says("3栋1单元101")
        out = await u.presses("3栋1单元101")  # a card button
        assert "Step 3/7" in out or "people" in out.lower()
        out = await u.says("2")  # the people step takes typed text: "2" is two people, not the second button
        assert runtime.engine.states[(NAME, "wangfang")]["draft"]["data"]["people_met"] == 2
        situation = runtime.engine.states[(NAME, "wangfang")]["draft"]["step"]
        assert situation == "SITUATION"
        numbered = runtime.engine.states[(NAME, "wangfang")]["wecom_numbered"]
        normal = next(i for i, data in enumerate(numbered, 1) if data.endswith(":t:0"))
        await u.says(str(normal))  # no typed text here: the number presses that button
        out = await u.presses("Done")
        out = await u.says("Talked with the family")
        out = await u.photo(JPEG)
        assert "Photo 1 received" in out
        out = await u.says("/done")
        assert "Step 7/7" in out  # the location step takes a pin or /skip only: skipped on WeCom
        out = await u.presses("Save")
        assert "Visit #1 saved" in out
    finally:
        await runtime.stop()
    (visit,) = await visits(db)
    assert visit.people_met == 2 and visit.notes == "Talked with the family" and visit.latitude is None
    assert visit.situations == ["normal"] or visit.situations  # the toggled situation was kept
    sha = visit.photos[0]["sha256"]
    assert (settings.media_dir / sha[:2] / f"{sha}.jpg").read_bytes() == JPEG  # decrypted and kept content-addressed
    assert not [r for r in wecom.refusals if r[0] != "aibot_subscribe"]  # no frame broke a WeCom rule


async def test_opening_the_chat_gets_the_welcome_and_a_stranger_is_told_how_to_join(settings, db, wecom):
    runtime, _channel = await start_with_worker(settings, db, wecom)
    try:
        await wecom.enter("wangfang")
        (welcome,) = await wecom.wait_for("wangfang", 1)
        assert welcome.via == "welcome" and "/visit" in welcome.text
        await wecom.enter("stranger")
        (welcome,) = await wecom.wait_for("stranger", 1)
        assert welcome.via == "welcome" and "/start" in welcome.text
    finally:
        await runtime.stop()


async def test_a_number_replied_to_a_list_presses_that_button(settings, db, wecom):
    runtime, _channel = await start_with_worker(settings, db, wecom)
    try:
        u = Person(wecom, "wangfang")
        out = await u.says("/lang")
        assert "`1` 中文" in out and "`2` English" in out
        out = await u.says("1")
        assert "语言已设置" in out or "中文" in out
        out = await u.says("7")  # no seventh button: plain text outside any flow
        assert "/help" in out
    finally:
        await runtime.stop()


@pytest.mark.parametrize("drop", ["close 1000", "close 1001", "close 1011", "abort", "silent pings"])
async def test_after_each_kind_of_drop_it_reconnects_and_loses_no_message(settings, db, wecom, drop):
    runtime, channel = await start_with_worker(settings, db, wecom)
    try:
        u = Person(wecom, "wangfang")
        await u.says("/visit")
        if drop.startswith("close"):
            await wecom.close(int(drop.split()[1]))
        elif drop == "abort":
            wecom.abort()
        else:
            wecom.silent_pings = 10**6  # the link looks alive but nothing answers: two missed pings end it
        if drop == "silent pings":
            for _ in range(100):
                if channel.connection.sessions >= 2:
                    break
                await asyncio.sleep(0.05)
            wecom.silent_pings = 0
        await wecom.connected(timeout=10)
        out = await u.says("3栋1单元101")
        assert "3栋1单元101" in out  # the step after the drop is answered, the draft kept
        assert channel.connection.sessions >= 2
    finally:
        await runtime.stop()


async def test_a_frame_delivered_again_is_handled_once(settings, db, wecom):
    runtime, _channel = await start_with_worker(settings, db, wecom)
    try:
        u = Person(wecom, "wangfang")
        await u.says("/visit")
        frame = wecom.last_push
        seen = u.seen
        await wecom.close(1000)  # a reconnect, after which WeCom delivers the last message again
        await wecom.connected(timeout=10)
        wecom._callbacks[frame["headers"]["req_id"]].at = wecom.clock()  # noqa: SLF001 - its req_id is live again
        await wecom.redeliver(frame)
        await asyncio.sleep(0.5)
        assert u.seen == seen  # nothing answered twice, no second draft
        out = await u.says("3栋1单元101")
        assert "3栋1单元101" in out
    finally:
        await runtime.stop()


async def test_another_instance_taking_over_stops_the_connection_for_good(settings, db, wecom):
    await seed(db)
    runtime, channel = await start(settings, db, wecom)
    try:
        await wecom.kick()  # disconnected_event: another process subscribed with this bot
        for _ in range(100):
            if channel.connection.fatal:
                break
            await asyncio.sleep(0.02)
        assert "disconnected_event" in channel.connection.fatal
        await asyncio.sleep(0.5)
        assert not wecom.is_connected and wecom.subscribes == 1  # it did not come back to kick the other one
    finally:
        await runtime.stop()


async def test_refused_credentials_stop_the_start_in_one_line(settings, db, wecom):
    runtime = Runtime(wecom_settings(settings, wecom, wecom_bot_secret="WRONG"), db)
    runtime.add(WeComBotChannel(runtime.settings, **FAST))
    with pytest.raises(StartError, match="refused"):
        await runtime.start(receive=True, startup=False)
    await runtime.stop()
    assert wecom.subscribes == 0


async def test_a_supervisor_gets_a_photo_pushed_by_the_chunked_upload(settings, db, wecom):
    await seed(db)
    await bind(db, SUPERVISOR_A, "zhangwei")
    runtime, channel = await start(settings, db, wecom)
    try:
        await wecom.send_text("zhangwei", "/help")  # only someone who wrote to the bot can be pushed to
        await wecom.wait_for("zhangwei", 1)
        big = os.urandom(1_300_000)  # three chunks of at most 512 KiB
        await channel.send_photo("zhangwei", b"\xff\xd8\xff" + big, caption="<b>巡查</b> 照片")
        shown = wecom.messages_for("zhangwei")
        assert shown[-2].media == ("image", b"\xff\xd8\xff" + big) and shown[-1].text == "**巡查** 照片"
        chunks = [f for f in wecom.frames if f.get("cmd") == "aibot_upload_media_chunk"]
        assert [c["body"]["chunk_index"] for c in chunks] == [0, 1, 2]
    finally:
        await runtime.stop()


# -- rendering and media, one at a time -----------------------------------------------------------------


def test_rich_text_becomes_markdown_and_user_text_cannot_open_markup():
    text = '<b>户主</b> &lt;@all&gt; **张*三** [x](y) <a href="https://example.org/a">链接</a> <code>2605-0042</code> #1\n# 标题\n&gt; 引用'
    assert markdown(text) == ("**户主** ＜@all> ＊＊张＊三＊＊ ［x］(y) [链接](https://example.org/a) `2605-0042` #1\n"
                              "＃ 标题\n＞ 引用")


def test_long_text_is_split_at_line_ends_within_the_byte_limit():
    lines = [f"第{i}行：" + "网格" * 20 for i in range(100)]
    parts = split_bytes("\n".join(lines), 1000)
    assert all(len(p.encode()) <= 1000 for p in parts) and "\n".join(parts) == "\n".join(lines)
    assert split_bytes("网" * 1000, 100)[0] == "网" * 33  # a line alone too long: cut between characters


@pytest.mark.parametrize("size", [0, 1, 31, 32, 1000])
def test_media_decrypts_with_the_32_byte_padding_and_an_unpadded_key(size):
    key = os.urandom(32)
    data = os.urandom(size)
    encrypted = encrypt_media(data, key)
    assert len(encrypted) % 32 == 0 and len(encrypted) > size  # a full 32-byte pad block when aligned
    assert decrypt_media(encrypted, base64.b64encode(key).decode().rstrip("=")) == data


def test_a_wrong_media_key_is_refused_not_crashed():
    from bot.chat import Refused

    encrypted = encrypt_media(b"x" * 100, os.urandom(32))
    with pytest.raises(Refused):
        decrypt_media(encrypted, base64.b64encode(os.urandom(32)).decode())


async def test_gridbot_run_with_only_wecom_never_needs_telegram_and_says_a_refusal_in_one_line(wecom, tmp_path):
    """The real process: WeCom is the only channel configured; a refused secret is one line, exit 1."""
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("TELEGRAM_", "WECOM_", "DATABASE_URL", "ADMIN"))}
    env.update({"DATABASE_URL": f"sqlite:///{tmp_path}/g.db", "WECOM_BOT_ID": wecom.bot_id, "WECOM_BOT_SECRET": "WRONG",
                "WECOM_WS_URL": wecom.url, "MEDIA_DIR": str(tmp_path / "media")})
    proc = await asyncio.create_subprocess_exec(str(Path(sys.executable).parent / "gridbot"), "run", env=env, cwd=tmp_path,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1, err
    lines = err.decode().strip().splitlines()
    assert lines[-1].startswith("start-up error: wecom: cannot connect (AuthRefused: the BotID and Secret were refused"), err
    assert "Traceback" not in err.decode() + out.decode() and "telegram" not in out.decode().lower()
    assert wecom.refusals and wecom.refusals[0][0] == "aibot_subscribe"
