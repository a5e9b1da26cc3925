"""The running gridbot, whatever channels it speaks on: settings, database, media store, scheduler,
outbox sender and conversation engine, and the channel adapters started on top of them.

    runtime = Runtime(settings)          # services; no platform is called
    runtime.add(channel)                 # each configured channel (bot/channels/)
    await runtime.start(receive=True)    # open the channels, load the states, schedule the jobs, listen
    await runtime.stop()

Jobs (jobs/, and the start-up hooks of handlers/) are `async def job(runtime)`: they take the
runtime, never a platform's context. A channel adapter is what `Adapter` below says; Telegram's
needs `getMe` to open, the runtime itself needs no platform at all.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.chat import Channel
from bot.db import Database
from bot.engine import Engine, Routes
from bot.media import MediaStore
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.delivery import Sender

log = logging.getLogger(__name__)

STOP_GRACE = 10.0  # seconds a job run in progress may take to finish when the process stops
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # ISO weekday - 1; APScheduler's cron names
JobCallback = Callable[["Runtime"], Awaitable[object]]


class Adapter(Channel, Protocol):
    """A channel as the runtime runs it (beyond what the engine and the flows ask of it)."""

    async def open(self, runtime: Runtime) -> None:
        """Connect and learn who we are on the platform; ready to send, not yet receiving."""

    async def receive(self) -> None:
        """Start handing inbound events to `runtime.engine`."""

    async def close(self) -> None:
        """Stop receiving and sending; release connections."""


class StartError(Exception):
    """A channel could not be opened (its platform unreachable, a token refused): said in one line."""

    def __init__(self, channel: str, cause: BaseException) -> None:
        super().__init__(f"{channel}: cannot connect ({type(cause).__name__}: {str(cause).splitlines()[0][:200] if str(cause) else ''})")


@dataclass(frozen=True)
class Job:
    name: str
    next_run: datetime | None
    interval: timedelta | None  # repeating jobs; None for daily and one-off ones


class Scheduler:
    """APScheduler's asyncio scheduler, with the three shapes gridbot uses; every job gets the runtime.

    A job that raises is logged and runs again at its next time. Daily jobs keep the zone of
    TIMEZONE; repeating and one-off jobs count from now."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.aps = AsyncIOScheduler(timezone=runtime.settings.tz)  # public for tools that move the clock (the sandbox)
        self._running: set[asyncio.Task] = set()  # job runs in progress, awaited by `stop`

    async def _run(self, name: str, callback: JobCallback) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await callback(self.runtime)
        except asyncio.CancelledError:
            log.warning("job %s was cut short: the process is stopping", name)
            raise
        except Exception:  # noqa: BLE001 - one failed run must not stop the schedule
            log.exception("job %s failed; it runs again at its next time", name)
        finally:
            self._running.discard(task)  # type: ignore[arg-type]

    def _add(self, name: str, callback: JobCallback, trigger, **options) -> None:  # noqa: ANN001, ANN003
        self.aps.add_job(self._run, trigger, args=[name, callback], id=name, name=name, replace_existing=True, **options)

    def daily(self, name: str, callback: JobCallback, at: time, days: Iterable[int] = range(1, 8), **options) -> None:  # noqa: ANN003
        """At `at` (local time) on the ISO weekdays `days` (1 = Monday)."""
        week = ",".join(DAY_NAMES[d - 1] for d in sorted(set(days)))
        self._add(name, callback, CronTrigger(day_of_week=week, hour=at.hour, minute=at.minute, timezone=self.runtime.settings.tz),
                  **options)

    def every(self, name: str, callback: JobCallback, seconds: float, first: float | None = None, **options) -> None:  # noqa: ANN003
        start = datetime.now(self.runtime.settings.tz) + timedelta(seconds=seconds if first is None else first)
        self._add(name, callback, IntervalTrigger(seconds=seconds, start_date=start), coalesce=True, max_instances=1, **options)

    def once(self, name: str, callback: JobCallback, delay: float) -> None:
        self._add(name, callback, DateTrigger(run_date=datetime.now(self.runtime.settings.tz) + timedelta(seconds=delay)))

    def jobs(self) -> list[Job]:
        return [Job(j.name, j.next_run_time, getattr(j.trigger, "interval", None)) for j in self.aps.get_jobs()]

    async def run_now(self, job) -> None:  # noqa: ANN001 - one of `aps.get_jobs()`
        """Run a scheduled job once, here and now (its schedule is untouched)."""
        await job.func(*job.args)

    def get(self, name: str):  # noqa: ANN201 - APScheduler's Job (its trigger and options), or None
        return self.aps.get_job(name)

    def remove(self, name: str) -> None:
        if self.aps.get_job(name) is not None:
            self.aps.remove_job(name)

    def start(self) -> None:
        if not self.aps.running:
            self.aps.start()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """No new runs; a run in progress (an outbox pass, a reminder fan-out) may finish within
        `grace` seconds, then it is cancelled (what it had not done is done at the next start)."""
        if not self.aps.running:
            return
        self.aps.pause()  # no new runs; APScheduler's shutdown cancels the runs in progress, so wait first
        running = [t for t in self._running if t is not asyncio.current_task()]
        late: set[asyncio.Task] = set()
        if running:
            _done, late = await asyncio.wait(running, timeout=grace)
        self.aps.shutdown(wait=False)
        if late:  # cancelled by the shutdown: let them unwind
            await asyncio.wait(late, timeout=1)


