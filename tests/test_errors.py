"""An unexpected error: apology, draft and step kept, logged with the update id, admins alerted sparingly."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.exc import OperationalError

import handlers.visits
from models import clock
from models.tables import Role
from models.users import create_user
from tests.conftest import ADMIN_ID, TOKEN, Tg, texts
from tests.seed import WORKER_A, seed


async def test_handler_error_keeps_draft_and_alerts_admins_once_per_10_minutes(app, api, db, monkeypatch, caplog):
    await seed(db)
    async with db.session() as s:
        await create_user(s, ADMIN_ID, Role.ADMIN, [], "Admin", "en")
    await Tg(app, api, ADMIN_ID).send("/help")  # the admin has a chat with the bot
    u = Tg(app, api, WORKER_A)
    await u.send("/visit")
    before = u.draft

    async def broken(*args, **kwargs):  # noqa: ANN002, ANN003
        raise RuntimeError("boom")

    monkeypatch.setattr(handlers.visits, "search_households", broken)
    with caplog.at_level(logging.ERROR):
        out = await u.send("3栋")
    assert "Sorry, something went wrong" in texts(out) and "kept" in texts(out)
    assert u.draft == before and u.draft["step"] == "HOUSEHOLD"
    assert any("error while handling update" in r.getMessage() and "RuntimeError@" in r.getMessage() for r in caplog.records)
    alerts = lambda: [m for m in api.bot_messages(TOKEN, ADMIN_ID) if "RuntimeError@" in m["text"]]  # noqa: E731
    assert len(alerts()) == 1
    await u.send("3栋")
    assert len(alerts()) == 1  # same kind within 10 minutes: no second alert
    clock.advance(timedelta(minutes=11))
    await u.send("/cancel")  # stay within the conversation timeout
    await u.send("/visit")
    await u.send("3栋")
    assert len(alerts()) == 2

    monkeypatch.undo()
    out = await u.send("3栋")
    assert "Matches for «3栋»" in texts(out)  # the form goes on from the same step


async def test_database_busy_says_try_again(app, api, db, monkeypatch):
    await seed(db)
    u = Tg(app, api, WORKER_A)
    await u.send("/visit")

    async def locked(*args, **kwargs):  # noqa: ANN002, ANN003
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(handlers.visits, "search_households", locked)
    out = await u.send("3栋")
    assert "database is busy" in texts(out) and "send that again" in texts(out)
    assert u.draft["step"] == "HOUSEHOLD"
