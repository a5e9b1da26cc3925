"""`gridbot console`: try gridbot in a terminal, with demo data and no Telegram token.

The sandbox runs the real Application (`bot.channels.telegram.build_application`: every handler, the database
persistence, the job queue) exactly as `gridbot run` does, long polling over loopback HTTP — only
the Bot API server is the in-memory one of `sandbox.localapi`, started here on 127.0.0.1 (a free port),
and the database is a demo one (`sandbox.demo`), in a temporary folder unless `--db PATH` is given.
Nothing is special-cased for the sandbox in any handler.

The terminal plays the demo users' Telegram clients: what you type is sent as the current user's
message through the local Bot API's user side; the bot's replies are read back from that server's
chat state and printed, inline buttons numbered. After each input the console waits until the bot
has fetched the update (getUpdates moved past it), handled it (the update queue is empty) and sent
nothing more for a moment, so the transcript is in a fixed order.

Time: the sandbox clock (`models.clock`) runs with real time and `/time +1d` moves it forward. The job
queue (APScheduler) schedules in real time, so the jump is mirrored there: every job that falls due
within the jump runs now, in due order, with the clock set to its due moment (a repeating job runs
once, as APScheduler coalesces missed runs); the remaining one-off and interval jobs are moved the
same amount closer, and calendar jobs (`run_daily`) are re-anchored to the sandbox wall clock.
Between jumps APScheduler keeps firing jobs by itself on real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from apscheduler.job import Job
from pydantic import ValidationError

from bot.settings import Settings, format_settings_error, load_settings
from models import clock
from sandbox.demo import DEMO_USERS, DemoUser
from sandbox.localapi import LocalBotAPI, LocalBotAPIServer, buttons, reply_buttons, run_in_thread

SANDBOX_TOKEN = "100000:SANDBOX"
BOT_USERNAME = "gridbot_sandbox_bot"
LANGUAGE_CODES = {"zh_CN": "zh-hans", "en": "en"}
QUIET_SECONDS = 0.2  # no new bot message for this long after an update was handled = done
SETTLE_LIMIT = 30.0  # seconds an input may take before the console gives up waiting
MAX_JUMP = timedelta(days=366)
MAX_RUNS_PER_JUMP = 31  # occurrences of one job per /time; more are coalesced into one
_JUMP_RE = re.compile(r"(\d+)\s*([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}

log = logging.getLogger(__name__)


def parse_jump(text: str) -> timedelta | None:
    """'+1d', '+3h', '+30m', '+1d12h' -> timedelta; None if it is not such a duration."""
    spec = text.strip().removeprefix("+").replace(" ", "")
    if not spec or _JUMP_RE.sub("", spec):
        return None
    total = timedelta(0)
    for amount, unit in _JUMP_RE.findall(spec):
        total += timedelta(**{_UNITS[unit]: int(amount)})
    return total if timedelta(0) < total <= MAX_JUMP else None


def render_message(message: dict, *, edited: bool = False) -> list[str]:
    """A bot message as terminal lines: text or media, then its buttons numbered [1] [2] ..."""
    mid = message["message_id"]
    head = f"🤖 #{mid}" + (" (edited)" if edited else "")
    body: list[str] = []
    if "photo" in message:
        size = message["photo"][-1]
        body.append(f"🖼 photo {size.get('width')}×{size.get('height')}")
    if "document" in message:
        doc = message["document"]
        body.append(f"📄 document {doc.get('file_name') or ''} ({doc.get('file_size', 0)} bytes)")
    if "location" in message:
        loc = message["location"]
        body.append(f"📍 location {loc['latitude']:.5f}, {loc['longitude']:.5f}")
    text = message.get("text") or message.get("caption") or ""
    body += text.splitlines() or ([] if body else [""])
    lines = [f"{head} {body[0]}".rstrip()] + [f"    {line}".rstrip() for line in body[1:]]
    n = 0
    for row in (message.get("reply_markup") or {}).get("inline_keyboard") or []:
        cells = []
        for b in row:
            n += 1
            label = b.get("text", "")
            if b.get("url"):
                label += f" → {b['url']}"
            cells.append(f"[{n}] {label}")
        lines.append("    " + "   ".join(cells))
    keys = reply_buttons(message)
    if keys:
        lines.append("    ⌨ " + " | ".join(keys))
    return lines


@dataclass
class _Chat:
    """What the terminal has shown of one demo user's chat."""

    user: DemoUser
    seen: dict[int, int] = field(default_factory=dict)  # bot message id -> seq when printed
    announced: int = 0  # chat seq up to which arrivals were announced (or shown)


