"""The neutral vocabulary between chat channels, the engine and the flows.

A channel adapter (bot/channels/) turns what its platform delivers into an `Inbound` event and
renders what the flows say: rich text plus at most one widget per message. The flows
(handlers/) only ever see these types, so one definition of each flow serves every channel.

Rich text is the small HTML subset gridbot has always written: `<b>`, `<i>`, `<code>`,
`<a href>`, and user text escaped with `handlers.common.esc`. A channel renders it its own way
(Telegram takes it as it is; a plain-text channel drops the tags, `plain_text`).

Widgets:
- `Buttons`: rows of buttons under the message; each carries short data (at most 64 bytes,
  what the smallest platform takes) that comes back as a `button` event. Toggle lists (✅/⬜ and
  Done) and paged pick lists (◀️/▶️ and extra buttons) are built from it by handlers/flow.py.
- `AskContact`: a request for the person's own phone number (a button on Telegram), with typing
  it or /skip as the way on channels without one.
- `CLEAR`: take away a request keyboard shown before.

A channel says what it cannot do (`Abilities`); the context falls back for it: a new message
where it cannot edit, the notice in a message where it cannot show a toast.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Protocol

# Kinds of inbound event.
TEXT, COMMAND, PHOTO, FILE, LOCATION, CONTACT, BUTTON, OPENED, OTHER = (
    "text", "command", "photo", "file", "location", "contact", "button", "opened", "other")


@dataclass(frozen=True)
class FileRef:
    """A file on the platform: its id there (to fetch it), and what the platform says of it."""

    file_id: str
    unique_id: str = ""
    name: str = ""
    mime: str = ""
    size: int = 0
    as_file: bool = False  # a photo sent as a file (原图): checked for size and kind before it is kept


@dataclass(frozen=True)
class Contact:
    phone: str
    own: bool  # the sender's own number (a shared contact card of someone else is not)


@dataclass
class Inbound:
    """One thing a person did in a private chat with the bot."""

    channel: str  # "telegram", …
    user_key: str  # the person's id on that channel
    event_id: str  # unique per channel: a redelivered event has the same id
    kind: str
    text: str = ""  # the text, a command's whole line, or a caption
    command: str = ""  # for COMMAND: the name without "/" (and without "@bot")
    args: list[str] = field(default_factory=list)
    photo: FileRef | None = None
    file: FileRef | None = None  # a document (a photo sent as a file is both)
    location: tuple[float, float] | None = None
    contact: Contact | None = None
    button: str = ""  # for BUTTON: the pressed button's data
    message_ref: str | None = None  # for BUTTON: the message the button sits on
    answer_token: str = ""  # for BUTTON: what the platform needs to answer the press
    forwarded: bool = False
    edited: bool = False  # an edit of a message sent before (it changes nothing)
    name: str = ""  # the person's name as the platform shows it
    language: str | None = None  # the platform's language for the person
    choice: str = ""  # for TEXT: the data of the button whose number the text is (numbered-list channels)
    dedupe: tuple[int, int] | None = None  # (scope, number) recorded as handled, or None
    digest: str = ""  # of the event's content: an id seen again with other content is a new event

    @property
    def is_button(self) -> bool:
        return self.kind == BUTTON


@dataclass(frozen=True)
class Button:
    text: str
    data: str


@dataclass(frozen=True)
class Buttons:
    rows: tuple[tuple[Button, ...], ...]

    @staticmethod
    def of(rows: list[list[Button]]) -> Buttons:
        return Buttons(tuple(tuple(r) for r in rows if r))

    def with_row(self, row: list[Button]) -> Buttons:
        return Buttons.of([*map(list, self.rows), row])

    def payload(self) -> dict:
        """As stored with an outbox row."""
        return {"buttons": [[[b.text, b.data] for b in row] for row in self.rows]}

    @staticmethod
    def from_payload(payload: dict | None) -> Buttons | None:
        rows = (payload or {}).get("buttons")
        return Buttons.of([[Button(text, data) for text, data in row] for row in rows]) if rows else None


@dataclass(frozen=True)
class AskContact:
    label: str  # the button's text where the channel has one
    skip: str = "/skip"


@dataclass(frozen=True)
class ClearKeyboard:
    pass


CLEAR = ClearKeyboard()
Markup = Buttons | AskContact | ClearKeyboard | None


@dataclass(frozen=True)
class Abilities:
    edit: bool = True  # change a message sent before (its text or its buttons)
    toast: bool = True  # a short notice on a pressed button
    location: bool = True  # receive a location pin
    contact_button: bool = True  # a button that shares the person's phone number
    commands_menu: bool = True  # a per-person command menu


@dataclass(frozen=True)
class SendLimits:
    """How fast the outbox may send on a channel (its platform's limits, less room for replies):
    messages a second over all chats, and to one chat."""

    per_second: float = 20
    per_chat_per_second: float = 1


class ChannelError(Exception):
    """A send the channel could not make."""


class Transient(ChannelError):
    """An outage, a timeout, a flood wait: trying again later can cure it. `retry_after` (seconds)
    when the platform said how long to wait (a flood wait), for every send on the channel."""

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Refused(ChannelError):
    """The platform refused (a bad request, a message too old to edit): trying again changes nothing."""


class Blocked(Refused):
    """The person blocked the bot or left: they cannot be told."""


class Channel(Protocol):
    """What the engine and the flows ask of a channel adapter. Addresses are the channel's own
    (a Telegram chat id as text). Every method raises a ChannelError subclass, never a platform's."""

    name: str
    title: str  # the platform as a person calls it: "Telegram", "企业微信"
    abilities: Abilities
    limits: SendLimits  # the outbox's rates on this channel

    async def send(self, address: str, text: str, markup: Markup = None) -> str | None: ...

    async def edit(self, address: str, message_ref: str, text: str | None, markup: Markup = None) -> None: ...

    async def toast(self, event: Inbound, text: str | None, alert: bool = False) -> None: ...

    async def send_photo(self, address: str, photo: bytes | str, caption: str | None = None, markup: Markup = None) -> None: ...

    async def send_document(self, address: str, data: bytes, filename: str, caption: str | None = None) -> None: ...

    async def send_location(self, address: str, latitude: float, longitude: float) -> None: ...

    async def download(self, file: FileRef) -> bytes: ...

    async def set_commands(self, address: str | None, commands: list[tuple[str, str]] | None, language: str | None = None) -> None:
        """A person's command menu (`address` None: the guests'), or None to clear it."""

    def join_link(self, code: str) -> str | None:
        """A link that opens the bot with an invitation code, where the platform has such links."""


_TAG = re.compile(r"<[^>]+>")


def plain_text(text: str) -> str:
    """Rich text as plain text: tags dropped, entities read."""
    return html.unescape(_TAG.sub("", text))
