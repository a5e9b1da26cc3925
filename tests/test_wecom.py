"""WeCom group robots against the local fake (tests/fake_wecom.py): bodies, byte limits, the image
message, 20 a minute per robot, errcode 45009 (wait, retry) and 93000 (stop, tell the admins)."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pytest

from bot import delivery, wecom
from jobs.reminders import run_job
from models import clock, outbox
from models.outbox import NewMessage
from models.users import create_grid
from tests.conftest import ADMIN_ID, Tg
from tests.fake_wecom import FakeWeCom, url
from tests.test_digest import known_week
from tests.test_reminders import drain_all, hello, local, rows


@pytest.fixture
def fake() -> FakeWeCom:
    return FakeWeCom()


def use(app, fake: FakeWeCom, robots: dict[str, list[str]]) -> None:  # noqa: ANN001
    app.settings = app.settings.model_copy(update={"wecom_robots": robots, "default_language": "en"})
    delivery.sender_for(app).http = fake.client()


def test_markdown_is_split_at_line_ends_within_4096_bytes():
    text = "\n".join(f"第{i}行 · 入户走访 {i * 7} 次 · 覆盖率 12.5%" for i in range(400))
    chunks = wecom.split_markdown(text)
    assert len(chunks) > 1 and all(len(c.encode()) <= 4096 for c in chunks)
    assert "\n".join(chunks) == text
    long_line = "网" * 3000  # 9000 bytes on one line: cut on character boundaries
    assert [len(c.encode()) for c in wecom.split_markdown(long_line)] == [4095, 4095, 810]
    with pytest.raises(ValueError):
        wecom.markdown_message("x" * 4097)
    png = b"\x89PNG" + b"0" * 100
    msg = wecom.image_message(png)
    assert base64.b64decode(msg["image"]["base64"]) == png and msg["image"]["md5"] == hashlib.md5(png).hexdigest()  # noqa: S324
    with pytest.raises(ValueError):
        wecom.image_message(b"0" * (2 * 1024 * 1024 + 1))


async def test_digest_reaches_street_and_grid_robots_as_markdown_and_image(app, api, db, fake):
    s = await known_week(db)
    async with db.session() as sess:  # enough grids that the street digest is over 4096 bytes
        for n in range(3, 40):
            await create_grid(sess, f"G{n:02d}", f"幸福里第{n}网格", 0.2)
    use(app, fake, {"*": [url("street")], "G01": [url("g01")]})
    clock.freeze(local(2026, 5, 18, 8, 7))
    await run_job(app, "digest")
    await drain_all(app, steps=10)
    street, g01 = fake.received["street"], fake.received["g01"]
    assert [m["msgtype"] for m in street][-1] == "image" and len(street) >= 3  # split markdown, then the chart
    contents = [m["markdown"]["content"] for m in street if m["msgtype"] == "markdown"]
    assert all(len(c.encode()) <= 4096 for c in contents) and sum(len(c.encode()) for c in contents) > 4096
    assert contents[0].startswith("📊 **Weekly digest May 11\u2009–\u200917**")
    assert "**G39 · 幸福里第39网格**" in "\n".join(contents) and "**All 39 grids**" in contents[-1]
    assert [m["msgtype"] for m in g01] == ["markdown", "image"] and "G02" not in g01[0]["markdown"]["content"]
    assert "**G01 · 幸福里第一网格**" in g01[0]["markdown"]["content"]
    assert all(code == 0 for _, code in fake.answers)
    assert all(r.state == "sent" for r in await rows(db) if r.recipient.startswith("wecom:")) and s


async def test_twenty_messages_a_minute_per_robot(app, db, fake):
    use(app, fake, {"*": [url("k1")]})
    to = wecom.recipient(url("k1"))
    async with db.session() as sess:
        await outbox.enqueue(sess, [NewMessage("t", f"p{i}", to, f"m{i}") for i in range(25)])
    sent = 0
    for _ in range(25):  # a pass a second, for 25 seconds
        sent += (await delivery.drain(app)).sent
        clock.advance(timedelta(seconds=1))
    assert sent == 20 and 45009 not in [c for _, c in fake.answers]
    clock.advance(timedelta(seconds=36))  # a minute after the first
    assert await drain_all(app) == 5
    assert [m["markdown"]["content"] for m in fake.received["k1"]] == [f"m{i}" for i in range(25)]


async def test_errcode_45009_waits_and_retries(app, db, fake):
    use(app, fake, {"*": [url("k1")]})
    async with db.session() as sess:
        await outbox.enqueue(sess, [NewMessage("t", "p", wecom.recipient(url("k1")), "hello")])
    fake.fail("k1", 45009)
    result = await delivery.drain(app)
    assert result.sent == 0
    (row,) = await rows(db)
    assert row.state == "pending" and row.next_attempt_at == clock.now() + timedelta(seconds=60) and "45009" in row.last_error
    clock.advance(timedelta(seconds=59))
    assert (await delivery.drain(app)).sent == 0
    clock.advance(timedelta(seconds=1))
    assert (await delivery.drain(app)).sent == 1 and fake.received["k1"][0]["markdown"]["content"] == "hello"


async def test_errcode_93000_stops_using_the_robot_and_tells_the_admins(app, api, db, fake):
    await known_week(db)
    hello(api, ADMIN_ID)
    use(app, fake, {"*": [url("good")], "G01": [url("revoked")]})
    fake.bad_keys.add("revoked")
    clock.freeze(local(2026, 5, 18, 8, 7))
    await run_job(app, "digest")
    await drain_all(app)
    revoked = wecom.recipient(url("revoked"))
    dead = [r for r in await rows(db) if r.recipient == revoked]
    assert dead and all(r.state == "dead" for r in dead)
    assert [c for k, c in fake.answers if k == "revoked"] == [93000]  # tried once, never again
    alert = [t for t in (m.get("text", "") for m in Tg(app, api, ADMIN_ID).bot_messages()) if "WeCom group robot" in t]
    assert len(alert) == 1 and "errcode 93000" in alert[0] and "G01" in alert[0] and "revoked" not in alert[0]  # never the key
    assert fake.received["good"]  # the other robot works on
    # Next week the disabled robot gets nothing, and nothing is even written for it.
    clock.freeze(local(2026, 5, 25, 8, 7))
    await run_job(app, "digest")
    assert [r for r in await rows(db) if r.recipient == revoked and r.period_key.startswith("2026-W21")] == []


async def test_errcode_decides_not_errmsg(app, db, fake, monkeypatch):
    use(app, fake, {"*": [url("k1")]})
    async with db.session() as sess:
        await outbox.enqueue(sess, [NewMessage("t", "p", wecom.recipient(url("k1")), "hello")])
    fake.fail("k1", 40058)  # an error whose errmsg says "injected": errcode decides -> retried with backoff
    await delivery.drain(app)
    (row,) = await rows(db)
    assert row.state == "failed" and row.last_error == "errcode 40058"
