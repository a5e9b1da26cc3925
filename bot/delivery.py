"""The outbox sender: each row through the channel of its recipient (Telegram today; any channel
adapter of the runtime) or a WeCom group robot (through httpx), with rate limits, flood waits,
retries with backoff, and the kill points the tests use.

`drain(app)` sends what is due, one row at a time:

    claim: state pending/failed -> sending   (commit)      kill point "claimed"
    send through Telegram or WeCom                          kill point "sent" (the window)
    mark sent                                (commit)      kill point "recorded"

A crash at "claimed" or "sent" leaves the row in `sending`; the next start puts it back to pending
(`models.outbox.recover_interrupted`) and it is sent again. After "claimed" Telegram never saw it,
so nothing is doubled; after "sent" Telegram has it, and the one duplicate happens: that is the
window, and it spans only the time between Telegram's answer and one UPDATE's commit. A send that
times out (Telegram may have acted) is retried too, so a timeout is the same window.

The bound (tests/test_crash.py kills a real process at both points): delivery is at least once;
rows are sent one at a time under `Sender.lock`, so at most ONE row is in `sending` at any moment
and a crash doubles at most one message in all. Telegram has no idempotency key and a bot cannot
read back what it sent, so that one cannot be closed from our side.

The outcome of a send is written in its own transaction after the send. If that write fails (the
database is locked or its connection dropped), the outcome is kept in memory (`Sender.unsettled`),
retried briefly, and written before anything else at the next pass: the row is neither sent again
by this process nor left in `sending` until a restart (tests/test_db_faults.py).

A recipient is `channel:address` (models/outbox.py; `tg:` is Telegram's). A row whose channel is
not running in this process waits, untouched, until a process that has it starts.

Rates: each channel says its own (`Channel.limits`): messages a second over all its chats
(aiolimiter) and to one chat (a row whose chat was served too recently waits for the next pass, so
one slow chat does not hold up the fan-out). Telegram's come from `OUTBOX_RATE` (it allows about
30, the rest is left to interactive replies) and `OUTBOX_PER_CHAT_RATE`; 20 a minute per WeCom
robot. A flood wait (Telegram's 429) pauses that channel's sends for its `retry_after`; WeCom
errcode 45009 pauses that robot for a minute.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from aiolimiter import AsyncLimiter

from bot import wecom
from bot.chat import Button, Buttons, Refused, Transient
from models import clock, outbox
from models.outbox import NewMessage, Row

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
SETTLE_WAITS = (0.1, 0.4, 1.0)  # seconds between tries of writing a send's outcome in the same pass
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)
WECOM_RATE_WAIT = timedelta(seconds=60)

# Tests set this to raise at a named point ("claimed", "sent", "recorded"), as a crash would.
kill_hook: Callable[[str, Row], None] | None = None


def _kill_point(name: str, row: Row) -> None:
    if kill_hook is not None:
        kill_hook(name, row)


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... at most an hour."""
    return min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)


def tg(chat_id: int) -> str:
    return outbox.recipient("telegram", str(chat_id))


def buttons_payload(rows: list[list[tuple[str, str]]]) -> dict:
    """Buttons as an outbox row keeps them (the format is bot.chat.Buttons.payload's)."""
    return Buttons.of([[Button(text, data) for text, data in row] for row in rows]).payload()


@dataclass
class DrainResult:
    sent: int = 0
    failed: int = 0
    waiting: int = 0  # due, but held back by a rate limit this pass


