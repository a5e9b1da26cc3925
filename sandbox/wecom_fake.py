"""A loopback WeCom 智能机器人 (AI bot) server, for the tests and the sandbox: it plays WeCom's side
of the long connection faithfully enough that a client working against it works against WeCom.

One port serves the WebSocket (`ws://127.0.0.1:PORT`) and the encrypted media (`/media/<id>`).

The bot side: `aibot_subscribe` first with the right BotID and Secret (else an error ack and the
socket closed); every frame acked by its req_id; `ping` answered; one live connection per bot (a
second subscribe sends `disconnected_event` to the first and closes it). The rules a reply must
keep are checked, so bugs surface here and not on a tenant: a reply's req_id must be a live
callback's (`846605`), welcome only for `enter_chat` and card updates only for a card click, each
within 5 seconds; card limits (≤6 buttons, ≤10 dropdown options, ≤20 checkbox options, task_id
unique and of `[0-9A-Za-z_-@]`, keys ≤1024 bytes); stream content ≤20 480 bytes; `aibot_send_msg`
only to someone who wrote first, and never as `text` (`40008`); 30 messages a minute and 1,000 an
hour per conversation (`45009`); upload chunks ≤512 KiB, ≤100, sent in order.

The user side (`send_text`, `send_image`, `enter`, `press`, …) pushes callbacks as WeCom does;
`messages_for(userid)` is what that person sees: streams merged by id, cards by task_id with their
updates applied. Faults: an errcode for a command, acks withheld, pings unanswered, a close with a
code, a transport abort, `disconnected_event`, auth refused.

The clock is `clock()` (monotonic seconds), so tests move time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

log = logging.getLogger(__name__)

WINDOW = 5.0  # seconds in which a welcome or a card update may answer its event
REPLY_WINDOW = 600.0  # seconds a message's req_id takes replies (a stream unfinished that long expires)
MEDIA_LIFE = 300.0  # seconds an inbound media URL serves its file
PER_MINUTE, PER_HOUR = 30, 1000
TASK_ID = re.compile(r"^[0-9A-Za-z_\-@]{1,128}$")
CHUNK_MAX, CHUNKS_MAX = 512 * 1024, 100


def encrypt_media(data: bytes, key: bytes) -> bytes:
    """AES-256-CBC, IV = key[:16], PKCS#7 padding to a 32-byte block: WeCom's media encryption."""
    pad = 32 - len(data) % 32
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return encryptor.update(data + bytes([pad]) * pad) + encryptor.finalize()


@dataclass
class Shown:
    """One message as the person sees it."""

    via: str  # respond | welcome | send
    text: str = ""  # markdown, a stream's last content, or a welcome's text
    card: dict | None = None
    media: tuple[str, bytes] | None = None  # (type, bytes) of an image or file sent by media_id
    stream_id: str | None = None

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(text, key) of the card's buttons, in order."""
        card = self.card or {}
        return [(b.get("text", ""), b.get("key", "")) for b in card.get("button_list", [])]


@dataclass
class _Callback:
    req_id: str
    userid: str
    kind: str  # msg | enter | card
    at: float
    task_id: str = ""
    answered: bool = False


@dataclass
class _Conversation:
    wrote: bool = False
    sent: list[float] = field(default_factory=list)  # times of messages the bot sent here


