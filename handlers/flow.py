"""One helper for every guided conversation: ask, validate, re-prompt, edit, cancel, time out, resume.

A flow is a list of `Step`s. Each step says how to ask for its value and which kinds of input it
takes (text, photo, location, contact, /skip, /done, its own buttons). Input of any other kind gets
"this step expects ..." and the flow stays on the step with the draft unchanged. A step handler
returns the name of the next step (which is then asked), `STAY`, or `END`.

The draft lives in the person's state (`user_data["draft"]`, written after every event by the
engine): {flow, id, step, data, touched, lang, editing, rev}; `step` is the only record of where
the person is. Buttons carry `<flow>:<draft id[:8]>:<action>[:<arg>]`, so a button from an earlier
draft or another flow is recognised and answered harmlessly. Nothing here knows a platform: steps
get neutral events (bot/chat.py) and answer through the context.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.chat import BUTTON, COMMAND, LOCATION, TEXT, Blocked, Button, Buttons, ChannelError, Inbound, Markup, Refused, Transient, plain_text
from bot.context import GridContext
from bot.engine import Handler, OnButton
from bot.i18n import N_
from handlers.common import TIMED_OUT_KEY, esc
from models import clock, outbox
from models.errors import RuleError

log = logging.getLogger(__name__)

END = "__end__"
STAY = None
STALE = "__stale__"  # a step's button handler returns this for an action it does not know

StepFn = Callable[[Inbound, GridContext, dict], Awaitable[str | None]]
ButtonFn = Callable[[Inbound, GridContext, dict, str, str], Awaitable[str | None]]

# Every command that opens a flow; each flow refuses to start while another is open.
FLOW_COMMANDS: dict[str, str] = {}


@dataclass
class Step:
    name: str
    ask: Callable[[Inbound, GridContext, dict], Awaitable[None]]
    expects: str  # N_() text: what the step takes, said when the input is of the wrong kind
    on_text: StepFn | None = None
    on_photo: StepFn | None = None
    on_location: StepFn | None = None
    on_contact: StepFn | None = None
    on_skip: StepFn | None = None
    on_done: StepFn | None = None
    on_button: ButtonFn | None = None
    main: bool = True  # while editing one field, leaving a main step returns to the summary


def button(text: str, draft: dict, action: str, arg: str | int = "") -> Button:
    data = f"{draft['flow']}:{draft['id'][:8]}:{action}"
    if arg != "":
        data += f":{arg}"
    return Button(text, data)


def keyboard(rows: list[list[Button]]) -> Buttons:
    return Buttons.of(rows)


def toggle_markup(context: GridContext, draft: dict, options: tuple[str, ...], chosen: list[str], labels: dict[str, str]) -> Buttons:
    """A toggle list: one button per option (✅/⬜, action `t:<index>`) and a Done button (action `done`)."""
    rows = [[button(("✅ " if v in chosen else "⬜ ") + context._(labels.get(v, v)), draft, "t", i)] for i, v in enumerate(options)]
    rows.append([button(context._("Done ✔️"), draft, "done")])
    return keyboard(rows)


async def toggle(event: Inbound, context: GridContext, draft: dict, arg: str, options: tuple[str, ...], chosen: list[str],
                 labels: dict[str, str]) -> str | None:
    """Flip option `arg` in `chosen` (kept in `options` order) and redraw the toggle list.
    Returns STALE for an option that does not exist (a forged button), else STAY."""
    if not arg.isdigit() or int(arg) >= len(options):
        return STALE
    value = options[int(arg)]
    if value in chosen:
        chosen.remove(value)
    else:
        chosen.append(value)
    chosen.sort(key=options.index)
    await context.edit(None, toggle_markup(context, draft, options, chosen, labels))
    return STAY


def paged_markup(context: GridContext, draft: dict, choices: list[tuple[str, int | str]], page: int, total: int, page_size: int,
                 extra: list[Button] | None = None) -> Buttons:
    """A paged pick list: results as buttons (action `pick:<id>`), ◀️/▶️ (action `page:<n>`), then `extra` buttons."""
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

    def markup(self, context: GridContext, draft: dict) -> Buttons:
        rev = draft["rev"]
        return keyboard([[button(context._("✅ Save"), draft, "save", rev), button(context._("✏️ Edit"), draft, "edit", rev),
                          button(context._("❌ Cancel"), draft, "cancel", rev)]])

    async def ask(self, event: Inbound, context: GridContext, draft: dict) -> None:
        draft["rev"] += 1
        await context.reply(self.text(context, draft), self.markup(context, draft))

    async def on_button(self, event: Inbound, context: GridContext, draft: dict, action: str, arg: str) -> str | None:
        if action in ("save", "edit", "cancel", "back") and arg != str(draft["rev"]):
            context.notice = context._("This summary is out of date; use the latest one below.")
            return STAY
        if action == "save":
            return await self.save(event, context, draft)
        if action == "cancel":
            await context.edit(self.text(context, draft) + "\n\n" + context._("❌ Cancelled; nothing was saved."))
            return END
        if action == "edit":
            rows = [[button(context._(label), draft, "field", step)] for step, label in self.fields(context, draft)]
            rows.append([button(context._("↩️ Back"), draft, "back", draft["rev"])])
            await context.edit(None, keyboard(rows))
            return STAY
        if action == "back":
            await context.edit(None, self.markup(context, draft))
            return STAY
        if action == "field" and arg in dict(self.fields(context, draft)):
            await context.edit(None, None)
            draft["editing"] = True
            if self.on_edit is not None:
                self.on_edit(draft, arg)
            return arg
        return STALE


async def download_photo(event: Inbound, context: GridContext) -> dict | None:
    """Keep the event's photo in the media store beside its platform file id.

    Returns {"file_id", "file_unique_id", "sha256"}, or None after telling the user to resend.
    """
    item = event.photo
    assert item is not None
    # A photo sent as a file (原图, full quality) is taken when it is a JPEG or PNG.
    if item.as_file and item.size > MAX_PHOTO_FILE:
        await context.reply(context._("That file is larger than {mb} MB; send it as a photo instead.").format(mb=MAX_PHOTO_FILE // 2**20))
        return None
    try:
        content = await context.channel.download(item)
    except ChannelError:
        log.warning("photo download failed", exc_info=True)
        await context.reply(context._("I could not fetch that photo from {platform}. Please send it again.").format(
            platform=context.channel.title))
        return None
    if item.as_file and not content.startswith(IMAGE_MAGIC):
        await context.reply(context._("That file is not a JPEG or PNG photo. Send the photo itself, or a .jpg file."))
        return None
    digest, _path = context.media.put(content)
    return {"file_id": item.file_id, "file_unique_id": item.unique_id, "sha256": digest}


MAX_PHOTO_FILE = 10 * 2**20  # what Telegram takes as a photo upload, when it is shown again
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


def undo_row(context: GridContext, kind: str, record_id: int, edit: bool = True) -> list[Button]:
    """✏️ Edit / ↩️ Undo for a saved confirmation (models.corrections.UNDO_WINDOW; audit-trailed
    like /correct and /void)."""
    row = [Button(context._("✏️ Edit"), f"aft:{kind}:{record_id}:edit")] if edit else []
    return row + [Button(context._("↩️ Undo"), f"aft:{kind}:{record_id}:undo")]


def with_row(markup: Buttons | None, row: list[Button]) -> Buttons:
    return (markup or Buttons(())).with_row(row)


async def send_pin(context: GridContext, address: str, latitude: float | None, longitude: float | None) -> None:
    """A place as a location pin (the phone opens it in its map app); the text beside it carries the
    address. Never raises: a pin that cannot be sent leaves the message it goes with as it is."""
    if latitude is None or longitude is None or not context.channel.abilities.location:
        return
    try:
        await context.channel.send_location(address, latitude, longitude)
    except ChannelError:
        log.warning("could not send a location pin to %s", address, exc_info=True)


async def send_stored_photo(context: GridContext, address: str, file_id: str, sha256: str, caption: str | None = None) -> bool:
    """Show a kept photo: by its platform file id, else (a photo that came as a file, or an id the
    platform no longer knows) uploaded again from the media store. False when neither worked."""
    try:
        await context.channel.send_photo(address, file_id, caption=caption)
        return True
    except ChannelError:
        path = context.media.path_for(sha256)
    try:
        if path.exists():
            await context.channel.send_photo(address, path.read_bytes(), caption=caption)
            return True
    except ChannelError:
        pass
    log.warning("could not show photo %s to %s", sha256, address)
    return False


async def add_photo(event: Inbound, context: GridContext, photos: list[dict], limit: int) -> str | None:
    """The body of every photo step: keep the photo, say how many there are, stay on the step."""
    if len(photos) >= limit:
        await context.reply(context._("That is already {max} photos, the most one record keeps. Send /done.").format(max=limit))
        return STAY
    photo = await download_photo(event, context)
    if photo is not None:
        photos.append(photo)
        await context.reply(context._("Photo {n} received. Send more, or /done.").format(n=len(photos)))
    return STAY


def rule_message(context: GridContext, err: RuleError, messages: dict[str, str]) -> str:
    """The user's-language text for a RuleError (`messages` maps codes to N_() texts)."""
    return context._(messages.get(err.code, NOT_ACCEPTED)).format(**err.details)


