"""The WeCom (企业微信) channel over the 智能机器人 (AI bot) long connection.

gridbot dials out to WECOM_WS_URL (wss://openws.work.weixin.qq.com) with the bot's BotID and
Secret: no public address, no callback URL. Two parts:

`Connection` speaks the frame protocol. Every frame is `{cmd, headers: {req_id}, body}`; an ack
carries the req_id and an errcode. It subscribes first and waits for the ack; pings every 30 s and
takes two unanswered pings as a dead link; frames under one req_id go one at a time, each after
the ack of the one before. Any end of a session (a clean close, a reset, a dead link) is followed
by a reconnect after a jittered back-off (1 s doubling to 30 s). It stops for good when the
credentials are refused or on `disconnected_event` (another process subscribed with the same bot:
two replicas would take the connection from each other forever), and the admins are told.

`WeComBotChannel` turns pushes into neutral events and renders what the flows say:
- Text and typed commands (`/visit`, and the words people type: 走访, 巡查, 上报, 待办, 取消, 跳过,
  完成, 帮助, `加入 CODE`); voice arrives as WeCom's transcript, so as text; images are fetched from
  their URL and decrypted with the message's `aeskey`; a file that is an image counts as a photo;
  `enter_chat` (the chat opened) gets the welcome; a card button's click is a button press.
- `msgid` is the event id: a frame delivered again is handled once (bot/engine.py).
- Rich text becomes WeCom markdown (user text cannot open markup: its markdown characters are
  shown as full-width look-alikes). Buttons become a `button_interaction` card (at most 6) and,
  always, a numbered list: replying `2` presses the second button wherever the step takes no
  typed text. What one turn says goes out in as few frames as possible (WeCom counts 30 a minute
  per conversation): one finished stream answering the person's message, with the card of the
  first buttons; whatever follows by `aibot_send_msg`.
- There is no location on this channel, no editing of sent messages (a card changes only within 5
  seconds of its click), no toast and no command menu: the flows fall back (`Abilities`).
- Photos and files go out by the chunked upload, then `aibot_send_msg` with the media id.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import hashlib
import html
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from bot.chat import (
    BUTTON,
    COMMAND,
    OPENED,
    OTHER,
    PHOTO,
    TEXT,
    Abilities,
    Buttons,
    ChannelError,
    FileRef,
    Inbound,
    Markup,
    Refused,
    SendLimits,
    Transient,
    plain_text,
)
from bot.i18n import N_
from bot.settings import Settings

log = logging.getLogger(__name__)

NAME = "wecom"
HEARTBEAT = 30.0  # seconds between pings (the official SDKs' default)
MISSED_PINGS = 2  # unanswered pings in a row that mean the link is dead
ACK_TIMEOUT = 5.0
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0
STREAM_BYTES = 20480  # a stream's content
PUSH_BYTES = 4000  # an aibot_send_msg markdown (WeCom's own plugin cuts there; the real limit is unpublished)
CHUNK_BYTES = 512 * 1024  # an upload chunk before base64
MEDIA_TIMEOUT = 30.0
CARD_BUTTONS = 6
TITLE_CHARS, BUTTON_CHARS = 26, 10
WELCOME_WINDOW = 4.0  # seconds: a welcome answers `enter_chat` within 5 s; a slower turn sends instead
FREQUENCY, BUSY = 45009, -1
# What people type instead of a command.
WORDS = {"走访": "visit", "巡查": "patrol", "上报": "report", "待办": "tasks", "取消": "cancel", "跳过": "skip", "完成": "done",
         "帮助": "help", "菜单": "menu", "加入": "start"}
WECOM_STOPPED = N_("⚠️ WeCom: {why}. gridbot receives no WeCom messages until it is restarted.")
NUMBERED_KEY = "wecom_numbered"  # in the person's state: the data of the buttons last shown, numbered from 1
# Markdown characters in text that is not markup are shown as full-width look-alikes, so a name or
# an address can never open bold, code, a link or a tag (WeCom documents no escapes); `#` and `>`
# only at the start of a line, where they make a heading or a quote ("Visit #1" stays as it is).
_LOOKALIKE = str.maketrans({"*": "＊", "`": "｀", "[": "［", "]": "］", "<": "＜"})
_LINE_START = re.compile(r"(^|\n)([ \t]*)([#>])")
_TAG = re.compile(r"<(/?)(b|strong|i|em|u|s|code|pre|a)(\s+href=\"([^\"]*)\")?\s*>", re.I)


class AuthRefused(Exception):
    """The BotID/Secret were refused: reconnecting will not help."""


class Replaced(Exception):  # noqa: N818 - an event, not an error
    """`disconnected_event`: another connection subscribed with this bot."""


def new_req_id(cmd: str) -> str:
    """As the official SDKs make them (`<cmd>_<ms>_<random>`); WeCom's own tools read the prefix."""
    return f"{cmd}_{int(time.time() * 1000)}_{uuid.uuid4().hex[:8]}"


