"""Configuration from the environment and `.env` (pydantic-settings).

A bad value stops start-up with one line naming the variable (see `format_settings_error`).
"""

from __future__ import annotations

import re
from datetime import time
from functools import cached_property
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SUPPORTED_LANGUAGES = ("zh_CN", "en")
_TOKEN_RE = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{3,}$")
_PLACEHOLDER_TOKENS = {"123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11", "changeme", "your-token-here"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    telegram_bot_token: str | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_file_base_url: str = "https://api.telegram.org/file/bot"
    database_url: str = "sqlite+aiosqlite:///./gridbot.db"
    admin_telegram_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    timezone: str = "Asia/Shanghai"
    default_language: str = "zh_CN"
    conversation_timeout_minutes: int = Field(default=15, ge=1, le=24 * 60)
    visit_target_percent: float = Field(default=20, gt=0, le=100)
    media_dir: Path = Path("./media")
    invite_valid_days: int = Field(default=7, ge=1, le=365)
    issue_categories_file: Path | None = None  # JSON {"category": deadline days}; default: models/issues.DEFAULT_CATEGORIES
    log_level: str = "INFO"
    patrol_checklist_file: Path | None = None
    rectify_days_default: int = Field(default=3, ge=1, le=60)
    reinspection_reminder_time: str = "08:17"

    @field_validator("telegram_bot_token")
    @classmethod
    def _token_shape(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip()
        if v in _PLACEHOLDER_TOKENS:
            raise ValueError("is the example placeholder; put the token @BotFather gave you")
        if not _TOKEN_RE.match(v):
            raise ValueError("does not look like a bot token (digits:letters, as given by @BotFather)")
        return v

    @field_validator("telegram_api_base_url", "telegram_file_base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:18080/bot")
        return v

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, v: str) -> str:
        from bot.db import normalise_url  # local import: settings must not pull SQLAlchemy early

        return normalise_url(v)

    @field_validator("admin_telegram_ids", mode="before")
    @classmethod
    def _ids(cls, v: object) -> object:
        if isinstance(v, str):
            parts = [p.strip() for p in v.split(",") if p.strip()]
            bad = [p for p in parts if not p.isdigit()]
            if bad:
                raise ValueError(f"must be comma-separated numeric Telegram user ids; got {bad[0]!r}")
            return [int(p) for p in parts]
        if isinstance(v, int):
            return [v]
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; use an IANA name such as Asia/Shanghai") from None
        return v

    @field_validator("default_language")
    @classmethod
    def _lang(cls, v: str) -> str:
        if v not in SUPPORTED_LANGUAGES:
            raise ValueError(f"must be one of {', '.join(SUPPORTED_LANGUAGES)}")
        return v

    @field_validator("issue_categories_file", mode="before")
    @classmethod
    def _issue_categories(cls, v: object) -> object:
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        from models.issues import load_categories  # local import: settings must not pull SQLAlchemy early

        load_categories(Path(str(v)))  # a bad file stops start-up with one line naming the variable
        return v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.upper()
        if v not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return v

    @field_validator("patrol_checklist_file", mode="before")
    @classmethod
    def _checklist_file(cls, v: object) -> object:
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        from models.checklist import load_checklist_file  # local import: plain Python, validated at start-up

        load_checklist_file(Path(str(v).strip()))
        return Path(str(v).strip())

    @field_validator("reinspection_reminder_time")
    @classmethod
    def _reminder_time(cls, v: str) -> str:
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", v.strip())
        if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
            raise ValueError(f"must be a local time of day as HH:MM, such as 08:17; got {v!r}")
        return f"{int(m.group(1)):02d}:{m.group(2)}"

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def patrol_checklist(self):  # noqa: ANN201 - models.checklist.Checklist
        """Checklist items per shop category: PATROL_CHECKLIST_FILE over the built-in defaults."""
        from models.checklist import DEFAULT_CHECKLIST, load_checklist_file

        return load_checklist_file(self.patrol_checklist_file) if self.patrol_checklist_file else dict(DEFAULT_CHECKLIST)

    @property
    def reinspection_time(self) -> time:
        """REINSPECTION_REMINDER_TIME as an aware local time of day (for the daily job)."""
        hours, minutes = self.reinspection_reminder_time.split(":")
        return time(int(hours), int(minutes), tzinfo=self.tz)

    @cached_property
    def issue_categories(self) -> dict[str, float]:
        """Issue categories and their deadlines in days, in display order."""
        from models.issues import DEFAULT_CATEGORIES, load_categories

        return load_categories(self.issue_categories_file) if self.issue_categories_file else dict(DEFAULT_CATEGORIES)

    @property
    def visit_target(self) -> float:
        """Default half-year coverage target as a fraction (0.2 for 20 %)."""
        return self.visit_target_percent / 100


def format_settings_error(exc: ValidationError) -> str:
    """One line per bad variable: `DATABASE_URL: <what is wrong>`."""
    lines = []
    for err in exc.errors():
        name = str(err["loc"][0]).upper() if err["loc"] else "?"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"configuration error: {name}: {msg}")
    return "\n".join(lines)


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