class Flow:
    """A guided conversation built from steps; the engine routes to it (`route`, `entry`)."""

    def __init__(
        self,
        name: str,
        title: str,
        command: str,
        steps: list[Step],
        confirm: str,
        begin: Callable[[Inbound, GridContext], Awaitable[dict | None]],
        entry: list[OnButton] | None = None,
    ) -> None:
        self.name, self.title, self.command = name, title, command
        self.steps = {s.name: s for s in steps}
        self.first = steps[0].name
        self.confirm = confirm
        self.begin = begin  # returns the draft's initial data, or None when the user may not start
        # Buttons that open the form (pattern, handler); the main menu's button opens it as its command does.
        self.extra_entry = [(re.compile(b.pattern), b.handler) for b in entry or []]
        FLOW_COMMANDS[command] = name

    # -- draft ----------------------------------------------------------------------------------

    def new_draft(self, context: GridContext, data: dict) -> dict:
        return {
            "flow": self.name, "id": uuid.uuid4().hex, "step": self.first, "data": data,
            "touched": clock.now().isoformat(), "lang": context.lang, "editing": False, "rev": 0,
        }

    def timer_due(self, settings, draft: dict) -> datetime:  # noqa: ANN001 - bot.settings.Settings
        return datetime.fromisoformat(draft["touched"]) + timedelta(minutes=settings.conversation_timeout_minutes)

    def expired(self, context: GridContext, draft: dict) -> bool:
        return clock.now() > self.timer_due(context.settings, draft)

    # -- routing (the engine asks) ----------------------------------------------------------------

    def entry(self, event: Inbound) -> Handler | None:
        if event.kind == COMMAND and event.command == self.command:
            return self.start
        if event.kind == BUTTON:
            if event.button == f"menu:{self.command}":
                return self._start_by_menu
            for pattern, handler in self.extra_entry:
                if pattern.search(event.button):
                    return handler
        return None

    def takes_text(self, context: GridContext) -> bool:
        step = self.steps.get((context.draft or {}).get("step"))
        return step is not None and step.on_text is not None

    def route(self, event: Inbound, context: GridContext) -> Handler | None:
        """While this flow's draft is open: its step's handler for the event, the wrong-kind
        answer, /cancel, or the offer to resume for a flow command. None lets the event go on (a
        command like /help, another kind of button)."""
        draft = context.draft
        assert draft is not None
        step = self.steps.get(draft.get("step"))
        if step is None:  # a step that no longer exists (an older version's draft): start afresh
            return None
        kind = event.kind
        if kind == BUTTON:
            return self._button(step) if event.button.startswith(f"{self.name}:") else None
        if kind == COMMAND:
            if event.command == "skip" and step.on_skip:
                return self._wrap(step, step.on_skip)
            if event.command == "done" and step.on_done:
                return self._wrap(step, step.on_done)
            if event.command in ("skip", "done"):
                return self._wrong_kind(step)
            if event.command == "cancel":
                return self._cancel
            if event.command in FLOW_COMMANDS:
                return self._flow_command_while_open
            return None
        if kind == TEXT and step.on_text and not event.forwarded:
            return self._wrap(step, step.on_text)
        if event.photo is not None and step.on_photo and not event.forwarded:
            return self._wrap(step, step.on_photo)
        if kind == LOCATION and step.on_location and not event.forwarded:
            return self._wrap(step, step.on_location)
        if event.contact is not None and step.on_contact:
            return self._wrap(step, step.on_contact)
        return self._wrong_kind(step)

    # -- moving between steps -------------------------------------------------------------------

    async def goto(self, event: Inbound, context: GridContext, draft: dict, nxt: str | None, current: str) -> None:
        if nxt is STAY:
            return
        if nxt == END:
            context.draft = None
            return
        if draft.get("editing") and current != self.confirm and nxt != current and self.steps[nxt].main:
            nxt, draft["editing"] = self.confirm, False
        step = self.steps[nxt]
        if not context.channel.abilities.location and step.on_location and step.on_skip and not step.on_text:
            # A step that takes only a location (or /skip), on a channel that cannot send one: skipped.
            draft["step"] = nxt
            await self.goto(event, context, draft, await step.on_skip(event, context, draft), nxt)
            return
        # The step is recorded only once it was asked: if the channel fails on the question, the
        # draft stays on the step the user last saw.
        await self.steps[nxt].ask(event, context, draft)
        draft["step"] = nxt

    async def start(self, event: Inbound, context: GridContext,
                    prefill: Callable[[dict], Awaitable[str | None]] | None = None) -> None:
        """Open the form (or offer the open one back). `prefill` fills the new draft from where the
        user came (a button) and returns the step to begin at, or None to open nothing."""
        open_draft = context.draft
        if open_draft is not None:
            if open_draft["flow"] in FLOW_BY_NAME and not FLOW_BY_NAME[open_draft["flow"]].expired(context, open_draft):
                await FLOW_BY_NAME[open_draft["flow"]].offer_resume(event, context, open_draft)
                return
            context.draft = None  # a leftover from a flow that timed out while the bot was down
        data = await self.begin(event, context)
        if data is None:
            return
        draft = self.new_draft(context, data)
        first = self.first
        if prefill is not None:
            first = await prefill(draft)
            if first is None:
                return
        context.draft = draft
        await self.goto(event, context, draft, first, current="")

    async def _start_by_menu(self, event: Inbound, context: GridContext) -> None:
        await self.start(event, context)  # may answer the button itself (a refusal as an alert)
        await context.toast()  # else stop its spinner (a second answer is ignored)

    async def offer_resume(self, event: Inbound, context: GridContext, draft: dict) -> None:
        step = self.steps[draft["step"]]
        await context.reply(
            context._("You have an unfinished {flow} (at: {step}). Continue it, or discard it first?").format(
                flow=context._(self.title), step=context._(step.expects)
            ),
            keyboard([[button(context._("▶️ Continue"), draft, "resume"), button(context._("🗑 Discard"), draft, "discard")]]),
        )

    # -- wrapping step handlers -----------------------------------------------------------------

    def _wrap(self, step: Step, fn: StepFn) -> Handler:
        async def run(event: Inbound, context: GridContext) -> None:
            draft = await self._live_draft(event, context)
            if draft is None:
                return
            nxt = await fn(event, context, draft)
            draft["touched"] = clock.now().isoformat()
            await self.goto(event, context, draft, nxt, step.name)

        return run

    def _button(self, step: Step) -> Handler:
        async def run(event: Inbound, context: GridContext) -> None:
            draft = await self._live_draft(event, context)
            if draft is None:
                await context.toast()
                return
            _flow, draft_key, action, *rest = (event.button.split(":", 3) + [""])[:4]
            arg = rest[0] if rest else ""
            if draft_key != draft["id"][:8]:
                await context.toast(context._("This button belongs to an earlier form; it does nothing now."))
                return
            context.notice = None
            if action == "resume":
                await context.toast()
                await step.ask(event, context, draft)
                return
            if action == "discard":
                await context.toast(context._("Discarded."))
                await self._discard(event, context)
                return
            nxt = await step.on_button(event, context, draft, action, arg) if step.on_button else STALE
            if nxt == STALE:
                await context.toast(context._("That button is no longer active at this step."))
                return
            await context.toast(context.notice)
            draft["touched"] = clock.now().isoformat()
            await self.goto(event, context, draft, nxt, step.name)

        return run

    async def _live_draft(self, event: Inbound, context: GridContext) -> dict | None:
        """The draft this event works on, or None after telling the user it timed out."""
        draft = context.draft
        assert draft is not None and draft.get("flow") == self.name
        if self.expired(context, draft):
            context.draft = None
            await self._say_timed_out(context, draft)
            return None
        return draft

    def _wrong_kind(self, step: Step) -> Handler:
        async def run(event: Inbound, context: GridContext) -> None:
            if await self._live_draft(event, context) is not None:
                await context.reply(context._("This step expects: {what}").format(what=context._(step.expects)))

        return run

    async def _cancel(self, event: Inbound, context: GridContext) -> None:
        context.draft = None
        await context.reply(context._("Cancelled. The {flow} draft was discarded; nothing was saved.").format(flow=context._(self.title)))

    async def _discard(self, event: Inbound, context: GridContext) -> None:
        context.draft = None
        await context.reply(context._("The {flow} draft was discarded; nothing was saved.").format(flow=context._(self.title)))

    async def _flow_command_while_open(self, event: Inbound, context: GridContext) -> None:
        draft = context.draft
        assert draft is not None
        await self.offer_resume(event, context, draft)

    async def on_timer(self, context: GridContext, draft: dict) -> None:
        """The draft's timer fired (the engine holds the person's lock and writes the state after)."""
        if not self.expired(context, draft):
            return  # touched again since the timer was set: the engine sets a new one
        context.draft = None
        context.user_data[TIMED_OUT_KEY] = {"flow": self.name}
        await self._say_timed_out(context, draft)

    async def _say_timed_out(self, context: GridContext, draft: dict) -> None:
        context.lang = draft.get("lang", context.lang)
        await context.reply(
            context._("⏰ No reply for {minutes} minutes, so the {flow} form was closed and its draft discarded. Send /{command} to start again.").format(
                minutes=context.settings.conversation_timeout_minutes, flow=context._(self.title), command=self.command
            ),
        )