class Sender:
    """One per application (`sender_for(app)`); keeps the rate-limit state between passes."""

    def __init__(self, app, http: httpx.AsyncClient | None = None) -> None:  # noqa: ANN001
        self.app = app
        self.http = http
        self.limiters: dict[str, AsyncLimiter] = {}  # channel -> its overall rate (the channel's own limits)
        self.last_sent: dict[str, datetime] = {}
        self.robot_sends: dict[str, deque[datetime]] = {}
        self.paused: dict[str, datetime] = {}  # a channel or a wecom recipient -> until
        self.lock = asyncio.Lock()
        # Outcomes of sends that could not be written yet (row id -> the write): the row stays
        # `sending`, so no pass claims it again; each pass first writes these.
        self.unsettled: dict[int, Callable[[object], Awaitable[None]]] = {}

    # -- rate state ------------------------------------------------------------------------------

    def _held(self, row: Row, now: datetime) -> bool:
        channel, _address = outbox.split_recipient(row.recipient)
        if channel == outbox.WECOM_ROBOT:
            if self.paused.get(row.recipient, now) > now:
                return True
            window = self.robot_sends.setdefault(row.recipient, deque())
            while window and now - window[0] >= timedelta(minutes=1):
                window.popleft()
            return len(window) >= wecom.PER_MINUTE
        if channel not in self.app.channels or self.paused.get(channel, now) > now:
            return True
        last = self.last_sent.get(row.recipient)
        gap = timedelta(seconds=1 / self.app.channels[channel].limits.per_chat_per_second)
        return last is not None and now - last < gap

    def _note_sent(self, row: Row, now: datetime) -> None:
        self.last_sent[row.recipient] = now
        if outbox.split_recipient(row.recipient)[0] == outbox.WECOM_ROBOT:
            self.robot_sends.setdefault(row.recipient, deque()).append(now)

    # -- the pass --------------------------------------------------------------------------------

    async def _settle(self, row_id: int, write: Callable[[object], Awaitable[None]], waits: tuple[float, ...] = SETTLE_WAITS) -> bool:
        """Write a send's outcome (`write(session)`); on a database error try again after each of
        `waits`, then keep it for the next pass. The send happened: its outcome must not be lost."""
        for wait in (*waits, None):
            try:
                async with self.app.db.session() as session:
                    await write(session)
            except Exception:  # noqa: BLE001 - locked, connection dropped: the database comes back
                if wait is None:
                    log.warning("could not record the outcome of outbox row %s; kept for the next pass", row_id, exc_info=True)
                    self.unsettled[row_id] = write
                    return False
                await asyncio.sleep(wait)
            else:
                self.unsettled.pop(row_id, None)
                return True
        return False

    async def drain(self, limit: int = 500) -> DrainResult:
        async with self.lock:
            result = DrainResult()
            for row_id, write in list(self.unsettled.items()):
                if not await self._settle(row_id, write, waits=()):
                    return result  # the database still refuses writes: send nothing we could not record
            async with self.app.db.session() as session:
                rows = await outbox.due(session, clock.now(), limit)
            served: set[str] = set()
            for row in rows:
                now = clock.now()
                if row.recipient in served or self._held(row, now):
                    result.waiting += 1
                    continue
                async with self.app.db.session() as session:
                    if not await outbox.claim(session, row.id):
                        continue  # someone else has it
                _kill_point("claimed", row)
                served.add(row.recipient)
                ok = await self._try(row, result)
                if ok:
                    self._note_sent(row, clock.now())
                if row.id in self.unsettled:
                    break  # the database refuses writes: send nothing more whose outcome could not be kept
            return result

    async def _try(self, row: Row, result: DrainResult) -> bool:
        attempts = row.attempts + 1
        channel, address = outbox.split_recipient(row.recipient)
        try:
            if channel == outbox.WECOM_ROBOT:
                await self._send_wecom(row)
            else:
                await self._limiter(channel).acquire()
                await self._send(channel, address, row)
        except Transient as exc:
            if exc.retry_after is not None:  # a flood wait: the whole channel pauses, the row loses no attempt
                until = clock.now() + timedelta(seconds=exc.retry_after)
                self.paused[channel] = until
                note = f"429 flood wait {exc.retry_after:g} s"
                await self._settle(row.id, lambda session: outbox.give_back(session, row.id, until, note))
                result.waiting += 1
                return False
            await self._fail(row, f"{type(exc).__name__}: {str(exc)[:200]}", retry=attempts < MAX_ATTEMPTS, attempts=attempts)
            result.failed += 1
            return False
        except Refused as exc:  # blocked, chat gone, bad text: trying again changes nothing
            await self._fail(row, f"{type(exc).__name__}: {exc}", retry=False)
            result.failed += 1
            return False
        except wecom.WeComError as exc:
            await self._wecom_error(row, exc, attempts)
            result.failed += 1
            return False
        except (httpx.HTTPError, OSError) as exc:  # a robot's outage, 5xx, timeout (the window), dropped connection
            await self._fail(row, f"{type(exc).__name__}: {str(exc)[:200]}", retry=attempts < MAX_ATTEMPTS, attempts=attempts)
            result.failed += 1
            return False
        _kill_point("sent", row)
        sent_at = clock.now()
        await self._settle(row.id, lambda session: outbox.mark_sent(session, row.id, sent_at))
        _kill_point("recorded", row)
        result.sent += 1
        return True

    def _limiter(self, channel: str) -> AsyncLimiter:
        if channel not in self.limiters:
            self.limiters[channel] = AsyncLimiter(self.app.channels[channel].limits.per_second, 1)
        return self.limiters[channel]

    async def _send(self, channel: str, address: str, row: Row) -> None:
        """Through the channel adapter; the buttons are stored neutral and rendered by it."""
        adapter = self.app.channels[channel]
        markup = Buttons.from_payload(row.payload)
        if row.image is not None:
            await adapter.send_photo(address, row.image, row.body or None, markup)
        else:
            await adapter.send(address, row.body, markup)

    async def _fail(self, row: Row, error: str, *, retry: bool, attempts: int = 0) -> None:
        retry_at = clock.now() + backoff(attempts) if retry else None
        if not retry:
            log.warning("outbox row %s (%s to %s) gave up: %s", row.id, row.kind, row.recipient, error)
        await self._settle(row.id, lambda session: outbox.mark_failed(session, row.id, error, retry_at))

    # -- WeCom ---------------------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self.http is None:
            self.http = httpx.AsyncClient()
        return self.http

    async def _send_wecom(self, row: Row) -> None:
        url = wecom.robots(self.app.settings.wecom_robots).get(row.recipient.removeprefix("wecom:"))
        if url is None:
            raise wecom.WeComError(ERR_NOT_CONFIGURED, "robot no longer configured")
        message = wecom.image_message(row.image) if row.image is not None else wecom.markdown_message(row.body)
        await wecom.post(self._client(), url, message)

    async def _wecom_error(self, row: Row, exc: wecom.WeComError, attempts: int) -> None:
        if exc.errcode == wecom.ERR_RATE_LIMIT:
            until = clock.now() + WECOM_RATE_WAIT
            self.paused[row.recipient] = until
            note = f"errcode {exc.errcode}: rate limit, waiting"
            await self._settle(row.id, lambda session: outbox.give_back(session, row.id, until, note))
            return
        if exc.errcode in (wecom.ERR_BAD_KEY, ERR_NOT_CONFIGURED):
            await self._fail(row, f"errcode {exc.errcode}", retry=False)
            await disable_robot(self.app, row.recipient, exc.errcode)
            return
        await self._fail(row, f"errcode {exc.errcode}", retry=attempts < MAX_ATTEMPTS, attempts=attempts)


