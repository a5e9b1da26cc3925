"""One helper for every guided conversation: ask, validate, re-prompt, edit, cancel, time out, resume.

A flow is a list of `Step`s. Each step says how to ask for its value and which kinds of input it
takes (text, photo, location, contact, /skip, /done, its own buttons). Input of any other kind gets
"this step expects ..." and the flow stays on the step with the draft unchanged. A step handler
returns the name of the next step (which is then asked), `STAY`, or `END`.

The draft lives in `user_data["draft"]` (persisted after every update): {flow, id, step, data,
touched, lang, editing, rev}. Buttons carry `<flow>:<draft id[:8]>:<action>[:<arg>]`, so a button
from an earlier draft or another flow is recognised and answered harmlessly.
"""

from __future__ import annotations

import html
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, ReplyKeyboardMarkup, ReplyKeyboardRemove, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ConversationHandler, MessageHandler, TypeHandler, filters

from bot import delivery
from bot.context import GridContext
from bot.i18n import N_
from handlers.common import edit_message, esc, reply
from models import clock, outbox
from models.errors import RuleError

log = logging.getLogger(__name__)

END = ConversationHandler.END
STAY = None
STALE = "__stale__"  # a step's button handler returns this for an action it does not know

StepFn = Callable[[Update, GridContext, dict], Awaitable[str | None]]
ButtonFn = Callable[[Update, GridContext, dict, str, str], Awaitable[str | None]]

# Every command that opens a flow; each flow refuses to start while another is open.
FLOW_COMMANDS: dict[str, str] = {}


@dataclass
class Step:
    name: str
    ask: Callable[[Update, GridContext, dict], Awaitable[None]]
    expects: str  # N_() text: what the step takes, said when the input is of the wrong kind
    on_text: StepFn | None = None
    on_photo: StepFn | None = None
    on_location: StepFn | None = None
    on_contact: StepFn | None = None
    on_skip: StepFn | None = None
    on_done: StepFn | None = None
    on_button: ButtonFn | None = None
    main: bool = True  # while editing one field, leaving a main step returns to the summary


def button(text: str, draft: dict, action: str, arg: str | int = "") -> InlineKeyboardButton:
    data = f"{draft['flow']}:{draft['id'][:8]}:{action}"
    if arg != "":
        data += f":{arg}"
    return InlineKeyboardButton(text, callback_data=data)


