"""Configuration: every bad value stops start-up with one clear line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GRIDBOT = str(Path(sys.executable).parent / "gridbot")
BASE = {"TELEGRAM_BOT_TOKEN": "123456:ABCdef", "DATABASE_URL": "sqlite:///./x.db"}


def run(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k.upper() not in {
        "TELEGRAM_BOT_TOKEN", "DATABASE_URL", "ADMIN_TELEGRAM_IDS", "TIMEZONE", "DEFAULT_LANGUAGE",
        "CONVERSATION_TIMEOUT_MINUTES", "VISIT_TARGET_PERCENT", "TELEGRAM_API_BASE_URL", "LOG_LEVEL", "WECOM_BOT_ID",
        "WECOM_BOT_SECRET", "WECOM_WS_URL", "ADMIN_WECOM_USERIDS"}}
    return subprocess.run([GRIDBOT, *(args or ("run",))], env={**clean, **env}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("TELEGRAM_BOT_TOKEN", "not-a-token", "does not look like a bot token"),
    ("DATABASE_URL", "mysql://x@y/z", "unsupported database 'mysql'"),
    ("DATABASE_URL", "::::", "is not a database URL"),
    ("ADMIN_TELEGRAM_IDS", "12,abc", "numeric Telegram user ids"),
    ("TIMEZONE", "Mars/Olympus", "unknown time zone"),
    ("DEFAULT_LANGUAGE", "fr", "must be one of zh_CN, en"),
    ("CONVERSATION_TIMEOUT_MINUTES", "0", "greater than or equal to 1"),
    ("VISIT_TARGET_PERCENT", "lots", "valid number"),
    ("TELEGRAM_API_BASE_URL", "ftp://x", "http(s) URL"),
    ("WECOM_WS_URL", "https://openws.work.weixin.qq.com", "must be a wss:// address"),
    ("WECOM_WS_URL", "ws://example.org:8080", "plain ws:// only on this machine"),
    ("ADMIN_WECOM_USERIDS", "zhangsan,张三", "WeCom userids"),
    ("WECOM_BOT_SECRET", "abc def", "has a space in it"),
])
def test_bad_setting_is_one_clear_line(tmp_path, name, value, message):
    result = run({**BASE, name: value}, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"configuration error: {name}: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_token(tmp_path):
    result = run({"DATABASE_URL": "sqlite:///./x.db"}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("configuration error: no chat channel is configured: set TELEGRAM_BOT_TOKEN (from "
                                     "@BotFather), or WECOM_BOT_ID and WECOM_BOT_SECRET (the WeCom AI bot); see README")


def test_half_a_wecom_bot_is_one_clear_line(tmp_path):
    result = run({"DATABASE_URL": "sqlite:///./x.db", "WECOM_BOT_ID": "aibot123"}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("configuration error: WECOM_BOT_SECRET is not set; the WeCom AI bot needs both")


def test_an_unreachable_platform_is_one_line_not_a_traceback(tmp_path):
    result = run({**BASE, "TELEGRAM_API_BASE_URL": "http://127.0.0.1:9/bot"}, tmp_path)  # port 9 (discard): nothing listens
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("start-up error: telegram: cannot connect (NetworkError: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_env_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("TELEGRAM_BOT_TOKEN=123456:ABCdef\nTIMEZONE=Nowhere/Land\n")
    result = run({}, tmp_path)
    assert "configuration error: TIMEZONE: unknown time zone 'Nowhere/Land'" in result.stderr


def test_db_commands(tmp_path):
    from alembic.script import ScriptDirectory

    from bot.db import alembic_config

    url = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    head = ScriptDirectory.from_config(alembic_config(url["DATABASE_URL"])).get_current_head()
    assert f"revision: {head}" in run(url, tmp_path, "db", "upgrade").stdout
    assert "revision: 0001" in run(url, tmp_path, "db", "downgrade", "0001").stdout
    assert "base (empty)" in run(url, tmp_path, "db", "downgrade", "base").stdout
    assert f"revision: {head}" in run(url, tmp_path, "db", "upgrade").stdout
    assert f"revision: {head}" in run(url, tmp_path, "db", "current").stdout


def test_unreachable_database_is_one_line(tmp_path):
    result = run({**BASE, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("database error: DATABASE_URL: cannot migrate")
