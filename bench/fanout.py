"""Benchmark 3: the visit-pace reminder fan-out to N workers behind pace, through the real outbox.

Seed: `grids` grids x `per_grid` workers (10,000 at full size), a few households per grid, no visits, so
every grid is behind pace on the scheduled Monday 09:07 (Asia/Shanghai) and every worker gets one letter.
Every worker has opened a chat with the bot (LocalBotAPI refuses to start one, as Telegram does).

1. Build: `jobs.reminders.run_job(app, "visit_pace")` — the producer plus the outbox insert, one transaction.
2. Window: the real `Sender` (bot/delivery.py) at the configured OUTBOX_RATE (default 20/s) and the app as
   deployed (PTB's AIORateLimiter on), for a bounded window: passes of `Sender.drain(limit=50)` until the window
   ends (the last pass finishes). Delivered rate = rows sent / elapsed. At 20/s the whole 10,000 would take 500 s.
3. Capacity: the rest of the outbox drained with both limiters lifted (benchmark only), giving the sender's
   own ceiling (per row: claim commit + sendMessage + mark-sent commit).
4. Checks over everything: each outbox row `sent`, each worker's chat got exactly one sendMessage (LocalBotAPI call log), no other chat got one.
Interactive: a supervisor (not a reminder recipient) sends /help through `process_update` in the same
process, one at a time with a 200 ms pause, idle, during the build, and during the window.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiolimiter import AsyncLimiter
from sqlalchemy import text
from telegram import Update

from bench.common import TOKEN, WORK, pct, settings_for
from bench.conversations import _request
from bench.generate import SUPERVISOR_TG, WORKER_TG, Size, generate
from bot import delivery
from bot.channels.telegram import build_application
from bot.db import Database
from jobs.reminders import run_job
from models import clock, outbox
from sandbox.localapi import LocalBotAPI

PAUSE = 0.2  # between a prober's /help and the next: 5 a second at most, so prober + outbox stay under the 30/s limiter
SCHEDULED = datetime(2026, 5, 18, 1, 7, tzinfo=UTC)  # Monday 09:07 in Asia/Shanghai: the visit-pace moment


@dataclass
class FanoutResult:
    workers: int
    rows: int = 0
    build_s: float = 0.0
    configured_rate: float = 0.0
    window_s: float = 0.0
    window_sent: int = 0
    window_lost: int = 0
    window_dup: int = 0
    capacity_sent: int = 0
    capacity_s: float = 0.0
    duplicates: int = 0
    lost: int = 0
    not_sent_rows: int = 0
    idle: list[float] = field(default_factory=list)
    during_build: list[float] = field(default_factory=list)
    build_profile: str = ""  # pyinstrument, of the build (what the replies wait for)
    during_window: list[float] = field(default_factory=list)

    @property
    def window_rate(self) -> float:
        return self.window_sent / self.window_s if self.window_s else 0.0

    @property
    def capacity_rate(self) -> float:
        return self.capacity_sent / self.capacity_s if self.capacity_s else 0.0


async def seed(url: str, workers: int, per_grid: int = 20, households_per_grid: int = 5) -> None:
    grids = max(1, workers // per_grid)
    db = Database(url)
    await generate(db, Size(grids=grids, households=grids * households_per_grid, visits=0, issues=0, patrols=0, shops_per_grid=0,
                            workers_per_grid=per_grid, grids_per_supervisor=10))
    await db.dispose()


def _home_visits_by_chat(api: LocalBotAPI) -> Counter:
    """sendMessage calls per chat, the prober's chat (its /help replies) left out: the workers get nothing else."""
    return Counter(int(p.get("chat_id")) for p in api.calls_for(TOKEN, "sendMessage") if int(p.get("chat_id")) != SUPERVISOR_TG)