class FakeWeCom:
    def __init__(self, bot_id: str = "BOT_ID", secret: str = "BOT_SECRET", clock: Callable[[], float] | None = None) -> None:
        self.bot_id, self.secret = bot_id, secret
        self.clock = clock or time.monotonic
        self.url = ""
        self._server = None
        self._live: ServerConnection | None = None  # the subscribed connection
        self._ready = asyncio.Event()
        self._ids = itertools.count(1)
        self._callbacks: dict[str, _Callback] = {}
        self._conversations: dict[str, _Conversation] = {}
        self._task_ids: set[str] = set()
        self._media: dict[str, tuple[bytes, str, float]] = {}  # id -> (ciphertext, filename, expires)
        self._uploads: dict[str, dict] = {}
        self._uploaded: dict[str, tuple[str, bytes]] = {}  # media_id -> (type, bytes)
        self.shown: dict[str, list[Shown]] = {}
        self.frames: list[dict] = []  # every frame the bot sent, in order
        self.last_push: dict | None = None  # the last callback pushed to the bot (to deliver it again)
        self.refusals: list[tuple[str, int, str]] = []  # (cmd, errcode, why) of every frame refused
        self.subscribes = 0
        # faults
        self.refuse_auth: int | None = None  # errcode for every subscribe
        self._fail: dict[str, list[int]] = {}
        self.withhold_acks: dict[str, int] = {}  # cmd -> how many acks to leave out
        self.silent_pings = 0  # pings to leave unanswered
        self.rate_errcode = 45009
        self._changed = asyncio.Condition()

    # -- running ----------------------------------------------------------------------------------

    async def start(self) -> str:
        self._server = await serve(self._connection, "127.0.0.1", 0, process_request=self._http, ping_interval=None)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def connected(self, timeout: float = 5.0) -> None:
        """Wait until a client has subscribed."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    @property
    def is_connected(self) -> bool:
        return self._live is not None

    # -- faults -----------------------------------------------------------------------------------

    def fail_next(self, cmd: str, errcode: int, count: int = 1) -> None:
        self._fail.setdefault(cmd, []).extend([errcode] * count)

    async def close(self, code: int = 1000) -> None:
        """Close the live connection cleanly with `code` (1000, 1001, 1011 …)."""
        live = self._live
        if live is not None:
            self._drop_live(live)
            await live.close(code)

    def abort(self) -> None:
        """Cut the live connection without a close frame (a reset)."""
        live = self._live
        if live is not None:
            self._drop_live(live)
            live.transport.abort()

    async def kick(self) -> None:
        """What WeCom does when another instance subscribes: `disconnected_event`, then close."""
        live = self._live
        if live is not None:
            self._drop_live(live)
            await self._push(live, "aibot_event_callback", self._event_body("", {"eventtype": "disconnected_event"}))
            await live.close(1000)

    def _drop_live(self, connection: ServerConnection) -> None:
        if self._live is connection:
            self._live = None
            self._ready.clear()

    # -- the user side ----------------------------------------------------------------------------

    def _msgid(self) -> str:
        return f"MSG{next(self._ids):06d}{os.urandom(3).hex()}"

    def _base(self, userid: str, msgid: str | None = None) -> dict:
        return {"msgid": msgid or self._msgid(), "aibotid": self.bot_id, "chattype": "single", "from": {"userid": userid},
                "create_time": int(time.time())}

    async def _callback(self, cmd: str, userid: str, body: dict, kind: str, task_id: str = "", req_id: str | None = None) -> str:
        live = self._live
        if live is None:
            raise ConnectionError("no client is connected")
        req_id = req_id or f"REQ{next(self._ids):06d}"
        self._callbacks[req_id] = _Callback(req_id, userid, kind, self.clock(), task_id)
        if kind in ("msg", "card", "enter"):
            self._conversations.setdefault(userid, _Conversation()).wrote = True
        await self._push(live, cmd, body, req_id)
        return body["msgid"]

    async def send_text(self, userid: str, text: str, msgid: str | None = None, req_id: str | None = None) -> str:
        body = {**self._base(userid, msgid), "msgtype": "text", "text": {"content": text}}
        return await self._callback("aibot_msg_callback", userid, body, "msg", req_id=req_id)

    async def send_voice(self, userid: str, transcript: str) -> str:
        body = {**self._base(userid), "msgtype": "voice", "voice": {"content": transcript}}
        return await self._callback("aibot_msg_callback", userid, body, "msg")

    def _serve_media(self, data: bytes, filename: str) -> dict:
        key = os.urandom(32)
        media_id = os.urandom(8).hex()
        self._media[media_id] = (encrypt_media(data, key), filename, self.clock() + MEDIA_LIFE)
        return {"url": f"http://{self.url.removeprefix('ws://')}/media/{media_id}", "aeskey": base64.b64encode(key).decode().rstrip("=")}

    async def send_image(self, userid: str, data: bytes) -> str:
        body = {**self._base(userid), "msgtype": "image", "image": self._serve_media(data, "image.jpg")}
        return await self._callback("aibot_msg_callback", userid, body, "msg")

    async def send_file(self, userid: str, data: bytes, filename: str) -> str:
        body = {**self._base(userid), "msgtype": "file", "file": self._serve_media(data, filename)}
        return await self._callback("aibot_msg_callback", userid, body, "msg")

    async def send_mixed(self, userid: str, text: str, image: bytes) -> str:
        items = [{"msgtype": "text", "text": {"content": text}}, {"msgtype": "image", "image": self._serve_media(image, "image.jpg")}]
        body = {**self._base(userid), "msgtype": "mixed", "mixed": {"msg_item": items}}
        return await self._callback("aibot_msg_callback", userid, body, "msg")

    async def send_unknown(self, userid: str, msgtype: str = "location") -> str:
        body = {**self._base(userid), "msgtype": msgtype, msgtype: {}}
        return await self._callback("aibot_msg_callback", userid, body, "msg")

    async def enter(self, userid: str) -> str:
        return await self._callback("aibot_event_callback", userid, self._event_body(userid, {"eventtype": "enter_chat"}), "enter")

    def _event_body(self, userid: str, event: dict) -> dict:
        return {**self._base(userid), "msgtype": "event", "event": event}

    async def press(self, userid: str, label: str) -> str:
        """Click the button whose text contains `label` on the newest card that has one."""
        for shown in reversed(self.shown.get(userid, [])):
            for text, key in shown.buttons:
                if label in text:
                    return await self.click(userid, shown.card["task_id"], key, shown.card.get("card_type", "button_interaction"))
        raise AssertionError(f"{userid} has no card with a button {label!r}")

    async def click(self, userid: str, task_id: str, key: str, card_type: str = "button_interaction") -> str:
        event = {"eventtype": "template_card_event",
                 "template_card_event": {"card_type": card_type, "event_key": key, "task_id": task_id}}
        return await self._callback("aibot_event_callback", userid, self._event_body(userid, event), "card", task_id=task_id)

    async def redeliver(self, frame: dict) -> None:
        """Push a frame again as it was (a redelivery after a reconnect)."""
        live = self._live
        if live is None:
            raise ConnectionError("no client is connected")
        await live.send(json.dumps(frame, ensure_ascii=False))

    def messages_for(self, userid: str) -> list[Shown]:
        return list(self.shown.get(userid, []))

    def texts_for(self, userid: str) -> str:
        return "\n".join(s.text for s in self.shown.get(userid, []))

    async def wait_for(self, userid: str, count: int, timeout: float = 5.0) -> list[Shown]:
        """Wait until `userid` has been shown `count` messages in all; returns them all."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.shown.get(userid, [])) >= count), timeout)
        return self.messages_for(userid)

    # -- the bot side -----------------------------------------------------------------------------

    async def _push(self, connection: ServerConnection, cmd: str, body: dict, req_id: str | None = None) -> None:
        frame = {"cmd": cmd, "headers": {"req_id": req_id or f"{cmd}_{next(self._ids)}"}, "body": body}
        self.last_push = frame
        await connection.send(json.dumps(frame, ensure_ascii=False))

    async def _connection(self, connection: ServerConnection) -> None:
        subscribed = False
        try:
            async for raw in connection:
                try:
                    frame = json.loads(raw)
                    cmd, req_id = frame.get("cmd"), frame["headers"]["req_id"]
                except (ValueError, KeyError, TypeError, AttributeError):
                    await connection.send(json.dumps({"headers": {"req_id": ""}, "errcode": 40000, "errmsg": "invalid frame"}))
                    continue
                self.frames.append(frame)
                if not subscribed:
                    subscribed = await self._subscribe(connection, frame, cmd, req_id)
                    if not subscribed:
                        await connection.close(1008)
                        return
                    continue
                if cmd == "ping" and self.silent_pings > 0:
                    self.silent_pings -= 1
                    continue
                errcode, errmsg, body = self._take_fault(cmd)
                if errcode == 0:
                    errcode, errmsg, body = self._carry_out(cmd, req_id, frame.get("body") or {})
                if errcode:
                    self.refusals.append((cmd, errcode, errmsg))
                if self.withhold_acks.get(cmd, 0) > 0:
                    self.withhold_acks[cmd] -= 1
                    continue
                ack = {"headers": {"req_id": req_id}, "errcode": errcode, "errmsg": errmsg}
                if body is not None:
                    ack["body"] = body
                await connection.send(json.dumps(ack, ensure_ascii=False))
                async with self._changed:
                    self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self._drop_live(connection)

    async def _subscribe(self, connection: ServerConnection, frame: dict, cmd: str, req_id: str) -> bool:
        body = frame.get("body") or {}
        if cmd != "aibot_subscribe":
            errcode, errmsg = 40001, "subscribe first"
        elif self.refuse_auth is not None:
            errcode, errmsg = self.refuse_auth, "refused"
        elif body.get("bot_id") != self.bot_id or body.get("secret") != self.secret:
            errcode, errmsg = 40001, "invalid bot_id or secret"
        else:
            errcode, errmsg = 0, "ok"
        await connection.send(json.dumps({"headers": {"req_id": req_id}, "errcode": errcode, "errmsg": errmsg}))
        if errcode:
            self.refusals.append((cmd or "", errcode, errmsg))
            return False
        self.subscribes += 1
        older = self._live
        self._live = connection
        self._ready.set()
        if older is not None:  # one live connection per bot: the older one is told, and closed
            with contextlib.suppress(ConnectionClosed):
                await self._push(older, "aibot_event_callback", self._event_body("", {"eventtype": "disconnected_event"}))
                await older.close(1000)
        return True

    def _take_fault(self, cmd: str) -> tuple[int, str, dict | None]:
        queue = self._fail.get(cmd)
        if queue:
            return queue.pop(0), "injected", None
        return 0, "ok", None

    def _carry_out(self, cmd: str, req_id: str, body: dict) -> tuple[int, str, dict | None]:
        if cmd == "ping":
            return 0, "ok", None
        if cmd == "aibot_respond_msg":
            return self._respond(req_id, body)
        if cmd == "aibot_respond_welcome_msg":
            return self._welcome(req_id, body)
        if cmd == "aibot_respond_update_msg":
            return self._update(req_id, body)
        if cmd == "aibot_send_msg":
            return self._send(body)
        if cmd == "aibot_upload_media_init":
            return self._upload_init(body)
        if cmd == "aibot_upload_media_chunk":
            return self._upload_chunk(body)
        if cmd == "aibot_upload_media_finish":
            return self._upload_finish(body)
        return 40000, f"unknown cmd {cmd!r}", None

    def _live_callback(self, req_id: str, kind: str, window: float) -> _Callback | None:
        cb = self._callbacks.get(req_id)
        if cb is None or cb.kind != kind or self.clock() - cb.at > window:
            return None
        return cb

    def _count(self, userid: str) -> bool:
        """One more message in this conversation, if the per-conversation rate allows it."""
        conv = self._conversations.setdefault(userid, _Conversation())
        now = self.clock()
        conv.sent = [t for t in conv.sent if now - t < 3600]
        if sum(1 for t in conv.sent if now - t < 60) >= PER_MINUTE or len(conv.sent) >= PER_HOUR:
            return False
        conv.sent.append(now)
        return True

    def _show(self, userid: str, shown: Shown) -> None:
        self.shown.setdefault(userid, []).append(shown)

    def _check_card(self, card: dict) -> str | None:
        task_id = card.get("task_id", "")
        kind = card.get("card_type")
        if kind in ("button_interaction", "vote_interaction", "multiple_interaction") or task_id:
            if not TASK_ID.match(task_id):
                return f"task_id {task_id!r}: 1-128 of [0-9A-Za-z_-@]"
            if task_id in self._task_ids:
                return f"task_id {task_id!r} used before"
        buttons = card.get("button_list", [])
        if len(buttons) > 6:
            return f"{len(buttons)} buttons (at most 6)"
        keys = [b.get("key", "") for b in buttons]
        if any(len(k.encode()) > 1024 or not k for k in keys) or len(set(keys)) != len(keys):
            return "button keys: 1-1024 bytes, unique"
        selection = card.get("button_selection")
        if selection and len(selection.get("option_list", [])) > 10:
            return "more than 10 dropdown options"
        checkbox = card.get("checkbox")
        if checkbox and not 1 <= len(checkbox.get("option_list", [])) <= 20:
            return "a checkbox has 1-20 options"
        if not (card.get("main_title") or {}).get("title") and kind != "text_notice":
            return "main_title.title is required"
        return None

    def _respond(self, req_id: str, body: dict) -> tuple[int, str, dict | None]:
        cb = self._live_callback(req_id, "msg", REPLY_WINDOW)
        if cb is None:
            return 846605, "invalid req_id", None
        msgtype = body.get("msgtype")
        stream = body.get("stream") or {}
        card = body.get("template_card")
        if msgtype not in ("stream", "template_card", "stream_with_template_card"):
            return 40008, f"invalid msgtype {msgtype!r}", None
        if msgtype != "template_card" and len((stream.get("content") or "").encode()) > 20480:
            return 40008, "stream content over 20480 bytes", None
        if card is not None and (why := self._check_card(card)):
            return 40008, why, None
        existing = next((s for s in self.shown.get(cb.userid, []) if stream.get("id") and s.stream_id == stream.get("id")), None)
        if existing is None and not self._count(cb.userid):
            return self.rate_errcode, "frequency limit", None
        if card is not None:
            self._task_ids.add(card["task_id"])
        if existing is not None:  # a stream refreshed: the shown text is replaced
            existing.text = stream.get("content", existing.text)
            existing.card = card or existing.card
        else:
            self._show(cb.userid, Shown("respond", stream.get("content", ""), card, stream_id=stream.get("id")))
        return 0, "ok", None

    def _welcome(self, req_id: str, body: dict) -> tuple[int, str, dict | None]:
        cb = self._live_callback(req_id, "enter", WINDOW)
        if cb is None or cb.answered:
            return 846605, "invalid req_id (a welcome answers an enter_chat within 5 s, once)", None
        msgtype = body.get("msgtype")
        if msgtype == "text":
            shown = Shown("welcome", (body.get("text") or {}).get("content", ""))
        elif msgtype == "template_card":
            card = body.get("template_card") or {}
            if why := self._check_card(card):
                return 40008, why, None
            self._task_ids.add(card.get("task_id", ""))
            shown = Shown("welcome", "", card)
        else:
            return 40008, f"invalid msgtype {msgtype!r}", None
        cb.answered = True
        self._show(cb.userid, shown)
        return 0, "ok", None

    def _update(self, req_id: str, body: dict) -> tuple[int, str, dict | None]:
        cb = self._live_callback(req_id, "card", WINDOW)
        card = body.get("template_card") or {}
        if cb is None or cb.answered:
            return 846605, "invalid req_id (an update answers a card click within 5 s, once)", None
        if card.get("task_id") != cb.task_id:
            return 40008, "the updated card must keep the clicked card's task_id", None
        for shown in self.shown.get(cb.userid, []):
            if shown.card and shown.card.get("task_id") == cb.task_id:
                shown.card = card
        cb.answered = True
        return 0, "ok", None

    def _send(self, body: dict) -> tuple[int, str, dict | None]:
        userid, msgtype = body.get("chatid", ""), body.get("msgtype")
        conv = self._conversations.get(userid)
        if conv is None or not conv.wrote:
            return 40008, f"{userid!r} has not written to the bot yet", None  # the errcode on a tenant is unverified
        if msgtype == "markdown":
            content = (body.get("markdown") or {}).get("content", "")
            if not content or len(content.encode()) > 20480:
                return 40008, "markdown content: 1-20480 bytes", None
            shown = Shown("send", content)
        elif msgtype == "template_card":
            card = body.get("template_card") or {}
            if why := self._check_card(card):
                return 40008, why, None
            shown = Shown("send", "", card)
        elif msgtype in ("image", "file"):
            media_id = (body.get(msgtype) or {}).get("media_id", "")
            if media_id not in self._uploaded:
                return 40007, "invalid media_id", None
            shown = Shown("send", "", media=self._uploaded[media_id])
        else:
            return 40008, f"invalid msgtype {msgtype!r}", None
        if not self._count(userid):
            return self.rate_errcode, "frequency limit", None
        if shown.card is not None:
            self._task_ids.add(shown.card.get("task_id", ""))
        self._show(userid, shown)
        return 0, "ok", None

    def _upload_init(self, body: dict) -> tuple[int, str, dict | None]:
        chunks, size = body.get("total_chunks", 0), body.get("total_size", 0)
        if body.get("type") not in ("image", "file", "voice", "video") or not 1 <= chunks <= CHUNKS_MAX or size <= 5:
            return 40008, "upload init: type, total_chunks 1-100, total_size > 5", None
        upload_id = os.urandom(6).hex()
        self._uploads[upload_id] = {"type": body["type"], "chunks": chunks, "size": size, "md5": body.get("md5", ""), "parts": []}
        return 0, "ok", {"upload_id": upload_id}

    def _upload_chunk(self, body: dict) -> tuple[int, str, dict | None]:
        upload = self._uploads.get(body.get("upload_id", ""))
        if upload is None:
            return 40008, "unknown upload_id", None
        data = base64.b64decode(body.get("base64_data", ""))
        if body.get("chunk_index") != len(upload["parts"]) or len(data) > CHUNK_MAX:
            return 40008, "chunks go in order from 0, each at most 512 KiB", None
        upload["parts"].append(data)
        return 0, "ok", None

    def _upload_finish(self, body: dict) -> tuple[int, str, dict | None]:
        upload = self._uploads.pop(body.get("upload_id", ""), None)
        if upload is None:
            return 40008, "unknown upload_id", None
        data = b"".join(upload["parts"])
        if len(upload["parts"]) != upload["chunks"] or len(data) != upload["size"] or hashlib.md5(data).hexdigest() != upload["md5"]:  # noqa: S324 - WeCom's checksum
            return 40008, "the chunks do not add up to the announced size and md5", None
        media_id = "MEDIA" + os.urandom(6).hex()
        self._uploaded[media_id] = (upload["type"], data)
        return 0, "ok", {"type": upload["type"], "media_id": media_id, "created_at": str(int(time.time()))}

    # -- media over HTTP --------------------------------------------------------------------------

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        if not request.path.startswith("/media/"):
            return None  # the WebSocket handshake
        media = self._media.get(request.path.removeprefix("/media/"))
        if media is None or self.clock() > media[2]:
            return Response(HTTPStatus.NOT_FOUND, "Not Found", Headers({"Content-Length": "0"}), b"")
        data, filename, _ = media
        headers = Headers({"Content-Type": "application/octet-stream", "Content-Length": str(len(data)),
                           "Content-Disposition": f'attachment; filename="{filename}"'})
        return Response(HTTPStatus.OK, "OK", headers, data)