FLOW_BY_NAME: dict[str, Flow] = {}


def register_flow(flow: Flow) -> Flow:
    FLOW_BY_NAME[flow.name] = flow
    return flow


def timed_out_flow(context: GridContext) -> Flow | None:
    """The form a timeout closed just before this event (the gate took the note)."""
    return FLOW_BY_NAME.get(context.timed_out or "")


# -- telling the user what a save did ---------------------------------------------------------------

CONFIRM_KIND = "confirm"  # outbox kind of a confirmation the channel could not take at the time
CLOSED_KEY = "closed_forms"  # user_data: draft key -> what saving it did (for a late second tap)
CLOSED_KEEP = 5


def recipient(context: GridContext, address: str | None = None) -> str:
    """An outbox recipient on the context's channel."""
    return outbox.recipient(context.channel.name, context.address if address is None else address)


def _payload(markup: Markup) -> dict | None:
    """Buttons travel with an outbox row; a contact request (or its removal) cannot."""
    return markup.payload() if isinstance(markup, Buttons) and markup.rows else None


def _remember_closed(context: GridContext, draft: dict, outcome: str) -> None:
    closed = context.user_data.setdefault(CLOSED_KEY, {})
    closed.pop(draft["id"][:8], None)
    closed[draft["id"][:8]] = outcome[:120]
    while len(closed) > CLOSED_KEEP:
        closed.pop(next(iter(closed)))


