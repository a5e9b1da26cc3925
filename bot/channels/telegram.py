"""The Telegram channel: PTB for polling or webhook, AIORateLimiter, update parsing and sending.

Every update becomes a neutral `Inbound` event (bot/chat.py) handed to the engine; everything the
flows say is rendered here: rich text as Telegram HTML, `Buttons` as an inline keyboard,
`AskContact` as a one-time reply keyboard. PTB's own handlers, persistence and conversation
machinery are not used: the engine holds the state. Updates are processed concurrently (the
engine keeps each person's in order), so one person's slow step does not hold up the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    MessageEntity,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, Defaults
from telegram.request import BaseRequest, HTTPXRequest

from bot.chat import (
    BUTTON,
    COMMAND,
    CONTACT,
    FILE,
    LOCATION,
    OTHER,
    PHOTO,
    TEXT,
    Abilities,
    AskContact,
    Blocked,
    Buttons,
    ClearKeyboard,
    Contact,
    FileRef,
    Inbound,
    Markup,
    Refused,
    SendLimits,
    Transient,
)
from bot.db import Database
from bot.engine import Engine
from bot.runtime import Runtime
from bot.settings import Settings

log = logging.getLogger(__name__)

NAME = "telegram"
CAPTION_LIMIT = 1024  # characters of a photo's caption
CONCURRENT_UPDATES = 64  # updates in flight at once (each person's still one at a time, in order)


def update_digest(update: Update) -> str:
    return hashlib.sha256(json.dumps(update.to_dict(), sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:32]


def is_transient(exc: BaseException) -> bool:
    """A Telegram failure that trying again later can cure: an outage, a 5xx, a dropped connection,
    a timeout, a flood wait PTB's own retries did not outlast. Not a refusal (400, 403)."""
    return isinstance(exc, RetryAfter) or (isinstance(exc, NetworkError) and not isinstance(exc, BadRequest))


def neutral_error(exc: TelegramError) -> Exception:
    """The neutral error of a PTB one; its message keeps the PTB class (`NetworkError: Bad Gateway`) for the logs."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, RetryAfter):
        wait = exc.retry_after
        return Transient(message, retry_after=wait.total_seconds() if isinstance(wait, timedelta) else float(wait))
    if is_transient(exc):
        return Transient(message)
    if isinstance(exc, Forbidden):
        return Blocked(message)
    return Refused(message)


def _command(message, username: str) -> tuple[str, list[str]] | None:  # noqa: ANN001
    """As PTB's CommandHandler reads one: a bot_command entity at the start; `/x@otherbot` is no command of ours."""
    entities = message.entities or ()
    if not message.text or not entities or entities[0].type != MessageEntity.BOT_COMMAND or entities[0].offset != 0:
        return None
    head = message.text[1:entities[0].length].split("@")
    if len(head) > 1 and head[1].lower() != username.lower():
        return "", []
    return head[0].lower(), message.text.split()[1:]


