"""Fixtures: one database per run (SQLite or PostgreSQL, `--db`), the real Application, and a
local Bot API (bot/localapi.py) that answers the bot's HTTP calls in-process and plays the users.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import select
from telegram import Update
from telegram.request import HTTPXRequest

from bot.channels.telegram import GridApplication, build_application
from bot.db import Database, upgrade
from bot.settings import Settings
from models import clock, metadata
from models.tables import ChannelIdentity, User
from sandbox.localapi import LocalBotAPI, buttons

TOKEN = "123456:TEST"
ADMIN_ID = 9001
# Wednesday 2026-05-20 10:00 in Shanghai: week 21, month 5, 2026H1 is 139/181 days gone.
NOW = datetime(2026, 5, 20, 2, 0, tzinfo=UTC)
PG_BASE = os.environ.get("GRIDBOT_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def by_telegram(telegram_id: int):  # noqa: ANN201 - a select of the User known on Telegram as `telegram_id`
    return (select(User).join(ChannelIdentity, ChannelIdentity.user_id == User.id)
            .where(ChannelIdentity.channel == "telegram", ChannelIdentity.key == str(telegram_id)))


async def users_by_telegram(session) -> dict[int, User]:  # noqa: ANN001
    rows = (await session.exec(select(ChannelIdentity.key, User).join(User, User.id == ChannelIdentity.user_id)
                               .where(ChannelIdentity.channel == "telegram"))).all()
    return {int(key): user for key, user in rows}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", default=os.environ.get("GRIDBOT_TEST_DB", "sqlite"), choices=["sqlite", "postgresql"],
                     help="database engine the suite runs on")


def pytest_report_header(config: pytest.Config) -> str:
    return f"gridbot database: {config.getoption('--db')}"


async def _pg_admin(sql: str) -> None:
    import asyncpg

    dsn = PG_BASE.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A fresh database migrated to head. PostgreSQL unreachable = an error, never a skip."""
    if request.config.getoption("--db") == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'gridbot.db'}"
        upgrade(url)
        yield url
        return
    name = f"gridbot_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        raise RuntimeError(f"PostgreSQL at {PG_BASE} is not reachable for the test run: {exc}") from exc
    url = PG_BASE.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(autouse=True)
def frozen_clock():  # noqa: ANN201
    clock.freeze(NOW)
    yield
    clock.reset()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await empty(database)
    await database.dispose()


async def empty(database: Database) -> None:
    """Every table emptied, identities restarted: the database a test starts from."""
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    async with database.engine.begin() as conn:
        if database.is_sqlite:
            for name in tables:
                await conn.execute(text(f'DELETE FROM "{name}"'))
        else:
            await conn.execute(text("TRUNCATE " + ", ".join(f'"{n}"' for n in tables) + " RESTART IDENTITY CASCADE"))


@pytest.fixture
def api() -> LocalBotAPI:
    return LocalBotAPI(bot_username="gridbot_test_bot")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        telegram_bot_token=TOKEN,
        telegram_api_base_url="http://localapi/bot",
        telegram_file_base_url="http://localapi/file/bot",
        database_url=database_url,
        admin_telegram_ids=[ADMIN_ID],
        media_dir=tmp_path / "media",
        timezone="Asia/Shanghai",
        default_language="zh_CN",
    )


async def make_app(settings: Settings, db: Database, api: LocalBotAPI) -> GridApplication:
    transport = api.transport()
    app = build_application(
        settings, db=db,
        request=HTTPXRequest(httpx_kwargs={"transport": transport}),
        updates_request=HTTPXRequest(httpx_kwargs={"transport": transport}),
    )
    await app.runtime.start(startup=False)  # the tests that need the start-up hooks run them
    return app


async def stop_app(app: GridApplication) -> None:
    await app.runtime.stop()


@pytest.fixture
async def app(settings: Settings, db: Database, api: LocalBotAPI) -> AsyncIterator[GridApplication]:
    application = await make_app(settings, db, api)
    yield application
    await stop_app(application)


class Tg:
    """One simulated Telegram user talking to the real Application."""

    def __init__(self, app: GridApplication, api: LocalBotAPI, user_id: int, *, first_name: str = "Test",
                 language_code: str | None = "en") -> None:
        self.app, self.api, self.user_id = app, api, user_id
        self.first_name, self.language_code = first_name, language_code

    def _who(self) -> dict:
        return {"first_name": self.first_name, "language_code": self.language_code}

    async def _feed(self, update: dict) -> list[dict]:
        before = {m["message_id"] for m in self.bot_messages()}
        await self.app.process_update(Update.de_json(update, self.app.bot))
        return [m for m in self.bot_messages() if m["message_id"] not in before]

    async def send(self, text: str) -> list[dict]:
        return await self._feed(self.api.send_text(TOKEN, self.user_id, text, **self._who()))

    async def photo(self, data: bytes = b"\xff\xd8\xff\xe0fake-jpeg") -> list[dict]:
        return await self._feed(self.api.send_photo(TOKEN, self.user_id, data, **self._who()))

    async def location(self, lat: float, lon: float) -> list[dict]:
        return await self._feed(self.api.send_location(TOKEN, self.user_id, lat, lon, **self._who()))

    async def contact(self, phone: str, own: bool = True) -> list[dict]:
        return await self._feed(self.api.send_contact(TOKEN, self.user_id, phone, own=own, **self._who()))

    async def sticker(self) -> list[dict]:
        return await self._feed(self.api.send_sticker(TOKEN, self.user_id, **self._who()))

    async def raw(self, update: dict) -> list[dict]:
        return await self._feed(update)

    async def press(self, label: str, message: dict | None = None) -> list[dict]:
        """Press the button whose text contains `label` on `message` (default: newest with buttons)."""
        message = message or self.keyboard_message()
        for text_, data in buttons(message):
            if label in text_:
                return await self.press_data(data, message)
        raise AssertionError(f"no button {label!r} in {buttons(message)}")

    async def press_data(self, data: str, message: dict | None = None) -> list[dict]:
        message = message or self.keyboard_message()
        return await self._feed(self.api.press_button(TOKEN, self.user_id, message["message_id"], data, **self._who()))

    def bot_messages(self) -> list[dict]:
        return self.api.bot_messages(TOKEN, self.user_id)

    def keyboard_message(self) -> dict:
        for m in reversed(self.bot_messages()):
            if buttons(m):
                return m
        raise AssertionError("no bot message with buttons")

    def message(self, message_id: int) -> dict:
        return next(m for m in self.bot_messages() if m["message_id"] == message_id)

    @property
    def last(self) -> str:
        messages = self.bot_messages()
        return messages[-1].get("text", "") if messages else ""

    def answers(self) -> list[str | None]:
        return [a.get("text") for a in self.api.callback_answers]

    @property
    def draft(self) -> dict | None:
        return self.app.user_data.get(self.user_id, {}).get("draft")


def record_handled(app: GridApplication) -> list[int]:
    """The update ids that reached the handlers (past the engine's handled-once check), in order:
    a duplicate would appear twice."""
    seen: list[int] = []
    gate = app.engine.routes.gate

    async def record(event, context) -> None:  # noqa: ANN001
        seen.append(int(event.event_id))
        await gate(event, context)

    app.engine.routes.gate = record
    return seen


def texts(messages: list[dict]) -> str:
    return "\n".join(m.get("text", "") for m in messages)
