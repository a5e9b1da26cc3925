"""Benchmark 1: /visit conversations through the real Application, against plain PTB bots.

N simulated workers (10 and 100) run concurrently, each completing /visit conversations one
update at a time: the update goes to the real GridApplication, whose Bot API calls are answered
in-process at the HTTP edge (sandbox/localapi.py). Two ways (Feed): straight into `process_update`
(the work per update: handlers, database, state write, Bot API calls), or as deployed, through
PTB's update queue with each Bot API call taking a network round trip. The time of an update is
from the moment it is handed over until the app has handled it. Baselines, same transport, same
kinds of updates, same run:
- echo: a plain PTB Application answering each text and button press with one message;
- writer: the same plus one row written per update to the same database with the same async engine.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, func, insert
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, MessageHandler, TypeHandler, filters
from telegram.request import HTTPXRequest

from bench.common import TOKEN, WORK, pct, settings_for
from bench.generate import WORKER_TG
from bot.channels.telegram import build_application
from bot.db import Database
from sandbox.localapi import LocalBotAPI, buttons

log = logging.getLogger(__name__)
# The kinds of update of one /visit, in order: the baselines get the same sequence.
VISIT_KINDS = ("text", "text", "press", "text", "press", "press", "text", "text", "text", "press")


@dataclass
class Result:
    label: str
    workers: int
    updates: int
    wall: float
    times: list[float]
    failed: list[str] = field(default_factory=list)  # visits the bot did not complete (e.g. SQLite "database is locked")
    retries: int = 0  # saves pressed again after "the database is busy, press it again"

    @property
    def rate(self) -> float:
        return self.updates / self.wall

    @property
    def p50(self) -> float:
        return pct(self.times, 0.5)

    @property
    def p95(self) -> float:
        return pct(self.times, 0.95)


def _request(api: LocalBotAPI) -> HTTPXRequest:
    return HTTPXRequest(connection_pool_size=64, httpx_kwargs=api.httpx_kwargs())


class Feed:
    """How updates reach an app, and the time each takes until the app has handled it.

    `queued=False`: straight into `process_update`, as fast and as concurrently as the workers send
    them; what is measured is the work per update, with nobody queued behind anybody.
    `queued=True`: onto PTB's update queue, as polling or a webhook delivers them, so each app
    dispatches them as deployed: the plain bot one at a time (PTB's default), gridbot
    CONCURRENT_UPDATES at once (bot/channels/telegram.py). The time of an update then includes its
    wait in the queue.
    """

    def __init__(self, app: Application, queued: bool) -> None:
        self.app = app
        self.queued = queued
        self._done: dict[int, asyncio.Future] = {}
        if queued:
            handle = app.process_update

            async def process_and_report(update: object) -> None:  # the update loop calls the instance's
                try:
                    await handle(update)
                finally:
                    future = self._done.pop(update.update_id, None)
                    if future is not None and not future.done():
                        future.set_result(None)

            app.process_update = process_and_report

    async def send(self, update: dict, times: list[float]) -> None:
        obj = Update.de_json(update, self.app.bot)
        t0 = time.perf_counter()
        if self.queued:
            done = self._done[obj.update_id] = asyncio.get_running_loop().create_future()
            await self.app.update_queue.put(obj)
            await done
        else:
            await self.app.process_update(obj)
        times.append(time.perf_counter() - t0)


def _keyboard(api: LocalBotAPI, uid: int) -> dict:
    for m in reversed(api.bot_messages(TOKEN, uid)):
        if buttons(m):
            return m
    raise RuntimeError(f"worker {uid}: no message with buttons")


def _press(api: LocalBotAPI, uid: int, action: str, contains: str = "") -> dict:
    message = _keyboard(api, uid)
    for text, data in buttons(message):
        parts = data.split(":")
        if len(parts) >= 3 and parts[2] == action and contains in text:
            return api.press_button(TOKEN, uid, message["message_id"], data, language_code="en")
    recent = [m.get("text", "")[:120] for m in api.bot_messages(TOKEN, uid)[-3:]]
    raise RuntimeError(f"worker {uid}: no {action!r} button in {buttons(message)}; the bot's last messages: {recent}")


def _address(k: int) -> str:
    return f"{1 + k // 40}栋{1 + k // 10 % 4}单元{101 + k % 10}"


async def _gridbot_worker(app: Application, feed: Feed, api: LocalBotAPI, n: int, visits: int, households_per_grid: int, times: list[float],
                          failed: list[str], retried: list[int]) -> None:
    uid = WORKER_TG + n
    rng = random.Random(n)

    async def text(t: str) -> None:
        await feed.send(api.send_text(TOKEN, uid, t, language_code="en"), times)

    async def press(action: str, contains: str = "") -> None:
        await feed.send(_press(api, uid, action, contains), times)

    for _ in range(visits):
        # Part of an address (building and unit): a page of matches, of which the worker picks one.
        address = _address(rng.randrange(households_per_grid)).rsplit("单元", 1)[0] + "单元"
        try:
            await text("/visit")
            await text(address)
            await press("pick", address)
            await text("2")
            await press("t")
            await press("done")
            await text("bench visit")
            await text("/done")
            await text("/skip")
            await press("save")
            problem = None
        except RuntimeError as exc:  # the bot did not answer as a working bot would: counted, not fatal
            problem = str(exc)[:300]
        for _attempt in range(2):  # "The database is busy right now ... press it again": as a user would
            draft = app.user_data.get(uid, {}).get("draft")
            if problem is not None or draft is None or draft.get("step") != "CONFIRM":
                break
            retried.append(uid)
            try:
                await press("save")
            except RuntimeError as exc:
                problem = str(exc)[:300]
        draft = app.user_data.get(uid, {}).get("draft")
        if draft is not None:
            # The save (or a step) failed: the bot said so and kept the draft, as it should. Counted as a
            # failed visit; /cancel discards the draft so the next visit starts clean, as a user would.
            failed.append(problem or f"worker {uid}: visit not saved, draft left at {draft.get('step')}")
            await text("/cancel")
            if app.user_data.get(uid, {}).get("draft") is not None:  # the conversation had ended already: discard via /visit
                try:
                    await text("/visit")
                    await press("discard")
                except RuntimeError:
                    pass
        elif problem:
            failed.append(problem)


DIAGNOSTICS = {
    "member-cached": "the gate's member read served from a dict (as a per-process cache would)",
    "no-state-write": "no chat-state write after each update",
}


async def _noop(*_args: object) -> None:  # stands in for Engine.write(key, processed)
    return None


async def run_gridbot(url: str, workers: int, visits: int, households_per_grid: int, label: str, rate_limited: bool = False,
                      diagnostic: str | None = None, queued: bool = False, round_trip_ms: float = 0) -> Result:
    """`rate_limited=False` removes PTB's AIORateLimiter (Telegram's 30 messages/s, as configured in bot/app.py) so the
    bot is measured on the same footing as the baselines; `True` measures it as deployed.

    `diagnostic` (DIAGNOSTICS) removes one piece of per-update work, to measure what it costs: a bound, not a fix.
    `queued` (Feed) and `round_trip_ms` (the network time of each Bot API call) measure it as deployed."""
    import handlers.common as gate_module

    real_get_member = gate_module.get_member
    if diagnostic == "member-cached":
        members: dict[tuple[str, str], object] = {}

        async def cached(session, key: str, channel: str):  # noqa: ANN001, ANN202
            if (channel, key) not in members:
                members[channel, key] = await real_get_member(session, key, channel)
            return members[channel, key]

        gate_module.get_member = cached
    try:
        return await _run_gridbot(url, workers, visits, households_per_grid, label, rate_limited, diagnostic, queued, round_trip_ms)
    finally:
        gate_module.get_member = real_get_member


async def _run_gridbot(url: str, workers: int, visits: int, households_per_grid: int, label: str, rate_limited: bool,
                       diagnostic: str | None, queued: bool, round_trip_ms: float) -> Result:
    api = LocalBotAPI(bot_username="gridbot_bench_bot", round_trip_ms=round_trip_ms)
    db = Database(url)
    # Wall-clock artefacts, not the bot's work (bench/NOTES.md, "the conversation run that died"): the
    # draft timeout is a day, so a wall-clock jump (a paused VM) cannot expire drafts mid-run; PTB still
    # schedules and removes one timeout job per step, as deployed.
    settings = settings_for(url, WORK / "media").model_copy(update={"conversation_timeout_minutes": 24 * 60})
    app = build_application(settings, db=db, request=_request(api), updates_request=_request(api))
    if not rate_limited:
        app.bot._rate_limiter = None  # noqa: SLF001 - the benchmark's own comparison, not the app's behaviour
    await app.runtime.start(startup=False)
    feed = Feed(app, queued)
    # The scheduled runs (reminders at 08:37/09:07 Asia/Shanghai, the Monday digest), the outbox drain
    # and the lease fire on the wall clock: on the city database a reminder run mid-measurement would
    # add a city-wide fan-out (and buttons in the workers' chats) to the figures. Benchmark 3 times them.
    for job in app.scheduler.jobs():
        app.scheduler.remove(job.name)
    if diagnostic == "no-state-write":
        app.engine.write = _noop  # the instance attribute shadows Engine.write: no state written
    times: list[float] = []
    failed: list[str] = []
    retried: list[int] = []
    skew = time.time() - time.monotonic()
    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(_gridbot_worker(app, feed, api, n, visits, households_per_grid, times, failed, retried) for n in range(workers)))
        wall = time.perf_counter() - t0
    finally:
        await app.runtime.stop()
    jump = (time.time() - time.monotonic()) - skew
    if abs(jump) > 1:  # APScheduler runs on the wall clock: say so if it moved under the run
        log.warning("the wall clock moved %.0f s against the monotonic clock during %s", jump, label)
        CLOCK_JUMPS.append((label, jump))
    if failed:
        log.warning("%s: %d of %d visits failed, e.g. %s", label, len(failed), workers * visits, failed[0])
    return Result(label, workers, len(times), wall, times, failed, len(retried))


CLOCK_JUMPS: list[tuple[str, float]] = []


# -- baselines -----------------------------------------------------------------------------------

_meta = MetaData()
bench_update = Table(
    "bench_update", _meta,
    Column("id", Integer, primary_key=True), Column("user_id", BigInteger, nullable=False), Column("kind", String(16), nullable=False),
    Column("text", String(200)), Column("at", DateTime(timezone=True), server_default=func.now()),
)


def _baseline_app(api: LocalBotAPI, db: Database | None) -> Application:
    app = Application.builder().token(TOKEN).base_url("http://localapi/bot").request(_request(api)).get_updates_request(_request(api)).build()
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="ok")]])

    async def echo(update: Update, context) -> None:  # noqa: ANN001
        await update.message.reply_text(update.message.text, reply_markup=markup)

    async def press(update: Update, context) -> None:  # noqa: ANN001
        await update.callback_query.answer()
        await update.callback_query.message.reply_text("pressed", reply_markup=markup)

    async def write(update: Update, context) -> None:  # noqa: ANN001
        kind = "press" if update.callback_query else "text"
        text = update.message.text if update.message else update.callback_query.data
        async with db.engine.begin() as conn:
            await conn.execute(insert(bench_update).values(user_id=update.effective_user.id, kind=kind, text=text))

    if db is not None:
        app.add_handler(TypeHandler(Update, write), group=-1)
    app.add_handler(MessageHandler(filters.TEXT, echo))
    app.add_handler(CallbackQueryHandler(press))
    return app


async def _baseline_worker(feed: Feed, api: LocalBotAPI, n: int, visits: int, times: list[float]) -> None:
    uid = WORKER_TG + n
    for _ in range(visits):
        for kind in VISIT_KINDS:
            if kind == "text":
                await feed.send(api.send_text(TOKEN, uid, "hello", language_code="en"), times)
            else:
                m = _keyboard(api, uid)
                await feed.send(api.press_button(TOKEN, uid, m["message_id"], "ok"), times)


async def run_baseline(url: str | None, workers: int, visits: int, label: str, queued: bool = False, round_trip_ms: float = 0) -> Result:
    api = LocalBotAPI(bot_username="plain_bench_bot", round_trip_ms=round_trip_ms)
    db = Database(url) if url else None
    if db is not None:
        async with db.engine.begin() as conn:
            await conn.run_sync(_meta.create_all)
    app = _baseline_app(api, db)
    await app.initialize()
    await app.start()
    feed = Feed(app, queued)
    times: list[float] = []
    try:
        # The first message of each chat is from the user: make one keyboard to press.
        t0 = time.perf_counter()
        await asyncio.gather(*(_baseline_worker(feed, api, n, visits, times) for n in range(workers)))
        wall = time.perf_counter() - t0
    finally:
        await app.stop()
        await app.shutdown()
        if db is not None:
            await db.dispose()
    return Result(label, workers, len(times), wall, times)