def inbound(update: Update, bot_id: int, username: str) -> Inbound | None:
    """The neutral event of an update, or None for what gridbot ignores: groups, channels, bots."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or user.is_bot or (chat is not None and chat.type != "private"):
        return None
    base = {"channel": NAME, "user_key": str(user.id), "event_id": str(update.update_id), "name": user.full_name,
            "language": user.language_code, "dedupe": (bot_id, update.update_id), "digest": update_digest(update)}
    query = update.callback_query
    if query is not None:
        return Inbound(kind=BUTTON, button=query.data or "", message_ref=str(query.message.message_id) if query.message else None,
                       answer_token=query.id, **base)
    message = update.message or update.edited_message
    if message is None:
        return None
    base.update(edited=update.edited_message is not None, forwarded=message.forward_origin is not None,
                text=message.text or message.caption or "")
    command = _command(message, username)
    if command is not None:
        return Inbound(kind=COMMAND, command=command[0], args=command[1], **base)
    if message.photo:
        size = message.photo[-1]
        return Inbound(kind=PHOTO, photo=FileRef(size.file_id, size.file_unique_id, size=size.file_size or 0), **base)
    if message.document:
        doc = message.document
        ref = FileRef(doc.file_id, doc.file_unique_id, name=doc.file_name or "", mime=doc.mime_type or "", size=doc.file_size or 0)
        if (doc.mime_type or "").startswith("image"):
            photo = FileRef(doc.file_id, doc.file_unique_id, name=ref.name, mime=ref.mime, size=ref.size, as_file=True)
            return Inbound(kind=PHOTO, photo=photo, file=ref, **base)
        return Inbound(kind=FILE, file=ref, **base)
    if message.location:
        return Inbound(kind=LOCATION, location=(message.location.latitude, message.location.longitude), **base)
    if message.contact:
        own = message.contact.user_id == user.id
        return Inbound(kind=CONTACT, contact=Contact(message.contact.phone_number, own), **base)
    if message.text:
        return Inbound(kind=TEXT, **base)
    return Inbound(kind=OTHER, **base)


def render(markup: Markup):  # noqa: ANN201 - a PTB reply markup
    if isinstance(markup, Buttons):
        return InlineKeyboardMarkup([[InlineKeyboardButton(b.text, callback_data=b.data) for b in row] for row in markup.rows])
    if isinstance(markup, AskContact):
        return ReplyKeyboardMarkup([[KeyboardButton(markup.label, request_contact=True)], [markup.skip]], resize_keyboard=True,
                                   one_time_keyboard=True)
    if isinstance(markup, ClearKeyboard):
        return ReplyKeyboardRemove()
    return None


class TelegramChannel:
    """The Telegram adapter: a PTB Application (`self.app`) for the connection, rendering and sending."""

    name = NAME
    title = "Telegram"
    abilities = Abilities()

    def __init__(self, settings: Settings, *, request: BaseRequest | None = None, updates_request: BaseRequest | None = None) -> None:
        if not settings.telegram_bot_token:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        # Telegram allows about 30 messages a second over all chats and 1 a second to one chat.
        self.limits = SendLimits(settings.outbox_rate, settings.outbox_per_chat_rate)
        builder = (
            ApplicationBuilder()
            .application_class(GridApplication)
            .token(settings.telegram_bot_token)
            .base_url(settings.telegram_api_base_url)
            .base_file_url(settings.telegram_file_base_url)
            .defaults(Defaults(tzinfo=settings.tz, parse_mode="HTML"))
            .rate_limiter(AIORateLimiter(max_retries=3))
            .concurrent_updates(CONCURRENT_UPDATES)
            .job_queue(None)  # the runtime's scheduler runs the jobs
        )
        builder = builder.request(request or HTTPXRequest(connection_pool_size=16, read_timeout=15, write_timeout=15))
        builder = builder.get_updates_request(updates_request or HTTPXRequest(read_timeout=40))
        self.app: GridApplication = builder.build()  # type: ignore[assignment]
        self.app.channel = self
        self.app.add_error_handler(_on_ptb_error)  # every update goes to the engine, which handles its own errors
        self.webhook: dict | None = None  # Updater.start_webhook's arguments; None = long polling

    @property
    def bot(self):  # noqa: ANN201
        return self.app.bot

    # -- the adapter's life ------------------------------------------------------------------------

    async def open(self, runtime) -> None:  # noqa: ANN001
        self.app.runtime = runtime
        await self.app.initialize()  # getMe: who we are (the username join links need)
        await self.app.start()  # PTB's update loop; nothing arrives until `receive`

    async def receive(self) -> None:
        if self.webhook is None:
            await self.app.updater.start_polling(allowed_updates=allowed_updates(), drop_pending_updates=False,
                                                 error_callback=_log_polling_error)
        else:
            await self.app.updater.start_webhook(**self.webhook, allowed_updates=allowed_updates(), drop_pending_updates=False)

    async def close(self) -> None:
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    # -- sending -----------------------------------------------------------------------------------

    @staticmethod
    def _chat(address: str) -> int:
        """A Telegram chat id; an address that is none (a person with no Telegram identity: "") is
        refused as a chat that is gone."""
        try:
            return int(address)
        except ValueError:
            raise Blocked(f"{address!r} is not a Telegram chat") from None

    async def _call(self, coro):  # noqa: ANN001, ANN202
        try:
            return await coro
        except TelegramError as exc:
            raise neutral_error(exc) from exc

    async def send(self, address: str, text: str, markup: Markup = None) -> str | None:
        # No link previews: a form's messages gain nothing from a card under a link.
        message = await self._call(self.bot.send_message(self._chat(address), text, reply_markup=render(markup), disable_web_page_preview=True))
        return str(message.message_id)

    async def edit(self, address: str, message_ref: str, text: str | None, markup: Markup = None) -> None:
        keyboard = render(markup) if isinstance(markup, Buttons) else None
        try:
            if text is None:
                await self.bot.edit_message_reply_markup(self._chat(address), int(message_ref), reply_markup=keyboard)
            else:
                await self.bot.edit_message_text(text, self._chat(address), int(message_ref), reply_markup=keyboard)
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():  # a repeated tap: the same content is fine
                raise Refused(str(exc)) from exc
        except TelegramError as exc:
            raise neutral_error(exc) from exc

    async def toast(self, event: Inbound, text: str | None, alert: bool = False) -> None:
        await self._call(self.bot.answer_callback_query(event.answer_token, text, show_alert=alert))

    async def send_photo(self, address: str, photo: bytes | str, caption: str | None = None, markup: Markup = None) -> None:
        caption = caption[:CAPTION_LIMIT] if caption else None
        await self._call(self.bot.send_photo(self._chat(address), photo, caption=caption, reply_markup=render(markup)))

    async def send_document(self, address: str, data: bytes, filename: str, caption: str | None = None) -> None:
        await self._call(self.bot.send_document(self._chat(address), data, filename=filename, caption=caption))

    async def send_location(self, address: str, latitude: float, longitude: float) -> None:
        await self._call(self.bot.send_location(self._chat(address), latitude=latitude, longitude=longitude))

    async def download(self, file: FileRef) -> bytes:
        tg_file = await self._call(self.bot.get_file(file.file_id))
        return bytes(await self._call(tg_file.download_as_bytearray()))

    async def set_commands(self, address: str | None, commands: list[tuple[str, str]] | None, language: str | None = None) -> None:
        scope = BotCommandScopeChat(self._chat(address)) if address is not None else BotCommandScopeDefault()
        if commands is None:
            await self._call(self.bot.delete_my_commands(scope=scope))
        else:
            await self._call(self.bot.set_my_commands([BotCommand(c, d[:256]) for c, d in commands], scope=scope, language_code=language))

    def join_link(self, code: str) -> str | None:
        return f"https://t.me/{self.bot.username}?start={code}"


def _runtime_attribute(name: str) -> property:
    """An attribute of the runtime, read and set through the application."""
    return property(lambda self: getattr(self.runtime, name), lambda self, value: setattr(self.runtime, name, value))


class GridApplication(Application):
    """PTB's Application, handing every update to the engine as a neutral event. The services are
    the runtime's (`self.runtime`); they are reachable from here too, as tests and tools expect."""

    runtime: Runtime
    channel: TelegramChannel

    async def process_update(self, update: object) -> None:
        if not isinstance(update, Update):
            return
        event = inbound(update, self.bot.id, self.bot.username)
        if event is not None:
            await self.runtime.engine.handle(self.channel, event)

    settings = _runtime_attribute("settings")
    db = _runtime_attribute("db")
    media = _runtime_attribute("media")
    engine = _runtime_attribute("engine")
    channels = _runtime_attribute("channels")
    scheduler = _runtime_attribute("scheduler")
    lease_holder = _runtime_attribute("lease_holder")
    outbox_sender = _runtime_attribute("outbox_sender")

    @property
    def user_data(self):  # noqa: ANN201 - PTB's shape: Telegram user id -> that person's state
        return _TelegramStates(self.runtime.engine)

    @user_data.setter
    def user_data(self, _unused) -> None:  # noqa: ANN001 - PTB's __init__ sets its own, which is not used
        pass