class Runtime:
    """Everything a handler or a job reaches through `context.app` / its argument."""

    def __init__(self, settings: Settings, db: Database | None = None, *, routes: Routes | None = None,
                 on_startup: Callable[[Runtime], Awaitable[None]] | None = None) -> None:
        if routes is None or on_startup is None:
            import handlers  # the composition root: the runtime is where the flows are plugged in

            routes = routes or handlers.routes()
            on_startup = on_startup or handlers.on_startup
        self.settings = settings
        self.db = db or Database(settings.database_url)
        self.media = MediaStore(settings.media_dir)
        self.channels: dict[str, Adapter] = {}
        self.engine = Engine(self, routes)
        self.engine.routes.channels = self.channels  # the same dict: a channel added later is routed too
        self.scheduler = Scheduler(self)
        self.outbox_sender: Sender | None = None  # made on first use (bot/delivery.py)
        self.lease_holder: str | None = None  # `gridbot run`'s single-process lease, renewed by a job
        self._on_startup = on_startup
        self._stopped = asyncio.Event()
        self._started = False

    def add(self, channel: Adapter) -> None:
        self.channels[channel.name] = channel

    async def start(self, *, receive: bool = False, startup: bool = True) -> None:
        """Open the channels, load the states, start the scheduler; then (`startup`) the start-up
        hooks: menus, missed runs, the jobs; then (`receive`) listen. Tests leave the last two out."""
        for channel in self.channels.values():
            try:
                await channel.open(self)
            except Exception as exc:  # noqa: BLE001 - whatever the platform raised, one line for the operator
                raise StartError(channel.name, exc) from exc
        for name in self.channels:
            await self.engine.load(name)  # every stored state, and the open drafts' timers
        self.engine.start()
        self._started = True
        self.scheduler.start()
        if startup:
            await self._on_startup(self)
        if receive:
            for channel in self.channels.values():
                await channel.receive()

    async def stop(self) -> None:
        """Stop the jobs first (a run in progress finishes while the channels can still send), then the
        channels, then write what is pending; every step runs even if one fails."""
        try:
            await self.scheduler.stop()
        except Exception:  # noqa: BLE001
            log.warning("the scheduler did not stop cleanly", exc_info=True)
        for channel in self.channels.values():
            try:
                await channel.close()
            except Exception:  # noqa: BLE001
                log.warning("channel %s did not close cleanly", channel.name, exc_info=True)
        if self._started:
            await self.engine.stop()
            self._started = False
        await self.db.dispose()

    def stop_running(self) -> None:
        """Ask `run` to stop (a signal, a lost lease)."""
        self._stopped.set()

    async def run(self) -> None:
        """Start, listen until SIGINT/SIGTERM or `stop_running`, stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop_running)
        try:
            await self.start(receive=True)
            await self._stopped.wait()
            log.info("gridbot stops")
        finally:
            await self.stop()
