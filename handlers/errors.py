"""Unexpected errors: apologise, keep the draft and step, log with the event id, alert admins sparingly."""

from __future__ import annotations

import html
import logging
import traceback
from datetime import timedelta

from bot.chat import Inbound
from bot.context import GridContext
from bot.db import is_transient
from bot.i18n import gettext_for, resolve_language
from models import clock
from models.outbox import recipient, split_recipient
from models.users import active_admin_recipients, get_member

log = logging.getLogger(__name__)
ALERT_INTERVAL = timedelta(minutes=10)


def error_kind(exc: BaseException) -> str:
    """Exception type plus where it was raised: one kind per distinct bug."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__}@{where}"


async def on_error(event: Inbound | None, context: GridContext) -> None:
    exc = context.error
    assert exc is not None
    event_id = event.event_id if event is not None else None
    log.error("error while handling update %s: %s", event_id, error_kind(exc), exc_info=exc)
    if event is not None:
        context.lang = await _language_of(context, event)
        # Busy/locked, a dropped connection, a deadlock: the event's transaction was rolled back
        # whole and the conversation did not move, so the same input again is the right answer.
        if not is_transient(exc):
            text = context._("Sorry, something went wrong on our side. Your form and its answers so far are kept; please try again.")
        elif event.is_button:
            text = context._("The database is busy right now, so that button did nothing. Your form is kept: press it again in a moment.")
        else:
            text = context._("The database is busy right now. Nothing was lost: please send that again in a moment.")
        try:
            await context.toast()
            await context.reply(text)
        except Exception:  # noqa: BLE001 - the error handler must never raise itself
            log.warning("could not send the apology for event %s", event_id, exc_info=True)
    await _alert_admins(context, exc, event_id)


async def _language_of(context: GridContext, event: Inbound) -> str:
    """The member may not be known yet (the gate may be what failed): find the language again."""
    chosen = context.member.language if context.member else None
    if context.member is None:
        try:
            async with context.db.session() as session:
                member = await get_member(session, event.user_key, context.channel.name)
            chosen = member.language if member else None
        except Exception:  # noqa: BLE001 - the database may be down
            log.info("language lookup failed; using the platform's language")
    return resolve_language(chosen, event.language, context.settings.default_language)


async def _alert_admins(context: GridContext, exc: BaseException, event_id: str | None) -> None:
    kind = error_kind(exc)
    last_alerts: dict[str, object] = context.app.__dict__.setdefault("_last_error_alerts", {})
    now = clock.now()
    last = last_alerts.get(kind)
    if last is not None and now - last < ALERT_INTERVAL:  # type: ignore[operator]
        return
    last_alerts[kind] = now
    try:
        async with context.db.session() as session:
            admins = await active_admin_recipients(session)
    except Exception:  # noqa: BLE001 - the database may be what failed
        admins = [recipient("telegram", str(i)) for i in context.settings.admin_telegram_ids]
        admins += [recipient(channel, key) for channel, key in context.settings.admins]
    _ = gettext_for(context.settings.default_language)
    text = _("⚠️ gridbot error {kind} (update {update}). Details are in the log.").format(kind=kind, update=event_id)
    for admin in admins:
        name, address = split_recipient(admin)
        channel = context.app.channels.get(name)
        if channel is None:
            continue  # an admin on a channel this process does not run
        try:
            await channel.send(address, html.escape(text, quote=False))  # the kind may hold <lambda>
        except Exception:  # noqa: BLE001
            log.warning("could not alert an admin chat", exc_info=True)