async def tell_outcome(event: Inbound, context: GridContext, draft: dict, messages: list[tuple[str, Markup]], *,
                       summary: str | None = None, drop_buttons: bool = False) -> int:
    """Tell the user what a save did, once, even if the channel is down right now. Every save uses it.

    The record is committed before this is called. `summary` replaces the text of the message the
    pressed button sits on (`drop_buttons`: only its buttons are removed); `messages` are then
    sent in order, each (text, markup). If the channel fails transiently (an outage, a timeout,
    a flood wait its own retries did not outlast) what did not get through is written to the
    outbox under ("confirm", draft id, chat, part) and sent by the outbox when the channel is back:
    the key makes it exactly once, even if the save runs again. Buttons go with it; a contact
    request (or its removal) cannot. When only the summary edit was due, its text is what is
    queued. Whatever happened, the caller ends the conversation normally, so the draft is cleared.
    A refusal (a bug; the user blocked the bot) is not queued: a bug stays loud (raised), a
    blocked user cannot be told. Returns how many messages were queued.
    """
    # The outcome in one line: the message's first, or the summary's last (where the edit says it).
    _remember_closed(context, draft, plain_text(messages[0][0]).strip().split("\n")[0] if messages
                     else plain_text(summary or "").strip().split("\n")[-1])
    try:
        async with context.db.session() as session:
            queued = await outbox.exists(session, CONFIRM_KIND, draft["id"])
    except Exception:  # noqa: BLE001 - the record is saved; a failed look here only risks a duplicate message
        log.warning("could not look for a queued confirmation of draft %s", draft["id"], exc_info=True)
        queued = False
    if queued:  # an earlier run of this save (before a crash) queued it: the outbox tells the user
        return 0
    pending: list[tuple[str, Markup]] = []
    edit_failed = False  # transiently: when it was the whole confirmation, its text is queued
    if event.is_button and (summary is not None or drop_buttons):
        try:
            if context.channel.abilities.edit:
                await context.channel.edit(context.address, event.message_ref or "", summary, None)
            elif summary is not None and not messages:
                messages = [(summary, None)]
        except Blocked:
            log.info("%s blocked the bot; the saved draft %s cannot be confirmed", context.address, draft["id"])
            return 0
        except Refused as exc:  # the summary was deleted or is too old to edit: say it in a new message
            log.info("could not edit the summary of draft %s: %s", draft["id"], exc)
            if not messages and summary is not None:
                messages = [(summary, None)]
        except Transient as exc:
            log.warning("the channel failed on the summary of saved draft %s: %s", draft["id"], exc)
            edit_failed = True
    for i, (text, markup) in enumerate(messages):
        try:
            await context.reply(text, markup)
        except Blocked:
            log.info("%s blocked the bot; the saved draft %s cannot be confirmed", context.address, draft["id"])
            return 0
        except Transient as exc:
            log.warning("the channel failed on the confirmation of saved draft %s: %s; it goes to the outbox", draft["id"], exc)
            pending = messages[i:]
            break
    if not messages and edit_failed and summary is not None:
        pending = [(summary, None)]
    if not pending:
        return 0
    first = len(messages) - len(pending) if messages else 0
    rows = [outbox.NewMessage(CONFIRM_KIND, draft["id"], recipient(context), text, part=first + i, payload=_payload(markup), urgent=True)
            for i, (text, markup) in enumerate(pending)]
    async with context.db.session() as session:
        await outbox.enqueue(session, rows)
    return len(rows)


