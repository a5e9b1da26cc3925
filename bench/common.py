"""Shared helpers: scratch databases, timing summaries, settings for an in-process bot."""

from __future__ import annotations

import os
import statistics
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from bot.db import upgrade
from bot.settings import Settings

PG_BASE = os.environ.get("GRIDBOT_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
TOKEN = "424242:BENCH"
WORK = Path(os.environ.get("GRIDBOT_BENCH_DIR", tempfile.gettempdir())) / "gridbot-bench"


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_BASE.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class ScratchDB:
    """A fresh database migrated to head (SQLite file or PostgreSQL database), dropped by `drop`."""

    def __init__(self, engine: str, label: str) -> None:
        self.engine, self.name = engine, f"gridbot_bench_{label}_{os.getpid()}_{uuid.uuid4().hex[:4]}"
        if engine == "sqlite":
            WORK.mkdir(parents=True, exist_ok=True)
            self.path = WORK / f"{self.name}.db"
            self.url = f"sqlite+aiosqlite:///{self.path}"
        else:
            self.url = PG_BASE.rsplit("/", 1)[0] + f"/{self.name}"

    async def create(self) -> ScratchDB:
        if self.engine == "postgresql":
            await _pg_admin(f'CREATE DATABASE "{self.name}"')
        upgrade(self.url)
        return self

    async def drop(self) -> None:
        if self.engine == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        else:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def settings_for(url: str, media: Path) -> Settings:
    return Settings(
        _env_file=None, telegram_bot_token=TOKEN, telegram_api_base_url="http://localapi/bot",
        telegram_file_base_url="http://localapi/file/bot", database_url=url, media_dir=media,
        timezone="Asia/Shanghai", default_language="zh_CN", log_level="WARNING",
    )


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q * (len(s) - 1))))
    return s[k]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Row:
    """One line of the results table."""

    section: str
    name: str
    figure: str
    ratio: str = ""
    goal: str = ""
    ok: bool | None = None

    @property
    def mark(self) -> str:
        return "" if self.ok is None else ("✅" if self.ok else "❌")
