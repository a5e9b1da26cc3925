"""A test-only second channel: plain text in; plain text with numbered buttons out; no edits, no
toasts, no locations, no contact button, no command menu. Replying `#N` presses button N of the
newest message that has buttons. It runs the real engine and the real flows, without Telegram."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from types import SimpleNamespace

from bot.chat import BUTTON, COMMAND, PHOTO, TEXT, Abilities, Buttons, FileRef, Inbound, Markup, Refused, SendLimits, plain_text
from bot.db import Database
from bot.engine import Engine
from bot.media import MediaStore
from bot.settings import Settings

NAME = "plain"


@dataclass
class Said:
    text: str
    buttons: list[str] = field(default_factory=list)  # button data, numbered from 1
    labels: list[str] = field(default_factory=list)


class PlainChannel:
    name = NAME
    title = "Plain"
    abilities = Abilities(edit=False, toast=False, location=False, contact_button=False, commands_menu=False)
    limits = SendLimits(per_second=50, per_chat_per_second=5)

    def __init__(self) -> None:
        self.said: dict[str, list[Said]] = {}
        self.files: dict[str, bytes] = {}

    async def send(self, address: str, text: str, markup: Markup = None) -> str | None:
        out = Said(plain_text(text))
        if isinstance(markup, Buttons):
            for row in markup.rows:
                for b in row:
                    out.buttons.append(b.data)
                    out.labels.append(b.text)
            out.text += "".join(f"\n[{i}] {label}" for i, label in enumerate(out.labels, 1))
        self.said.setdefault(address, []).append(out)
        return str(len(self.said[address]))

    async def edit(self, address: str, message_ref: str, text: str | None, markup: Markup = None) -> None:
        raise Refused("this channel cannot edit")

    async def toast(self, event: Inbound, text: str | None, alert: bool = False) -> None:
        raise Refused("this channel has no toasts")

    async def send_photo(self, address: str, photo: bytes | str, caption: str | None = None, markup: Markup = None) -> None:
        await self.send(address, f"[photo] {caption or ''}", markup)

    async def send_document(self, address: str, data: bytes, filename: str, caption: str | None = None) -> None:
        await self.send(address, f"[file {filename}] {caption or ''}")

    async def send_location(self, address: str, latitude: float, longitude: float) -> None:
        raise Refused("this channel cannot send a location")

    async def download(self, file: FileRef) -> bytes:
        return self.files[file.file_id]

    async def set_commands(self, address: str | None, commands: list[tuple[str, str]] | None, language: str | None = None) -> None:
        raise Refused("this channel has no command menu")

    def join_link(self, code: str) -> str | None:
        return None


def runtime(settings: Settings, db: Database) -> tuple[Engine, PlainChannel]:
    """The engine with the plain channel only: no Telegram application anywhere."""
    from handlers import routes

    channel = PlainChannel()
    app = SimpleNamespace(settings=settings, db=db, media=MediaStore(settings.media_dir), channels={NAME: channel})
    engine = Engine(app, routes())
    engine.routes.channels = {NAME: channel}
    app.engine = engine
    return engine, channel


async def known_here(db: Database, *telegram_ids: int) -> None:
    """The seeded people (registered on Telegram) get an identity on this channel too, the same key
    (what `/link` does; tests/test_identity.py goes through /link itself)."""
    from models.tables import ChannelIdentity
    from models.users import get_member

    async with db.session() as session:
        for tid in telegram_ids:
            member = await get_member(session, tid)
            assert member is not None
            session.add(ChannelIdentity(user_id=member.id, channel=NAME, key=str(tid)))


class PlainUser:
    _ids = itertools.count(1)

    def __init__(self, engine: Engine, channel: PlainChannel, user_key: int | str, language: str | None = "en") -> None:
        self.engine, self.channel, self.key, self.language = engine, channel, str(user_key), language

    async def _event(self, **fields) -> list[Said]:  # noqa: ANN003
        before = len(self.channel.said.get(self.key, []))
        n = next(self._ids)
        await self.engine.handle(self.channel, Inbound(channel=NAME, user_key=self.key, event_id=f"p{n}", name="Plain",
                                                       language=self.language, **fields))
        return self.channel.said.get(self.key, [])[before:]

    async def send(self, text: str) -> list[Said]:
        if text.startswith("#") and text[1:].isdigit():
            message = self.keyboard_message()
            return await self._event(kind=BUTTON, button=message.buttons[int(text[1:]) - 1])
        if text.startswith("/"):
            head, *args = text.split()
            return await self._event(kind=COMMAND, text=text, command=head[1:], args=args)
        return await self._event(kind=TEXT, text=text)

    async def press(self, label: str, message: Said | None = None) -> list[Said]:
        """Reply with the number of the button whose text contains `label` (on the newest message
        with buttons, as a person would; or on an older `message`)."""
        message = message or self.keyboard_message()
        for i, text in enumerate(message.labels, 1):
            if label in text:
                return await self._event(kind=BUTTON, button=message.buttons[i - 1])
        raise AssertionError(f"no button {label!r} in {message.labels}")

    async def photo(self, data: bytes) -> list[Said]:
        file_id = f"f{len(self.channel.files) + 1}"
        self.channel.files[file_id] = data
        return await self._event(kind=PHOTO, photo=FileRef(file_id, file_id, size=len(data)))

    def keyboard_message(self) -> Said:
        for said in reversed(self.channel.said.get(self.key, [])):
            if said.buttons:
                return said
        raise AssertionError("no message with buttons")

    @property
    def last(self) -> str:
        return self.channel.said[self.key][-1].text

    @property
    def draft(self) -> dict | None:
        return self.engine.states.get((NAME, self.key), {}).get("draft")


def texts(said: list[Said]) -> str:
    return "\n".join(s.text for s in said)