class _TelegramStates:
    """The engine's Telegram states keyed by user id, as PTB's `Application.user_data` was."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __getitem__(self, user_id: int) -> dict:
        return self.engine.state(NAME, str(user_id))

    def get(self, user_id: int, default=None):  # noqa: ANN001, ANN201
        return self.engine.states.get((NAME, str(user_id)), default)

    def __contains__(self, user_id: object) -> bool:
        return (NAME, str(user_id)) in self.engine.states

    def items(self):  # noqa: ANN201
        return [(int(key), data) for (channel, key), data in self.engine.states.items() if channel == NAME]


def build_application(
    settings: Settings,
    *,
    db: Database | None = None,
    request: BaseRequest | None = None,
    updates_request: BaseRequest | None = None,
) -> GridApplication:
    """A runtime with the Telegram channel only; its PTB Application, whose `.runtime` starts it."""
    runtime = Runtime(settings, db)
    channel = TelegramChannel(settings, request=request, updates_request=updates_request)
    runtime.add(channel)
    channel.app.runtime = runtime
    return channel.app


def _log_polling_error(exc: TelegramError) -> None:
    """getUpdates failed; PTB's Updater tries again by itself."""
    if is_transient(exc):
        log.warning("Telegram failed while fetching updates: %s; PTB tries again", exc)
    else:
        log.error("Telegram refused getUpdates: %s; PTB tries again", exc)


async def _on_ptb_error(update: object, context) -> None:  # noqa: ANN001
    """What PTB itself meets outside the engine (a webhook fault)."""
    exc = context.error
    if isinstance(exc, TelegramError) and is_transient(exc):
        log.warning("Telegram failed outside any update: %s", exc)
    else:
        log.error("error outside any update", exc_info=exc)


def allowed_updates() -> list[str]:
    return [Update.MESSAGE, Update.EDITED_MESSAGE, Update.CALLBACK_QUERY]
