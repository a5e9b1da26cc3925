"""The conversation engine: every inbound event of every channel goes through `Engine.handle`.

Per (channel, person) it takes a lock, so one person's events are handled in order while other
people's run at the same time; drops an event already handled; builds the context; runs the
access gate; routes the event (the open flow's step, another flow's entry, a command, a button
outside any flow, the fallbacks); then writes the person's state and the event's id in one
transaction. The person's state (`user_data`, with the open draft) is the only place a flow's
position is kept: `draft["step"]`.

Handled once: an event whose id was already handled (a webhook retry; after a crash, polling gets
again what the platform was not yet told was received) is skipped. The id is written in the same
transaction as the state the event produced, so after a crash either both are saved or neither,
and the event is then handled again from the state before it. Records a flow wrote in its own
transactions (a visit, a patrol) are idempotent by draft id, which covers that gap. A bounded
in-memory record answers for the ids seen by this process and for those whose write is still
pending (the database may be down); an id above the highest ever recorded needs no look-up.

Timeouts: an open draft gets a timer at its last activity plus the conversation timeout (also
after a restart, from the stored drafts); when it fires, under the person's lock, the flow closes
the draft and says so, and the state is written at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.chat import BUTTON, COMMAND, TEXT, Channel, Inbound
from bot.context import GridContext
from models import clock, state

log = logging.getLogger(__name__)

Handler = Callable[[Inbound, GridContext], Awaitable[object]]
PROCESSED_KEEP = timedelta(hours=48)
PRUNE_EVERY = timedelta(hours=1)
FLUSH_EVERY = timedelta(seconds=5)  # how soon a state whose write failed is tried again without a new event
RECENT_EVENTS = 4096  # event ids remembered in memory (the database remembers them all, for 48 hours)


class Stop(Exception):  # noqa: N818 - a signal, not an error
    """Raised by the gate: this event goes no further."""


@dataclass(frozen=True)
class Command:
    """`/name …` from a person outside a flow that claims it."""

    name: str
    handler: Handler


@dataclass(frozen=True)
class OnButton:
    """A pressed button whose data matches `pattern` (outside the open flow's own buttons)."""

    pattern: str
    handler: Handler


@dataclass(frozen=True)
class OnFile:
    """A document sent outside any flow that takes it."""

    handler: Handler


class FlowRoutes(Protocol):
    name: str

    def route(self, event: Inbound, ctx: GridContext) -> Handler | None:
        """The handler of an event while this flow's draft is open (its step, /cancel, …)."""

    def entry(self, event: Inbound) -> Handler | None:
        """The handler that opens this flow for an event (its command, its buttons)."""

    def takes_text(self, ctx: GridContext) -> bool:
        """Whether the draft's current step takes typed text (then a typed number is text, not a button's)."""

    def timer_due(self, settings, draft: dict) -> datetime:  # noqa: ANN001 - bot.settings.Settings
        """When the draft expires if nothing happens meanwhile."""

    async def on_timer(self, ctx: GridContext, draft: dict) -> None:
        """The draft's timer fired: close it if it has really expired."""


@dataclass
class Routes:
    gate: Handler
    flows: dict[str, FlowRoutes]
    commands: dict[str, Handler]
    buttons: list[tuple[re.Pattern[str], Handler]]
    files: Handler | None
    cancel_outside: Handler
    stale_button: Handler
    anything_else: Handler
    on_error: Callable[[Inbound | None, GridContext], Awaitable[None]]
    channels: dict[str, Channel] = field(default_factory=dict)

    def find(self, event: Inbound, ctx: GridContext) -> Handler | None:
        draft = ctx.draft
        active = self.flows.get(draft["flow"]) if draft else None
        if event.kind == TEXT and event.choice and not (active is not None and active.takes_text(ctx)):
            # A number replied to a numbered list of buttons, where no typed text is awaited: that button.
            event.kind, event.button = BUTTON, event.choice
        if active is not None:
            handler = active.route(event, ctx)
            if handler is not None:
                return handler
        for flow in self.flows.values():
            if flow is not active and (handler := flow.entry(event)) is not None:
                return handler
        if event.kind == COMMAND:
            if event.command in self.commands:
                return self.commands[event.command]
            if event.command == "cancel":
                return self.cancel_outside
        elif event.kind == BUTTON:
            for pattern, handler in self.buttons:
                if pattern.search(event.button):
                    return handler
            return self.stale_button
        elif event.file is not None and self.files is not None:
            return self.files
        return self.anything_else


def state_kind(channel: str) -> str:
    """Where a person's state is stored (Telegram's kind predates the other channels)."""
    return "user_data" if channel == "telegram" else f"user_data:{channel}"


class Engine:
    def __init__(self, app, routes: Routes) -> None:  # noqa: ANN001
        self.app = app
        self.routes = routes
        self.states: dict[tuple[str, str], dict] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._waiting: dict[tuple[str, str], int] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._pending: dict[tuple[str, str], str | None] = {}  # state written after a failed write (JSON, None = delete)
        self._processed: list[tuple[int, int, str]] = []
        self._recent: OrderedDict[tuple[int, int], str] = OrderedDict()
        self._high_water: dict[int, int] = {}
        self._pruned_at: datetime | None = None
        self._write_lock = asyncio.Lock()
        self._staged = 0  # writes asked for so far
        self._written = 0  # of those, the ones a committed transaction carried

    # -- state ------------------------------------------------------------------------------------

    async def load(self, channel: str) -> None:
        """Read every stored state of a channel (once, at start-up) and start the drafts' timers."""
        kind = state_kind(channel)
        async with self.app.db.session() as session:
            rows = await state.load_kind(session, kind)
        for key, data in rows.items():
            if isinstance(data, dict):
                self.states.setdefault((channel, key), data)
        for (ch, key), data in list(self.states.items()):
            if ch == channel and data.get("draft"):
                self.start_timer((ch, key), minimum=timedelta(seconds=1))

    def state(self, channel: str, user_key: str) -> dict:
        return self.states.setdefault((channel, user_key), {})

    def drop(self, channel: str, user_key: str) -> None:
        """Forget a person's state (it is deleted with the next write)."""
        key = (channel, user_key)
        self.states.pop(key, None)
        self._pending[key] = None
        self._cancel_timer(key)

    async def write(self, key: tuple[str, str] | None = None, processed: tuple[int, int, str] | None = None) -> None:
        """Write `key`'s state and `processed` (and whatever an earlier failed write left) durably.

        Group commit: while one transaction is being written, the states staged meanwhile wait and
        then go together in the next one, so a hundred people answering at once cost a few
        transactions, not a hundred; each caller returns once a transaction holding its state has
        committed. On failure everything stays pending for the next write, and the caller is told."""
        if key is not None:
            data = self.states.get(key)
            self._pending[key] = json.dumps(data, ensure_ascii=False, default=str) if data else None
        if processed is not None:
            self._processed.append(processed)
        ticket = None  # a flush: only what earlier failed writes left
        if key is not None or processed is not None:
            self._staged += 1
            ticket = self._staged
        async with self._write_lock:
            if ticket is not None and self._written >= ticket:
                return  # a transaction that began after this was staged carried it, and committed
            await self._write_staged()

    async def _write_staged(self) -> None:
        if not self._pending and not self._processed:
            self._written = self._staged
            return
        upto = self._staged
        pending, self._pending = self._pending, {}
        done, self._processed = self._processed, []
        now = clock.now()
        prune = self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY
        try:
            async with self.app.db.session() as session:
                await state.remove_many(session, [(state_kind(ch), k) for (ch, k), blob in pending.items() if blob is None])
                await state.put_many(session, [(state_kind(ch), k, json.loads(blob)) for (ch, k), blob in pending.items() if blob is not None])
                await state.record_processed(session, done, now)
                if prune:
                    await state.prune_processed(session, now - PROCESSED_KEEP)
        except Exception:
            self._pending = {**pending, **self._pending}  # newer states staged meanwhile win
            self._processed = done + self._processed
            raise
        self._written = upto
        if prune:
            self._pruned_at = now

    async def flush(self) -> None:
        """Write whatever an earlier failed write left (also every FLUSH_EVERY while running)."""
        await self.write()

    def start(self) -> None:
        async def flusher() -> None:
            while True:
                await asyncio.sleep(FLUSH_EVERY.total_seconds())
                if self._pending or self._processed:
                    try:
                        await self.flush()
                    except Exception:  # noqa: BLE001 - kept for the next round
                        log.warning("could not write the pending states; trying again in %s s", FLUSH_EVERY.total_seconds(), exc_info=True)

        self._flusher = asyncio.ensure_future(flusher())

    async def stop(self) -> None:
        """Stop the timers and the flusher; one last try at what is pending."""
        self.stop_timers()
        flusher = getattr(self, "_flusher", None)
        if flusher is not None:
            flusher.cancel()
            self._flusher = None
        try:
            await self.flush()
        except Exception:  # noqa: BLE001
            log.warning("could not write the pending states on the way down", exc_info=True)

    # -- handled once -------------------------------------------------------------------------------

    async def _already_handled(self, event: Inbound) -> bool:
        scope, number = event.dedupe  # type: ignore[misc]
        if (scope, number) in self._recent:
            return self._recent[(scope, number)] == event.digest
        if (scope, number, event.digest) in self._processed:
            return True
        try:
            if scope not in self._high_water:
                async with self.app.db.session() as session:
                    self._high_water[scope] = await state.highest_processed(session, scope, clock.now() - PROCESSED_KEEP)
            if number > self._high_water[scope]:
                return False  # above every id on record: new, no look-up needed
            async with self.app.db.session() as session:
                return await state.was_processed(session, scope, number, event.digest, clock.now() - PROCESSED_KEEP)
        except Exception:  # noqa: BLE001 - the database may be down: handle it (saves are idempotent anyway)
            log.warning("could not check whether event %s was handled already", event.event_id, exc_info=True)
            return False

    def _remember(self, event: Inbound) -> None:
        scope, number = event.dedupe  # type: ignore[misc]
        self._recent[(scope, number)] = event.digest
        self._recent.move_to_end((scope, number))
        while len(self._recent) > RECENT_EVENTS:
            self._recent.popitem(last=False)
        if scope in self._high_water:
            self._high_water[scope] = max(self._high_water[scope], number)

    # -- one person at a time -------------------------------------------------------------------------

    async def _locked(self, key: tuple[str, str], work: Callable[[], Awaitable[None]]) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with lock:
                await work()
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:  # nobody else queued for this person: the lock can go
                del self._waiting[key]
                self._locks.pop(key, None)

    async def handle(self, channel: Channel, event: Inbound) -> None:
        key = (event.channel, event.user_key)
        await self._locked(key, lambda: self._handle(channel, event, key))

    async def _handle(self, channel: Channel, event: Inbound, key: tuple[str, str]) -> None:
        if event.dedupe is not None:
            if await self._already_handled(event):
                log.info("event %s was delivered again; it was handled already, so it is skipped", event.event_id)
                return
            self._remember(event)
        ctx = GridContext(self.app, channel, event, self.state(*key))
        try:
            try:
                await self.routes.gate(event, ctx)
                handler = self.routes.find(event, ctx)
                if handler is not None:
                    await handler(event, ctx)
            except Stop:
                pass
            except Exception as exc:  # noqa: BLE001 - told to the user and the admins, never raised to the channel
                ctx.error = exc
                await self.routes.on_error(event, ctx)
        finally:
            processed = (event.dedupe[0], event.dedupe[1], event.digest) if event.dedupe is not None else None
            await self._save(key, ctx, processed, f"event {event.event_id}")

    async def _save(self, key: tuple[str, str], ctx: GridContext, processed: tuple[int, int, str] | None, what: str) -> None:
        """After an event or a timeout: the draft's timer set anew (or dropped with the draft), then the
        state written; a failed write stays pending and goes with the next one."""
        if not self.states.get(key):
            self.states.pop(key, None)
        if ctx.draft is not None:
            self.start_timer(key)
        else:
            self._cancel_timer(key)
        try:
            await self.write(key, processed)
        except Exception:
            log.exception("could not write the state after %s", what)

    # -- timers ------------------------------------------------------------------------------------

    def start_timer(self, key: tuple[str, str], minimum: timedelta = timedelta(seconds=1)) -> None:
        draft = self.states.get(key, {}).get("draft")
        flow = self.routes.flows.get(draft["flow"]) if draft else None
        if flow is None or key[0] not in self.routes.channels:
            return
        delay = max(flow.timer_due(self.app.settings, draft) - clock.now(), minimum)
        self._cancel_timer(key)
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay.total_seconds(), lambda: asyncio.ensure_future(self._fire(key, draft["id"])))

    def _cancel_timer(self, key: tuple[str, str]) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def reset_timers(self) -> None:
        """Set every draft's timer again from the clock (a tool moved the clock: the sandbox's /time)."""
        for key in list(self._timers):
            self.start_timer(key, minimum=timedelta(0))

    def stop_timers(self) -> None:
        for key in list(self._timers):
            self._cancel_timer(key)

    async def _fire(self, key: tuple[str, str], draft_id: str) -> None:
        async def work() -> None:
            self._timers.pop(key, None)
            data = self.states.get(key)
            draft = (data or {}).get("draft")
            if not draft or draft["id"] != draft_id or draft["flow"] not in self.routes.flows:
                return  # the person came back (or finished) since
            ctx = GridContext(self.app, self.routes.channels[key[0]], None, data, address=key[1])  # type: ignore[arg-type]
            try:
                await self.routes.flows[draft["flow"]].on_timer(ctx, draft)
            except Exception:
                log.exception("the timeout of draft %s failed", draft_id)
            await self._save(key, ctx, None, f"the timeout of draft {draft_id}")

        await self._locked(key, work)
