"""Identities: a person is one account with an identity per channel. `/link` binds a second channel
(here the test-only plain channel) to a Telegram account; admins can be named per channel; /forget_me
clears every identity; the migration moves today's Telegram ids over and back."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import text
from sqlmodel import select

from bot.db import downgrade, make_engine, upgrade
from models import clock
from models.tables import ChannelIdentity, Visit
from tests.conftest import Tg, texts
from tests.plain_channel import NAME as PLAIN
from tests.plain_channel import PlainUser, runtime
from tests.plain_channel import texts as plain_texts
from tests.seed import WORKER_A, WORKER_B, seed
from tests.test_migrations import empty_url  # noqa: F401 - the fixture


async def identities(db) -> list[tuple[str, str]]:  # noqa: ANN001
    async with db.session() as s:
        return [(i.channel, i.key) for i in (await s.exec(select(ChannelIdentity).order_by(ChannelIdentity.id))).all()]


def link_code(message: str) -> str:
    return message.split("/link ", 1)[1].split()[0]


async def test_link_binds_a_second_channel_once_and_the_person_works_there(app, api, db, settings):
    await seed(db)
    out = await Tg(app, api, WORKER_A).send("/link")
    code = link_code(texts(out))
    assert len(code) == 8 and "10 minutes" in texts(out)

    engine, channel = runtime(settings, db)
    stranger = PlainUser(engine, channel, "wang.fang")
    assert "not registered" in plain_texts(await stranger.send("/visit"))  # not yet linked: nothing works
    assert "not valid" in plain_texts(await stranger.send("/link NOPE1234"))  # a wrong code: said, nothing bound
    assert (PLAIN, "wang.fang") not in await identities(db)

    out = await stranger.send(f"/link {code.lower()}")  # typed in lower case on the other phone: still the code
    assert "Linked" in plain_texts(out) and "/visit" in plain_texts(out)
    assert (PLAIN, "wang.fang") in await identities(db) and ("telegram", str(WORKER_A)) in await identities(db)
    out = await stranger.send("/visit")
    assert "Step 1/7" in plain_texts(out)  # the same person, with the same role and grids
    await stranger.send("/cancel")

    other = PlainUser(engine, channel, "li.si")
    assert "already been used" in plain_texts(await other.send(f"/link {code}"))
    assert "already registered here" in plain_texts(await stranger.send(f"/link {code}"))
    async with db.session() as s:
        assert (await s.exec(select(Visit))).all() == []


async def test_a_link_code_expires_and_cannot_bind_a_channel_the_person_has(app, api, db, settings):
    await seed(db)
    worker = Tg(app, api, WORKER_B)
    code = link_code(texts(await worker.send("/link")))
    clock.advance(timedelta(minutes=11))
    engine, channel = runtime(settings, db)
    late = PlainUser(engine, channel, "late")
    assert "expired" in plain_texts(await late.send(f"/link {code}"))
    assert (PLAIN, "late") not in await identities(db)
    # A code made on Telegram, sent on Telegram by someone else who is not registered: that person
    # would become the worker on a channel the worker already has; refused.
    code = link_code(texts(await worker.send("/link")))
    out = await Tg(app, api, 777001).send(f"/link {code}")
    assert "already has an identity on this platform" in texts(out)
    assert ("telegram", "777001") not in await identities(db)


async def test_admins_named_per_channel(db, settings):
    s = settings.model_copy(update={"admins": [(PLAIN, "boss")]})
    engine, channel = runtime(s, db)
    out = await PlainUser(engine, channel, "boss").send("/start")
    assert "joined as" in plain_texts(out)
    assert await identities(db) == [(PLAIN, "boss")]
    assert "not registered" in plain_texts(await PlainUser(engine, channel, "nobody").send("/start"))


async def test_forget_me_clears_every_identity(app, api, db, settings):
    await seed(db)
    code = link_code(texts(await Tg(app, api, WORKER_A).send("/link")))
    engine, channel = runtime(settings, db)
    await PlainUser(engine, channel, "wang.fang").send(f"/link {code}")
    worker = Tg(app, api, WORKER_A)
    await worker.send("/forget_me")
    await worker.press("Yes, forget me")
    assert not any(key in ("wang.fang", str(WORKER_A)) for _, key in await identities(db))
    assert "not registered" in plain_texts(await PlainUser(engine, channel, "wang.fang").send("/visit"))


def test_the_migration_moves_telegram_ids_over_and_back(empty_url):  # noqa: F811
    upgrade(empty_url, "0011")

    async def run(sql: str, **params):  # noqa: ANN003, ANN202
        engine = make_engine(empty_url)
        async with engine.begin() as conn:
            result = await conn.execute(text(sql), params)
            rows = result.all() if result.returns_rows else None
        await engine.dispose()
        return rows

    asyncio.run(run("INSERT INTO app_user (id, telegram_id, display_name, role, active, created_at) "
                    "VALUES (1, 9001, 'A', 'admin', true, '2026-05-01 00:00:00'), (2, 5000000001, 'B', 'worker', true, '2026-05-01 00:00:00')"))
    asyncio.run(run("INSERT INTO grid (id, code, name, target_coverage, created_at) VALUES (1, 'G01', 'g', 0.2, '2026-05-01 00:00:00')"))
    asyncio.run(run("INSERT INTO user_grid (user_id, grid_id) VALUES (2, 1)"))
    upgrade(empty_url)
    assert asyncio.run(run("SELECT user_id, channel, key FROM channel_identity ORDER BY user_id")) == [
        (1, "telegram", "9001"), (2, "telegram", "5000000001")]
    # Rebuilding app_user (SQLite's batch mode) cascades nothing: the rows that reference it stay.
    assert asyncio.run(run("SELECT user_id, grid_id FROM user_grid")) == [(2, 1)]
    asyncio.run(run("INSERT INTO app_user (id, display_name, role, active, created_at) VALUES (3, 'C', 'worker', true, '2026-05-01 00:00:00')"))
    asyncio.run(run("INSERT INTO channel_identity (user_id, channel, key, created_at) VALUES (3, 'wecom', 'zhangsan', '2026-05-01 00:00:00')"))
    downgrade(empty_url, "0011")
    assert asyncio.run(run("SELECT id, telegram_id FROM app_user ORDER BY id")) == [(1, 9001), (2, 5000000001), (3, -3)]
    assert asyncio.run(run("SELECT user_id, grid_id FROM user_grid")) == [(2, 1)]


async def test_a_person_on_another_platform_is_told_through_the_outbox_there(db, settings):
    """A worker reports on the plain channel; the grid's supervisor uses only Telegram: the
    notification, with its buttons, waits in the outbox for Telegram instead of being lost."""
    from models.issues import Issue
    from models.tables import OutboxMessage
    from tests.plain_channel import known_here
    from tests.seed import SUPERVISOR_A
    from tests.seed_issues import seed_issues

    await seed_issues(db)
    await known_here(db, WORKER_A)
    engine, channel = runtime(settings, db)
    u = PlainUser(engine, channel, WORKER_A)
    await u.send("/report")
    await u.press("Outdoor signs")
    await u.send("招牌松动，有坠落风险")
    await u.send("幸福路12号")
    await u.send("/done")
    await u.press("Normal")
    assert "Reported as issue 2605-0001" in plain_texts(await u.press("Submit"))
    assert str(SUPERVISOR_A) not in channel.said  # not on this channel
    async with db.session() as s:
        rows = (await s.exec(select(OutboxMessage).where(OutboxMessage.recipient == f"tg:{SUPERVISOR_A}"))).all()
        assert len((await s.exec(select(Issue))).all()) == 1
    assert len(rows) == 1 and rows[0].kind == "notice" and "2605-0001" in rows[0].body and rows[0].payload["buttons"]