def _error(cmd: str, ack: dict) -> ChannelError:
    code, message = ack.get("errcode"), f"{cmd}: errcode {ack.get('errcode')} {ack.get('errmsg', '')}".strip()
    if code == FREQUENCY:
        return Transient(message, retry_after=60)
    if code == BUSY:
        return Transient(message)
    return Refused(message)


class Connection:
    """The long connection: subscribe, heartbeat, acks by req_id, reconnects. `on_push(frame)` gets
    every message and event callback, in the order they arrive (it must not block)."""

    def __init__(self, url: str, bot_id: str, secret: str, on_push: Callable[[dict], None], *,
                 on_fatal: Callable[[str], None] | None = None, heartbeat: float = HEARTBEAT, ack_timeout: float = ACK_TIMEOUT,
                 backoff: tuple[float, float] = (BACKOFF_FIRST, BACKOFF_MAX)) -> None:
        self.url, self.bot_id, self.secret = url, bot_id, secret
        self.on_push, self.on_fatal = on_push, on_fatal
        self.heartbeat, self.ack_timeout, self.backoff = heartbeat, ack_timeout, backoff
        self.ready = asyncio.Event()  # subscribed, frames may be sent
        self.sessions = 0  # subscribed sessions so far
        self.fatal: str | None = None  # why it stopped for good
        self._ws: ClientConnection | None = None
        self._acks: dict[str, asyncio.Future] = {}
        self._serial: dict[str, asyncio.Lock] = {}
        self._missed = 0
        self._last_problem = ""  # why the last session ended, for the log and a failed start
        self._closing = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    # -- life ---------------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.ensure_future(self.run())

    async def first_session(self, timeout: float) -> None:
        """Wait for the first subscribe; raise what stopped it (refused credentials, unreachable)."""
        waiter = asyncio.ensure_future(self.ready.wait())
        await asyncio.wait({waiter, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)  # type: ignore[arg-type]
        waiter.cancel()
        if self.fatal is not None:
            raise AuthRefused(self.fatal)
        if not self.ready.is_set():
            raise TimeoutError(f"no session with {self.url} within {timeout:.0f} s ({self._last_problem or 'no answer'})")

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def run(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                async with connect(self.url, ping_interval=None, open_timeout=10, close_timeout=2, max_size=2**24) as ws:
                    await self._subscribe(ws)
                    attempt = 0
                    await self._session(ws)
                self._last_problem = "the server closed the connection"
            except (AuthRefused, Replaced) as exc:
                self.fatal = str(exc)
                log.error("WeCom: %s; not reconnecting", exc)
                if self.on_fatal is not None:
                    self.on_fatal(self.fatal)
                return
            except asyncio.CancelledError:
                raise
            except (OSError, ConnectionClosed, InvalidHandshake, InvalidURI, TimeoutError, ValueError, Transient) as exc:
                self._last_problem = f"{type(exc).__name__}: {exc}"[:200]
            if self._closing:
                return
            first, cap = self.backoff
            delay = min(cap, first * 2**attempt) * random.uniform(0.5, 1.0)  # jitter: replicas and retries spread out
            attempt += 1
            log.warning("WeCom: connection ended (%s); reconnecting in %.1f s", self._last_problem, delay)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _subscribe(self, ws: ClientConnection) -> None:
        req_id = new_req_id("aibot_subscribe")
        await ws.send(json.dumps({"cmd": "aibot_subscribe", "headers": {"req_id": req_id},
                                  "body": {"bot_id": self.bot_id, "secret": self.secret}}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), self.ack_timeout * 2))
            if frame.get("headers", {}).get("req_id") == req_id and "cmd" not in frame:
                break
        code = frame.get("errcode", 0)
        if code in (FREQUENCY, BUSY):
            raise Transient(f"subscribe: errcode {code} {frame.get('errmsg', '')}")
        if code:
            raise AuthRefused(f"the BotID and Secret were refused (errcode {code} {frame.get('errmsg', '')})")
        self._ws, self._missed = ws, 0
        self.sessions += 1
        self.ready.set()
        log.info("WeCom: subscribed (session %d)", self.sessions)

    async def _session(self, ws: ClientConnection) -> None:
        beat = asyncio.ensure_future(self._heartbeat(ws))
        try:
            async for raw in ws:
                try:
                    frame = json.loads(raw)
                    req_id = frame["headers"]["req_id"]
                except (ValueError, KeyError, TypeError):
                    log.warning("WeCom: a frame that is not one: %.200r", raw)
                    continue
                cmd = frame.get("cmd")
                if not cmd:
                    if req_id.startswith("ping"):
                        self._missed = 0
                    future = self._acks.get(req_id)
                    if future is not None and not future.done():
                        future.set_result(frame)
                    continue
                body = frame.get("body") or {}
                if cmd == "aibot_event_callback" and (body.get("event") or {}).get("eventtype") == "disconnected_event":
                    raise Replaced("another connection subscribed with this bot (disconnected_event): run one gridbot per bot")
                self.on_push(frame)
        finally:
            beat.cancel()
            self._ws = None
            self.ready.clear()
            for future in self._acks.values():
                if not future.done():
                    future.set_exception(Transient("the WeCom connection ended before the ack"))

    async def _heartbeat(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            if self._missed >= MISSED_PINGS:
                log.warning("WeCom: %d pings unanswered; dropping the connection", self._missed)
                self._last_problem = f"{self._missed} pings unanswered"
                ws.transport.abort()
                return
            self._missed += 1
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps({"cmd": "ping", "headers": {"req_id": new_req_id("ping")}}))

    # -- frames -------------------------------------------------------------------------------------

    async def request(self, cmd: str, body: dict, req_id: str | None = None) -> dict:
        """Send one frame and wait for its ack; raise ChannelError on an errcode, Transient when not connected."""
        req_id = req_id or new_req_id(cmd)
        lock = self._serial.setdefault(req_id, asyncio.Lock())
        try:
            async with lock:  # frames under one req_id go one at a time: their acks look alike
                ws = self._ws
                if ws is None:
                    raise Transient("not connected to WeCom")
                future = self._acks[req_id] = asyncio.get_running_loop().create_future()
                try:
                    await ws.send(json.dumps({"cmd": cmd, "headers": {"req_id": req_id}, "body": body}, ensure_ascii=False))
                    ack = await asyncio.wait_for(future, self.ack_timeout)
                except ConnectionClosed as exc:
                    raise Transient(f"{cmd}: the connection closed") from exc
                except TimeoutError as exc:
                    raise Transient(f"{cmd}: no ack within {self.ack_timeout:.0f} s") from exc
                finally:
                    self._acks.pop(req_id, None)
        finally:
            if not lock.locked() and self._serial.get(req_id) is lock:
                del self._serial[req_id]
        if ack.get("errcode"):
            raise _error(cmd, ack)
        return ack


# -- rendering ------------------------------------------------------------------------------------


def markdown(text: str) -> str:
    """gridbot's rich text (the HTML subset of bot/chat.py) as WeCom markdown."""
    out, pos, link = [], 0, None
    for m in _TAG.finditer(text):
        out.append(html.unescape(text[pos:m.start()]).translate(_LOOKALIKE))
        closing, tag = m.group(1), m.group(2).lower()
        if tag in ("b", "strong"):
            out.append("**")
        elif tag in ("code", "pre"):
            out.append("`")
        elif tag == "a":
            if closing:
                out.append(f"]({link})" if link else "")
                link = None
            else:
                link = html.unescape(m.group(4) or "")
                out.append("[" if link else "")
        pos = m.end()
    out.append(html.unescape(_TAG.sub("", text[pos:])).translate(_LOOKALIKE))
    return _LINE_START.sub(lambda m: m.group(1) + m.group(2) + ("＃" if m.group(3) == "#" else "＞"), "".join(out))


def split_bytes(text: str, limit: int) -> list[str]:
    """Parts of at most `limit` UTF-8 bytes, cut at line ends (inside a line only if it is too long alone)."""
    parts, current = [], ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate.encode()) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
        while len(line.encode()) > limit:
            cut = len(line.encode()[:limit].decode(errors="ignore"))
            parts.append(line[:cut])
            line = line[cut:]
        current = line
    if current or not parts:
        parts.append(current)
    return parts


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _unmarked(text: str) -> str:
    """Markdown as plain text (a welcome is text only): the bold and code marks dropped."""
    return text.replace("**", "").replace("`", "")


