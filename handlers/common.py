"""What every handler shares: the access gate, role checks, replies that escape user text."""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from telegram import Update
from telegram.error import BadRequest
from telegram.ext import ApplicationHandlerStop

from bot.context import GridContext
from bot.i18n import N_, resolve_language
from models.tables import Role
from models.users import get_member

log = logging.getLogger(__name__)



def esc(text: str) -> str:
    """Escape user text for HTML messages (quotes need no escaping outside attributes)."""
    return html.escape(text, quote=False)


async def reply(update: Update, context: GridContext, text: str, **kwargs) -> None:  # noqa: ANN003
    """Send `text` (HTML; escape user text with `esc`) to the chat the update came from."""
    chat = update.effective_chat
    if chat is not None:
        await context.bot.send_message(chat.id, text, **kwargs)


async def gate(update: Update, context: GridContext) -> None:
    """Runs before every handler: who is this, in which language, and may they use the bot?

    Group chats, channels and bots are ignored. Unregistered and deactivated users get an
    explanation and nothing else works for them, except /start (to join with an invitation).
    """
    user, chat = update.effective_user, update.effective_chat
    if user is None or user.is_bot or (chat is not None and chat.type != "private"):
        raise ApplicationHandlerStop
    async with context.db.session() as session:
        member = await get_member(session, user.id)
    context.member = member
    context.lang = resolve_language(member.language if member else None, user.language_code, context.settings.default_language)

    if update.edited_message is not None:
        await reply(update, context, context._("Editing a sent message changes nothing here. Please send a new message instead."))
        raise ApplicationHandlerStop
    if member is not None and member.active:
        return
    message = update.message
    if message is not None and message.text and message.text.split()[0].split("@")[0] == "/start":
        return  # /start handles joining (and refuses politely where it must)
    text = (
        context._("Your gridbot account has been deactivated. Ask your street office if this is a mistake.")
        if member is not None
        else not_registered_text(context)
    )
    if update.callback_query is not None:
        await update.callback_query.answer(text[:190], show_alert=True)
    else:
        await reply(update, context, text)
    raise ApplicationHandlerStop


def not_registered_text(context: GridContext) -> str:
    return context._(
        "You are not registered with gridbot yet.\n"
        "Ask your street office administrator for an invitation link, then open it "
        "(or send /start followed by the invitation code)."
    )


def requires(*roles: Role) -> Callable:
    """Decorator: only members with one of `roles` may run the command."""

    def wrap(fn: Callable[[Update, GridContext], Awaitable[object]]) -> Callable:
        @functools.wraps(fn)
        async def run(update: Update, context: GridContext) -> object:
            member = context.member
            if member is None or not member.active or member.role not in roles:
                await reply(update, context, context._("This command is not available for your role. Send /help to see yours."))
                return None
            return await fn(update, context)

        return run

    return wrap


ROLE_NAMES = {Role.WORKER: N_("grid worker"), Role.SUPERVISOR: N_("supervisor"), Role.ADMIN: N_("administrator")}


def role_name(context: GridContext, role: Role) -> str:
    return context._(ROLE_NAMES[role])


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


async def edit_message(update: Update, text: str | None = None, reply_markup=None) -> None:  # noqa: ANN001
    """Edit the message a button sits on; an edit to the same content (a repeated tap) is fine."""
    query = update.callback_query
    assert query is not None
    try:
        if text is None:
            await query.edit_message_reply_markup(reply_markup)
        else:
            await query.edit_message_text(text, reply_markup=reply_markup)
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():
            raise


def local_time(context: GridContext, at: datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A moment in the office's time zone."""
    return at.astimezone(context.settings.tz).strftime(fmt)
