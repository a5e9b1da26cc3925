"""`gridbot run` as a separate process, long polling a local Bot API server on loopback.

An admin sets up a grid and invites a worker; the worker joins and logs a visit with a photo and a
location; the bot is SIGKILLed in the middle of a second visit, started again, and the worker
finishes that visit where they left off and sees both in /my.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlmodel import select

from models.tables import Visit
from sandbox.localapi import LocalAPIUser, LocalBotAPI, serve_in_thread

TOKEN = "777001:PROCESS"
ADMIN, WORKER = 7001, 7002
GRIDBOT = str(Path(sys.executable).parent / "gridbot")


def start_bot(server, database_url: str, tmp_path: Path, log_name: str, *, token: str = TOKEN, admin: int = ADMIN,
              **extra: str) -> subprocess.Popen:  # noqa: ANN001
    """`gridbot run` against the local Bot API server; `extra`: more settings (environment variables)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_", "ADMIN_", "OUTBOX_", "QUIET_", "VISIT_"))},
        "TELEGRAM_BOT_TOKEN": token,
        "TELEGRAM_API_BASE_URL": server.base_url,
        "TELEGRAM_FILE_BASE_URL": server.file_base_url,
        "DATABASE_URL": database_url,
        "ADMIN_TELEGRAM_IDS": str(admin),
        "MEDIA_DIR": str(tmp_path / "media"),
        "LOG_LEVEL": "INFO",
        **extra,
    }
    log = (tmp_path / log_name).open("w")
    return subprocess.Popen([GRIDBOT, "run"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_polling(api: LocalBotAPI, proc: subprocess.Popen, tmp_path: Path, log_name: str, polls_before: int) -> None:
    deadline = time.monotonic() + 60
    while api.call_counts(TOKEN).get("getUpdates", 0) <= polls_before:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("bot did not start polling:\n" + (tmp_path / log_name).read_text())
        time.sleep(0.05)


def wait_persisted_step(database_url: str, user_id: int, expected: str, timeout: float = 15) -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from tests.test_crash import persisted_step

    def read() -> str | None:  # its own loop in its own thread: the test's loop is already running
        return asyncio.run(persisted_step(database_url, user_id))

    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(1) as pool:
        while (current := pool.submit(read).result()) != expected:
            if time.monotonic() > deadline:
                raise AssertionError(f"the draft's step on disk is {current!r}, not {expected!r}")
            time.sleep(0.02)


def step(user: LocalAPIUser, action, expect: str, timeout: float = 15) -> dict:  # noqa: ANN001
    action()
    return user.wait_for_bot_message(expect, timeout=timeout)



async def test_join_visit_sigkill_resume(database_url, db, tmp_path):
    # Blocking waits are fine here: the server has its own thread and the bot its own process.
    api = LocalBotAPI(bot_username="gridbot_process_bot")
    with serve_in_thread(api) as server:
        proc = start_bot(server, database_url, tmp_path, "bot1.log")
        try:
            wait_polling(api, proc, tmp_path, "bot1.log", 0)
            root = server.root_url
            admin = LocalAPIUser(root, TOKEN, ADMIN, language_code="en")
            worker = LocalAPIUser(root, TOKEN, WORKER, language_code="en")

            step(admin, lambda: admin.send_text("/start"), "What name should colleagues see?")
            step(admin, lambda: admin.send_text("赵主任"), "Share your phone number")
            step(admin, lambda: admin.send_text("/skip"), "Your commands")
            step(admin, lambda: admin.send_text("/grid_add G01 幸福里第一网格"), "Grid G01")
            invite = step(admin, lambda: admin.send_text("/invite worker G01"), "start=")
            code = re.search(r"start=([A-Za-z0-9_-]+)", invite["text"]).group(1)

            step(worker, lambda: worker.send_text(f"/start {code}"), "What name should colleagues see?")
            step(worker, lambda: worker.send_text("王芳"), "Share your phone number")
            step(worker, lambda: worker.send_contact("+8613812345678"), "Your commands")

            # First visit: a new household, a photo and a location.
            step(worker, lambda: worker.send_text("/visit"), "Step 1/7")
            step(worker, lambda: worker.click("➕ New household"), "new household's address")
            step(worker, lambda: worker.send_text("3栋2单元501"), "Tags for this household")
            step(worker, lambda: worker.click("Done ✔️"), "Step 2/7")
            step(worker, lambda: worker.send_text("abc"), "Please send a number")  # a wrong input
            step(worker, lambda: worker.send_text("2"), "Step 3/7")
            worker.click("⬜ Normal")
            step(worker, lambda: worker.click("Done ✔️"), "Step 4/7")
            step(worker, lambda: worker.send_text("老人身体好"), "Step 5/7")
            step(worker, lambda: worker.send_photo(b"\xff\xd8\xff\xe0" + b"evidence" * 50), "Photo 1 received")
            step(worker, lambda: worker.send_text("/done"), "Step 6/7")
            step(worker, lambda: worker.send_location(28.17, 112.98), "Step 7/7")
            step(worker, lambda: worker.click("✅ Save"), "saved")

            # A cancelled attempt, then the second visit, killed half-way.
            step(worker, lambda: worker.send_text("/visit"), "Step 1/7")
            step(worker, lambda: worker.send_text("/cancel"), "Cancelled")
            step(worker, lambda: worker.send_text("/visit"), "Step 1/7")
            step(worker, lambda: worker.send_text("3栋"), "Matches for")
            step(worker, lambda: worker.click("3栋2单元501 · G01"), "Step 2/7")
            step(worker, lambda: worker.send_text("3"), "Step 3/7")
            # The chat state is written just after the reply is sent; kill once it is on disk (the
            # ~1 ms between the two is the documented bound, see README "Reliability").
            wait_persisted_step(database_url, WORKER, "SITUATION")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

        polls = api.call_counts(TOKEN).get("getUpdates", 0)
        proc = start_bot(server, database_url, tmp_path, "bot2.log")
        try:
            wait_polling(api, proc, tmp_path, "bot2.log", polls)
            worker.click("⬜ Safety hazard")
            step(worker, lambda: worker.click("Done ✔️"), "Step 4/7")
            step(worker, lambda: worker.send_text("/skip"), "Step 5/7")
            step(worker, lambda: worker.send_text("/done"), "Step 6/7")
            summary = step(worker, lambda: worker.send_text("/skip"), "Step 7/7")
            assert "People met</b>: 3" in summary["text"] or "People met: 3" in summary["text"]
            step(worker, lambda: worker.click("✅ Save"), "saved")
            my = step(worker, lambda: worker.send_text("/my"), "Your visits")
            assert "This week: 2" in my["text"] and "Coverage: 1/1 households" in my["text"]
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()

    async with db.session() as s:
        rows = (await s.exec(select(Visit).order_by(Visit.id))).all()
    async_visits = [{"people_met": v.people_met, "situations": v.situations, "n_photos": len(v.photos)} for v in rows]
    assert [(v["people_met"], v["situations"], v["n_photos"]) for v in async_visits] == [(2, ["正常"], 1), (3, ["安全隐患"], 0)]
    log = (tmp_path / "bot1.log").read_text() + (tmp_path / "bot2.log").read_text()
    assert TOKEN.split(":")[1] not in log  # the token never reaches the logs
    assert "Traceback" not in log

