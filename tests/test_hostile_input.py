"""Hostile and odd text at every step of /visit (property-based, derandomised).

Long texts, emoji, right-to-left script, SQL and HTML/Markdown metacharacters: each gets a reply,
never the error apology (the local Bot API rejects unescaped HTML, so an echo that forgot to escape
would surface as an error), and the form stays valid.
"""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from bot.db import Database
from bot.localapi import LocalBotAPI
from models import metadata
from tests.conftest import Tg, make_app, stop_app
from tests.seed import WORKER_A, seed
from tests.test_visit import walk_to

NASTY = st.sampled_from([
    "<b>bold</b> & <i>", "'; DROP TABLE visit; --", "%_\\%", "*_[]()~`>#+-=|{}.!", "مرحبا بالعالم", "‮evil‏",
    "😀" * 50, "3栋<script>alert(1)</script>", "&amp;&lt;", "\u0000\u0007 bell", "١٢", "2 人", "NaN", "1e3",
])
TEXTS = st.one_of(NASTY, st.text(min_size=1, max_size=300), st.text(alphabet="<>&'\"中文😀", min_size=1, max_size=4096))
STEPS = st.sampled_from(["HOUSEHOLD", "PEOPLE", "NOTES", "PHOTOS", "LOCATION", "CONFIRM", "SITUATION"])


async def clear(db: Database) -> None:
    async with db.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(text(f'DELETE FROM "{table.name}"'))


async def scenario(settings_, step: str, value: str) -> None:
    db = Database(settings_.database_url)
    await clear(db)
    await seed(db)
    api = LocalBotAPI(bot_username="gridbot_test_bot")
    app = await make_app(settings_, db, api)
    try:
        u = Tg(app, api, WORKER_A)
        await walk_to(u, step)
        if not value.strip():
            return  # Telegram clients cannot send blank messages
        out = await u.send(value)
        seen = " ".join(m.get("text", "") for m in out)
        assert out, "every message gets an answer"
        assert "Sorry, something went wrong" not in seen and "database is busy" not in seen, seen
        draft = u.draft
        assert draft is not None and draft["flow"] == "visit"
        if step == "NOTES" and draft["step"] == "PHOTOS" and draft["data"]["notes"]:
            assert "\u0000" not in draft["data"]["notes"]
    finally:
        await stop_app(app)
        await clear(db)  # the next test starts from an empty database
        await db.dispose()


@settings(max_examples=30, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(step=STEPS, value=TEXTS)
def test_hostile_text_at_every_step(settings, step, value):  # noqa: F811 - the fixture shares hypothesis' name
    asyncio.run(scenario(settings, step, value))
