"""Crash safety with a real process: `gridbot run` long-polls a local Bot API server (in a thread of
this test) and is killed with SIGKILL, then started again.

* In the middle of a reminder fan-out: the k-th reminder is held at the API either before Telegram
  carries it out ("claimed": the row is `sending`, Telegram never saw it) or after Telegram carried
  it out but before the bot got the answer ("window": Telegram has it, `sent` is not committed).
  After the restart every reminder is delivered, none lost; none doubled after "claimed", exactly
  the one in flight doubled after "window" (the documented bound: bot/delivery.py). A third run
  kills the process at three moments taken from a slow drain, not chosen by the test's gate.
* In the middle of conversations: a patrol (two failed items, the first one's disposition and note
  given), an issue report (a photo sent) and a shop registration are open when the process dies;
  after the restart each goes on at its step, the buttons sent before the kill work, and the saved
  records hold what was entered before the kill.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.db import Database
from models import outbox, state
from models.issues import Issue, IssueEvent, IssuePhoto
from models.patrols import Finding, Patrol, Shop
from models.reminders import set_baseline
from models.tables import Household, Role
from models.users import create_grid, create_user
from sandbox.localapi import DroppedConnection, LocalAPIUser, LocalBotAPI, buttons, serve_in_thread
from tests.seed import SUPERVISOR_A, WORKER_A
from tests.seed_patrols import seed_patrols
from tests.test_process import start_bot as process_start_bot

TOKEN = "777002:CRASH"
ADMIN = 7101
WORKERS = list(range(8101, 8109))  # eight workers of one grid: eight reminders
REPORTER = 1003
REMINDER = "Home visits"
JPEG = b"\xff\xd8\xff\xe0" + b"crash-photo" * 20


# -- the process and the server ----------------------------------------------------------------


def start_bot(server, database_url: str, tmp_path: Path, log_name: str, **extra: str) -> subprocess.Popen:  # noqa: ANN001
    # Real time in another process: quiet hours off and a daily schedule, so the missed run of the
    # last two days exists whatever the hour and the weekday the suite runs at.
    return process_start_bot(server, database_url, tmp_path, log_name, token=TOKEN, admin=ADMIN, QUIET_HOURS="off",
                             VISIT_REMINDER_SCHEDULE="daily 09:07", **extra)


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def wait_until(what: str, check, proc: subprocess.Popen, tmp_path: Path, log_name: str, timeout: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached\n" + (tmp_path / log_name).read_text()[-4000:])
        time.sleep(0.05)


def wait_polling(api: LocalBotAPI, proc: subprocess.Popen, tmp_path: Path, log_name: str) -> None:
    polls = api.call_counts(TOKEN).get("getUpdates", 0)
    wait_until("polling", lambda: api.call_counts(TOKEN).get("getUpdates", 0) > polls, proc, tmp_path, log_name)


def run_sync(coro):  # noqa: ANN001, ANN201
    """Run a database check from the blocking part of a test (its own loop, its own thread)."""
    box: list = []
    t = threading.Thread(target=lambda: box.append(asyncio.run(coro)))
    t.start()
    t.join()
    return box[0]


@dataclass
class Gate:
    """Holds the n-th reminder at the API: "claimed" before Telegram carries it out (the call is then
    dropped unanswered), "window" after Telegram carried it out (the answer is then held back)."""

    mode: str
    nth: int
    seen: int = 0
    chat_id: int | None = None
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class GatedAPI(LocalBotAPI):
    gate: Gate | None = None

    async def handle(self, token, method, params=None, files=None):  # noqa: ANN001, ANN201
        gate = self.gate
        if gate is not None and method.lower() == "sendmessage" and REMINDER in str((params or {}).get("text", "")):
            with self._lock:
                gate.seen += 1
                mine = gate.seen == gate.nth
            if mine:
                gate.chat_id = int((params or {})["chat_id"])
                if gate.mode == "claimed":
                    gate.reached.set()
                    while not gate.release.is_set():
                        await asyncio.sleep(0.02)
                    raise DroppedConnection(method)  # the process is dead; Telegram never acted
                answer = await super().handle(token, method, params, files)
                gate.reached.set()
                while not gate.release.is_set():
                    await asyncio.sleep(0.02)
                return answer
        return await super().handle(token, method, params, files)


def reminders_per_chat(api: LocalBotAPI) -> Counter:
    return Counter({uid: sum(1 for m in api.bot_messages(TOKEN, uid) if REMINDER in (m.get("text") or "")) for uid in WORKERS})


async def outbox_states(url: str) -> Counter:
    db = Database(url)
    try:
        async with db.session() as s:
            return Counter(r.state for r in await outbox.all_rows(s))
    finally:
        await db.dispose()


# -- a reminder fan-out --------------------------------------------------------------------------


async def seed_fan_out(db: Database, api: LocalBotAPI) -> None:
    """Eight workers of a grid with a care household never visited: each gets a visit-pace reminder.
    The job's last run is two days back, so the start-up makes the missed run (real time: this is
    another process, the test's frozen clock does not reach it)."""
    async with db.session() as s:
        grid = await create_grid(s, "G01", "幸福里第一网格", 0.2)
        for n, uid in enumerate(WORKERS):
            await create_user(s, uid, Role.WORKER, [grid.id], f"网格员{n + 1}", "en")
        s.add(Household(grid_id=grid.id, address="1栋1单元101", tags=["独居老人"]))
        real_now = datetime.now(UTC)
        await set_baseline(s, "visit_pace", real_now - timedelta(days=2), real_now)
    for uid in WORKERS:  # each worker has opened the bot (Telegram refuses to start a chat)
        api.send_text(TOKEN, uid, "hi", first_name="u", language_code="en")