def keyboard(rows: list[list[InlineKeyboardButton]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([r for r in rows if r])


def toggle_markup(context: GridContext, draft: dict, options: tuple[str, ...], chosen: list[str], labels: dict[str, str]) -> InlineKeyboardMarkup:
    """One message of toggle buttons (✅/⬜, action `t:<index>`) and a Done button (action `done`)."""
    rows = [[button(("✅ " if v in chosen else "⬜ ") + context._(labels.get(v, v)), draft, "t", i)] for i, v in enumerate(options)]
    rows.append([button(context._("Done ✔️"), draft, "done")])
    return keyboard(rows)


async def toggle(update: Update, context: GridContext, draft: dict, arg: str, options: tuple[str, ...], chosen: list[str],
                 labels: dict[str, str]) -> str | None:
    """Flip option `arg` in `chosen` (kept in `options` order) and redraw the toggle message.
    Returns STALE for an option that does not exist (a forged button), else STAY."""
    if not arg.isdigit() or int(arg) >= len(options):
        return STALE
    value = options[int(arg)]
    if value in chosen:
        chosen.remove(value)
    else:
        chosen.append(value)
    chosen.sort(key=options.index)
    await edit_message(update, None, toggle_markup(context, draft, options, chosen, labels))
    return STAY


def paged_markup(context: GridContext, draft: dict, choices: list[tuple[str, int | str]], page: int, total: int, page_size: int,
                 extra: list[InlineKeyboardButton] | None = None) -> InlineKeyboardMarkup:
    """Search results as buttons (action `pick:<id>`), ◀️/▶️ (action `page:<n>`), then `extra` buttons."""
    rows = [[button(label, draft, "pick", ident)] for label, ident in choices]
    nav = []
    if page > 0:
        nav.append(button(context._("◀️ Previous"), draft, "page", page - 1))
    if (page + 1) * page_size < total:
        nav.append(button(context._("Next ▶️"), draft, "page", page + 1))
    return keyboard([*rows, nav, extra or []])


NOT_ACCEPTED = N_("That was not accepted.")


@dataclass
class Summary:
    """The last step of a form: the summary with ✅ Save / ✏️ Edit / ❌ Cancel.

    Edit shows the fields that may be edited now; picking one goes to that step, and leaving it
    comes back here (see Flow.goto). Each summary bumps the draft's `rev`, and its buttons carry
    it, so the buttons of an older summary of the same draft do nothing.
    """

    text: Callable[[GridContext, dict], str]
    fields: Callable[[GridContext, dict], list[tuple[str, str]]]  # (step, N_ label) editable now
    save: StepFn  # writes the record; returns END, or STAY with context.notice set
    on_edit: Callable[[dict, str], None] | None = None  # resets what editing `step` starts afresh

    def markup(self, context: GridContext, draft: dict) -> InlineKeyboardMarkup:
        rev = draft["rev"]
        return keyboard([[button(context._("✅ Save"), draft, "save", rev), button(context._("✏️ Edit"), draft, "edit", rev),
                          button(context._("❌ Cancel"), draft, "cancel", rev)]])

    async def ask(self, update: Update, context: GridContext, draft: dict) -> None:
        draft["rev"] += 1
        await reply(update, context, self.text(context, draft), reply_markup=self.markup(context, draft))

    async def on_button(self, update: Update, context: GridContext, draft: dict, action: str, arg: str) -> str | None:
        if action in ("save", "edit", "cancel", "back") and arg != str(draft["rev"]):
            context.notice = context._("This summary is out of date; use the latest one below.")
            return STAY
        if action == "save":
            return await self.save(update, context, draft)
        if action == "cancel":
            await edit_message(update, self.text(context, draft) + "\n\n" + context._("❌ Cancelled; nothing was saved."))
            return END
        if action == "edit":
            rows = [[button(context._(label), draft, "field", step)] for step, label in self.fields(context, draft)]
            rows.append([button(context._("↩️ Back"), draft, "back", draft["rev"])])
            await edit_message(update, None, keyboard(rows))
            return STAY
        if action == "back":
            await edit_message(update, None, self.markup(context, draft))
            return STAY
        if action == "field" and arg in dict(self.fields(context, draft)):
            await edit_message(update, None, None)
            draft["editing"] = True
            if self.on_edit is not None:
                self.on_edit(draft, arg)
            return arg
        return STALE


async def download_photo(update: Update, context: GridContext) -> dict | None:
    """Keep the message's photo (largest size) in the media store beside its Telegram file id.

    Returns {"file_id", "file_unique_id", "sha256"}, or None after telling the user to resend.
    """
    message = update.message
    # A photo sent as a file (原图, full quality) is a document: taken when it is a JPEG or PNG.
    item = message.photo[-1] if message.photo else message.document
    if not message.photo and (item.file_size or 0) > MAX_PHOTO_FILE:
        await reply(update, context, context._("That file is larger than {mb} MB; send it as a photo instead.").format(mb=MAX_PHOTO_FILE // 2**20))
        return None
    try:
        tg_file = await context.bot.get_file(item.file_id)
        content = bytes(await tg_file.download_as_bytearray())
    except TelegramError:
        log.warning("photo download failed", exc_info=True)
        await reply(update, context, context._("I could not fetch that photo from Telegram. Please send it again."))
        return None
    if not message.photo and not content.startswith(IMAGE_MAGIC):
        await reply(update, context, context._("That file is not a JPEG or PNG photo. Send the photo itself, or a .jpg file."))
        return None
    digest, _path = context.app.media.put(content)
    return {"file_id": item.file_id, "file_unique_id": item.file_unique_id, "sha256": digest}


MAX_PHOTO_FILE = 10 * 2**20  # what Telegram takes as a photo upload, when it is shown again
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


def undo_row(context: GridContext, kind: str, record_id: int, edit: bool = True) -> list[InlineKeyboardButton]:
    """✏️ Edit / ↩️ Undo for a saved confirmation (models.corrections.UNDO_WINDOW; audit-trailed
    like /correct and /void)."""
    row = [InlineKeyboardButton(context._("✏️ Edit"), callback_data=f"aft:{kind}:{record_id}:edit")] if edit else []
    return row + [InlineKeyboardButton(context._("↩️ Undo"), callback_data=f"aft:{kind}:{record_id}:undo")]


def with_row(markup: InlineKeyboardMarkup | None, row: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([*(markup.inline_keyboard if markup else ()), row])


async def send_pin(context: GridContext, chat_id: int, latitude: float | None, longitude: float | None) -> None:
    """A place as a location pin (the phone opens it in its map app); the text beside it carries the
    address. Never raises: a pin that cannot be sent leaves the message it goes with as it is."""
    if latitude is None or longitude is None:
        return
    try:
        await context.bot.send_location(chat_id, latitude=latitude, longitude=longitude)
    except TelegramError:
        log.warning("could not send a location pin to chat %s", chat_id, exc_info=True)


async def send_stored_photo(context: GridContext, chat_id: int, file_id: str, sha256: str, caption: str | None = None) -> bool:
    """Show a kept photo: by its Telegram file id, else (a photo that came as a file, or an id
    Telegram no longer knows) uploaded again from the media store. False when neither worked."""
    try:
        await context.bot.send_photo(chat_id, file_id, caption=caption)
        return True
    except TelegramError:
        path = context.app.media.path_for(sha256)
    try:
        if path.exists():
            await context.bot.send_photo(chat_id, path.read_bytes(), caption=caption)
            return True
    except TelegramError:
        pass
    log.warning("could not show photo %s in chat %s", sha256, chat_id)
    return False


async def add_photo(update: Update, context: GridContext, photos: list[dict], limit: int) -> str | None:
    """The body of every photo step: keep the photo, say how many there are, stay on the step."""
    if len(photos) >= limit:
        await reply(update, context, context._("That is already {max} photos, the most one record keeps. Send /done.").format(max=limit))
        return STAY
    photo = await download_photo(update, context)
    if photo is not None:
        photos.append(photo)
        await reply(update, context, context._("Photo {n} received. Send more, or /done.").format(n=len(photos)))
    return STAY


def rule_message(context: GridContext, err: RuleError, messages: dict[str, str]) -> str:
    """The user's-language text for a RuleError (`messages` maps codes to N_() texts)."""
    return context._(messages.get(err.code, NOT_ACCEPTED)).format(**err.details)


class Flow:
    """A guided conversation built from steps; `handler()` gives the PTB ConversationHandler."""

    def __init__(
        self,
        name: str,
        title: str,
        command: str,
        steps: list[Step],
        confirm: str,
        begin: Callable[[Update, GridContext], Awaitable[dict | None]],
        entry: list[BaseHandler] | None = None,
    ) -> None:
        self.name, self.title, self.command = name, title, command
        self.steps = {s.name: s for s in steps}
        self.first = steps[0].name
        self.confirm = confirm
        self.begin = begin  # returns the draft's initial data, or None when the user may not start
        self.extra_entry = entry or []
        FLOW_COMMANDS[command] = name

    # -- draft ----------------------------------------------------------------------------------

    def new_draft(self, context: GridContext, data: dict) -> dict:
        return {
            "flow": self.name, "id": uuid.uuid4().hex, "step": self.first, "data": data,
            "touched": clock.now().isoformat(), "lang": context.lang, "editing": False, "rev": 0,
        }

    def expired(self, context: GridContext, draft: dict) -> bool:
        timeout = timedelta(minutes=context.settings.conversation_timeout_minutes)
        return clock.now() - datetime.fromisoformat(draft["touched"]) > timeout

    # -- moving between steps -------------------------------------------------------------------

    async def goto(self, update: Update, context: GridContext, draft: dict, nxt: str | None, current: str) -> object:
        if nxt is STAY:
            return None
        if nxt == END:
            context.draft = None
            return END
        if draft.get("editing") and current != self.confirm and nxt != current and self.steps[nxt].main:
            nxt, draft["editing"] = self.confirm, False
        # The step is recorded only once it was asked: if Telegram fails on the question, the
        # conversation and the draft both stay on the step the user last saw.
        await self.steps[nxt].ask(update, context, draft)
        draft["step"] = nxt
        return nxt

    async def start(self, update: Update, context: GridContext,
                    prefill: Callable[[dict], Awaitable[str | None]] | None = None) -> object:
        """Open the form (or offer the open one back). `prefill` fills the new draft from where the
        user came (a button) and returns the step to begin at, or None to open nothing."""
        open_draft = context.draft
        if open_draft is not None:
            if open_draft["flow"] in FLOW_BY_NAME and not FLOW_BY_NAME[open_draft["flow"]].expired(context, open_draft):
                await FLOW_BY_NAME[open_draft["flow"]].offer_resume(update, context, open_draft)
                if open_draft["flow"] != self.name:
                    return END
                # This flow's draft is open but its conversation is not (its first question never
                # reached the user): re-enter at the draft's step so ▶️ Continue / 🗑 Discard work.
                return open_draft["step"]
            context.draft = None  # a leftover from a flow that timed out while the bot was down
        data = await self.begin(update, context)
        if data is None:
            return END
        draft = self.new_draft(context, data)
        first = self.first
        if prefill is not None:
            first = await prefill(draft)
            if first is None:
                return END
        context.draft = draft
        return await self.goto(update, context, draft, first, current="")

    async def _start_by_menu(self, update: Update, context: GridContext) -> object:
        state = await self.start(update, context)  # may answer the button itself (a refusal as an alert)
        await answer_query(update.callback_query)  # else stop its spinner (a second answer is ignored)
        return state

    async def offer_resume(self, update: Update, context: GridContext, draft: dict) -> None:
        step = self.steps[draft["step"]]
        await reply(
            update, context,
            context._("You have an unfinished {flow} (at: {step}). Continue it, or discard it first?").format(
                flow=context._(self.title), step=context._(step.expects)
            ),
            reply_markup=keyboard([[button(context._("▶️ Continue"), draft, "resume"), button(context._("🗑 Discard"), draft, "discard")]]),
        )

    # -- wrapping step handlers -----------------------------------------------------------------

    def _wrap(self, step: Step, fn: StepFn) -> Callable[[Update, GridContext], Awaitable[object]]:
        async def run(update: Update, context: GridContext) -> object:
            draft = await self._live_draft(update, context)
            if draft is None:
                return END
            nxt = await fn(update, context, draft)
            draft["touched"] = clock.now().isoformat()
            return await self.goto(update, context, draft, nxt, step.name)

        return run

    def _wrap_button(self, step: Step) -> Callable[[Update, GridContext], Awaitable[object]]:
        async def run(update: Update, context: GridContext) -> object:
            query = update.callback_query
            assert query is not None and query.data is not None
            draft = await self._live_draft(update, context)
            if draft is None:
                await answer_query(query, None)
                return END
            _flow, draft_key, action, *rest = (query.data.split(":", 3) + [""])[:4]
            arg = rest[0] if rest else ""
            if draft_key != draft["id"][:8]:
                await answer_query(query, context._("This button belongs to an earlier form; it does nothing now."))
                return None
            context.notice = None
            if action == "resume":
                await answer_query(query, None)
                await step.ask(update, context, draft)
                return None
            if action == "discard":
                await answer_query(query, context._("Discarded."))
                return await self._discard(update, context)
            nxt = await step.on_button(update, context, draft, action, arg) if step.on_button else STALE
            if nxt == STALE:
                await answer_query(query, context._("That button is no longer active at this step."))
                return None
            await answer_query(query, context.notice)
            draft["touched"] = clock.now().isoformat()
            return await self.goto(update, context, draft, nxt, step.name)

        return run

    async def _live_draft(self, update: Update, context: GridContext) -> dict | None:
        """The draft this conversation works on, or None after telling the user why it ended."""
        draft = context.draft
        if draft is None or draft.get("flow") != self.name:
            await reply(update, context, context._("That form is no longer open. Send /{command} to start again.").format(command=self.command))
            return None
        if self.expired(context, draft):
            await self._say_timed_out(context, update.effective_chat.id, draft)
            context.draft = None
            return None
        return draft

    def _wrong_kind(self, step: Step) -> Callable[[Update, GridContext], Awaitable[object]]:
        async def run(update: Update, context: GridContext) -> object:
            draft = await self._live_draft(update, context)
            if draft is None:
                return END
            await reply(update, context, context._("This step expects: {what}").format(what=context._(step.expects)))
            return None

        return run

    async def _cancel(self, update: Update, context: GridContext) -> object:
        context.draft = None
        await reply(update, context, context._("Cancelled. The {flow} draft was discarded; nothing was saved.").format(flow=context._(self.title)))
        return END

    async def _discard(self, update: Update, context: GridContext) -> object:
        context.draft = None
        await reply(update, context, context._("The {flow} draft was discarded; nothing was saved.").format(flow=context._(self.title)))
        return END

    async def _flow_command_while_open(self, update: Update, context: GridContext) -> object:
        draft = context.draft
        if draft is None or draft.get("flow") != self.name:
            return END
        await self.offer_resume(update, context, draft)
        return None

    async def _close_timed_out(self, context: GridContext, chat_id: int, draft: dict) -> None:
        """Drop the draft and write that at once, as every step is written (a timeout runs as a job,
        outside any update, so nothing else would persist it before a restart), then say so."""
        context.draft = None
        persistence = context.application.persistence
        if persistence is not None and context._user_id is not None:
            await persistence.update_user_data(context._user_id, context.user_data)
            await persistence.flush()
        await self._say_timed_out(context, chat_id, draft)

    async def _say_timed_out(self, context: GridContext, chat_id: int, draft: dict) -> None:
        context.lang = draft.get("lang", context.lang)
        await context.bot.send_message(
            chat_id,
            context._("⏰ No reply for {minutes} minutes, so the {flow} form was closed and its draft discarded. Send /{command} to start again.").format(
                minutes=context.settings.conversation_timeout_minutes, flow=context._(self.title), command=self.command
            ),
        )

    async def _on_timeout(self, update: object, context: GridContext) -> None:
        draft = context.draft
        if isinstance(update, Update) and update.effective_chat and draft and draft.get("flow") == self.name:
            await self._close_timed_out(context, update.effective_chat.id, draft)

    # -- the PTB handler ------------------------------------------------------------------------

    def handler(self, timeout_minutes: int) -> ConversationHandler:
        flow_cmds = sorted(FLOW_COMMANDS)
        states: dict[object, list[BaseHandler]] = {}
        for step in self.steps.values():
            hs: list[BaseHandler] = [CallbackQueryHandler(self._wrap_button(step), pattern=f"^{self.name}:")]
            if step.on_skip:
                hs.append(CommandHandler("skip", self._wrap(step, step.on_skip)))
            if step.on_done:
                hs.append(CommandHandler("done", self._wrap(step, step.on_done)))
            if step.on_text:
                hs.append(MessageHandler(filters.TEXT & ~filters.COMMAND & ~filters.FORWARDED, self._wrap(step, step.on_text)))
            if step.on_photo:
                hs.append(MessageHandler((filters.PHOTO | filters.Document.IMAGE) & ~filters.FORWARDED, self._wrap(step, step.on_photo)))
            if step.on_location:
                hs.append(MessageHandler(filters.LOCATION & ~filters.FORWARDED, self._wrap(step, step.on_location)))
            if step.on_contact:
                hs.append(MessageHandler(filters.CONTACT, self._wrap(step, step.on_contact)))
            hs.append(CommandHandler(["skip", "done"], self._wrong_kind(step)))
            hs.append(MessageHandler(~filters.COMMAND, self._wrong_kind(step)))
            states[step.name] = hs
        states[ConversationHandler.TIMEOUT] = [TypeHandler(Update, self._on_timeout)]
        return ConversationHandler(
            # The main menu's button opens the form as its command does (handlers.start.MENU).
            entry_points=[CommandHandler(self.command, self.start), CallbackQueryHandler(self._start_by_menu, pattern=f"^menu:{self.command}$"),
                          *self.extra_entry],
            states=states,
            fallbacks=[
                CommandHandler("cancel", self._cancel),
                CommandHandler(flow_cmds, self._flow_command_while_open),
            ],
            name=self.name,
            persistent=True,
            conversation_timeout=timedelta(minutes=timeout_minutes),
            allow_reentry=False,
        )

    async def sweep_on_startup(self, app, user_data: dict[int, dict]) -> None:  # noqa: ANN001
        """After a restart PTB has no timeout jobs: schedule one per open draft of this flow."""
        for user_id, data in user_data.items():
            draft = data.get("draft")
            if not draft or draft.get("flow") != self.name:
                continue
            due = datetime.fromisoformat(draft["touched"]) + timedelta(minutes=app.settings.conversation_timeout_minutes)
            app.job_queue.run_once(
                self._startup_timeout, when=max(due - clock.now(), timedelta(seconds=1)),
                user_id=user_id, chat_id=user_id, data=draft["id"], name=f"flow-timeout:{user_id}",
            )

    async def _startup_timeout(self, context: GridContext) -> None:
        draft = context.draft
        if not draft or draft["id"] != context.job.data or not self.expired(context, draft):
            return  # the user came back (or finished) since the restart
        await self._close_timed_out(context, context.job.chat_id, draft)


FLOW_BY_NAME: dict[str, Flow] = {}


def register_flow(flow: Flow) -> Flow:
    FLOW_BY_NAME[flow.name] = flow
    return flow


def is_transient(exc: BaseException) -> bool:
    """A Telegram failure that trying again later can cure: an outage, a 5xx, a dropped connection,
    a timeout, a flood wait PTB's own retries did not outlast. Not a refusal (400, 403)."""
    return isinstance(exc, RetryAfter) or (isinstance(exc, NetworkError) and not isinstance(exc, BadRequest))


async def answer_query(query, text: str | None = None, alert: bool = False) -> None:  # noqa: ANN001
    """Answer a button press (Telegram shows at most 200 characters); a query too old to answer is fine.

    The answer only stops the button's spinner, so a Telegram outage here is logged and ignored:
    it must not undo (or leave half-done) what the press did.
    """
    try:
        await query.answer(text[:190] if text else None, show_alert=alert)
    except BadRequest:
        log.info("callback query too old to answer")
    except TelegramError as exc:
        if not is_transient(exc):
            raise
        log.warning("could not answer a button press: %s", exc)


# -- telling the user what a save did ---------------------------------------------------------------

CONFIRM_KIND = "confirm"  # outbox kind of a confirmation Telegram could not take at the time
CLOSED_KEY = "closed_forms"  # user_data: draft key -> what saving it did (for a late second tap)
CLOSED_KEEP = 5

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None


def _payload(markup: Markup) -> dict | None:
    """Inline callback buttons travel with an outbox row; a reply keyboard (or its removal) cannot."""
    if not isinstance(markup, InlineKeyboardMarkup):
        return None
    rows = [[(b.text, b.callback_data) for b in row if isinstance(b.callback_data, str)] for row in markup.inline_keyboard]
    rows = [r for r in rows if r]
    return delivery.buttons_payload(rows) if rows else None


def _plain(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def _remember_closed(context: GridContext, draft: dict, outcome: str) -> None:
    if context.user_data is None:
        return
    closed = context.user_data.setdefault(CLOSED_KEY, {})
    closed.pop(draft["id"][:8], None)
    closed[draft["id"][:8]] = outcome[:120]
    while len(closed) > CLOSED_KEEP:
        closed.pop(next(iter(closed)))


async def tell_outcome(update: Update, context: GridContext, draft: dict, messages: list[tuple[str, Markup]], *,
                       summary: str | None = None, drop_buttons: bool = False) -> int:
    """Tell the user what a save did, once, even if Telegram is down right now. Every save uses it.

    The record is committed before this is called. `summary` replaces the text of the message the
    pressed button sits on (`drop_buttons`: only its buttons are removed); `messages` are then
    sent in order, each (text, markup). If Telegram fails transiently (see `is_transient`; PTB's
    AIORateLimiter has already retried flood waits) what did not get through is written to the
    outbox under ("confirm", draft id, chat, part) and sent by the outbox when Telegram is back:
    the key makes it exactly once, even if the save runs again. Inline callback buttons go with
    it; a reply keyboard (or its removal) cannot. When only the summary edit was due, its text is
    what is queued. Whatever happened, the caller ends the conversation normally, so the draft is
    cleared. A refusal (400: a bug; 403: the user blocked the bot) is not queued: a bug stays
    loud (raised), a blocked user cannot be told. Returns how many messages were queued.
    """
    chat_id = update.effective_chat.id
    # The outcome in one line: the message's first, or the summary's last (where the edit says it).
    _remember_closed(context, draft, _plain(messages[0][0]).split("\n")[0] if messages else _plain(summary or "").split("\n")[-1])
    try:
        async with context.db.session() as session:
            queued = await outbox.exists(session, CONFIRM_KIND, draft["id"])
    except Exception:  # noqa: BLE001 - the record is saved; a failed look here only risks a duplicate message
        log.warning("could not look for a queued confirmation of draft %s", draft["id"], exc_info=True)
        queued = False
    if queued:  # an earlier run of this save (before a crash) queued it: the outbox tells the user
        return 0
    pending: list[tuple[str, Markup]] = []
    query = update.callback_query
    edit_failed = False  # transiently: when it was the whole confirmation, its text is queued
    if query is not None and (summary is not None or drop_buttons):
        try:
            await edit_message(update, summary, None)
        except Forbidden:
            log.info("chat %s blocked the bot; the saved draft %s cannot be confirmed", chat_id, draft["id"])
            return 0
        except BadRequest as exc:  # the summary was deleted or is too old to edit: say it in a new message
            log.info("could not edit the summary of draft %s: %s", draft["id"], exc)
            if not messages and summary is not None:
                messages = [(summary, None)]
        except TelegramError as exc:
            if not is_transient(exc):
                raise
            log.warning("Telegram failed on the summary of saved draft %s: %s", draft["id"], exc)
            edit_failed = True
    for i, (text, markup) in enumerate(messages):
        try:
            await context.bot.send_message(chat_id, text, reply_markup=markup)
        except Forbidden:
            log.info("chat %s blocked the bot; the saved draft %s cannot be confirmed", chat_id, draft["id"])
            return 0
        except TelegramError as exc:
            if not is_transient(exc):
                raise
            log.warning("Telegram failed on the confirmation of saved draft %s: %s; it goes to the outbox", draft["id"], exc)
            pending = messages[i:]
            break
    if not messages and edit_failed and summary is not None:
        pending = [(summary, None)]
    if not pending:
        return 0
    first = len(messages) - len(pending) if messages else 0
    rows = [outbox.NewMessage(CONFIRM_KIND, draft["id"], delivery.tg(chat_id), text, part=first + i, payload=_payload(markup), urgent=True)
            for i, (text, markup) in enumerate(pending)]
    async with context.db.session() as session:
        await outbox.enqueue(session, rows)
    return len(rows)


NOTICE_KIND = "notice"  # outbox kind of a notification to another user Telegram could not take at the time


async def notify(context: GridContext, chat_id: int, text: str, markup: InlineKeyboardMarkup | None = None) -> bool:
    """Tell another user (a supervisor, an assignee, a reporter) after a commit. A transient
    Telegram failure queues the message in the outbox, which sends it when Telegram is back; a
    refusal (blocked, bad chat) is logged. Never raises: the committed change stands either way.
    Returns whether it was sent now."""
    try:
        await context.bot.send_message(chat_id, text, reply_markup=markup)
        return True
    except TelegramError as exc:
        if not is_transient(exc):
            log.warning("could not notify chat %s: %s", chat_id, exc)
            return False
        log.warning("Telegram failed on a notification to chat %s: %s; it goes to the outbox", chat_id, exc)
    try:  # a fresh key per notification: it is queued once, here, and only when the send failed
        async with context.db.session() as session:
            await outbox.enqueue(session, [outbox.NewMessage(NOTICE_KIND, uuid.uuid4().hex, delivery.tg(chat_id), text,
                                                             payload=_payload(markup), urgent=True)])
    except Exception:  # noqa: BLE001 - the database may be what failed; the change itself is committed
        log.exception("could not queue a notification to chat %s", chat_id)
    return False


async def stale_button(update: Update, context: GridContext) -> None:
    """Any button no open conversation claimed: an old keyboard, a finished or foreign draft."""
    query = update.callback_query
    assert query is not None
    draft = context.draft
    parts = (query.data or "").split(":")
    if draft and len(parts) >= 3 and parts[1] == draft["id"][:8] and parts[2] == "discard":
        # A draft whose conversation state was lost (e.g. a crash between two writes): let it go.
        context.draft = None
        await answer_query(query, context._("Discarded."))
        return
    closed = (context.user_data or {}).get(CLOSED_KEY, {})
    if len(parts) >= 3 and parts[1] in closed:
        # A second tap of Save (or any button) of a form that was saved: say what the first one did.
        await answer_query(query, context._("This button has expired: that form was already saved. {outcome}").format(outcome=closed[parts[1]]))
        return
    await answer_query(query, context._("This button has expired; it belongs to a form that is already closed."))


def summary_line(label: str, value: str) -> str:
    return f"<b>{esc(label)}</b>: {value}"