class Sandbox:
    """The running sandbox: the Application, the local Bot API, and the terminal's view of the chats."""

    def __init__(self, app, api: LocalBotAPI, server: LocalBotAPIServer, settings: Settings, *,  # noqa: ANN001
                 language: str, db_path: Path, log_path: Path, temporary: bool, out: TextIO, interactive: bool) -> None:
        self.app, self.api, self.server, self.settings = app, api, server, settings
        self.language, self.language_code = language, LANGUAGE_CODES[language]
        self.db_path, self.log_path, self.temporary = db_path, log_path, temporary
        self.out, self.interactive = out, interactive
        self.chats = {key: _Chat(user) for key, user in DEMO_USERS.items()}
        self.current = "worker1"
        self.skew = timedelta(0)  # how far /time moved the sandbox clock ahead of real time
        self.busy = False
        self.prompt_shown = False

    # -- output -------------------------------------------------------------------------------

    def say(self, *lines: str) -> None:
        if self.interactive and self.prompt_shown:
            self.out.write("\n")
            self.prompt_shown = False
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()

    def show_prompt(self) -> None:
        if self.interactive:
            self.out.write(self.prompt())
            self.out.flush()
            self.prompt_shown = True

    def prompt(self) -> str:
        return f"{self.current}> "

    def _t(self, msgid: str) -> str:
        from bot.i18n import gettext_for

        return gettext_for(self.language)(msgid)

    def who(self, key: str) -> str:
        from handlers.common import ROLE_NAMES

        user = DEMO_USERS[key]
        grids = ", ".join(user.grid_codes) or "—"
        return f"{key} · {user.name} ({self._t(ROLE_NAMES[user.role])}, {grids})"

    def banner(self) -> None:
        where = "a temporary database" if self.temporary else "the sandbox database"
        local = clock.now().astimezone(self.settings.tz).strftime("%Y-%m-%d %H:%M")
        self.say(
            "══ gridbot sandbox · 网格助手 演示沙盒 ══",
            f"Demo data only: {where} ({self.db_path}) and a local Bot API on {self.server.root_url}; nothing reaches Telegram.",
            "Demo users: " + " · ".join(self.who(k) for k in DEMO_USERS),
            "What you type goes to the bot as the current user (/help lists their commands). Sandbox commands:",
            "  /as worker1|worker2|supervisor|admin   switch user; each keeps their own chat",
            "  1, 2, ...        press that button on the bot's latest message (/press N [#MSG] or /press LABEL for others; /say 2 sends 2 as text)",
            "  /photo PATH      send a photo          /file PATH        send a document",
            "  /loc LAT LON     share a location      /time +1d|+3h|+30m  move the sandbox clock; jobs that fall due run",
            "  /sandbox         this help             /quit             leave",
            f"Sandbox time: {local} {self.settings.timezone}. Log: {self.log_path}",
        )

    # -- the chats ----------------------------------------------------------------------------

    def _messages(self, key: str) -> list[dict]:
        return self.api.chat_messages(SANDBOX_TOKEN, DEMO_USERS[key].telegram_id)

    def _bot_messages(self, key: str) -> list[dict]:
        return [m for m in self._messages(key) if m["from_bot"]]

    def _unseen(self, key: str) -> tuple[list[tuple[dict, bool]], list[int]]:
        """(new or edited bot messages with an 'edited' flag, ids of shown messages now deleted)."""
        chat = self.chats[key]
        current = self._bot_messages(key)
        changes = [(m, m["message_id"] in chat.seen) for m in current if chat.seen.get(m["message_id"], -1) < m["seq"]]
        live = {m["message_id"] for m in current}
        return changes, [mid for mid in chat.seen if mid not in live]

    def show_chat(self, key: str) -> None:
        """Print what is new in `key`'s chat since it was last shown, and mark it shown."""
        chat = self.chats[key]
        changes, deleted = self._unseen(key)
        lines: list[str] = []
        for mid in deleted:
            lines.append(f"🗑 #{mid} (deleted)")
            del chat.seen[mid]
        for message, edited in changes:
            lines += render_message(message, edited=edited)
            chat.seen[message["message_id"]] = message["seq"]
        chat.announced = self.api.chat_seq(SANDBOX_TOKEN, chat.user.telegram_id)
        if lines:
            self.say(*lines)

    def announce_others(self) -> None:
        """One line per other demo user whose chat got bot messages since the last look."""
        for key, chat in self.chats.items():
            if key == self.current:
                continue
            changes, _deleted = self._unseen(key)
            fresh = [m for m, _edited in changes if m["seq"] > chat.announced]
            if fresh:
                n = len(fresh)
                self.say(f"📨 new message for {key} ({chat.user.name}){f' ×{n}' if n > 1 else ''} — /as {key} to read it")
                chat.announced = max(m["seq"] for m in fresh)

    def refresh(self) -> None:
        self.show_chat(self.current)
        self.announce_others()

    def mark_all_announced(self) -> None:
        for chat in self.chats.values():
            chat.announced = self.api.chat_seq(SANDBOX_TOKEN, chat.user.telegram_id)

    # -- waiting for the bot ------------------------------------------------------------------

    def _total_seq(self) -> int:
        return sum(self.api.chat_seq(SANDBOX_TOKEN, c.user.telegram_id) for c in self.chats.values())

    async def settle(self, update: dict | None = None) -> None:
        """Wait until the bot fetched and handled `update`, then until it is quiet for a moment."""
        deadline = time.monotonic() + SETTLE_LIMIT
        if update is not None:
            uid = update["update_id"]
            # getUpdates confirms an update (drops it from pending) after PTB queued it for handling.
            while any(u["update_id"] == uid for u in self.api.pending_updates(SANDBOX_TOKEN)):
                if time.monotonic() > deadline:
                    self.say("⚠️ the bot did not fetch that update in time")
                    return
                await asyncio.sleep(0.01)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.app.update_queue.join(), max(0.1, deadline - time.monotonic()))
        await self.quiet(deadline)

    async def quiet(self, deadline: float) -> None:
        last, since = self._total_seq(), time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            seq = self._total_seq()
            if seq != last:
                last, since = seq, time.monotonic()
            elif time.monotonic() - since >= QUIET_SECONDS:
                return

    # -- acting as a user ---------------------------------------------------------------------

    def _user_kwargs(self, key: str) -> dict:
        return {"first_name": DEMO_USERS[key].first_name, "language_code": self.language_code}

    async def send(self, key: str, action: Callable[..., dict], *args: object) -> dict:
        update = action(SANDBOX_TOKEN, DEMO_USERS[key].telegram_id, *args, **self._user_kwargs(key))
        await self.settle(update)
        return update

    async def open_chats(self) -> None:
        """Every demo user has opened the bot once (/start), so the bot can write to each of them."""
        last = None
        for key in DEMO_USERS:
            last = self.api.send_text(SANDBOX_TOKEN, DEMO_USERS[key].telegram_id, "/start", **self._user_kwargs(key))
        await self.settle(last)
        self.mark_all_announced()

    async def press(self, number: int, message: dict) -> None:
        label, data = buttons(message)[number - 1]
        if data.startswith(("http://", "https://", "tg://")):
            self.say(f"    ↳ [{number}] «{label}» is a link: {data}")
            return
        self.say(f"    ↳ pressed [{number}] «{label}»")
        update = self.api.press_button(SANDBOX_TOKEN, DEMO_USERS[self.current].telegram_id, message["message_id"], data,
                                       **self._user_kwargs(self.current))
        await self.settle(update)
        qid = update["callback_query"]["id"]
        for answer in self.api.callback_answers:
            if answer["callback_query_id"] == qid and answer.get("text"):
                self.say(("⚠️ " if answer.get("show_alert") else "💬 ") + answer["text"])

    def latest_with_buttons(self, number: int, *, newest_only: bool, message_id: int | None = None) -> dict | None:
        messages = self._bot_messages(self.current)
        if message_id is not None:
            messages = [m for m in messages if m["message_id"] == message_id]
        elif newest_only:
            messages = messages[-1:]
        for m in reversed(messages):
            if 1 <= number <= len(buttons(m)):
                return m
        return None

    # -- /time --------------------------------------------------------------------------------

    async def jump(self, delta: timedelta) -> list[str]:
        """Move the sandbox clock by `delta`, running each job occurrence that falls due on the way
        with the clock at its due moment (see the module doc). Returns the names of the runs."""
        scheduler = self.app.scheduler
        aps = scheduler.aps
        target = clock.now() + delta
        ran: list[str] = []
        runs: Counter[str] = Counter()
        plan: dict[str, tuple[Job, datetime | None]] = {}  # job id -> (job, next due in sandbox time)

        def gone(job: Job) -> bool:
            return aps.get_job(job.id) is None

        def track_new_jobs() -> None:
            for job in aps.get_jobs():
                if job.id not in plan and job.next_run_time is not None:
                    plan[job.id] = (job, self._sandbox_due(job))

        aps.pause()  # APScheduler must not fire anything while its times are rewritten
        try:
            track_new_jobs()
            while True:
                due = [(when, job) for job, when in plan.values() if when is not None and when <= target and not gone(job)]
                if not due:
                    break
                when, job = min(due, key=lambda d: d[0])
                self._advance_to(when)
                await scheduler.run_now(job)
                runs[job.id] += 1
                ran.append(str(job.name))
                following = job.trigger.get_next_fire_time(when, when + timedelta(microseconds=1))
                if runs[job.id] >= MAX_RUNS_PER_JUMP:  # coalesce the rest, as APScheduler would
                    while following is not None and following <= target:
                        following = job.trigger.get_next_fire_time(following, following + timedelta(microseconds=1))
                plan[job.id] = (job, following)
                track_new_jobs()  # a job may schedule another
            self._advance_to(target)
            for job, when in plan.values():
                if gone(job):
                    continue
                if when is None:
                    scheduler.remove(job.id)
                else:
                    job.modify(next_run_time=when.astimezone(UTC) - self.skew)
        finally:
            aps.resume()
        self.app.engine.reset_timers()  # an open form whose timeout the jump passed closes now
        return ran

    def _sandbox_due(self, job: Job) -> datetime | None:
        """When a job is next due on the sandbox clock."""
        from apscheduler.triggers.cron import CronTrigger

        trigger = job.trigger
        if isinstance(trigger, CronTrigger):  # calendar jobs (daily) follow the sandbox's wall clock
            return trigger.get_next_fire_time(None, clock.now().astimezone(trigger.timezone))
        assert job.next_run_time is not None
        return job.next_run_time.astimezone(UTC) + self.skew  # one-off and interval jobs: a delay, scheduled in real time

    def _advance_to(self, moment: datetime) -> None:
        step = moment - clock.now()
        if step > timedelta(0):
            clock.advance(step)
            self.skew += step

    # -- the loop -----------------------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Act on one input line; False means quit."""
        text = line.strip()
        if not text:
            return True
        word, _, rest = text.partition(" ")
        rest = rest.strip()
        me = DEMO_USERS[self.current].telegram_id
        if word in ("/quit", "/exit"):
            return False
        if word == "/sandbox":
            self.banner()
        elif word == "/as":
            await self.switch(rest)
        elif word == "/time":
            await self.time_command(rest)
        elif word == "/photo":
            data = self._read_file(rest)
            if data is not None:
                await self.send(self.current, self.api.send_photo, data)
        elif word == "/file":
            data = self._read_file(rest)
            if data is not None:
                await self.send(self.current, self.api.send_document, data, Path(rest).name)
        elif word == "/loc":
            await self.location(rest)
        elif word == "/say":
            if rest:
                await self.send(self.current, self.api.send_text, rest)
        elif word == "/press":
            await self.press_command(rest)
        elif text.isdigit() and (message := self.latest_with_buttons(int(text), newest_only=True)) is not None:
            await self.press(int(text), message)
        else:
            update = self.api.send_text(SANDBOX_TOKEN, me, text, **self._user_kwargs(self.current))
            await self.settle(update)
        self.refresh()
        return True

    async def switch(self, name: str) -> None:
        key = name.strip().lower()
        if key not in DEMO_USERS:
            self.say("Usage: /as " + "|".join(DEMO_USERS))
            return
        self.current = key
        self.say(f"👤 You are now {self.who(key)}")

    async def time_command(self, arg: str) -> None:
        if not arg:
            local = clock.now().astimezone(self.settings.tz).strftime("%Y-%m-%d %H:%M (%a)")
            self.say(f"🕒 Sandbox time: {local} {self.settings.timezone}. Move it with /time +1d, +3h or +30m.")
            return
        delta = parse_jump(arg)
        if delta is None:
            self.say("Usage: /time +1d | +3h | +30m (forward only, at most 366 days)")
            return
        ran = await self.jump(delta)
        await self.quiet(time.monotonic() + SETTLE_LIMIT)
        local = clock.now().astimezone(self.settings.tz).strftime("%Y-%m-%d %H:%M (%a)")
        counts = Counter(ran)
        jobs = "; jobs run: " + ", ".join(n + (f" ×{c}" if c > 1 else "") for n, c in counts.items()) if ran else "; no job fell due"
        self.say(f"🕒 Sandbox time is now {local} {self.settings.timezone}{jobs}.")

    async def location(self, arg: str) -> None:
        try:
            lat, lon = (float(x) for x in arg.replace(",", " ").split())
        except ValueError:
            self.say("Usage: /loc LAT LON   e.g. /loc 28.17 112.98")
            return
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            self.say("Latitude must be -90..90 and longitude -180..180.")
            return
        await self.send(self.current, self.api.send_location, lat, lon)

    async def press_command(self, arg: str) -> None:
        """`/press N`, `/press N #MSG`, or `/press LABEL` (part of a button's text)."""
        parts = arg.replace("#", " ").split()
        if parts and all(p.isdigit() for p in parts) and len(parts) <= 2:
            number = int(parts[0])
            message = self.latest_with_buttons(number, newest_only=False, message_id=int(parts[1]) if len(parts) == 2 else None)
            if message is None:
                self.say(f"No message of {self.current}'s chat has a button [{number}].")
                return
            await self.press(number, message)
            return
        if not arg:
            self.say("Usage: /press N [#MSG] or /press LABEL   e.g. /press 2, /press 1 #14, /press Save")
            return
        needle = arg.casefold()
        for message in reversed(self._bot_messages(self.current)):
            for number, (label, _data) in enumerate(buttons(message), start=1):
                if needle in label.casefold():
                    await self.press(number, message)
                    return
        self.say(f"No button of {self.current}'s chat says «{arg}».")

    def _read_file(self, arg: str) -> bytes | None:
        path = Path(arg).expanduser()
        if not arg or not path.is_file():
            self.say(f"No such file: {arg or '(give a path)'}")
            return None
        data = path.read_bytes()
        if not data:
            self.say(f"{arg} is empty.")
            return None
        return data

    async def watch(self) -> None:
        """Between inputs, show what jobs send on their own (reminders, timeouts)."""
        while True:
            await asyncio.sleep(0.5)
            if not self.busy:
                self.refresh()
                if self.interactive and not self.prompt_shown:
                    self.show_prompt()  # something was printed over the prompt: show it again

    async def repl(self, lines: asyncio.Queue) -> None:
        while True:
            self.show_prompt()
            line = await lines.get()
            self.prompt_shown = False
            if line is None:
                self.say("" if self.interactive else "(end of input)")
                return
            if not self.interactive:
                self.say(f"{self.prompt()}{line}")
            self.busy = True
            try:
                if not await self.handle(line):
                    return
            finally:
                self.busy = False