def drain_to_the_end(api: GatedAPI, server, database_url: str, tmp_path: Path, log_name: str) -> None:  # noqa: ANN001
    proc = start_bot(server, database_url, tmp_path, log_name)
    try:
        wait_until("every outbox row sent", lambda: (c := run_sync(outbox_states(database_url)))["sent"] == len(WORKERS) and sum(c.values()) == len(WORKERS),
                   proc, tmp_path, log_name)
    finally:
        stop(proc)


@pytest.mark.parametrize("mode", ["claimed", "window"])
async def test_sigkill_in_the_middle_of_a_reminder_fan_out(database_url, db, tmp_path, mode):
    api = GatedAPI(bot_username="gridbot_crash_bot")
    await seed_fan_out(db, api)
    api.gate = gate = Gate(mode, nth=4)
    with serve_in_thread(api) as server:
        proc = start_bot(server, database_url, tmp_path, "bot1.log")
        try:
            wait_until("the 4th reminder at the API", gate.reached.is_set, proc, tmp_path, "bot1.log")
            at_kill = run_sync(outbox_states(database_url))
            kill(proc)
        finally:
            if proc.poll() is None:
                kill(proc)
            api.gate = None
            gate.release.set()
        # The three before were sent and recorded; the 4th is the one row in `sending`; the rest wait.
        assert at_kill == Counter({"sent": 3, "sending": 1, "pending": len(WORKERS) - 4})
        before = reminders_per_chat(api)
        assert sum(before.values()) == (3 if mode == "claimed" else 4)

        drain_to_the_end(api, server, database_url, tmp_path, "bot2.log")

    after = reminders_per_chat(api)
    assert set(after) == set(WORKERS) and all(n >= 1 for n in after.values())  # none lost
    if mode == "claimed":
        assert all(n == 1 for n in after.values())  # Telegram never saw it: sent once, after the restart
    else:
        # The window: Telegram had it, the bot died before `sent` was committed. Exactly that one
        # message is sent again; every other one exactly once.
        assert after[gate.chat_id] == 2 and all(n == 1 for uid, n in after.items() if uid != gate.chat_id)
    assert "another gridbot process" not in (tmp_path / "bot2.log").read_text()  # the dead process's lease was taken over
    assert "1 outbox rows were being sent when the bot stopped" in (tmp_path / "bot2.log").read_text()