NOTICE_KIND = "notice"  # outbox kind of a notification to another user the channel could not take at the time


async def notify(context: GridContext, who, text: str, markup: Buttons | None = None) -> bool:  # noqa: ANN001
    """Tell another person (a Member, or a models row with `key_on` and `recipient`) after a commit.

    On the channel in use when they have an identity there; otherwise through the outbox on their
    own channel (someone who uses gridbot on another platform). A transient failure queues the
    message in the outbox, which sends it when the channel is back; a refusal (blocked, bad chat) is
    logged. Never raises: the committed change stands either way. Returns whether it was sent now."""
    address = who.key_on(context.channel.name)
    if address is None:
        if who.recipient is not None:
            await _queue_notice(context, who.recipient, text, markup)
        return False
    try:
        await context.send_to(address, text, markup)
        return True
    except Transient as exc:
        log.warning("the channel failed on a notification to %s: %s; it goes to the outbox", address, exc)
    except ChannelError as exc:
        log.warning("could not notify %s: %s", address, exc)
        return False
    await _queue_notice(context, recipient(context, address), text, markup)
    return False


async def _queue_notice(context: GridContext, to: str, text: str, markup: Buttons | None) -> None:
    try:  # a fresh key per notification: it is queued once, here, and only when it was not sent now
        async with context.db.session() as session:
            await outbox.enqueue(session, [outbox.NewMessage(NOTICE_KIND, uuid.uuid4().hex, to, text, payload=_payload(markup), urgent=True)])
    except Exception:  # noqa: BLE001 - the database may be what failed; the change itself is committed
        log.exception("could not queue a notification to %s", to)


async def stale_button(event: Inbound, context: GridContext) -> None:
    """Any button no open conversation claimed: an old keyboard, a finished or foreign draft."""
    draft = context.draft
    parts = event.button.split(":")
    if draft and len(parts) >= 3 and parts[1] == draft["id"][:8] and parts[2] == "discard":
        # A draft whose step no longer exists (an older version's): let it go.
        context.draft = None
        await context.toast(context._("Discarded."))
        return
    closed = context.user_data.get(CLOSED_KEY, {})
    if len(parts) >= 3 and parts[1] in closed:
        # A second tap of Save (or any button) of a form that was saved: say what the first one did.
        await context.toast(context._("This button has expired: that form was already saved. {outcome}").format(outcome=closed[parts[1]]))
        return
    await context.toast(context._("This button has expired; it belongs to a form that is already closed."))


def summary_line(label: str, value: str) -> str:
    return f"<b>{esc(label)}</b>: {value}"

