"""What every handler shares: the access gate, role checks, escaping user text."""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from bot.chat import COMMAND, Inbound
from bot.context import GridContext
from bot.engine import Stop
from bot.i18n import N_, resolve_language
from models.tables import Role
from models.users import get_member

log = logging.getLogger(__name__)

TIMED_OUT_KEY = "timed_out"  # user_data: {flow} of the form a timeout closed, until the person's next event


def esc(text: str) -> str:
    """Escape user text for rich text (quotes need no escaping outside attributes)."""
    return html.escape(text, quote=False)


async def gate(event: Inbound, context: GridContext) -> None:
    """Runs before every handler: who is this, in which language, and may they use the bot?

    Unregistered and deactivated users get an explanation and nothing else works for them, except
    /start (to join with an invitation). (Group chats, channels and bots never reach the engine:
    each channel adapter passes private chats of people only.)
    """
    closed = context.user_data.pop(TIMED_OUT_KEY, None)
    context.timed_out = closed.get("flow") if isinstance(closed, dict) else None
    async with context.db.session() as session:
        member = await get_member(session, event.user_key, context.channel.name)
    context.member = member
    context.lang = resolve_language(member.language if member else None, event.language, context.settings.default_language)

    if event.edited:
        await context.reply(context._("Editing a sent message changes nothing here. Please send a new message instead."))
        raise Stop
    if member is not None and member.active:
        return
    if event.kind == COMMAND and (event.command == "start" or (event.command == "link" and member is None)):
        return  # /start joins with an invitation, /link CODE with another platform's account (each refuses politely where it must)
    text = (
        context._("Your gridbot account has been deactivated. Ask your street office if this is a mistake.")
        if member is not None
        else not_registered_text(context)
    )
    if event.is_button:
        await context.toast(text[:190], alert=True)
    else:
        await context.reply(text)
    raise Stop


def address_of(who, channel: str) -> str:  # noqa: ANN001 - a Member, or a models row with `key_on`
    """Where someone is reached on `channel` (their key there: a Telegram chat id); "" when they do
    not use that channel, which every channel refuses as it refuses a chat that is gone (Blocked)."""
    return who.key_on(channel) or ""


def not_registered_text(context: GridContext) -> str:
    return context._(
        "You are not registered with gridbot yet.\n"
        "Ask your street office administrator for an invitation link, then open it "
        "(or send /start followed by the invitation code)."
    )


def requires(*roles: Role) -> Callable:
    """Decorator: only members with one of `roles` may run the command."""

    def wrap(fn: Callable[[Inbound, GridContext], Awaitable[object]]) -> Callable:
        @functools.wraps(fn)
        async def run(event: Inbound, context: GridContext) -> object:
            member = context.member
            if member is None or not member.active or member.role not in roles:
                await context.reply(context._("This command is not available for your role. Send /help to see yours."))
                return None
            return await fn(event, context)

        return run

    return wrap


ROLE_NAMES = {Role.WORKER: N_("grid worker"), Role.SUPERVISOR: N_("supervisor"), Role.ADMIN: N_("administrator")}


def role_name(context: GridContext, role: Role) -> str:
    return context._(ROLE_NAMES[role])


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def local_time(context: GridContext, at: datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A moment in the office's time zone."""
    return at.astimezone(context.settings.tz).strftime(fmt)
