"""The one context every handler receives: the caller, their language, their state, the services,
and the ways to answer on the channel the event came from (with its fallbacks)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.chat import Channel, ChannelError, Inbound, Markup, Refused
from bot.i18n import gettext_for, ngettext_for

if TYPE_CHECKING:
    from bot.db import Database
    from bot.media import MediaStore
    from bot.settings import Settings
    from models.users import Member

log = logging.getLogger(__name__)


class GridContext:
    """Built by the engine for one event (or for a job that speaks to one person)."""

    def __init__(self, app, channel: Channel, event: Inbound | None, user_data: dict, *, address: str | None = None) -> None:  # noqa: ANN001
        self.app = app  # the running application: settings, db, media, scheduler
        self.channel = channel
        self.event = event
        self.user_data = user_data
        self.address = address if address is not None else (event.user_key if event else "")  # private chats: the person's id
        self.member: Member | None = None
        self.lang: str = app.settings.default_language
        self.notice: str | None = None  # the answer to a pressed button, set by a button handler
        self.error: BaseException | None = None
        self.timed_out: str | None = None  # the flow a timeout closed just before this event (set by the gate)
        self._answered = False

    @property
    def settings(self) -> Settings:
        return self.app.settings

    @property
    def db(self) -> Database:
        return self.app.db

    @property
    def media(self) -> MediaStore:
        return self.app.media

    @property
    def args(self) -> list[str]:
        return self.event.args if self.event is not None else []

    @args.setter
    def args(self, value: list[str]) -> None:
        if self.event is not None:
            self.event.args = value

    def _(self, message: str) -> str:
        """Translate into the caller's language."""
        return gettext_for(self.lang)(message)

    def n_(self, singular: str, plural: str, n: int) -> str:
        """The plural form for `n` in the caller's language (extracted with the keyword n_:1,2)."""
        return ngettext_for(self.lang)(singular, plural, n)

    @property
    def draft(self) -> dict | None:
        """The open guided-flow draft (one at a time per user), a JSON-able dict."""
        return self.user_data.get("draft")

    @draft.setter
    def draft(self, value: dict | None) -> None:
        if value is None:
            self.user_data.pop("draft", None)
        else:
            self.user_data["draft"] = value

    # -- answering --------------------------------------------------------------------------------

    async def reply(self, text: str, markup: Markup = None) -> str | None:
        """Send rich text (escape user text with `esc`) to the person the event came from."""
        return await self.channel.send(self.address, text, markup)

    async def edit(self, text: str | None = None, markup: Markup = None) -> None:
        """Change the message the pressed button sits on: its text and buttons, or (text None) its
        buttons only. A channel that cannot edit gets the new text (or the new buttons) as a new
        message; removing buttons there is nothing to do (the old ones answer as expired)."""
        event = self.event
        if event is None or event.message_ref is None:
            if text is not None or markup is not None:
                await self.reply(text or "👇", markup)
            return
        if self.channel.abilities.edit:
            try:
                await self.channel.edit(self.address, event.message_ref, text, markup)
                return
            except Refused:  # too old to edit, or deleted: say it in a new message
                if text is None and markup is None:
                    return
                log.info("could not edit message %s; sending a new one", event.message_ref)
        if text is not None or markup is not None:
            await self.reply(text if text is not None else "👇", markup)

    async def toast(self, text: str | None = None, alert: bool = False) -> None:
        """Answer the pressed button once (a second answer is ignored). Where the channel shows no
        toasts, a notice with text comes as a message. A failure here is logged, never raised: the
        answer only ends the button's spinner and must not undo what the press did."""
        event = self.event
        if self._answered or event is None or event.kind != "button":
            return
        self._answered = True
        if self.channel.abilities.toast:
            try:
                await self.channel.toast(event, text[:190] if text else None, alert)
            except ChannelError as exc:
                log.info("could not answer a button press: %s", exc)
            return
        if text:
            try:
                await self.reply(text)
            except ChannelError as exc:
                log.info("could not tell the answer to a button press: %s", exc)

    async def send_to(self, address: str, text: str, markup: Markup = None) -> str | None:
        """Send to another person on this channel (raises ChannelError)."""
        return await self.channel.send(address, text, markup)