def numbered(markup: Buttons) -> str:
    """The buttons as a numbered list: replying the number presses the button, where no card shows."""
    labels = [b.text for row in markup.rows for b in row]
    return "\n".join(f"`{i}` {markdown(html.escape(label))}" for i, label in enumerate(labels, 1))


def button_card(text: str, markup: Buttons) -> dict | None:
    """A `button_interaction` card for at most 6 buttons (None beyond: the numbered list serves)."""
    buttons = [b for row in markup.rows for b in row]
    if not buttons or len(buttons) > CARD_BUTTONS:
        return None
    lines = [line.strip() for line in plain_text(text).splitlines() if line.strip()]
    title = _cut(lines[-1] if lines else "👇", TITLE_CHARS)
    return {"card_type": "button_interaction", "main_title": {"title": title}, "task_id": f"gb-{uuid.uuid4().hex}",
            "button_list": [{"text": _cut(b.text, BUTTON_CHARS), "style": 1, "key": b.data} for b in buttons]}


# -- inbound --------------------------------------------------------------------------------------

_DEDUPE_SCOPE_BITS = (1 << 62) - 1


def dedupe_key(bot_id: str, msgid: str) -> tuple[int, int]:
    """WeCom's ids are strings; the handled-events table keys (scope, number) as 64-bit integers.
    The scope is negative (Telegram's bot ids are positive), the number a 63-bit digest of the msgid;
    the row's content digest tells a digest collision from a redelivery."""
    scope = -1 - (int.from_bytes(hashlib.sha256(f"wecom:{bot_id}".encode()).digest()[:8], "big") & _DEDUPE_SCOPE_BITS)
    number = int.from_bytes(hashlib.sha256(msgid.encode()).digest()[:8], "big") & ((1 << 63) - 1)
    return scope, number