async def test_sigkill_three_times_during_a_slow_fan_out_loses_nothing(database_url, db, tmp_path):
    """Not gated: the drain runs at 2 messages a second and the process is killed whenever the API
    has seen 2, 4 and 6 reminders, wherever the sender is then. At any kill at most one row is
    `sending`, so at most one message per kill can be doubled; none is lost."""
    api = GatedAPI(bot_username="gridbot_crash_bot")
    await seed_fan_out(db, api)
    sending_at_kills = []
    with serve_in_thread(api) as server:
        for n, seen in enumerate((2, 4, 6)):
            log_name = f"bot{n + 1}.log"
            proc = start_bot(server, database_url, tmp_path, log_name, OUTBOX_RATE="2")
            try:
                wait_until(f"{seen} reminders sent", lambda seen=seen: sum(reminders_per_chat(api).values()) >= seen, proc, tmp_path, log_name)
                kill(proc)
            finally:
                if proc.poll() is None:
                    kill(proc)
            sending_at_kills.append(run_sync(outbox_states(database_url))["sending"])
        drain_to_the_end(api, server, database_url, tmp_path, "bot4.log")
    after = reminders_per_chat(api)
    assert all(n <= 1 for n in sending_at_kills)
    assert all(n >= 1 for n in after.values()) and len(after) == len(WORKERS)
    assert sum(after.values()) - len(WORKERS) <= sum(sending_at_kills)


# -- conversations --------------------------------------------------------------------------------


def press(user: LocalAPIUser, needle: str) -> dict:
    """Press the newest button whose text contains `needle`."""
    for message in reversed(user.bot_messages()):
        for text, data in buttons(message):
            if needle in text:
                return user.press_button(message["message_id"], data)
    raise LookupError(f"no button containing {needle!r}")


def step(user: LocalAPIUser, action, expect: str, timeout: float = 15) -> dict:  # noqa: ANN001
    action()
    return user.wait_for_bot_message(expect, timeout=timeout)


def wait_marked(user: LocalAPIUser, mark: str) -> None:
    """Wait until the checklist message shows `mark` (a toggle edits the message in place)."""
    deadline = time.monotonic() + 15
    while not any(mark in t for m in user.bot_messages() for t, _ in buttons(m)):
        assert time.monotonic() < deadline, f"{mark!r} never shown"
        time.sleep(0.05)


async def persisted_step(url: str, user_id: int) -> str | None:
    db = Database(url)
    try:
        async with db.session() as s:
            data = (await state.load_kind(s, "user_data")).get(str(user_id)) or {}
    finally:
        await db.dispose()
    draft = data.get("draft") if isinstance(data, dict) else None
    return draft["step"] if draft else None


