"""One bot process per database: a lease row with a heartbeat; a second process refuses to start."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from datetime import timedelta

from models import clock
from models.reminders import acquire_lease, release_lease, renew_lease
from sandbox.localapi import LocalBotAPI, serve_in_thread
from tests.test_process import GRIDBOT, TOKEN, start_bot, wait_polling

TTL = timedelta(seconds=60)


async def test_lease_is_exclusive_until_released_expired_or_its_process_is_gone(db):
    now = clock.now()
    async with db.session() as s:
        assert await acquire_lease(s, "h:1:a", "h", 1, now, TTL) is None
    async with db.session() as s:
        other = await acquire_lease(s, "h:2:b", "h", 2, now, TTL)
    assert other is not None and (other.holder, other.pid) == ("h:1:a", 1)
    async with db.session() as s:
        assert await acquire_lease(s, "h:1:a", "h", 1, now, TTL) is None  # the holder may renew by acquiring
        assert await renew_lease(s, "h:1:a", now + timedelta(seconds=50), TTL)
    async with db.session() as s:  # the heartbeat moved the expiry on
        assert await acquire_lease(s, "h:2:b", "h", 2, now + timedelta(seconds=100), TTL) is not None
    async with db.session() as s:  # no heartbeat for a whole TTL: free
        assert await acquire_lease(s, "h:2:b", "h", 2, now + timedelta(seconds=111), TTL) is None
        assert not await renew_lease(s, "h:1:a", now + timedelta(seconds=112), TTL)  # the old holder lost it
    async with db.session() as s:  # a holder whose process is gone (SIGKILL) holds nothing
        assert await acquire_lease(s, "h:3:c", "h", 3, now + timedelta(seconds=112), TTL, lambda host, pid: pid == 2) is None
        await release_lease(s, "h:3:c")
    async with db.session() as s:
        assert await acquire_lease(s, "h:4:d", "h", 4, now, TTL) is None


async def test_a_second_process_refuses_to_start_with_one_clear_line(database_url, db, tmp_path):
    api = LocalBotAPI(bot_username="gridbot_lease_bot")
    with serve_in_thread(api) as server:
        first = start_bot(server, database_url, tmp_path, "bot1.log")
        try:
            wait_polling(api, first, tmp_path, "bot1.log", 0)
            env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": server.base_url, "DATABASE_URL": database_url,
                   "TELEGRAM_FILE_BASE_URL": server.file_base_url, "MEDIA_DIR": str(tmp_path / "media")}
            second = subprocess.run([GRIDBOT, "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
            assert second.returncode == 3
            lines = second.stderr.strip().splitlines()
            assert lines[-1].startswith("another gridbot process is running against this database (pid "), second.stderr
            assert f"pid {first.pid} on {socket.gethostname()}" in lines[-1] and "Traceback" not in second.stderr
            assert first.poll() is None  # the first one runs on
        finally:
            first.terminate()
            first.wait(timeout=30)
        # A clean stop gives the lease back: the next start works at once.
        deadline = time.monotonic() + 5
        async with db.session() as s:
            from sqlmodel import select

            from models.reminders import ProcessLease

            while (await s.exec(select(ProcessLease))).first() is not None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert (await s.exec(select(ProcessLease))).first() is None
