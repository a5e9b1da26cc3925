"""`gridbot run --webhook URL` as a separate process: setWebhook with the secret token, and PTB's
webhook server refuses (403) any POST without the right X-Telegram-Bot-Api-Secret-Token header."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from sandbox.localapi import LocalBotAPI, serve_in_thread
from tests.test_process import ADMIN, GRIDBOT, TOKEN

SECRET = "s3cret-Token_for-tests"
PUBLIC = "https://bot.example.org/gridbot/hook"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bot_env(server, database_url: str, tmp_path: Path, **extra: str) -> dict:  # noqa: ANN001
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_", "ADMIN_", "WEBHOOK_"))},
        "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": server.base_url, "TELEGRAM_FILE_BASE_URL": server.file_base_url,
        "DATABASE_URL": database_url, "ADMIN_TELEGRAM_IDS": str(ADMIN), "MEDIA_DIR": str(tmp_path / "media"), "LOG_LEVEL": "INFO",
        **extra,
    }


def test_webhook_needs_a_secret_token(database_url, tmp_path):
    api = LocalBotAPI(bot_username="gridbot_webhook_bot")
    with serve_in_thread(api) as server:
        done = subprocess.run([GRIDBOT, "run", "--webhook", PUBLIC], cwd=tmp_path, env=bot_env(server, database_url, tmp_path),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert done.stderr.strip().count("\n") == 0 and "secret token" in done.stderr and "WEBHOOK_SECRET_TOKEN" in done.stderr
        bad = subprocess.run([GRIDBOT, "run", "--webhook", PUBLIC, "--secret-token", "no spaces!"], cwd=tmp_path,
                             env=bot_env(server, database_url, tmp_path), capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "A-Z a-z 0-9 _ -" in bad.stderr
        assert api.call_counts(TOKEN).get("setWebhook", 0) == 0


def test_webhook_mode_refuses_requests_without_the_secret(database_url, db, tmp_path):
    api = LocalBotAPI(bot_username="gridbot_webhook_bot")
    port = free_port()
    with serve_in_thread(api) as server:
        log_path = tmp_path / "webhook.log"
        env = bot_env(server, database_url, tmp_path, WEBHOOK_SECRET_TOKEN=SECRET)
        proc = subprocess.Popen([GRIDBOT, "run", "--webhook", PUBLIC, "--listen", "127.0.0.1", "--port", str(port)],
                                cwd=tmp_path, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            root = f"{server.base_url}{TOKEN}"
            while True:
                info = httpx.post(f"{root}/getWebhookInfo").json()["result"]
                if info["url"]:
                    try:
                        with socket.create_connection(("127.0.0.1", port), timeout=1):
                            break
                    except OSError:
                        pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("the bot did not start its webhook:\n" + log_path.read_text())
                time.sleep(0.1)
            assert info["url"] == PUBLIC
            assert api._bot(TOKEN).webhook.get("secret_token") == SECRET  # recorded by the local Bot API  # noqa: SLF001
            update = api.send_text(TOKEN, ADMIN, "/start", language_code="en")
            body = json.dumps(update)
            hook = f"http://127.0.0.1:{port}/gridbot/hook"
            headers = {"Content-Type": "application/json"}
            assert httpx.post(hook, content=body, headers=headers).status_code == 403
            wrong = {**headers, "X-Telegram-Bot-Api-Secret-Token": "guess"}
            assert httpx.post(hook, content=body, headers=wrong).status_code == 403
            time.sleep(0.5)
            assert not api.bot_messages(TOKEN, ADMIN)  # nothing was processed
            right = {**headers, "X-Telegram-Bot-Api-Secret-Token": SECRET}
            assert httpx.post(hook, content=body, headers=right).status_code == 200
            deadline = time.monotonic() + 20
            while not any("What name should colleagues see" in m.get("text", "") for m in api.bot_messages(TOKEN, ADMIN)):
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            assert api.call_counts(TOKEN).get("getUpdates", 0) == 0
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    log = log_path.read_text()
    assert SECRET not in log and TOKEN.split(":")[1] not in log