def _text_event(text: str, base: dict) -> Inbound:
    stripped = text.strip()
    head, _, rest = stripped.partition(" ")
    if stripped.startswith("/") and len(head) > 1:
        return Inbound(kind=COMMAND, text=stripped, command=head[1:].split("@")[0].lower(), args=rest.split(), **base)
    if head in WORDS:  # 走访, 取消, 加入 CODE …: what people type instead of a command
        return Inbound(kind=COMMAND, text=stripped, command=WORDS[head], args=rest.split(), **base)
    return Inbound(kind=TEXT, text=text, **base)


def _media_ref(item: dict, msgid: str, name: str = "") -> FileRef | None:
    url, key = item.get("url"), item.get("aeskey")
    if not url or not key:
        return None
    return FileRef(json.dumps({"url": url, "aeskey": key}), unique_id=msgid, name=name)


def inbound(frame: dict, bot_id: str) -> tuple[Inbound, str] | None:
    """The neutral event of a callback frame and the kind of turn it opens (msg | enter | card), or
    None for what gridbot ignores (group chats, other bots' frames, events without a person)."""
    body = frame.get("body") or {}
    userid = (body.get("from") or {}).get("userid")
    msgid = body.get("msgid")
    if not userid or not msgid or body.get("chattype", "single") != "single":
        return None
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]
    base = {"channel": NAME, "user_key": str(userid), "event_id": str(msgid), "dedupe": dedupe_key(bot_id, str(msgid)),
            "digest": digest, "name": str(userid)}
    msgtype = body.get("msgtype")
    if frame.get("cmd") == "aibot_event_callback" or msgtype == "event":
        event = body.get("event") or {}
        kind = event.get("eventtype")
        if kind == "enter_chat":
            return Inbound(kind=OPENED, **base), "enter"
        if kind == "template_card_event":
            card = event.get("template_card_event") or event  # the README's nested place first, then the flat one
            key, task_id = card.get("event_key") or event.get("event_key"), card.get("task_id") or event.get("task_id")
            if not key:
                return None
            return Inbound(kind=BUTTON, button=str(key), message_ref=str(task_id or ""), **base), "card"
        log.info("WeCom: event %s ignored", kind)
        return None
    if msgtype == "text":
        return _text_event((body.get("text") or {}).get("content", ""), base), "msg"
    if msgtype == "voice":  # WeCom sends the transcript only
        return _text_event((body.get("voice") or {}).get("content", ""), base), "msg"
    if msgtype == "image":
        ref = _media_ref(body.get("image") or {}, msgid)
        return (Inbound(kind=PHOTO, photo=ref, **base) if ref else Inbound(kind=OTHER, **base)), "msg"
    if msgtype == "file":
        ref = _media_ref(body.get("file") or {}, msgid, name=(body.get("file") or {}).get("filename", ""))
        if ref is None:
            return Inbound(kind=OTHER, **base), "msg"
        # Whether it is an image shows only once fetched: the photo steps check its first bytes.
        photo = FileRef(ref.file_id, ref.unique_id, name=ref.name, as_file=True)
        return Inbound(kind=PHOTO, photo=photo, file=ref, **base), "msg"
    if msgtype == "mixed":
        items = (body.get("mixed") or {}).get("msg_item") or []
        text = "\n".join((i.get("text") or {}).get("content", "") for i in items if i.get("msgtype") == "text").strip()
        image = next((i.get("image") or {} for i in items if i.get("msgtype") == "image"), None)
        ref = _media_ref(image, msgid) if image else None
        if ref is not None:
            return Inbound(kind=PHOTO, photo=ref, text=text, **base), "msg"
        return _text_event(text, base), "msg"
    return Inbound(kind=OTHER, **base), "msg"  # a location, a sticker, a card…: the flows say what they expect


