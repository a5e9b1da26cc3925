"""Unexpected errors: apologise, keep the draft and step, log with the update id, alert admins sparingly."""

from __future__ import annotations

import logging
import traceback
from datetime import timedelta

from telegram import Update

from bot.context import GridContext
from bot.db import is_transient
from bot.i18n import gettext_for, resolve_language
from models import clock
from models.users import active_admin_telegram_ids, get_member

log = logging.getLogger(__name__)
ALERT_INTERVAL = timedelta(minutes=10)


def error_kind(exc: BaseException) -> str:
    """Exception type plus where it was raised: one kind per distinct bug."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__}@{where}"


async def on_error(update: object, context: GridContext) -> None:
    exc = context.error
    assert exc is not None
    update_id = update.update_id if isinstance(update, Update) else None
    log.error("error while handling update %s: %s", update_id, error_kind(exc), exc_info=exc)
    if isinstance(update, Update) and update.effective_chat is not None:
        context.lang = await _language_of(context, update)
        # Busy/locked, a dropped connection, a deadlock: the update's transaction was rolled back
        # whole and the conversation did not move, so the same input again is the right answer.
        if not is_transient(exc):
            text = context._("Sorry, something went wrong on our side. Your form and its answers so far are kept; please try again.")
        elif update.callback_query is not None:
            text = context._("The database is busy right now, so that button did nothing. Your form is kept: press it again in a moment.")
        else:
            text = context._("The database is busy right now. Nothing was lost: please send that again in a moment.")
        try:
            if update.callback_query is not None:
                await update.callback_query.answer()
            await context.bot.send_message(update.effective_chat.id, text)
        except Exception:  # noqa: BLE001 - the error handler must never raise itself
            log.warning("could not send the apology for update %s", update_id, exc_info=True)
    await _alert_admins(context, exc, update_id)


async def _language_of(context: GridContext, update: Update) -> str:
    """Error handlers get a fresh context: find the user's language again (the database may be down)."""
    user = update.effective_user
    chosen = None
    if user is not None:
        try:
            async with context.db.session() as session:
                member = await get_member(session, user.id)
            chosen = member.language if member else None
        except Exception:  # noqa: BLE001
            log.info("language lookup failed; using the Telegram language")
    return resolve_language(chosen, user.language_code if user else None, context.settings.default_language)


async def _alert_admins(context: GridContext, exc: BaseException, update_id: int | None) -> None:
    kind = error_kind(exc)
    last_alerts: dict[str, object] = context.app.__dict__.setdefault("_last_error_alerts", {})
    now = clock.now()
    last = last_alerts.get(kind)
    if last is not None and now - last < ALERT_INTERVAL:  # type: ignore[operator]
        return
    last_alerts[kind] = now
    try:
        async with context.db.session() as session:
            admins = await active_admin_telegram_ids(session)
    except Exception:  # noqa: BLE001 - the database may be what failed
        admins = list(context.settings.admin_telegram_ids)
    _ = gettext_for(context.settings.default_language)
    text = _("⚠️ gridbot error {kind} (update {update}). Details are in the log.").format(kind=kind, update=update_id)
    for chat_id in admins:
        try:
            await context.bot.send_message(chat_id, text, parse_mode=None)
        except Exception:  # noqa: BLE001
            log.warning("could not alert an admin chat", exc_info=True)
