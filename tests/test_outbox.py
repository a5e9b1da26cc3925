"""The outbox: one row per key whatever happens, the kill points on both sides of the one window,
draining after a Telegram outage, flood waits, the per-chat rate, and /outbox."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot import delivery
from handlers.reminders import on_startup
from jobs import reminders as rjobs
from jobs.reminders import run_job
from models import clock, outbox
from models.outbox import NewMessage
from tests.conftest import ADMIN_ID, TOKEN, Tg, make_app, stop_app
from tests.seed import WORKER_A, WORKER_B, seed
from tests.test_reminders import drain_all, hello, local, rows


class Killed(BaseException):
    """The process dies here (not an Exception: nothing may catch it)."""


@pytest.fixture
def kill_at():  # noqa: ANN201
    def arm(point: str, row_index: int = 0) -> None:
        seen = []

        def hook(name: str, row: outbox.Row) -> None:
            if name == point:
                seen.append(row.id)
                if len(seen) == row_index + 1:
                    delivery.kill_hook = None
                    raise Killed(point)

        delivery.kill_hook = hook

    yield arm
    delivery.kill_hook = None


def sent_texts(api, user_id: int) -> list[str]:  # noqa: ANN001
    return [m.get("text", "") for m in api.bot_messages(TOKEN, user_id)]


async def test_enqueue_is_insert_if_absent(db):
    async with db.session() as s:
        assert await outbox.enqueue(s, [NewMessage("k", "p1", "tg:1", "a"), NewMessage("k", "p1", "tg:2", "b")]) == 2
    async with db.session() as s:
        assert await outbox.enqueue(s, [NewMessage("k", "p1", "tg:1", "changed"), NewMessage("k", "p2", "tg:1", "c")]) == 1
    assert [(r.period_key, r.recipient, r.body) for r in await rows(db)] == [("p1", "tg:1", "a"), ("p1", "tg:2", "b"), ("p2", "tg:1", "c")]


async def test_a_crash_in_the_middle_of_a_fan_out_leaves_a_prefix_and_the_rerun_writes_each_row_once(app, api, db, monkeypatch):
    """The outbox is written in batches (a transaction each, so replies get the database in between):
    a crash after the first batch keeps it and leaves job_run unmoved; the re-run writes only the rest."""
    await seed(db)
    clock.freeze(local(2026, 5, 18, 9, 7))
    monkeypatch.setattr(rjobs, "BATCH", 1)
    real = outbox.enqueue
    calls = []

    async def dies_on_the_second_batch(session, messages):  # noqa: ANN001
        calls.append(len(messages))
        if len(calls) == 2:
            raise Killed("mid fan-out")  # the process dies before the second batch commits
        return await real(session, messages)

    monkeypatch.setattr(outbox, "enqueue", dies_on_the_second_batch)
    with pytest.raises(Killed):
        await run_job(app, "visit_pace")
    assert len(await rows(db)) == 1  # the first batch was committed, the second not
    monkeypatch.setattr(outbox, "enqueue", real)
    assert await run_job(app, "visit_pace") == 1  # job_run did not move: the run is made again, the missing row only
    assert await run_job(app, "visit_pace") is None  # a misfire / double fire of the same moment
    state = await rows(db)
    assert len(state) == 2 and len({r.recipient for r in state}) == 2  # each worker's letter exactly once


@pytest.mark.parametrize(("point", "copies"), [("claimed", 1), ("sent", 2), ("recorded", 1)])
async def test_kill_points_around_the_window(settings, db, api, kill_at, point, copies):
    """A kill after claiming (Telegram never saw it) and after recording: exactly one message. A kill
    after Telegram accepted but before `sent` was committed: the documented window, one duplicate."""
    await seed(db)
    hello(api, WORKER_A, WORKER_B)
    clock.freeze(local(2026, 5, 18, 9, 7))
    app = await make_app(settings, db, api)
    await run_job(app, "visit_pace")
    kill_at(point, row_index=1)  # the second row of the fan-out
    with pytest.raises(Killed):
        await drain_all(app)
    await stop_app(app)
    app = await make_app(settings, db, api)  # the restart
    await on_startup(app.runtime)
    await drain_all(app)
    await stop_app(app)
    state = await rows(db)
    assert len(state) == 2 and all(r.state == "sent" for r in state)
    assert len([t for t in sent_texts(api, WORKER_A) if "Home visits" in t]) == 1  # the first row: never doubled
    assert len([t for t in sent_texts(api, WORKER_B) if "Home visits" in t]) == copies


async def test_outbox_drains_after_a_telegram_outage(app, api, db):
    await seed(db)
    hello(api, WORKER_A, WORKER_B)
    clock.freeze(local(2026, 5, 18, 9, 7))
    await run_job(app, "visit_pace")
    api.inject_fault("sendMessage", status=500, count=4)
    result = await delivery.drain(app)
    assert result.sent == 0 and result.failed == 2
    failed = await rows(db)
    assert all(r.state == "failed" and r.attempts == 1 and "NetworkError" in (r.last_error or "") for r in failed), failed
    assert all(r.next_attempt_at == clock.now() + timedelta(seconds=30) for r in failed)  # backoff
    assert (await delivery.drain(app)).sent == 0  # not before its time
    clock.advance(timedelta(seconds=30))
    result = await delivery.drain(app)  # still down: backoff doubles
    assert result.failed == 2 and all(r.next_attempt_at == clock.now() + timedelta(seconds=60) for r in await rows(db))
    clock.advance(timedelta(seconds=60))
    assert await drain_all(app) == 2  # Telegram is back
    assert all(r.state == "sent" and r.attempts == 3 for r in await rows(db))
    assert "Home visits" in Tg(app, api, WORKER_A).last and "Home visits" in Tg(app, api, WORKER_B).last
    # An admin sees failures with /outbox; a blocked user is given up at once.
    async with db.session() as s:
        await outbox.enqueue(s, [NewMessage("test", "x", "tg:424242", "to nobody")])
    await drain_all(app)
    admin = Tg(app, api, ADMIN_ID)
    await seed_admin(db)
    out = await admin.send("/outbox")
    assert "2 sent" in out[-1]["text"] and "1 given up" in out[-1]["text"] and "tg:424242" in out[-1]["text"] and "Chat not found" in out[-1]["text"]


async def seed_admin(db) -> None:  # noqa: ANN001
    from models.tables import Role
    from models.users import create_user

    async with db.session() as s:
        await create_user(s, ADMIN_ID, Role.ADMIN, [], "管理员", "en")


async def test_flood_wait_pauses_telegram_sends_and_the_per_chat_rate_spaces_one_chats_messages(app, api, db):
    hello(api, WORKER_A, WORKER_B)
    async with db.session() as s:
        await outbox.enqueue(s, [NewMessage("t", f"p{i}", f"tg:{WORKER_A}", f"a{i}") for i in range(3)]
                             + [NewMessage("t", "p0", f"tg:{WORKER_B}", "b0")])
    result = await delivery.drain(app)
    assert result.sent == 2 and result.waiting == 2  # one message per chat per second
    clock.advance(timedelta(milliseconds=500))
    assert (await delivery.drain(app)).sent == 0
    clock.advance(timedelta(milliseconds=500))
    assert (await delivery.drain(app)).sent == 1
    # A 429 that PTB's rate limiter does not retry (its retries sleep in real time; switched off here):
    # the row goes back untried and every Telegram send pauses for retry_after.
    app.bot.rate_limiter._max_retries = 0
    api.inject_fault("sendMessage", status=429, retry_after=5, count=1)
    clock.advance(timedelta(seconds=1))
    result = await delivery.drain(app)
    assert result.sent == 0 and result.waiting == 1
    (row,) = [r for r in await rows(db) if r.state != "sent"]
    assert row.state == "pending" and row.attempts == 0 and "429" in row.last_error
    assert row.next_attempt_at == clock.now() + timedelta(seconds=5)
    clock.advance(timedelta(seconds=4))
    assert (await delivery.drain(app)).sent == 0
    clock.advance(timedelta(seconds=1))
    assert (await delivery.drain(app)).sent == 1
    assert sent_texts(api, WORKER_A)[-3:] == ["a0", "a1", "a2"]


async def test_each_channel_spaces_one_chats_messages_by_its_own_limits(db, settings):
    """The per-chat rate is the channel's: the plain test channel allows 5 a second to one chat,
    where Telegram allows 1 (above: nothing more within a second)."""
    from tests.plain_channel import NAME as PLAIN
    from tests.plain_channel import runtime

    engine, channel = runtime(settings, db)
    assert channel.limits.per_chat_per_second == 5
    async with db.session() as s:
        await outbox.enqueue(s, [NewMessage("t", f"p{i}", outbox.recipient(PLAIN, "wang.fang"), f"w{i}") for i in range(3)])
    assert (await delivery.drain(engine.app)).sent == 1
    clock.advance(timedelta(milliseconds=150))
    assert (await delivery.drain(engine.app)).sent == 0  # within its 0.2 s
    clock.advance(timedelta(milliseconds=50))
    assert (await delivery.drain(engine.app)).sent == 1
    clock.advance(timedelta(milliseconds=200))
    assert (await delivery.drain(engine.app)).sent == 1
    assert [said.text for said in channel.said["wang.fang"]] == ["w0", "w1", "w2"]