def decrypt_media(data: bytes, aeskey: str) -> bytes:
    """AES-256-CBC with IV = key[:16] and PKCS#7 padding to a 32-byte block (WeCom's media)."""
    key = base64.b64decode(aeskey + "=" * (-len(aeskey) % 4))
    if len(key) != 32 or not data or len(data) % 16:
        raise Refused("the media key or the encrypted file is malformed")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= 32 or plain[-pad:] != bytes([pad]) * pad:
        raise Refused("the decrypted file has no valid padding (a wrong key?)")
    return plain[:-pad]


# -- the channel ----------------------------------------------------------------------------------


@dataclass
class _Turn:
    """What one callback's handling says to its person, sent together at the end."""

    req_id: str
    kind: str  # msg | enter | card
    address: str
    started: float
    said: list[tuple[str, Markup]] = field(default_factory=list)


_TURN: contextvars.ContextVar[_Turn | None] = contextvars.ContextVar("wecom_turn", default=None)


class WeComBotChannel:
    name = NAME
    title = "企业微信"
    abilities = Abilities(edit=False, toast=False, location=False, contact_button=False, commands_menu=False)
    # 30 messages a minute per conversation, replies and pushes together: the outbox keeps under 25.
    limits = SendLimits(per_second=20, per_chat_per_second=25 / 60)

    def __init__(self, settings: Settings, *, http: httpx.AsyncClient | None = None, heartbeat: float = HEARTBEAT,
                 backoff: tuple[float, float] = (BACKOFF_FIRST, BACKOFF_MAX), ack_timeout: float = ACK_TIMEOUT) -> None:
        if not settings.wecom_bot_configured:
            raise ValueError("WECOM_BOT_ID and WECOM_BOT_SECRET are not set")
        self.bot_id = settings.wecom_bot_id or ""
        self.connection = Connection(settings.wecom_ws_url, self.bot_id, settings.wecom_bot_secret or "", self._on_push,
                                     on_fatal=self._on_fatal, heartbeat=heartbeat, ack_timeout=ack_timeout, backoff=backoff)
        self.http = http or httpx.AsyncClient(timeout=MEDIA_TIMEOUT)
        self.runtime = None
        self._receiving = False
        self._early: list[dict] = []  # pushes that came before `receive`
        self._turns: set[asyncio.Task] = set()

    # -- the adapter's life ------------------------------------------------------------------------

    async def open(self, runtime) -> None:  # noqa: ANN001
        self.runtime = runtime
        self.connection.start()
        await self.connection.first_session(timeout=20)

    async def receive(self) -> None:
        self._receiving = True
        early, self._early = self._early, []
        for frame in early:
            self._on_push(frame)

    async def close(self) -> None:
        self._receiving = False
        if self._turns:
            await asyncio.wait(set(self._turns), timeout=10)
        await self.connection.close()
        await self.http.aclose()

    def _on_fatal(self, why: str) -> None:
        runtime = self.runtime
        if runtime is None:
            return
        from bot.delivery import alert_admins  # noqa: PLC0415 - delivery builds on the channels, not they on it

        asyncio.ensure_future(alert_admins(runtime, "wecom_stopped", WECOM_STOPPED, why=why))

    # -- inbound ----------------------------------------------------------------------------------

    def _on_push(self, frame: dict) -> None:
        if not self._receiving:
            self._early.append(frame)
            return
        parsed = inbound(frame, self.bot_id)
        if parsed is None:
            return
        event, kind = parsed
        if event.kind == TEXT:
            event.choice = self._choice(event)
        turn = _Turn(frame["headers"]["req_id"], kind, event.user_key, time.monotonic())
        task = asyncio.ensure_future(self._handle(event, turn))  # started in arrival order: one person's stay in order
        self._turns.add(task)
        task.add_done_callback(self._turns.discard)

    def _choice(self, event: Inbound) -> str:
        """A reply that is a number of the buttons last shown: that button's data."""
        m = re.fullmatch(r"\s*(\d{1,2})\s*", event.text)
        if m is None or self.runtime is None:
            return ""
        shown = self.runtime.engine.state(NAME, event.user_key).get(NUMBERED_KEY) or []
        n = int(m.group(1))
        return shown[n - 1] if 1 <= n <= len(shown) else ""

    async def _handle(self, event: Inbound, turn: _Turn) -> None:
        _TURN.set(turn)
        try:
            await self.runtime.engine.handle(self, event)
        finally:
            _TURN.set(None)
            try:
                await self._flush(turn)
            except ChannelError:
                log.warning("WeCom: could not send the answer to %s", turn.address, exc_info=True)

    # -- outbound ---------------------------------------------------------------------------------

    def _remember_buttons(self, address: str, markup: Buttons) -> None:
        if self.runtime is not None:
            self.runtime.engine.state(NAME, address)[NUMBERED_KEY] = [b.data for row in markup.rows for b in row]

    def _frames(self, said: list[tuple[str, Markup]], address: str) -> list[tuple[str, dict | None]]:
        """One turn's messages as (markdown, card) frames: the text up to and with each set of buttons
        goes with that card; a set of buttons too big for a card is a numbered list only."""
        frames, texts = [], []
        for text, markup in said:
            texts.append(markdown(text))
            if isinstance(markup, Buttons) and markup.rows:
                texts.append(numbered(markup))
                self._remember_buttons(address, markup)
                frames.append(("\n\n".join(t for t in texts if t), button_card(text, markup)))
                texts = []
        if texts:
            frames.append(("\n\n".join(t for t in texts if t), None))
        return frames

    async def _flush(self, turn: _Turn) -> None:
        if not turn.said:
            return
        frames = self._frames(turn.said, turn.address)
        first, rest = frames[0], frames[1:]
        if turn.kind == "msg":
            parts = split_bytes(first[0], STREAM_BYTES)
            for part in parts[:-1]:
                await self._respond(turn.req_id, part, None)
            try:
                await self._respond(turn.req_id, parts[-1], first[1])
            except Refused:  # the req_id expired (a very slow turn): as a push instead
                await self._push_frame(turn.address, parts[-1], first[1])
        elif turn.kind == "enter" and time.monotonic() - turn.started < WELCOME_WINDOW:
            # A welcome is plain text or a card, not both: the text, then its card as a push.
            await self.connection.request("aibot_respond_welcome_msg", {"msgtype": "text", "text": {"content": _unmarked(first[0])}},
                                          req_id=turn.req_id)
            if first[1] is not None:
                await self._push_frame(turn.address, "", first[1])
        else:
            rest = frames
        for content, card in rest:
            await self._push_frame(turn.address, content, card)

    async def _respond(self, req_id: str, content: str, card: dict | None) -> None:
        stream = {"id": f"stream_{uuid.uuid4().hex[:16]}", "finish": True, "content": content}
        body = {"msgtype": "stream_with_template_card", "stream": stream, "template_card": card} if card else \
            {"msgtype": "stream", "stream": stream}
        await self.connection.request("aibot_respond_msg", body, req_id=req_id)

    async def _push_frame(self, address: str, content: str, card: dict | None) -> None:
        for part in split_bytes(content, PUSH_BYTES) if content else []:
            await self.connection.request("aibot_send_msg", {"chatid": address, "msgtype": "markdown", "markdown": {"content": part}})
        if card is not None:
            await self.connection.request("aibot_send_msg", {"chatid": address, "msgtype": "template_card", "template_card": card})

    async def send(self, address: str, text: str, markup: Markup = None) -> str | None:
        turn = _TURN.get()
        if turn is not None and turn.address == address:
            turn.said.append((text, markup))
            return None
        for content, card in self._frames([(text, markup)], address):
            await self._push_frame(address, content, card)
        return None

    async def edit(self, address: str, message_ref: str, text: str | None, markup: Markup = None) -> None:
        raise Refused("WeCom cards change only within 5 seconds of a click")

    async def toast(self, event: Inbound, text: str | None, alert: bool = False) -> None:
        raise Refused("WeCom has no toasts")

    async def _upload(self, kind: str, data: bytes, filename: str) -> str:
        chunks = [data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
        init = await self.connection.request("aibot_upload_media_init", {
            "type": kind, "filename": filename, "total_size": len(data), "total_chunks": len(chunks),
            "md5": hashlib.md5(data).hexdigest()})  # noqa: S324 - the checksum WeCom asks for
        upload_id = (init.get("body") or {}).get("upload_id")
        if not upload_id:
            raise Refused("aibot_upload_media_init: no upload_id")
        for index, chunk in enumerate(chunks):  # one after another: WeCom errs with many in flight
            await self.connection.request("aibot_upload_media_chunk", {
                "upload_id": upload_id, "chunk_index": index, "base64_data": base64.b64encode(chunk).decode()})
        finish = await self.connection.request("aibot_upload_media_finish", {"upload_id": upload_id})
        media_id = (finish.get("body") or {}).get("media_id")
        if not media_id:
            raise Refused("aibot_upload_media_finish: no media_id")
        return media_id

    async def _send_media(self, address: str, kind: str, data: bytes, filename: str, caption: str | None, markup: Markup) -> None:
        turn = _TURN.get()
        if turn is not None and turn.address == address:  # what the turn said so far goes first, in order
            pending, turn.said = turn.said, []
            for content, card in self._frames(pending, address):
                await self._push_frame(address, content, card)
        media_id = await self._upload(kind, data, filename)
        await self.connection.request("aibot_send_msg", {"chatid": address, "msgtype": kind, kind: {"media_id": media_id}})
        if caption or markup is not None:
            for content, card in self._frames([(caption or "", markup)], address):
                await self._push_frame(address, content, card)

    async def send_photo(self, address: str, photo: bytes | str, caption: str | None = None, markup: Markup = None) -> None:
        if isinstance(photo, str):
            raise Refused("WeCom takes photos as bytes (another platform's file id means nothing here)")
        await self._send_media(address, "image", photo, "photo.png" if photo.startswith(b"\x89PNG") else "photo.jpg", caption, markup)

    async def send_document(self, address: str, data: bytes, filename: str, caption: str | None = None) -> None:
        await self._send_media(address, "file", data, filename, caption, None)

    async def send_location(self, address: str, latitude: float, longitude: float) -> None:
        raise Refused("WeCom's AI bot cannot send a location")

    async def download(self, file: FileRef) -> bytes:
        try:
            ref = json.loads(file.file_id)
            url, key = ref["url"], ref["aeskey"]
        except (ValueError, KeyError, TypeError):
            raise Refused("not a WeCom media reference") from None
        try:
            response = await self.http.get(url)
        except httpx.HTTPError as exc:
            raise Transient(f"media download: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise Refused(f"media download: HTTP {response.status_code} (the URL lasts 5 minutes)")
        return decrypt_media(response.content, key)

    async def set_commands(self, address: str | None, commands: list[tuple[str, str]] | None, language: str | None = None) -> None:
        raise Refused("WeCom's AI bot has no command menu")

    def join_link(self, code: str) -> str | None:
        return None
