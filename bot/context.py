"""The one custom context type every handler receives."""

from __future__ import annotations

from typing import TYPE_CHECKING

from telegram.ext import CallbackContext, ExtBot

from bot.i18n import gettext_for, ngettext_for

if TYPE_CHECKING:
    from bot.app import GridApplication
    from bot.db import Database
    from bot.settings import Settings
    from models.users import Member


class GridContext(CallbackContext[ExtBot, dict, dict, dict]):
    """Adds the caller (`member`, set by the access gate), their language and the app's services."""

    def __init__(self, application: GridApplication, chat_id: int | None = None, user_id: int | None = None) -> None:
        super().__init__(application, chat_id=chat_id, user_id=user_id)  # type: ignore[arg-type]
        self.member: Member | None = None
        self.lang: str = application.settings.default_language
        self.notice: str | None = None  # text for answerCallbackQuery, set by a button handler

    @property
    def app(self) -> GridApplication:
        return self.application  # type: ignore[return-value]

    @property
    def settings(self) -> Settings:
        return self.app.settings

    @property
    def db(self) -> Database:
        return self.app.db

    def _(self, message: str) -> str:
        """Translate into the caller's language."""
        return gettext_for(self.lang)(message)

    def n_(self, singular: str, plural: str, n: int) -> str:
        """The plural form for `n` in the caller's language (extracted with the keyword n_:1,2)."""
        return ngettext_for(self.lang)(singular, plural, n)

    @property
    def draft(self) -> dict | None:
        """The open guided-flow draft (one at a time per user), a JSON-able dict."""
        return None if self.user_data is None else self.user_data.get("draft")

    @draft.setter
    def draft(self, value: dict | None) -> None:
        assert self.user_data is not None
        if value is None:
            self.user_data.pop("draft", None)
        else:
            self.user_data["draft"] = value