ERR_NOT_CONFIGURED = -93000  # ours: the robot was removed from WECOM_ROBOTS


async def disable_robot(app, recipient: str, errcode: int) -> None:  # noqa: ANN001
    """Stop using a robot (its other rows die) and tell the admins, once, at once."""
    from bot.i18n import gettext_for, resolve_language
    from models.reminders import admins, disable_channel

    now = clock.now()
    scopes = [scope for scope, urls in app.settings.wecom_robots.items() for u in urls if wecom.recipient(u) == recipient]
    async with app.db.session() as session:
        if not await disable_channel(session, recipient, f"errcode {errcode}", now):
            return
        await outbox.kill_recipient(session, recipient, f"robot disabled (errcode {errcode})")
        messages = []
        for admin in await admins(session):
            if admin.recipient is None:
                continue
            _ = gettext_for(resolve_language(admin.language, None, app.settings.default_language))
            text = _("⚠️ A WeCom group robot ({robot}, for {scope}) refused its key (errcode {code}); gridbot stopped using it. "
                     "Put a valid webhook URL in WECOM_ROBOTS and restart.").format(
                robot=recipient.removeprefix("wecom:"), scope=", ".join(scopes) or "?", code=errcode)
            messages.append(NewMessage("wecom_disabled", recipient.removeprefix("wecom:"), admin.recipient, text, urgent=True))
        await outbox.enqueue(session, messages)
    log.error("WeCom robot %s disabled after errcode %s", recipient, errcode)


async def alert_admins(app, kind: str, message: str, **fields: object) -> None:  # noqa: ANN001
    """An urgent outbox message to every active admin, in their language (`message` is an N_() text,
    formatted with `fields`). Never raises: an alert must not take down what raised it."""
    from bot.i18n import gettext_for, resolve_language
    from models.reminders import admins

    try:
        async with app.db.session() as session:
            messages = []
            for admin in await admins(session):
                if admin.recipient is None:
                    continue
                _ = gettext_for(resolve_language(admin.language, None, app.settings.default_language))
                messages.append(NewMessage(kind, clock.now().isoformat(timespec="seconds"), admin.recipient,
                                           _(message).format(**fields), urgent=True))
            await outbox.enqueue(session, messages)
    except Exception:  # noqa: BLE001
        log.exception("could not queue the admins' alert %s", kind)


def sender_for(app) -> Sender:  # noqa: ANN001
    sender = getattr(app, "outbox_sender", None)
    if sender is None:
        sender = Sender(app)
        app.outbox_sender = sender
    return sender


async def drain(app) -> DrainResult:  # noqa: ANN001
    return await sender_for(app).drain()


async def drain_job(runtime) -> None:  # noqa: ANN001 - bot.runtime.Runtime
    await drain(runtime)
