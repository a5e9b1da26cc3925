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
    admins: Annotated[list[tuple[str, str]], NoDecode] = Field(default_factory=list)  # ADMINS=telegram:9001,wecom:zhangsan
    # -- WeCom 智能机器人 over its long connection (bot/channels/wecom_bot.py) --
    wecom_bot_id: str | None = None
    wecom_bot_secret: str | None = None
    wecom_ws_url: str = "wss://openws.work.weixin.qq.com"
    admin_wecom_userids: Annotated[list[str], NoDecode] = Field(default_factory=list)
    timezone: str = "Asia/Shanghai"
    default_language: str = "zh_CN"
    conversation_timeout_minutes: int = Field(default=15, ge=1, le=24 * 60)
    visit_target_percent: float = Field(default=20, gt=0, le=100)
    media_dir: Path = Path("./media")
    invite_valid_days: int = Field(default=7, ge=1, le=365)
    issue_categories_file: Path | None = None  # JSON {"category": deadline days}; default: models/issues.DEFAULT_CATEGORIES
    log_level: str = "INFO"
    webhook_secret_token: str = ""  # `gridbot run --webhook`: the secret Telegram sends (or --secret-token)
    patrol_checklist_file: Path | None = None
    rectify_days_default: int = Field(default=3, ge=1, le=60)
    reinspection_reminder_time: str = "08:17"
    # -- reminders, digests, delivery (issue 5) --
    visit_reminder_schedule: str = "mon,thu 09:07"
    overdue_reminder_schedule: str = "daily 08:37"
    digest_schedule: str = "mon 08:07"
    quiet_hours: str = "21:00-08:00"
    outbox_rate: float = Field(default=20, gt=0, le=30, description="Telegram outbox messages per second, all chats")
    outbox_per_chat_rate: float = Field(default=1, gt=0, le=30, description="Telegram outbox messages per second to one chat")
    overdue_escalation_days: int = Field(default=3, ge=1, le=365)
    digest_chats: Annotated[dict[str, list[int]], NoDecode] = Field(default_factory=dict)
    wecom_robots: Annotated[dict[str, list[str]], NoDecode] = Field(default_factory=dict)

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

    @field_validator("admins", mode="before")
    @classmethod
    def _admins(cls, v: object) -> object:
        if isinstance(v, str):
            out = []
            for part in (p.strip() for p in v.split(",")):
                channel, _, key = part.partition(":")
                if not part:
                    continue
                if not re.fullmatch(r"[a-z][a-z0-9_]{0,15}", channel) or not key.strip():
                    raise ValueError(f"each entry is CHANNEL:ID (telegram:9001, wecom:zhangsan); got {part!r}")
                out.append((channel, key.strip()))
            return out
        return v

    @field_validator("wecom_bot_id", "wecom_bot_secret")
    @classmethod
    def _wecom_credential(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        if any(c.isspace() for c in v.strip()):
            raise ValueError("has a space in it; copy it from the WeCom admin console (智能机器人 → API 模式 → 长连接) as it is")
        return v.strip()

    @field_validator("wecom_ws_url")
    @classmethod
    def _wecom_url(cls, v: str) -> str:
        v = v.strip()
        if not re.match(r"^wss://[^/\s]+", v) and not re.match(r"^ws://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/|$)", v):
            raise ValueError("must be a wss:// address (the default wss://openws.work.weixin.qq.com, or the one your private "
                             "deployment shows); plain ws:// only on this machine (127.0.0.1), for tests and the sandbox")
        return v

    @field_validator("admin_wecom_userids", mode="before")
    @classmethod
    def _wecom_userids(cls, v: object) -> object:
        if isinstance(v, str):
            parts = [p.strip() for p in v.split(",") if p.strip()]
            bad = [p for p in parts if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z_\-@.]{0,63}", p)]
            if bad:
                raise ValueError(f"must be comma-separated WeCom userids (成员UserID: letters, digits, _-@.); got {bad[0]!r}")
            return parts
        return v

    @property
    def wecom_bot_configured(self) -> bool:
        return bool(self.wecom_bot_id and self.wecom_bot_secret)

    def is_configured_admin(self, channel: str, key: str) -> bool:
        """Named an admin in the settings: ADMINS (any channel), ADMIN_TELEGRAM_IDS (Telegram's) or
        ADMIN_WECOM_USERIDS (WeCom's; userids compare without case, as WeCom's directory does)."""
        if channel == "telegram" and key.isdigit() and int(key) in self.admin_telegram_ids:
            return True
        if channel == "wecom" and key.lower() in {u.lower() for u in self.admin_wecom_userids}:
            return True
        return (channel, key) in self.admins

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

    @field_validator("visit_reminder_schedule", "overdue_reminder_schedule", "digest_schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        from jobs.scheduling import parse_schedule

        return str(parse_schedule(v))

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, v: str) -> str:
        from jobs.scheduling import parse_quiet_hours

        quiet = parse_quiet_hours(v)
        return str(quiet) if quiet else "off"

    @field_validator("digest_chats", mode="before")
    @classmethod
    def _digest_chats(cls, v: object) -> object:
        raw = _json_map(v, 'e.g. {"G01": [-1001234567890], "*": [-1009876543210]}')
        out: dict[str, list[int]] = {}
        for scope, ids in raw.items():
            ids = ids if isinstance(ids, list) else [ids]
            if not all(isinstance(i, int) or (isinstance(i, str) and i.lstrip("-").isdigit()) for i in ids):
                raise ValueError(f"chat ids of {scope!r} must be numbers (group chats are negative)")
            out[str(scope)] = [int(i) for i in ids]
        return out

    @field_validator("wecom_robots", mode="before")
    @classmethod
    def _wecom(cls, v: object) -> object:
        raw = _json_map(v, 'e.g. {"G01": ["https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=..."], "*": [...]}')
        out: dict[str, list[str]] = {}
        for scope, urls in raw.items():
            urls = urls if isinstance(urls, list) else [urls]
            for url in urls:
                if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+/\S*[?&]key=[\w-]+", url.strip()):
                    raise ValueError(f"robot of {scope!r} must be a webhook URL with ?key=...; got {str(url)[:60]!r}")
            out[str(scope)] = [u.strip() for u in urls]
        return out

    @property
    def schedules(self) -> dict[str, object]:
        """Job name -> jobs.scheduling.Schedule."""
        from jobs.scheduling import parse_schedule

        return {"visit_pace": parse_schedule(self.visit_reminder_schedule), "overdue": parse_schedule(self.overdue_reminder_schedule),
                "digest": parse_schedule(self.digest_schedule)}

    @property
    def quiet(self):  # noqa: ANN201 - jobs.scheduling.QuietHours | None
        from jobs.scheduling import parse_quiet_hours

        return parse_quiet_hours(self.quiet_hours)

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


def _json_map(v: object, example: str) -> dict:
    """A JSON object given inline, or the path of a JSON file holding one."""
    import json

    if v is None or (isinstance(v, str) and not v.strip()):
        return {}
    if isinstance(v, dict):
        return v
    text = str(v).strip()
    if not text.startswith("{"):
        try:
            text = Path(text).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"is neither a JSON object nor a readable file ({exc.strerror or exc}); {example}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON ({exc.msg}); {example}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"must be a JSON object of grid code (or \"*\" for the street) to a list; {example}")
    return raw


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