def _reader(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, stream: TextIO, interactive: bool) -> None:
    """Read input lines on a thread (input() blocks), handing them to the event loop."""
    while True:
        try:
            line = input() if interactive else stream.readline()
            if not interactive and not line:
                raise EOFError
        except (EOFError, OSError, ValueError):
            loop.call_soon_threadsafe(queue.put_nowait, None)
            return
        loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\r\n"))


def _setup_logging(path: Path, level: str) -> None:
    from bot.logs import RedactFilter

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactFilter([SANDBOX_TOKEN]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "apscheduler", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def run(db_path: Path | None, language: str | None, stdin: TextIO, out: TextIO) -> int:
    from telegram.request import HTTPXRequest

    from bot.channels.telegram import build_application
    from sandbox import demo

    temporary = db_path is None
    folder = Path(tempfile.mkdtemp(prefix="gridbot-sandbox-")) if temporary else db_path.resolve().parent
    db_file = folder / "demo.db" if db_path is None else db_path.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    # The log is the sandbox's own, never a file in the user's working tree (the repository, often).
    log_path = (folder if temporary else Path(tempfile.gettempdir())) / f"gridbot-sandbox-{db_file.stem}.log"
    api = LocalBotAPI(bot_username=BOT_USERNAME)
    server, stop_server = run_in_thread(api, "127.0.0.1", 0)
    app = None
    try:
        try:
            settings = load_settings(
                telegram_bot_token=SANDBOX_TOKEN, telegram_api_base_url=server.base_url, telegram_file_base_url=server.file_base_url,
                database_url=f"sqlite+aiosqlite:///{db_file}", admin_telegram_ids=[], media_dir=db_file.with_name(db_file.stem + "-media"),
                **({"default_language": language} if language else {}),  # messages to users who are not typing follow --lang too
            )
        except ValidationError as exc:
            print(format_settings_error(exc), file=sys.stderr)
            return 2
        language = language or settings.default_language
        _setup_logging(log_path, "DEBUG" if settings.log_level == "DEBUG" else "INFO")
        kind, report = await demo.prepare(settings.database_url, settings)
        if kind == "foreign":
            print(f"sandbox error: {db_file} holds data that is not the sandbox's demo; refusing to use it. "
                  "Give --db a new file (or none, for a temporary one).", file=sys.stderr)
            return 2
        if report is not None:
            log.info("demo database written: %s; skipped: %s", report.line(), report.skipped or "nothing")
        settings.media_dir.mkdir(parents=True, exist_ok=True)
        # The same requests as production; trust_env=False only so that an HTTP(S)_PROXY never sees loopback traffic.
        app = build_application(
            settings,
            request=HTTPXRequest(connection_pool_size=16, read_timeout=15, write_timeout=15, httpx_kwargs={"trust_env": False}),
            updates_request=HTTPXRequest(read_timeout=40, httpx_kwargs={"trust_env": False}),
        )
        interactive = stdin.isatty() and out.isatty()
        sandbox = Sandbox(app, api, server, settings, language=language, db_path=db_file, log_path=log_path,
                          temporary=temporary, out=out, interactive=interactive)
        await app.runtime.start(receive=True)  # the sandbox's Bot API is polled as Telegram's would be
        await sandbox.open_chats()
        sandbox.banner()
        if report is not None:
            sandbox.say(f"Demo data: {report.line()}." + (f" Not in this build: {', '.join(report.skipped)}." if report.skipped else ""))
        sandbox.say(f"👤 You are {sandbox.who(sandbox.current)}")
        sandbox.refresh()
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue = asyncio.Queue()
        if interactive:
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401 - line editing and history for input()
        threading.Thread(target=_reader, args=(loop, lines, stdin, interactive), name="console-input", daemon=True).start()
        watcher = asyncio.create_task(sandbox.watch())
        try:
            await sandbox.repl(lines)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        sandbox.say("Bye. " + ("The temporary sandbox is deleted." if temporary else f"The sandbox database stays at {db_file}."))
        return 0
    finally:
        if app is not None:
            await _stop(app)
        stop_server()
        logging.shutdown()
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)


async def _stop(app) -> None:  # noqa: ANN001
    with contextlib.suppress(Exception):
        await app.runtime.stop()


def main(db: str | None = None, language: str | None = None, stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    with contextlib.suppress(AttributeError, ValueError):
        out.reconfigure(errors="replace")  # type: ignore[attr-defined]
    try:
        return asyncio.run(run(Path(db) if db else None, language, stdin or sys.stdin, out))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader of our output went away (`gridbot console | head`)
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 1