async def _interactive(app, api: LocalBotAPI, uid: int, times: list[float], stop: asyncio.Event, limit: int | None = None) -> None:  # noqa: ANN001
    n = 0
    while not stop.is_set() and (limit is None or n < limit):
        upd = Update.de_json(api.send_text(TOKEN, uid, "/help", language_code="en"), app.bot)
        t0 = time.perf_counter()
        await app.process_update(upd)
        times.append(time.perf_counter() - t0)
        n += 1
        await asyncio.sleep(PAUSE)


async def run(url: str, workers: int, window_s: float) -> FanoutResult:
    await seed(url, workers)
    res = FanoutResult(workers)
    api = LocalBotAPI(bot_username="gridbot_bench_bot")
    settings = settings_for(url, WORK / "media")
    res.configured_rate = settings.outbox_rate
    db = Database(url)
    app = build_application(settings, db=db, request=_request(api), updates_request=_request(api))
    worker_chats = {WORKER_TG + n for n in range(workers)}
    for tid in worker_chats:
        api.send_text(TOKEN, tid, "hi", first_name="w", language_code="en")
    sup = SUPERVISOR_TG
    clock.freeze(SCHEDULED - timedelta(days=1))  # start-up sets the job's baseline to the previous Monday
    await app.runtime.start(startup=False)
    app.scheduler.remove("outbox")  # the periodic drain: this benchmark drives the sender itself
    clock.freeze(SCHEDULED)
    try:
        # Idle interactive latency (warm-up first).
        await _interactive(app, api, sup, [], asyncio.Event(), limit=5)
        await _interactive(app, api, sup, res.idle, asyncio.Event(), limit=40)

        # 1. Build the outbox, with the supervisor asking /help meanwhile.
        stop = asyncio.Event()
        probe = asyncio.create_task(_interactive(app, api, sup, res.during_build, stop))
        t0 = time.perf_counter()
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="enabled", interval=0.001)
        profiler.start()
        res.rows = await run_job(app, "visit_pace", SCHEDULED) or 0
        res.build_s = time.perf_counter() - t0
        profiler.stop()
        res.build_profile = profiler.output_text(unicode=True, color=False, show_all=False)[:6000]
        stop.set()
        await probe

        # 2. The window at the configured rate, as deployed.
        sender = delivery.sender_for(app)
        stop = asyncio.Event()
        probe = asyncio.create_task(_interactive(app, api, sup, res.during_window, stop))
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < window_s:
            r = await sender.drain(limit=50)
            res.window_sent += r.sent
            if not r.sent and not r.waiting:
                break
        res.window_s = time.perf_counter() - t0
        stop.set()
        await probe
        async with db.session() as s:
            covered = [r for r in await outbox.all_rows(s) if r.state != outbox.PENDING]
        got = _home_visits_by_chat(api)
        covered_chats = {int(r.recipient.removeprefix("tg:")) for r in covered}
        res.window_lost = sum(1 for r in covered if r.state != outbox.SENT or got.get(int(r.recipient[3:]), 0) == 0)
        res.window_dup = sum(n - 1 for c, n in got.items() if n > 1) + sum(1 for c in got if c not in covered_chats)

        # 3. Capacity: the rest with the limiters lifted.
        sender.limiter = AsyncLimiter(10**9, 1)
        app.bot._rate_limiter = None  # noqa: SLF001 - benchmark only
        t0 = time.perf_counter()
        while True:
            r = await sender.drain(limit=500)
            res.capacity_sent += r.sent
            if not r.sent and not r.waiting:
                break
        res.capacity_s = time.perf_counter() - t0

        # 4. Everything: 0 lost, 0 duplicates.
        async with db.session() as s:
            res.not_sent_rows = (await s.exec(text("SELECT count(*) FROM outbox WHERE state <> 'sent'"))).one()[0]
        got = _home_visits_by_chat(api)
        res.duplicates = sum(n - 1 for n in got.values() if n > 1) + sum(1 for c in got if c not in worker_chats)
        res.lost = sum(1 for c in worker_chats if got.get(c, 0) == 0)
    finally:
        await app.runtime.stop()
        clock.reset()
    return res


def p95(values: list[float]) -> float:
    return pct(values, 0.95)