async def test_sigkill_in_the_middle_of_a_patrol_a_report_and_a_shop_registration(database_url, db, tmp_path):
    seeded = await seed_patrols(db)
    async with db.session() as s:
        await create_user(s, REPORTER, Role.WORKER, [seeded.base.grid_a], "孙丽", "en")
    api = LocalBotAPI(bot_username="gridbot_crash_bot")
    with serve_in_thread(api) as server:
        root = server.root_url
        patroller = LocalAPIUser(root, TOKEN, WORKER_A, language_code="en")
        reporter = LocalAPIUser(root, TOKEN, REPORTER, language_code="en")
        supervisor = LocalAPIUser(root, TOKEN, SUPERVISOR_A, language_code="en")
        proc = start_bot(server, database_url, tmp_path, "bot1.log")
        try:
            wait_polling(api, proc, tmp_path, "bot1.log")
            # A patrol: two failed items; the first corrected on the spot with a note; killed at the second's choice.
            step(patroller, lambda: patroller.send_text("/patrol"), "Step 1/5")
            step(patroller, lambda: patroller.send_text("面馆"), lambda m: any("老王面馆" in t for t, _ in buttons(m)))
            step(patroller, lambda: press(patroller, "老王面馆"), "Step 2/5")
            press(patroller, "Environmental hygiene")
            wait_marked(patroller, "❌ Environmental hygiene")
            press(patroller, "Food sample retention")
            wait_marked(patroller, "❌ Food sample retention")
            step(patroller, lambda: press(patroller, "Done"), "Failed item 1/2")
            step(patroller, lambda: press(patroller, "Corrected on the spot"), "A note on")
            step(patroller, lambda: patroller.send_text("当场清扫了后厨"), "Failed item 2/2")
            # A report: category, description, place, one photo; killed while more photos may come.
            step(reporter, lambda: reporter.send_text("/report"), "Step 1/6")
            step(reporter, lambda: press(reporter, "Outdoor signs"), "Step 2/6")
            step(reporter, lambda: reporter.send_text("招牌松动，有坠落风险"), "Step 3/6")
            step(reporter, lambda: reporter.send_location(28.17, 112.98), "Location received")
            step(reporter, lambda: reporter.send_text("/done"), "Step 4/6")
            step(reporter, lambda: reporter.send_photo(JPEG), "Photo 1 received")
            # A shop registration: name and address given; killed at the category.
            step(supervisor, lambda: supervisor.send_text("/shop_add"), "shop's name")
            step(supervisor, lambda: supervisor.send_text("陈记烧烤"), "shop's address")
            step(supervisor, lambda: supervisor.send_text("幸福路88号"), "What kind of shop")
            # The state is written after each update; kill once all three are in the database.
            for user_id, at in ((WORKER_A, "DISPOSITION"), (REPORTER, "PHOTOS"), (SUPERVISOR_A, "CATEGORY")):
                wait_until(f"{user_id} at {at}", lambda u=user_id, a=at: run_sync(persisted_step(database_url, u)) == a, proc, tmp_path, "bot1.log")
        finally:
            kill(proc)

        proc = start_bot(server, database_url, tmp_path, "bot2.log")
        try:
            wait_polling(api, proc, tmp_path, "bot2.log")
            # Each goes on where it was, through buttons sent before the kill.
            step(patroller, lambda: press(patroller, "Escalate"), "A note on")
            step(patroller, lambda: patroller.send_text("/skip"), "Step 4/5")
            summary = step(patroller, lambda: patroller.send_text("/done"), "Step 5/5")
            assert "当场清扫了后厨" in summary["text"] and "escalated" in summary["text"]
            step(patroller, lambda: press(patroller, "Save"), "saved")

            step(reporter, lambda: reporter.send_photo(JPEG + b"second"), "Photo 2 received")
            step(reporter, lambda: reporter.send_text("/done"), "Step 5/6")
            summary = step(reporter, lambda: press(reporter, "Normal"), "Step 6/6")
            assert "招牌松动" in summary["text"] and "Photos: 2" in summary["text"]
            step(reporter, lambda: press(reporter, "Submit"), "Reported as issue")

            step(supervisor, lambda: press(supervisor, "Catering service"), "licence number")
            step(supervisor, lambda: supervisor.send_text("/skip"), "contact person")
            summary = step(supervisor, lambda: supervisor.send_text("/skip"), "陈记烧烤")
            assert "幸福路88号" in summary["text"]
            step(supervisor, lambda: press(supervisor, "Save"), "Registered as shop")
        finally:
            stop(proc)

    async with db.session() as s:
        (patrol,) = (await s.exec(select(Patrol))).all()
        findings = (await s.exec(select(Finding).order_by(Finding.id))).all()
        (issue,) = (await s.exec(select(Issue))).all()
        events = (await s.exec(select(IssueEvent))).all()
        photos = (await s.exec(select(IssuePhoto))).all()
        shops = (await s.exec(select(Shop).where(Shop.name == "陈记烧烤"))).all()
    assert patrol.shop_id == seeded.shops_a[0]
    assert [(f.item, f.disposition, f.note) for f in findings] == [("环境卫生", "corrected", "当场清扫了后厨"), ("食品留样", "escalated", None)]
    assert (issue.description, issue.latitude, len(events), len(photos)) == ("招牌松动，有坠落风险", 28.17, 1, 2)
    assert [(sh.address, sh.category) for sh in shops] == [("幸福路88号", "餐饮服务")]
    log = (tmp_path / "bot1.log").read_text() + (tmp_path / "bot2.log").read_text()
    assert "Traceback" not in log
