"""An in-memory imitation of the Telegram Bot API ("local Bot API") for tests and the sandbox.

`LocalBotAPI` keeps every bot's state (pending updates, chats, messages, files, command menus)
in memory, keyed by bot token. The bot side speaks the Bot API (`handle`), reachable in-process
through an httpx transport (`LocalBotAPI.transport()`) or over HTTP (`LocalBotAPIServer`).
The user side (`send_text`, `press_button`, ...) plays Telegram clients: each call builds a real
Update dict, queues it for `getUpdates` and returns it so a test can feed it straight to
`Application.process_update`.

It is deliberately strict where Telegram is strict (HTML parsing, callback_data size, "message is
not modified", unknown chats, blocked users, bad file ids) so bugs surface here rather than in
production, and it can inject faults (HTTP errors, 429 flood waits, delays, dropped connections).

Only stdlib, tornado and httpx are used: nothing from the rest of gridbot.
Run standalone with ``python -m sandbox.localapi --host 127.0.0.1 --port 18081``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import itertools
import json
import logging
import mimetypes
import re
import secrets
import signal
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import tornado.httpserver
import tornado.httputil
import tornado.netutil
import tornado.web

__all__ = [
    "ApiError",
    "DroppedConnection",
    "LocalAPIUser",
    "LocalBotAPI",
    "LocalBotAPIServer",
    "UploadedFile",
    "buttons",
    "main",
    "parse_html",
    "parse_markdown",
    "parse_markdown_v2",
    "reply_buttons",
    "run_in_thread",
    "serve_in_thread",
    "utf16_len",
]

log = logging.getLogger(__name__)

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64  # bytes of UTF-8
MAX_BUTTONS = 100
MAX_DOWNLOAD = 20 * 1024 * 1024  # getFile refuses bigger files, like the cloud Bot API
MAX_UPLOAD = 50 * 1024 * 1024

_TOKEN_RE = re.compile(r"\d+:[A-Za-z0-9_-]+")
_NOT_FOUND = {"ok": False, "error_code": 404, "description": "Not Found"}
_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
_CONFLICT_OTHER_POLL = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
)
_CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
    "the webhook first"
)
_QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"

# Bot API methods this imitation knows, in Telegram's spelling (the call log uses these names).
_METHOD_NAMES = [
    "getMe", "getUpdates", "deleteWebhook", "setWebhook", "getWebhookInfo", "logOut", "close",
    "sendMessage", "editMessageText", "editMessageReplyMarkup", "editMessageCaption",
    "deleteMessage", "deleteMessages", "answerCallbackQuery", "setMyCommands", "getMyCommands",
    "deleteMyCommands", "setChatMenuButton", "getChatMenuButton", "sendChatAction", "sendPhoto",
    "sendDocument", "sendLocation", "getFile", "getChat", "getChatMember", "forwardMessage",
    "copyMessage", "setMyDescription", "getMyDescription", "setMyShortDescription",
    "getMyShortDescription", "setMyName", "getMyName",
]  # fmt: skip
_CANONICAL = {name.lower(): name for name in _METHOD_NAMES}

# Default allowed_updates of Telegram: everything except these three.
_NOT_DEFAULT_UPDATES = {"chat_member", "message_reaction", "message_reaction_count"}

_CHAT_ACTIONS = {
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
}  # fmt: skip
_SCOPE_TYPES = {
    "default", "all_private_chats", "all_group_chats", "all_chat_administrators", "chat",
    "chat_administrators", "chat_member",
}  # fmt: skip
_INLINE_ACTIONS = (
    "url", "callback_data", "web_app", "login_url", "switch_inline_query",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
    "callback_game", "pay",
)  # fmt: skip
# Content keys copied by forwardMessage/copyMessage.
_CONTENT_KEYS = (
    "text", "entities", "photo", "document", "location", "contact", "sticker", "voice", "caption",
    "caption_entities",
)  # fmt: skip


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """A Bot API error answer (status + description, optional `parameters`)."""

    def __init__(self, status: int, description: str, parameters: dict | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> dict:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


class DroppedConnection(Exception):
    """Raised by `LocalBotAPI.handle` when a `drop` fault says: close without answering."""


def _bad(description: str) -> ApiError:
    return ApiError(400, "Bad Request: " + description)


def _forbidden(description: str) -> ApiError:
    return ApiError(403, "Forbidden: " + description)


class EntityParseError(ValueError):
    """Formatted text (HTML/Markdown) that Telegram would refuse to parse."""


# --------------------------------------------------------------------------- text helpers


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    # tdlib reports parse errors as UTF-8 byte offsets.
    return len(text[:index].encode("utf-8"))


class _TextBuilder:
    """Accumulates parsed text and entities with UTF-16 offsets."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.u16 = 0
        self.entities: list[dict] = []

    def emit(self, s: str) -> None:
        self.parts.append(s)
        self.u16 += utf16_len(s)

    def entity(self, etype: str, start: int, **extra: Any) -> None:
        length = self.u16 - start
        if length > 0:  # Telegram drops empty entities
            self.entities.append({"type": etype, "offset": start, "length": length, **extra})

    def result(self) -> tuple[str, list[dict]]:
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), self.entities


_HTML_TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "span": "spoiler", "tg-spoiler": "spoiler", "a": "text_link", "code": "code", "pre": "pre",
    "blockquote": "blockquote", "tg-emoji": "custom_emoji",
}  # fmt: skip
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_ENTITY_RE = re.compile(r"&(#[0-9]{1,8}|#[xX][0-9a-fA-F]{1,8}|[a-zA-Z][a-zA-Z0-9]{0,31});")


def _decode_html_entity(match: re.Match[str] | None) -> str | None:
    if match is None:
        return None
    body = match.group(1)
    if body[0] == "#":
        cp = int(body[2:], 16) if body[1] in "xX" else int(body[1:])
        if 0 < cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF:
            return chr(cp)
        return None
    return _HTML_NAMED.get(body)


def _unescape_attr(raw: str) -> str:
    # Attribute values are decoded leniently, as tdlib does.
    return _HTML_ENTITY_RE.sub(lambda m: _decode_html_entity(m) or m.group(0), raw)


def parse_html(text: str, *, strict_ampersand: bool = True) -> tuple[str, list[dict]]:
    """Parse Telegram-flavoured HTML into (plain text, entities) or raise EntityParseError.

    Follows tdlib's parser and error wording. One deliberate extra strictness: a bare '&' that
    does not start a supported entity is an error (real Telegram keeps it literally), because
    it nearly always means user text was echoed without `html.escape`.
    """
    tb = _TextBuilder()
    stack: list[tuple[str, int, dict[str, str], int]] = []  # (tag, u16 start, attrs, index)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "&":
            m = _HTML_ENTITY_RE.match(text, i)
            ch = _decode_html_entity(m)
            if ch is not None and m is not None:
                tb.emit(ch)
                i = m.end()
                continue
            if strict_ampersand:
                raise EntityParseError(
                    f'Unescaped "&" at byte offset {_byte_offset(text, i)}; write it as &amp; '
                    "(local API strict mode)"
                )
            tb.emit("&")
            i += 1
            continue
        if c != "<":
            tb.emit(c)
            i += 1
            continue
        begin = i
        if text.startswith("</", i):
            j = text.find(">", i + 2)
            if j < 0:
                raise EntityParseError(f"Unclosed end tag at byte offset {_byte_offset(text, begin)}")
            name = text[i + 2 : j].strip().lower()
            if not stack:
                raise EntityParseError(
                    f"Unexpected end tag at byte offset {_byte_offset(text, begin)}"
                )
            tag, start, attrs, _ = stack.pop()
            if name and name != tag:
                raise EntityParseError(
                    f"Unmatched end tag at byte offset {_byte_offset(text, begin)}, "
                    f'expected "</{tag}>", found "</{name}>"'
                )
            _close_html_tag(tb, stack, tag, start, attrs)
            i = j + 1
            continue
        # A start tag: the name runs to the first space or '>'.
        j = i + 1
        while j < n and not text[j].isspace() and text[j] != ">":
            j += 1
        if j >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        name = text[i + 1 : j].lower()
        if name not in _HTML_TAGS:
            raise EntityParseError(
                f'Unsupported start tag "{name}" at byte offset {_byte_offset(text, begin)}'
            )
        attrs, i = _parse_html_attrs(text, j, name, begin)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(text, begin)}'
            )
        if name == "tg-emoji" and not attrs.get("emoji-id"):
            raise EntityParseError(
                f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset '
                f"{_byte_offset(text, begin)}"
            )
        stack.append((name, tb.u16, attrs, begin))
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return tb.result()


def _parse_html_attrs(text: str, j: int, tag: str, begin: int) -> tuple[dict[str, str], int]:
    """Parse attributes from index j to the closing '>'; returns (attrs, index after '>')."""
    n = len(text)
    attrs: dict[str, str] = {}

    def unclosed() -> EntityParseError:
        return EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")

    while True:
        while j < n and text[j].isspace():
            j += 1
        if j >= n:
            raise unclosed()
        if text[j] == ">":
            return attrs, j + 1
        k = j
        while j < n and not text[j].isspace() and text[j] not in "=>":
            j += 1
        attr = text[k:j].lower()
        if not attr:
            raise EntityParseError(
                f'Empty attribute name in the tag "{tag}" at byte offset {_byte_offset(text, begin)}'
            )
        while j < n and text[j].isspace():
            j += 1
        if j >= n:
            raise unclosed()
        if text[j] != "=":
            if tag == "blockquote" and attr == "expandable":
                attrs[attr] = ""
                continue
            raise EntityParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" at byte '
                f"offset {_byte_offset(text, begin)}"
            )
        j += 1
        while j < n and text[j].isspace():
            j += 1
        if j >= n:
            raise unclosed()
        if text[j] in "\"'":
            end = text.find(text[j], j + 1)
            if end < 0:
                raise unclosed()
            raw, j = text[j + 1 : end], end + 1
        else:
            k = j
            while j < n and not text[j].isspace() and text[j] != ">":
                j += 1
            raw = text[k:j]
        attrs[attr] = _unescape_attr(raw)


def _close_html_tag(
    tb: _TextBuilder, stack: list, tag: str, start: int, attrs: dict[str, str]
) -> None:
    etype = _HTML_TAGS[tag]
    if tag == "code" and stack and stack[-1][0] == "pre":
        # <pre><code class="language-x"> becomes one pre entity with a language.
        cls = attrs.get("class", "")
        if cls.startswith("language-"):
            stack[-1][2]["__language"] = cls[len("language-") :]
            return
    extra: dict[str, Any] = {}
    if tag == "a":
        if not attrs.get("href"):
            return  # tdlib turns href-less links into plain text
        extra["url"] = attrs["href"]
    elif tag == "pre" and attrs.get("__language"):
        extra["language"] = attrs["__language"]
    elif tag == "tg-emoji":
        extra["custom_emoji_id"] = attrs["emoji-id"]
    elif tag == "blockquote" and "expandable" in attrs:
        etype = "expandable_blockquote"
    tb.entity(etype, start, **extra)


_MD2_RESERVED = set("_*[]()~`>#+-=|{}.!\\")
_MD2_NAMES = {
    "bold": "Bold", "italic": "Italic", "underline": "Underline", "strikethrough": "Strikethrough",
    "spoiler": "Spoiler", "text_link": "TextUrl", "custom_emoji": "CustomEmoji",
}  # fmt: skip


def parse_markdown_v2(text: str) -> tuple[str, list[dict]]:
    """Parse MarkdownV2 into (plain text, entities) or raise EntityParseError (tdlib wording)."""
    tb = _TextBuilder()
    stack: list[tuple[str, int, int]] = []  # (type, u16 start, index)
    quote_start: int | None = None
    i, n = 0, len(text)

    def reserved(ch: str) -> EntityParseError:
        return EntityParseError(
            f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
        )

    def scan_until(k: int, closer: str) -> tuple[str, int]:
        # Inside code/pre/url only '\' escapes; returns (content, index of closer) or -1.
        buf: list[str] = []
        while k < n:
            if text[k] == "\\" and k + 1 < n:
                buf.append(text[k + 1])
                k += 2
                continue
            if text.startswith(closer, k):
                return "".join(buf), k
            buf.append(text[k])
            k += 1
        return "".join(buf), -1

    while i < n:
        c = text[i]
        at_line_start = i == 0 or text[i - 1] == "\n"
        if c == "\\":
            if i + 1 < n and 0 < ord(text[i + 1]) <= 126:
                tb.emit(text[i + 1])
                i += 2
                continue
            raise reserved("\\")
        if c == ">" and at_line_start:
            if quote_start is None:
                quote_start = tb.u16
            i += 1
            continue
        if text.startswith("**>", i) and at_line_start:
            if quote_start is None:
                quote_start = tb.u16
            i += 3
            continue
        if c == "\n" and quote_start is not None and not text.startswith(">", i + 1):
            tb.entity("blockquote", quote_start)
            quote_start = None
        if c == "`":
            if text.startswith("```", i):
                body, end = scan_until(i + 3, "```")
                if end < 0:
                    raise EntityParseError(
                        f"Can't find end of PreCode entity at byte offset {_byte_offset(text, i)}"
                    )
                language = ""
                first, sep, rest = body.partition("\n")
                if sep and first.strip() and " " not in first.strip():
                    language, body = first.strip(), rest
                start = tb.u16
                tb.emit(body)
                if language:
                    tb.entity("pre", start, language=language)
                else:
                    tb.entity("pre", start)
                i = end + 3
                continue
            body, end = scan_until(i + 1, "`")
            if end < 0:
                raise EntityParseError(
                    f"Can't find end of Code entity at byte offset {_byte_offset(text, i)}"
                )
            start = tb.u16
            tb.emit(body)
            tb.entity("code", start)
            i = end + 1
            continue
        if c == "[" or text.startswith("![", i):
            kind = "custom_emoji" if c == "!" else "text_link"
            stack.append((kind, tb.u16, i))
            i += 2 if c == "!" else 1
            continue
        if c == "]" and stack and stack[-1][0] in ("text_link", "custom_emoji"):
            kind, start, opened = stack.pop()
            if not text.startswith("(", i + 1):
                raise EntityParseError(
                    f"Can't find end of {_MD2_NAMES[kind]} entity at byte offset "
                    f"{_byte_offset(text, opened)}"
                )
            url, end = scan_until(i + 2, ")")
            if end < 0:
                raise EntityParseError(
                    f"Can't find end of a url at byte offset {_byte_offset(text, i + 1)}"
                )
            if kind == "custom_emoji":
                tb.entity("custom_emoji", start, custom_emoji_id=url.rpartition("id=")[2])
            else:
                tb.entity("text_link", start, url=url)
            i = end + 1
            continue
        kind, width = None, 1
        if text.startswith("__", i):
            kind, width = "underline", 2
        elif text.startswith("||", i):
            kind, width = "spoiler", 2
        elif c == "*":
            kind = "bold"
        elif c == "_":
            kind = "italic"
        elif c == "~":
            kind = "strikethrough"
        if kind is not None:
            if stack and stack[-1][0] == kind:
                _, start, _ = stack.pop()
                tb.entity(kind, start)
            elif any(s[0] == kind for s in stack):
                opened = next(s for s in reversed(stack) if s[0] == kind)
                raise EntityParseError(
                    f"Can't find end of {_MD2_NAMES[kind]} entity at byte offset "
                    f"{_byte_offset(text, opened[2])}"
                )
            else:
                stack.append((kind, tb.u16, i))
            i += width
            continue
        if c in _MD2_RESERVED:
            raise reserved(c)
        tb.emit(c)
        i += 1
    if quote_start is not None:
        tb.entity("blockquote", quote_start)
    if stack:
        kind, _, opened = stack[-1]
        raise EntityParseError(
            f"Can't find end of {_MD2_NAMES[kind]} entity at byte offset "
            f"{_byte_offset(text, opened)}"
        )
    return tb.result()


def parse_markdown(text: str) -> tuple[str, list[dict]]:
    """Parse legacy Markdown (no nesting) into (plain text, entities) or raise EntityParseError."""
    tb = _TextBuilder()
    i, n = 0, len(text)
    kinds = {"*": "bold", "_": "italic", "`": "code"}
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            tb.emit(text[i + 1])
            i += 2
            continue
        if c not in "_*`[":
            tb.emit(c)
            i += 1
            continue
        not_closed = EntityParseError(
            f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
        )
        start = tb.u16
        if c == "[":
            close = text.find("]", i + 1)
            if close < 0:
                raise not_closed
            if not text.startswith("(", close + 1):
                tb.emit(text[i : close + 1])
                i = close + 1
                continue
            end = text.find(")", close + 2)
            if end < 0:
                raise not_closed
            tb.emit(text[i + 1 : close])
            tb.entity("text_link", start, url=text[close + 2 : end])
            i = end + 1
        elif text.startswith("```", i):
            end = text.find("```", i + 3)
            if end < 0:
                raise not_closed
            tb.emit(text[i + 3 : end])
            tb.entity("pre", start)
            i = end + 3
        else:
            end = text.find(c, i + 1)
            if end < 0:
                raise not_closed
            tb.emit(text[i + 1 : end])
            tb.entity(kinds[c], start)
            i = end + 1
    return tb.result()


def _trim(text: str, entities: list[dict]) -> tuple[str, list[dict]]:
    """Strip leading/trailing whitespace like Telegram, clipping entities to what remains."""
    stripped = text.strip()
    if not stripped:
        return "", []
    left = utf16_len(text[: len(text) - len(text.lstrip())])
    total = utf16_len(stripped)
    out = []
    for e in entities:
        start = max(e["offset"] - left, 0)
        end = min(e["offset"] + e["length"] - left, total)
        if end > start:
            out.append({**e, "offset": start, "length": end - start})
    return stripped, out


_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_@])")


def _command_entities(text: str) -> list[dict]:
    """bot_command entities as Telegram clients produce them (PTB's CommandHandler needs them)."""
    out = []
    for m in _COMMAND_RE.finditer(text):
        out.append(
            {
                "type": "bot_command",
                "offset": utf16_len(text[: m.start()]),
                "length": utf16_len(m.group(0)),
            }
        )
    return out


def buttons(message: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(text, callback_data) of a message's inline keyboard, flattened row by row.

    URL buttons give their url in place of callback_data; other kinds give "".
    """
    if not message:
        return []
    markup = message.get("reply_markup") or {}
    out = []
    for row in markup.get("inline_keyboard") or []:
        for b in row:
            out.append((b.get("text", ""), b.get("callback_data") or b.get("url") or ""))
    return out


def reply_buttons(message: Mapping[str, Any] | None) -> list[str]:
    """Texts of the reply keyboard (ReplyKeyboardMarkup) a bot message showed, if any."""
    if not message:
        return []
    markup = message.get("reply_keyboard") or {}
    return [
        b if isinstance(b, str) else b.get("text", "")
        for row in markup.get("keyboard") or []
        for b in row
    ]


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG/JPEG/GIF/WebP/BMP, or None if the bytes are not an image."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return int(w), int(h)
    if data[:3] == b"\xff\xd8\xff":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(w), int(h)
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
        return 1280, 960  # a JPEG whose frame header we could not find is still a JPEG
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return 512, 512
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return abs(int(w)), abs(int(h))
    return None


# --------------------------------------------------------------------------- parameters

_JSON_FIELDS = {
    "reply_markup", "allowed_updates", "commands", "scope", "media", "entities",
    "caption_entities", "link_preview_options", "reply_parameters", "menu_button", "message_ids",
}  # fmt: skip
_INT_FIELDS = {
    "message_id", "offset", "limit", "reply_to_message_id", "message_thread_id", "cache_time",
    "user_id", "live_period", "heading", "proximity_alert_radius", "max_connections",
}  # fmt: skip
_CHAT_FIELDS = {"chat_id", "from_chat_id"}  # int, or "@username"
_BOOL_FIELDS = {
    "show_alert", "disable_notification", "protect_content", "drop_pending_updates",
    "disable_web_page_preview", "allow_sending_without_reply", "has_spoiler",
    "disable_content_type_detection", "show_caption_above_media",
}  # fmt: skip
_FLOAT_FIELDS = {"latitude", "longitude", "horizontal_accuracy", "timeout"}
_JSON_ERRORS = {
    "reply_markup": "can't parse reply keyboard markup JSON object",
    "entities": "can't parse entities JSON object",
    "caption_entities": "can't parse entities JSON object",
}


def _decode_params(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Turn form-encoded string values into the types Telegram would read them as.

    Only known fields are decoded: text and caption must stay strings even if they look like
    numbers or JSON.
    """
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("utf-8", "replace")
        if isinstance(value, str):
            s = value.strip()
            if key in _JSON_FIELDS:
                try:
                    value = json.loads(s)
                except ValueError:
                    raise _bad(_JSON_ERRORS.get(key, f"can't parse {key} JSON object")) from None
            elif key in _INT_FIELDS:
                try:
                    value = int(s)
                except ValueError:
                    raise _bad(f"invalid {key} specified") from None
            elif key in _CHAT_FIELDS:
                if re.fullmatch(r"-?\d+", s):
                    value = int(s)
            elif key in _BOOL_FIELDS:
                value = s.lower() in ("true", "1")
            elif key in _FLOAT_FIELDS:
                try:
                    value = float(s)
                except ValueError:
                    raise _bad(f"invalid {key} specified") from None
        out[key] = value
    return out


@dataclass
class UploadedFile:
    """A file attached to a multipart request."""

    data: bytes
    filename: str | None = None
    mime_type: str | None = None


def _as_upload(value: bytes | UploadedFile | tuple) -> UploadedFile:
    if isinstance(value, UploadedFile):
        return value
    if isinstance(value, bytes | bytearray):
        return UploadedFile(bytes(value))
    if isinstance(value, tuple):  # (filename, bytes[, mime]) like httpx/PTB field tuples
        filename, data, *rest = value
        return UploadedFile(bytes(data), filename, rest[0] if rest else None)
    raise TypeError(f"unsupported upload value {type(value)!r}")


def _parse_http_params(
    content_type: str, body: bytes, query: Mapping[str, list[bytes]]
) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    """Params and files of a Bot API HTTP request (query string + form/multipart/JSON body)."""
    params: dict[str, Any] = {k: v[-1].decode("utf-8", "replace") for k, v in query.items() if v}
    files: dict[str, UploadedFile] = {}
    if not body:
        return params, files
    if content_type.split(";")[0].strip().lower() == "application/json":
        decoded = json.loads(body)
        if isinstance(decoded, dict):
            # Native JSON values: re-encode containers so _decode_params treats both alike.
            for k, v in decoded.items():
                params[k] = json.dumps(v) if isinstance(v, dict | list) else v
        return params, files
    arguments: dict[str, list[bytes]] = {}
    http_files: dict[str, list[tornado.httputil.HTTPFile]] = {}
    tornado.httputil.parse_body_arguments(content_type, body, arguments, http_files)
    for k, values in arguments.items():
        if values:
            params[k] = values[-1].decode("utf-8", "replace")
    for k, flist in http_files.items():
        if flist:
            f = flist[-1]
            files[k] = UploadedFile(f.body, f.filename, f.content_type or None)
    return params, files


# --------------------------------------------------------------------------- state


@dataclass
class _Fault:
    method: str  # lower-case canonical name or "*"
    status: int | None  # None: answer normally (after delay) / drop
    count: int
    retry_after: int | None
    description: str | None
    delay_ms: int
    drop: bool

    def body(self) -> dict:
        status = self.status or 500
        if self.description:
            description = self.description
        elif status == 429:
            description = f"Too Many Requests: retry after {self.retry_after}"
        elif status == 400:
            description = "Bad Request: injected fault"
        elif status == 403:
            description = "Forbidden: injected fault"
        elif status == 409:
            description = _CONFLICT_OTHER_POLL
        else:
            try:
                description = HTTPStatus(status).phrase
            except ValueError:
                description = "Injected fault"
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    kind: str  # photo | document | voice | sticker
    data: bytes
    file_path: str
    mime_type: str | None = None
    file_name: str | None = None
    width: int | None = None
    height: int | None = None
    sizes: list[dict] | None = None  # for photos: all PhotoSize dicts of the same picture

    def photo_size(self) -> dict:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "width": self.width,
            "height": self.height,
        }


@dataclass
class _Record:
    """One message in a chat as the server sees it now (edits applied)."""

    message: dict
    from_bot: bool
    seq: int = 0
    edited: int = 0
    deleted: bool = False
    reply_keyboard: dict | None = None


@dataclass
class _Chat:
    info: dict
    records: dict[int, _Record] = field(default_factory=dict)
    next_message_id: int = 1
    seq: int = 0  # bumps on every new message or edit (LocalAPIUser waits on it)

    def alloc_id(self) -> int:
        mid = self.next_message_id
        self.next_message_id += 1
        return mid

    def touch(self, rec: _Record) -> None:
        self.seq += 1
        rec.seq = self.seq

    def add(self, message: dict, from_bot: bool) -> _Record:
        rec = _Record(message=message, from_bot=from_bot)
        self.records[message["message_id"]] = rec
        self.touch(rec)
        return rec

    def live(self, message_id: Any) -> _Record | None:
        rec = self.records.get(message_id) if isinstance(message_id, int) else None
        return None if rec is None or rec.deleted else rec


@dataclass
class _BotState:
    token: str
    user: dict
    pending: list[dict] = field(default_factory=list)
    next_update_id: int = 100001
    waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = field(default_factory=list)
    poll_generation: int = 0
    webhook: dict = field(default_factory=lambda: {"url": ""})
    allowed_updates: list[str] | None = None
    chats: dict[int, _Chat] = field(default_factory=dict)
    users: dict[int, dict] = field(default_factory=dict)
    group_users: set[int] = field(default_factory=set)
    blocked: set[int] = field(default_factory=set)
    files: dict[str, _StoredFile] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    callbacks: dict[str, dict] = field(default_factory=dict)
    commands: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    menu_buttons: dict[int | None, dict] = field(default_factory=dict)
    profile: dict[str, str] = field(default_factory=dict)
    chat_actions: list[tuple[int, str]] = field(default_factory=list)

    @property
    def id(self) -> int:
        return int(self.user["id"])


def _scope_key(scope: Mapping[str, Any] | None) -> str:
    scope = dict(scope or {"type": "default"})
    key = {k: scope[k] for k in ("type", "chat_id", "user_id") if k in scope}
    return json.dumps(key, sort_keys=True)


def _resolve_fault_status(
    status: int | None, retry_after: int | None, delay_ms: int, drop: bool
) -> int | None:
    if status is not None:
        return None if 200 <= status < 300 else status
    if retry_after is not None:
        return 429
    if delay_ms or drop:
        return None  # a pure delay answers normally, late
    return 500


# --------------------------------------------------------------------------- the API


class LocalBotAPI:
    """In-memory Telegram Bot API: bot side via `handle`, user side via `send_*`/`press_button`.

    Thread-safe: the HTTP server may run in another thread than the test calling the user side.
    """

    def __init__(
        self,
        bot_username: str = "gridbot_local_bot",
        bot_first_name: str = "网格助手",
        *,
        clock: Callable[[], float] | None = None,
        strict_html_ampersand: bool = True,
        round_trip_ms: float = 0,
    ) -> None:
        """`round_trip_ms`: every Bot API call takes this long, half on the way in (before Telegram
        acts on it) and half on the way back, as the network between a bot and Telegram does."""
        self.bot_username = bot_username
        self.round_trip_ms = round_trip_ms
        self.bot_first_name = bot_first_name
        self.strict_html_ampersand = strict_html_ampersand
        self._clock = clock or time.time
        self._lock = threading.RLock()
        self._bots: dict[str, _BotState] = {}
        self._faults: list[_Fault] = []
        self._revoked: set[str] = set()
        self._blocked_everywhere: set[int] = set()
        self._ids = itertools.count(1)
        self.calls: list[tuple[str, dict]] = []
        self._call_tokens: list[str] = []
        self.callback_answers: list[dict] = []
        self.presses: list[dict] = []

    # ----------------------------------------------------------------- bookkeeping

    def _now(self) -> int:
        return int(self._clock())

    def _bot(self, token: str) -> _BotState:
        with self._lock:
            bot = self._bots.get(token)
            if bot is None:
                bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 0
                bot = _BotState(
                    token=token,
                    user={
                        "id": bot_id,
                        "is_bot": True,
                        "first_name": self.bot_first_name,
                        "username": self.bot_username,
                    },
                )
                self._bots[token] = bot
            return bot

    def register_bot(
        self, token: str, *, username: str | None = None, first_name: str | None = None
    ) -> None:
        """Give one token its own username/first name (default: the constructor's)."""
        with self._lock:
            bot = self._bot(token)
            if username:
                bot.user["username"] = username
            if first_name:
                bot.user["first_name"] = first_name

    def revoke(self, token: str) -> None:
        """Make every call with this token answer 401 Unauthorized (PTB raises InvalidToken)."""
        with self._lock:
            self._revoked.add(token)

    def _enqueue(self, bot: _BotState, kind: str, payload: dict) -> dict:
        update = {"update_id": bot.next_update_id, kind: copy.deepcopy(payload)}
        bot.next_update_id += 1
        bot.pending.append(update)
        self._wake(bot)
        return copy.deepcopy(update)

    @staticmethod
    def _wake(bot: _BotState) -> None:
        # Waiters may live on another thread's loop (server thread): wake them thread-safely.
        for loop, fut in list(bot.waiters):
            with contextlib.suppress(RuntimeError):  # that loop is already closed
                loop.call_soon_threadsafe(_resolve_future, fut)

    def _new_file(
        self,
        bot: _BotState,
        kind: str,
        data: bytes,
        *,
        mime_type: str | None = None,
        file_name: str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> _StoredFile:
        n = next(self._ids)
        directory = {"photo": "photos", "document": "documents", "voice": "voice"}.get(
            kind, kind + "s"
        )
        ext = {"photo": ".jpg", "voice": ".oga", "sticker": ".webp"}.get(kind)
        if ext is None:
            ext = (mimetypes.guess_extension(mime_type or "") if mime_type else None) or ""
            if not ext and file_name and "." in file_name:
                ext = "." + file_name.rsplit(".", 1)[1]
        stored = _StoredFile(
            file_id=f"LF{bot.id}_{n}_{secrets.token_hex(8)}",
            file_unique_id=f"AQAD{n}{secrets.token_hex(3)}",
            kind=kind,
            data=bytes(data),
            file_path=f"{directory}/file_{n}{ext}",
            mime_type=mime_type,
            file_name=file_name,
            width=width,
            height=height,
        )
        bot.files[stored.file_id] = stored
        bot.paths[stored.file_path] = stored.file_id
        return stored

    def _new_photo(self, bot: _BotState, data: bytes) -> list[dict]:
        """Two PhotoSize dicts (thumbnail, original) for one picture, both backed by `data`."""
        w, h = _image_size(data) or (1280, 960)
        scale = min(1.0, 320 / max(w, h, 1))
        small = self._new_file(
            bot, "photo", data, width=max(1, round(w * scale)), height=max(1, round(h * scale))
        )
        big = self._new_file(bot, "photo", data, width=w, height=h)
        sizes = [small.photo_size(), big.photo_size()]
        small.sizes = big.sizes = sizes
        return copy.deepcopy(sizes)

    # ----------------------------------------------------------------- faults and call log

    def inject_fault(
        self,
        method: str,
        *,
        status: int | None = None,
        count: int = 1,
        retry_after: int | None = None,
        description: str | None = None,
        delay_ms: int = 0,
        drop: bool = False,
    ) -> None:
        """Make the next `count` calls of `method` ("*" = any method) misbehave.

        status: HTTP error to answer (default 500; 429 when retry_after is given; with only
        delay_ms or drop the call proceeds normally). A 2xx status means "answer normally".
        retry_after: sent as parameters.retry_after (a 429 without it gets 1).
        delay_ms: the call is carried out, then the answer is held back this long, like a slow
        network on the way back: a client that times out may find Telegram did act on it.
        drop: the connection is closed without an answer (the call is not carried out); the
        in-process transport raises httpx.RemoteProtocolError.
        """
        resolved = _resolve_fault_status(status, retry_after, delay_ms, drop)
        if resolved == 429 and retry_after is None:
            retry_after = 1
        with self._lock:
            self._faults.append(
                _Fault(
                    method="*" if method == "*" else method.lower(),
                    status=resolved,
                    count=count,
                    retry_after=retry_after,
                    description=description,
                    delay_ms=delay_ms,
                    drop=drop,
                )
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> list[dict]:
        """Faults not yet used up (for assertions and the control API)."""
        with self._lock:
            return [dict(f.__dict__) for f in self._faults]

    def _take_fault(self, method: str) -> _Fault | None:
        key = method.lower()
        for fault in self._faults:
            if fault.method in (key, "*"):
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def call_counts(self, token: str | None = None) -> dict[str, int]:
        """How many times each method was called (optionally for one token)."""
        with self._lock:
            return dict(
                Counter(
                    m for (m, _), t in zip(self.calls, self._call_tokens) if token in (None, t)
                )
            )

    def calls_for(self, token: str, method: str | None = None) -> list[dict]:
        """Decoded params of one bot's calls (optionally of one method), oldest first."""
        with self._lock:
            return [
                p
                for (m, p), t in zip(self.calls, self._call_tokens)
                if t == token and method in (None, m)
            ]

    # ----------------------------------------------------------------- bot side

    async def handle(
        self,
        token: str,
        method: str,
        params: Mapping[str, Any] | None = None,
        files: Mapping[str, bytes | UploadedFile] | None = None,
    ) -> tuple[int, dict]:
        """Answer one Bot API call: (HTTP status, JSON body in Telegram's shape).

        Raises DroppedConnection when a `drop` fault applies.
        """
        raw = dict(params or {})
        uploads = {k: _as_upload(v) for k, v in (files or {}).items()}
        name = _CANONICAL.get(method.lower(), method)
        decode_error: ApiError | None = None
        try:
            p = _decode_params(raw)
        except ApiError as exc:
            p, decode_error = raw, exc
        logged = dict(p)
        referenced = {
            v[len("attach://") :]
            for v in p.values()
            if isinstance(v, str) and v.startswith("attach://")
        }
        for fname, up in uploads.items():
            if fname not in referenced:
                logged.setdefault(fname, f"<upload {up.filename or fname}, {len(up.data)} bytes>")
        with self._lock:
            self.calls.append((name, logged))
            self._call_tokens.append(token)
            fault = self._take_fault(name)
        if self.round_trip_ms:
            await asyncio.sleep(self.round_trip_ms / 2000)
        if fault is not None:
            if fault.drop:
                if fault.delay_ms:
                    await asyncio.sleep(fault.delay_ms / 1000)
                raise DroppedConnection(name)
            if fault.status is not None:
                if fault.delay_ms:
                    await asyncio.sleep(fault.delay_ms / 1000)
                return fault.status, fault.body()
        status, body = await self._dispatch(token, name, p, uploads, decode_error)
        if fault is not None and fault.delay_ms:
            await asyncio.sleep(fault.delay_ms / 1000)
        if self.round_trip_ms:
            await asyncio.sleep(self.round_trip_ms / 2000)
        return status, body

    async def _dispatch(
        self,
        token: str,
        name: str,
        p: dict[str, Any],
        uploads: dict[str, UploadedFile],
        decode_error: ApiError | None,
    ) -> tuple[int, dict]:
        if not _TOKEN_RE.fullmatch(token):
            return 404, dict(_NOT_FOUND)
        if token in self._revoked:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        fn = getattr(self, "_m_" + name.lower(), None)
        if fn is None or name not in _METHOD_NAMES:
            return 404, dict(_NOT_FOUND)
        try:
            if decode_error is not None:
                raise decode_error
            bot = self._bot(token)
            if name == "getUpdates":
                result = await self._get_updates(bot, p)
            else:
                with self._lock:
                    result = fn(bot, p, uploads)
            return 200, {"ok": True, "result": result}
        except ApiError as exc:
            return exc.status, exc.body()
        except Exception as exc:  # a bug here must be loud, not a silent hang
            log.exception("local Bot API failed on %s", name)
            return 500, {
                "ok": False,
                "error_code": 500,
                "description": f"Internal Server Error: local Bot API bug in {name}: {exc!r}",
            }

    # ---- helpers for handlers

    def _chat(self, bot: _BotState, chat_id: Any) -> _Chat:
        """The chat a call addresses, or Telegram's error for an unknown one."""
        if chat_id is None or chat_id == "":
            raise _bad("chat_id is empty")
        if isinstance(chat_id, str):
            if chat_id.startswith("@"):
                for chat in bot.chats.values():
                    if str(chat.info.get("username", "")).lower() == chat_id[1:].lower():
                        return chat
            raise _bad("chat not found")
        chat = bot.chats.get(chat_id)
        if chat is None:
            if chat_id in bot.group_users:
                raise _forbidden("bot can't initiate conversation with a user")
            raise _bad("chat not found")
        return chat

    def _sendable_chat(self, bot: _BotState, chat_id: Any) -> _Chat:
        chat = self._chat(bot, chat_id)
        if chat.info["type"] == "private" and self._is_blocked(bot, chat.info["id"]):
            raise _forbidden("bot was blocked by the user")
        return chat

    def _is_blocked(self, bot: _BotState, user_id: int) -> bool:
        return user_id in bot.blocked or user_id in self._blocked_everywhere

    def _format(
        self, text: Any, parse_mode: Any, entities: Any, *, caption: bool = False
    ) -> tuple[str, list[dict]]:
        """Parse, trim and length-check a text or caption the bot sends."""
        what = "message caption" if caption else "message text"
        if text is None or text == "":
            if caption:
                return "", []
            raise _bad("message text is empty")
        if not isinstance(text, str):
            text = str(text)
        mode = (parse_mode or "").lower() if isinstance(parse_mode, str) else ""
        if entities:
            if not isinstance(entities, list) or not all(
                isinstance(e, dict) and {"type", "offset", "length"} <= e.keys() for e in entities
            ):
                raise _bad("can't parse entities JSON object")
            plain, ents = text, [dict(e) for e in entities]
        else:
            try:
                if mode == "html":
                    plain, ents = parse_html(text, strict_ampersand=self.strict_html_ampersand)
                elif mode == "markdownv2":
                    plain, ents = parse_markdown_v2(text)
                elif mode == "markdown":
                    plain, ents = parse_markdown(text)
                elif mode == "":
                    plain, ents = text, []
                else:
                    raise _bad("unsupported parse_mode")
            except EntityParseError as exc:
                raise _bad(f"can't parse entities: {exc}") from None
        plain, ents = _trim(plain, ents)
        if not plain and not caption:
            raise _bad("message text is empty")
        if len(plain) > (MAX_CAPTION if caption else MAX_TEXT):
            raise _bad(f"{what} is too long" if caption else "message is too long")
        return plain, ents

    @staticmethod
    def _check_markup(markup: Any) -> tuple[dict | None, dict | None]:
        """Validate reply_markup: returns (inline markup for the message, reply keyboard)."""
        if markup is None:
            return None, None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise _bad('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array')
            total = 0
            for row in rows:
                for b in row:
                    total += 1
                    if not isinstance(b, dict):
                        raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
                    if not isinstance(b.get("text"), str) or not b["text"]:
                        raise _bad('can\'t parse inline keyboard button: Field "text" must be of type String')
                    actions = [k for k in _INLINE_ACTIONS if k in b]
                    if not actions:
                        raise _bad("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
                    if "callback_data" in b:
                        data = b["callback_data"]
                        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA:
                            raise _bad("BUTTON_DATA_INVALID")
                    if "url" in b:
                        parts = urlsplit(str(b["url"]))
                        if parts.scheme not in ("http", "https", "tg", "ton") or not (parts.netloc or parts.scheme == "tg"):
                            raise _bad(f"inline keyboard button URL '{b['url']}' is invalid: Wrong HTTP URL")
            if total > MAX_BUTTONS:
                raise _bad("reply markup is too long")
            inline = {"inline_keyboard": copy.deepcopy(rows)} if total else None
            return inline, None
        if "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
                raise _bad("can't parse reply keyboard markup JSON object")
            for row in rows:
                for b in row:
                    text = b if isinstance(b, str) else b.get("text") if isinstance(b, dict) else None
                    if not isinstance(text, str) or not text:
                        raise _bad('can\'t parse keyboard button: Field "text" must be of type String')
            return None, copy.deepcopy(markup)
        if markup.get("remove_keyboard") or markup.get("force_reply"):
            return None, copy.deepcopy(markup)
        raise _bad("can't parse reply keyboard markup JSON object")

    def _bot_message(
        self, bot: _BotState, chat: _Chat, content: dict, p: dict[str, Any]
    ) -> dict:
        """Validate markup/reply target, then store a new bot message; returns it (a copy)."""
        inline, reply_kb = self._check_markup(p.get("reply_markup"))
        reply_to = p.get("reply_to_message_id")
        params = p.get("reply_parameters")
        allow_missing = bool(p.get("allow_sending_without_reply"))
        if isinstance(params, dict):
            reply_to = params.get("message_id")
            allow_missing = allow_missing or bool(params.get("allow_sending_without_reply"))
        reply_rec = None
        if reply_to is not None:
            reply_rec = chat.live(reply_to)
            if reply_rec is None and not allow_missing:
                raise _bad("message to be replied not found")
        message = {
            "message_id": chat.alloc_id(),
            "from": dict(bot.user),
            "chat": dict(chat.info),
            "date": self._now(),
            **content,
        }
        if reply_rec is not None:
            quoted = copy.deepcopy(reply_rec.message)
            quoted.pop("reply_to_message", None)
            message["reply_to_message"] = quoted
        if inline:
            message["reply_markup"] = inline
        rec = chat.add(message, from_bot=True)
        rec.reply_keyboard = reply_kb
        return copy.deepcopy(message)

    def _input_file(
        self, p: dict[str, Any], uploads: dict[str, UploadedFile], key: str
    ) -> tuple[str, Any]:
        """('upload', UploadedFile) | ('file_id', str) | ('url', str) for a file parameter."""
        value = p.get(key)
        if isinstance(value, str) and value.startswith("attach://"):
            up = uploads.get(value[len("attach://") :])
            if up is None:
                raise _bad(f"there is no {key} in the request")
            return "upload", up
        if value is None and key in uploads:
            return "upload", uploads[key]
        if isinstance(value, str) and value:
            if value.startswith(("http://", "https://")):
                return "url", value
            return "file_id", value
        raise _bad(f"there is no {key} in the request")

    def _existing_file(self, bot: _BotState, file_id: str, want: str) -> _StoredFile:
        stored = bot.files.get(file_id)
        if stored is None:
            raise _bad("wrong file identifier/HTTP URL specified")
        if stored.kind != want:
            raise _bad(f"can't use file of type {stored.kind.capitalize()} as {want.capitalize()}")
        return stored

    def _caption(self, p: dict[str, Any]) -> dict:
        text, ents = self._format(
            p.get("caption"), p.get("parse_mode"), p.get("caption_entities"), caption=True
        )
        out: dict[str, Any] = {}
        if text:
            out["caption"] = text
            if ents:
                out["caption_entities"] = ents
        return out

    # ---- methods (sync ones run under the lock)

    def _m_getme(self, bot: _BotState, p: dict, uploads: dict) -> dict:
        return {
            **bot.user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _m_getupdates(self, bot: _BotState, p: dict, uploads: dict) -> None:  # pragma: no cover
        raise AssertionError("getUpdates is dispatched to _get_updates")

    async def _get_updates(self, bot: _BotState, p: dict[str, Any]) -> list[dict]:
        loop = asyncio.get_running_loop()
        offset = p.get("offset")
        limit = max(1, min(100, int(p.get("limit") or 100)))
        timeout = max(0.0, float(p.get("timeout") or 0))
        allowed = p.get("allowed_updates")
        with self._lock:
            if bot.webhook.get("url"):
                raise ApiError(409, _CONFLICT_WEBHOOK)
            # A newer getUpdates terminates an older, still waiting one (as Telegram does).
            bot.poll_generation += 1
            generation = bot.poll_generation
            self._wake(bot)
            if isinstance(allowed, list):
                bot.allowed_updates = allowed
            if isinstance(offset, int) and offset < 0:
                bot.pending = bot.pending[offset:]
            elif isinstance(offset, int) and offset > 0:
                # `offset` confirms every earlier update: Telegram forgets them for good.
                bot.pending = [u for u in bot.pending if u["update_id"] >= offset]
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                if bot.poll_generation != generation:
                    raise ApiError(409, _CONFLICT_OTHER_POLL)
                # Updates of types not asked for are discarded, as Telegram does.
                wanted = set(bot.allowed_updates or []) or None
                bot.pending = [u for u in bot.pending if _update_allowed(u, wanted)]
                ready = bot.pending[:limit]
                remaining = deadline - loop.time()
                if ready or remaining <= 0:
                    return copy.deepcopy(ready)
                fut: asyncio.Future = loop.create_future()
                waiter = (loop, fut)
                bot.waiters.append(waiter)
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                pass
            finally:
                with self._lock, contextlib.suppress(ValueError):
                    bot.waiters.remove(waiter)

    def _m_deletewebhook(self, bot: _BotState, p: dict, uploads: dict) -> bool:
        bot.webhook = {"url": ""}
        if p.get("drop_pending_updates"):
            bot.pending.clear()
        return True

    def _m_setwebhook(self, bot: _BotState, p: dict, uploads: dict) -> bool:
        url = p.get("url") or ""
        if url and not str(url).startswith(("http://", "https://")):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        bot.webhook = {
            k: p[k]
            for k in ("url", "max_connections", "allowed_updates", "secret_token", "ip_address")
            if k in p
        }
        bot.webhook["url"] = url
        if p.get("drop_pending_updates"):
            bot.pending.clear()
        return True

    def _m_getwebhookinfo(self, bot: _BotState, p: dict, uploads: dict) -> dict:
        info = {
            "url": bot.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(bot.pending),
        }
        for k in ("max_connections", "allowed_updates", "ip_address"):
            if k in bot.webhook:
                info[k] = bot.webhook[k]
        return info

    def _m_logout(self, bot: _BotState, p: dict, uploads: dict) -> bool:
        return True

    def _m_close(self, bot: _BotState, p: dict, uploads: dict) -> bool:
        return True

    def _m_sendmessage(self, bot: _BotState, p: dict, uploads: dict) -> dict:
        chat = self._sendable_chat(bot, p.get("chat_id"))
        text, ents = self._format(p.get("text"), p.get("parse_mode"), p.get("entities"))
        content: dict[str, Any] = {"text": text}
        if ents:
            content["entities"] = ents
        return self._bot_message(bot, chat, content, p)

    def _editable(self, bot: _BotState, p: dict, verb: str = "edit") -> tuple[_Chat, _Record]:
        if p.get("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID")
        chat = self._chat(bot, p.get("chat_id"))
        if p.get("message_id") is None:
            raise _bad("message identifier is not specified")
        rec = chat.live(p.get("message_id"))
        if rec is None:
            raise _bad(f"message to {verb} not found")
        if verb == "edit" and not rec.from_bot:
            raise _bad("message can't be edited")
        return chat, rec

    def _apply_edit(self, chat: _Chat, rec: _Record, changes: dict, inline: dict | None) -> dict:
        msg = rec.message
        for key, value in changes.items():
            if value in (None, [], ""):
                msg.pop(key, None)
            else:
                msg[key] = value
        if inline:
            msg["reply_markup"] = inline
        else:
            msg.pop("reply_markup", None)
        msg["edit_date"] = self._now()
        rec.edited += 1
        chat.touch(rec)
        return copy.deepcopy(msg)

    def _m_editmessagetext(self, bot: _BotState, p: dict, uploads: dict) -> dict:
        chat, rec = self._editable(bot, p)
        if "text" not in rec.message:
            raise _bad("there is no text in the message to edit")
        text, ents = self._format(p.get("text"), p.get("parse_mode"), p.get("entities"))
        inline, reply_kb = self._check_markup(p.get("reply_markup"))
        if reply_kb is not None:
            raise _bad("inline keyboard expected")
        msg = rec.message
        # Without reply_markup Telegram removes the inline keyboard, so None is compared too.
        if (
            msg.get("text") == text
            and (msg.get("entities") or []) == ents
            and msg.get("reply_markup") == inline
        ):
            raise _bad(_NOT_MODIFIED)
        return self._apply_edit(chat, rec, {"text": text, "entities": ents}, inline)

    def _m_editmessagecaption(self, bot: _BotState, p: dict, uploads: dict) -> dict:
        chat, rec = self._editable(bot, p)
        if "text" in rec.message:
            raise _bad("there is no caption in the message to edit")
        caption = self._caption(p)
        inline, reply_kb = self._check_markup(p.get("reply_markup"))
        if reply_kb is not None:
            raise _bad("inline keyboard expected")
        msg = rec.message
        if (
            msg.get("caption") == caption.get("caption")
            and msg.get("caption_entities") == caption.get("caption_entities")
            and msg.get("reply_markup") == inline
        ):
            raise _bad(_NOT_MODIFIED)
        changes = {
            "caption": caption.get("caption"),
            "caption_entities": caption.get("caption_entities"),
        }
        return self._apply_edit(chat, rec, changes, inline)

    def _m_editmessagereplymarkup(self, bot: _BotState, p: dict, uploads: dict) -> dict:
        chat, rec = self._editable(bot, p)
        inline, reply_kb = self._check_markup(p.get("reply_markup"))
        if reply_kb is not None:
            raise _bad("inline keyboard expected")
        if rec.message.get("reply_markup") == inline:
            raise _bad(_NOT_MODIFIED)
        return self._apply_edit(chat, rec, {}, inline)

    def _m_deletemessage(self, bot: _BotState, p: dict, uploads: dict) -> bool:
        _, rec = self._editable(bot, p, verb="delete")
        rec.deleted = True
        return True

    def _m_deletemessages(self, bot: _BotState, p: dict, uploads: dict) -> bool:
        chat = self._chat(bot, p.get("chat_id"))
        ids = p.get("message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise _bad("message_ids must be a non-empty list of at most 100 identifiers")
        for mid in ids:
            rec = chat.live(mid)
            if rec is not None:
                rec.deleted = True
        return True

    def _m_answercallbackquery(self, bot: _BotState, p: dict, uploads: dict) -> bool:
        qid = str(p.get("callback_query_id") or "")
        query = bot.callbacks.get(qid)
        if query is None or query["answered"]:
            raise _bad(_QUERY_INVALID)
        text = p.get("text")
        if text is not None and len(str(text)) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        query["answered"] = True
        self.callback_answers.append(
            {
                "callback_query_id": qid,
                "text": text,
                "show_alert": bool(p.get("show_alert", False)),
                "url": p.get("url"),
                "cache_time": p.get("cache_time"),
                "token": bot.token,
                "user_id": query["user_id"],
                "data": query["data"],
                "message_id": query["message_id"],
            }
        )
        return True

    def _check_scope(self, bot: _BotState, scope: Any) -> dict:
        if scope is None:
            return {"type": "default"}
        if not isinstance(scope, dict) or scope.get("type") not in _SCOPE_TYPES:
            raise _bad("can't parse BotCommandScope JSON object")
        if scope["type"] in ("chat", "chat_administrators", "chat_member"):
            self._chat(bot, scope.get("chat_id"))
        if scope["type"] == "chat_member" and not isinstance(scope.get("user_id"), int):
            raise _bad("user not found")
        return scope

    @staticmethod
    def _check_language(code: Any) -> str:
        code = code or ""
        if code and not re.fullmatch(r"[a-z]{2}", str(code)):
            # Telegram wants a two-letter ISO 639-1 code: "zh-hans" from a user is refused.
            raise _bad("invalid language code specified")
        return str(code)

    def _m_setmycommands(self, bot: _BotState, p: dict, uploads: dict) -> bool:
        commands = p.get("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad("too many commands")
        for c in commands:
            if not isinstance(c, dict) or not re.fullmatch(r"[a-z0-9_]{1,32}", str(c.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            description = c.get("description")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        scope = self._check_scope(bot, p.get("scope"))
        lang = self._check_language(p.get("language_code"))
        key = (_scope_key(scope), lang)
        if commands:
            bot.commands[key] = [
                {"command": c["command"], "description": c["description"]} for c in commands
            ]
        else:
            bot.commands.pop(key, None)
        return True

    def _m_getmycommands(self, bot: _BotState, p: dict, uploads: dict) -> list[dict]:
        scope = self._check_scope(bot, p.get("scope"))
        lang = self._check_language(p.get("language_code"))
        return copy.deepcopy(bot.commands.get((_scope_key(scope), lang), []))

    def _m_deletemycommands(self, bot: _BotState, p: dict, uploads: dict) -> bool:
        scope = self._check_scope(bot, p.get("scope"))
        lang = self._check_language(p.get("language_code"))
        bot.commands.pop((_scope_key(scope), lang), None)
        return True

    def _m_setchatmenubutton(self, bot: _BotState, p: dict, uploads: dict) -> bool:
        chat_id = p.get("chat_id")
        if chat_id is not None:
            chat = self._chat(bot, chat_id)
            if chat.info["type"] != "private":
                raise _bad("chat must be a private chat")
            chat_id = chat.info["id"]
        button = p.get("menu_button") or {"type": "default"}
        if not isinstance(button, dict) or button.get("type") not in ("commands", "web_app", "default"):
            raise _bad("can't parse menu button JSON object")
        bot.menu_buttons[chat_id] = copy.deepcopy(button)
        return True

    def _m_getchatmenubutton(self, bot: _BotState, p: dict, uploads: dict) -> dict:
        chat_id = p.get("chat_id")
        if chat_id is not None:
            chat_id = self._chat(bot, chat_id).info["id"]
        button = bot.menu_buttons.get(chat_id) or bot.menu_buttons.get(None)
        return copy.deepcopy(button or {"type": "commands"})

    def _m_sendchataction(self, bot: _BotState, p: dict, uploads: dict) -> bool:
        chat = self._sendable_chat(bot, p.get("chat_id"))
        action = p.get("action")
        if action not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        bot.chat_actions.append((chat.info["id"], action))
        return True

    def _m_sendphoto(self, bot: _BotState, p: dict, uploads: dict) -> dict:
        chat = self._sendable_chat(bot, p.get("chat_id"))
        source, value = self._input_file(p, uploads, "photo")
        caption = self._caption(p)
        self._check_markup(p.get("reply_markup"))  # fail before storing anything
        if source == "url":
            raise _bad("failed to get HTTP URL content")
        if source == "file_id":
            stored = self._existing_file(bot, value, "photo")
            sizes = copy.deepcopy(stored.sizes or [stored.photo_size()])
        else:
            if not value.data:
                raise _bad("file must be non-empty")
            if len(value.data) > 10 * 1024 * 1024:
                raise _bad("PHOTO_INVALID_DIMENSIONS")
            if _image_size(value.data) is None:
                raise _bad("IMAGE_PROCESS_FAILED")
            sizes = self._new_photo(bot, value.data)
        return self._bot_message(bot, chat, {"photo": sizes, **caption}, p)

    def _m_senddocument(self, bot: _BotState, p: dict, uploads: dict) -> dict:
        chat = self._sendable_chat(bot, p.get("chat_id"))
        source, value = self._input_file(p, uploads, "document")
        caption = self._caption(p)
        self._check_markup(p.get("reply_markup"))
        if source == "url":
            raise _bad("failed to get HTTP URL content")
        if source == "file_id":
            stored = self._existing_file(bot, value, "document")
        else:
            if not value.data:
                raise _bad("file must be non-empty")
            if len(value.data) > MAX_UPLOAD:
                raise ApiError(413, "Request Entity Too Large")
            name = value.filename or "document"
            mime = value.mime_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
            stored = self._new_file(bot, "document", value.data, mime_type=mime, file_name=name)
        document = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": stored.file_name,
            "mime_type": stored.mime_type,
            "file_size": len(stored.data),
        }
        return self._bot_message(bot, chat, {"document": document, **caption}, p)

    def _m_sendlocation(self, bot: _BotState, p: dict, uploads: dict) -> dict:
        chat = self._sendable_chat(bot, p.get("chat_id"))
        lat, lon = p.get("latitude"), p.get("longitude")
        if not isinstance(lat, int | float) or not -90 <= lat <= 90:
            raise _bad("wrong latitude specified")
        if not isinstance(lon, int | float) or not -180 <= lon <= 180:
            raise _bad("wrong longitude specified")
        location = {"latitude": float(lat), "longitude": float(lon)}
        return self._bot_message(bot, chat, {"location": location}, p)

    def _m_getfile(self, bot: _BotState, p: dict, uploads: dict) -> dict:
        stored = bot.files.get(str(p.get("file_id") or ""))
        if stored is None:
            raise _bad("invalid file_id")
        if len(stored.data) > MAX_DOWNLOAD:
            raise _bad("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    def _m_getchat(self, bot: _BotState, p: dict, uploads: dict) -> dict:
        chat = self._chat(bot, p.get("chat_id"))
        return {
            **chat.info,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        }

    def _m_getchatmember(self, bot: _BotState, p: dict, uploads: dict) -> dict:
        chat = self._chat(bot, p.get("chat_id"))
        user_id = p.get("user_id")
        if user_id == bot.id:
            return {"status": "member", "user": dict(bot.user)}
        user = bot.users.get(user_id) if isinstance(user_id, int) else None
        if user is None:
            raise _bad("user not found")
        if chat.info["type"] == "private" and chat.info["id"] != user_id:
            raise _bad("user not found")
        return {"status": "member", "user": dict(user)}

    def _source_message(self, bot: _BotState, p: dict, verb: str) -> dict:
        source_chat = self._chat(bot, p.get("from_chat_id"))
        rec = source_chat.live(p.get("message_id"))
        if rec is None:
            raise _bad(f"message to {verb} not found")
        return rec.message

    def _m_forwardmessage(self, bot: _BotState, p: dict, uploads: dict) -> dict:
        chat = self._sendable_chat(bot, p.get("chat_id"))
        src = self._source_message(bot, p, "forward")
        content = {k: copy.deepcopy(src[k]) for k in _CONTENT_KEYS if k in src}
        content["forward_origin"] = {
            "type": "user",
            "sender_user": copy.deepcopy(src["from"]),
            "date": src["date"],
        }
        return self._bot_message(bot, chat, content, {k: v for k, v in p.items() if k != "reply_markup"})

    def _m_copymessage(self, bot: _BotState, p: dict, uploads: dict) -> dict:
        chat = self._sendable_chat(bot, p.get("chat_id"))
        src = self._source_message(bot, p, "copy")
        content = {k: copy.deepcopy(src[k]) for k in _CONTENT_KEYS if k in src}
        if "caption" in p and "text" not in content:
            content.pop("caption", None)
            content.pop("caption_entities", None)
            content.update(self._caption(p))
        message = self._bot_message(bot, chat, content, p)
        return {"message_id": message["message_id"]}

    def _profile_setter(self, bot: _BotState, p: dict, key: str) -> bool:
        lang = self._check_language(p.get("language_code"))
        bot.profile[f"{key}:{lang}"] = str(p.get(key) or "")
        return True

    def _m_setmydescription(self, bot: _BotState, p: dict, uploads: dict) -> bool:
        return self._profile_setter(bot, p, "description")

    def _m_getmydescription(self, bot: _BotState, p: dict, uploads: dict) -> dict:
        lang = self._check_language(p.get("language_code"))
        return {"description": bot.profile.get(f"description:{lang}", "")}

    def _m_setmyshortdescription(self, bot: _BotState, p: dict, uploads: dict) -> bool:
        return self._profile_setter(bot, p, "short_description")

    def _m_getmyshortdescription(self, bot: _BotState, p: dict, uploads: dict) -> dict:
        lang = self._check_language(p.get("language_code"))
        return {"short_description": bot.profile.get(f"short_description:{lang}", "")}

    def _m_setmyname(self, bot: _BotState, p: dict, uploads: dict) -> bool:
        return self._profile_setter(bot, p, "name")

    def _m_getmyname(self, bot: _BotState, p: dict, uploads: dict) -> dict:
        lang = self._check_language(p.get("language_code"))
        return {"name": bot.profile.get(f"name:{lang}", "") or bot.user["first_name"]}

    # ----------------------------------------------------------------- user side

    def _user(
        self,
        bot: _BotState,
        user_id: int,
        first_name: str | None,
        username: str | None,
        language_code: str | None,
    ) -> dict:
        known = bot.users.get(user_id, {})
        user: dict[str, Any] = {
            "id": int(user_id),
            "is_bot": False,
            "first_name": first_name or known.get("first_name") or f"User{user_id}",
        }
        if username or known.get("username"):
            user["username"] = username or known["username"]
        if language_code is not None:
            user["language_code"] = language_code
        bot.users[int(user_id)] = user
        return user

    def _user_chat(
        self,
        bot: _BotState,
        user: dict,
        chat_id: int | None,
        chat_type: str,
        chat_title: str | None,
    ) -> _Chat:
        if chat_type == "private":
            cid = user["id"] if chat_id is None else int(chat_id)
            if cid != user["id"]:
                raise ValueError("a private chat's id is the user's id")
            info = {"id": cid, "type": "private", "first_name": user["first_name"]}
            if "username" in user:
                info["username"] = user["username"]
        elif chat_type in ("group", "supergroup"):
            if chat_id is None or int(chat_id) >= 0:
                raise ValueError("group chats need a negative chat_id")
            cid = int(chat_id)
            old = bot.chats.get(cid)
            title = chat_title or (old.info.get("title") if old else None) or f"Group{abs(cid)}"
            info = {"id": cid, "type": chat_type, "title": title}
            bot.group_users.add(user["id"])
        else:
            raise ValueError(f"unsupported chat_type {chat_type!r}")
        chat = bot.chats.get(cid)
        if chat is None:
            chat = bot.chats[cid] = _Chat(info=info)
        else:
            chat.info = info  # names and titles change; later messages show the new ones
        return chat

    def _user_message(
        self,
        token: str,
        user_id: int,
        content: dict,
        *,
        first_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "zh-hans",
        chat_id: int | None = None,
        chat_type: str = "private",
        chat_title: str | None = None,
        forward: bool = False,
        reply_to_message_id: int | None = None,
    ) -> dict:
        with self._lock:
            bot = self._bot(token)
            user = self._user(bot, user_id, first_name, username, language_code)
            chat = self._user_chat(bot, user, chat_id, chat_type, chat_title)
            if chat_type == "private" and self._is_blocked(bot, user["id"]):
                # Writing to a bot you blocked means pressing "Restart": unblock it first.
                self._set_blocked(bot, user["id"], False)
            message = {
                "message_id": chat.alloc_id(),
                "from": user,
                "chat": dict(chat.info),
                "date": self._now(),
                **copy.deepcopy(content),
            }
            if forward:
                message["forward_origin"] = {
                    "type": "user",
                    "sender_user": {"id": 4242, "is_bot": False, "first_name": "转发来源"},
                    "date": self._now() - 3600,
                }
            if reply_to_message_id is not None:
                target = chat.live(reply_to_message_id)
                if target is None:
                    raise ValueError(f"no message {reply_to_message_id} in chat {chat.info['id']}")
                quoted = copy.deepcopy(target.message)
                quoted.pop("reply_to_message", None)
                message["reply_to_message"] = quoted
            chat.add(message, from_bot=False)
            return self._enqueue(bot, "message", message)

    def send_text(
        self,
        token: str,
        user_id: int,
        text: str,
        *,
        first_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "zh-hans",
        chat_id: int | None = None,
        chat_type: str = "private",
        forward: bool = False,
        chat_title: str | None = None,
        reply_to_message_id: int | None = None,
    ) -> dict:
        """A user sends text (commands get their bot_command entity). Returns the Update dict."""
        if not text or not text.strip():
            raise ValueError("Telegram clients cannot send empty messages")
        content: dict[str, Any] = {"text": text}
        entities = _command_entities(text)
        if entities:
            content["entities"] = entities
        return self._user_message(
            token, user_id, content, first_name=first_name, username=username,
            language_code=language_code, chat_id=chat_id, chat_type=chat_type,
            chat_title=chat_title, forward=forward, reply_to_message_id=reply_to_message_id,
        )  # fmt: skip

    def send_photo(
        self,
        token: str,
        user_id: int,
        data: bytes,
        *,
        caption: str | None = None,
        **user: Any,
    ) -> dict:
        """A user sends a photo: message.photo holds two sizes, the last one the original."""
        with self._lock:
            sizes = self._new_photo(self._bot(token), data)
        content: dict[str, Any] = {"photo": sizes}
        if caption:
            content["caption"] = caption
        return self._user_message(token, user_id, content, **user)

    def send_document(
        self,
        token: str,
        user_id: int,
        data: bytes,
        filename: str,
        *,
        mime_type: str | None = None,
        caption: str | None = None,
        **user: Any,
    ) -> dict:
        """A user sends a file as a document."""
        mime = mime_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        with self._lock:
            stored = self._new_file(
                self._bot(token), "document", data, mime_type=mime, file_name=filename
            )
        content: dict[str, Any] = {
            "document": {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_name": filename,
                "mime_type": mime,
                "file_size": len(data),
            }
        }
        if caption:
            content["caption"] = caption
        return self._user_message(token, user_id, content, **user)

    def send_location(
        self, token: str, user_id: int, latitude: float, longitude: float, **user: Any
    ) -> dict:
        """A user shares a location."""
        location = {"latitude": float(latitude), "longitude": float(longitude)}
        return self._user_message(token, user_id, {"location": location}, **user)

    def send_contact(
        self,
        token: str,
        user_id: int,
        phone_number: str,
        *,
        own: bool = True,
        contact_first_name: str | None = None,
        contact_user_id: int | None = None,
        **user: Any,
    ) -> dict:
        """A user shares a contact; own=True is "share my phone number" (contact.user_id set)."""
        with self._lock:
            known = self._bot(token).users.get(user_id, {})
        contact: dict[str, Any] = {"phone_number": phone_number}
        if own:
            contact["first_name"] = user.get("first_name") or known.get("first_name") or f"User{user_id}"
            contact["user_id"] = int(user_id)
        else:
            contact["first_name"] = contact_first_name or "联系人"
            if contact_user_id is not None:
                contact["user_id"] = int(contact_user_id)
        return self._user_message(token, user_id, {"contact": contact}, **user)

    def send_sticker(self, token: str, user_id: int, *, emoji: str = "👍", **user: Any) -> dict:
        """A user sends a (fake) sticker."""
        with self._lock:
            stored = self._new_file(
                self._bot(token), "sticker", b"RIFF\x00\x00\x00\x00WEBPVP8 fake", mime_type="image/webp"
            )
        sticker = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "file_size": len(stored.data),
        }
        return self._user_message(token, user_id, {"sticker": sticker}, **user)

    def send_voice(self, token: str, user_id: int, *, duration: int = 3, **user: Any) -> dict:
        """A user sends a (fake) voice note."""
        with self._lock:
            stored = self._new_file(
                self._bot(token), "voice", b"OggS" + bytes(60), mime_type="audio/ogg"
            )
        voice = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "duration": duration,
            "mime_type": "audio/ogg",
            "file_size": len(stored.data),
        }
        return self._user_message(token, user_id, {"voice": voice}, **user)

    def edit_text(
        self,
        token: str,
        user_id: int,
        message_id: int,
        new_text: str,
        *,
        chat_id: int | None = None,
    ) -> dict:
        """A user edits one of their text messages: returns an edited_message Update."""
        with self._lock:
            bot = self._bot(token)
            chat = bot.chats.get(user_id if chat_id is None else chat_id)
            rec = chat.live(message_id) if chat else None
            if rec is None or rec.from_bot or rec.message["from"]["id"] != user_id:
                raise ValueError(f"user {user_id} has no message {message_id} to edit")
            if "text" not in rec.message:
                raise ValueError("only text messages can be edited here")
            rec.message["text"] = new_text
            entities = _command_entities(new_text)
            if entities:
                rec.message["entities"] = entities
            else:
                rec.message.pop("entities", None)
            rec.message["edit_date"] = self._now()
            rec.edited += 1
            chat.touch(rec)
            return self._enqueue(bot, "edited_message", rec.message)

    def press_button(
        self,
        token: str,
        user_id: int,
        message_id: int,
        callback_data: str,
        *,
        chat_id: int | None = None,
        first_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "zh-hans",
    ) -> dict:
        """A user presses an inline button: returns a callback_query Update.

        Data that is not on the message's keyboard is allowed (forged-data tests) and recorded
        in `presses` with on_keyboard=False.
        """
        with self._lock:
            bot = self._bot(token)
            cid = user_id if chat_id is None else chat_id
            chat = bot.chats.get(cid)
            rec = chat.live(message_id) if chat else None
            if rec is None or not rec.from_bot:
                raise ValueError(f"no bot message {message_id} in chat {cid} to press a button on")
            user = self._user(bot, user_id, first_name, username, language_code)
            on_keyboard = callback_data in [d for _, d in buttons(rec.message)]
            query_id = str(bot.id * 1_000_000 + next(self._ids))
            bot.callbacks[query_id] = {
                "answered": False,
                "user_id": user_id,
                "data": callback_data,
                "message_id": message_id,
            }
            self.presses.append(
                {
                    "token": token,
                    "user_id": user_id,
                    "chat_id": cid,
                    "message_id": message_id,
                    "callback_data": callback_data,
                    "callback_query_id": query_id,
                    "on_keyboard": on_keyboard,
                }
            )
            query = {
                "id": query_id,
                "from": user,
                "chat_instance": str(abs(cid) * 7919 + bot.id),
                "data": callback_data,
                "message": copy.deepcopy(rec.message),
            }
            return self._enqueue(bot, "callback_query", query)

    def _set_blocked(self, bot: _BotState, user_id: int, blocked: bool) -> dict | None:
        """Flip one bot's block state for a user; queue the my_chat_member update Telegram sends."""
        was = self._is_blocked(bot, user_id)
        if blocked:
            bot.blocked.add(user_id)
        else:
            bot.blocked.discard(user_id)
            if user_id in self._blocked_everywhere:
                # Unblocking one bot keeps the others blocked.
                self._blocked_everywhere.discard(user_id)
                for other in self._bots.values():
                    if other is not bot:
                        other.blocked.add(user_id)
        chat = bot.chats.get(user_id)
        if chat is None or was == blocked:
            return None
        member = {"status": "member", "user": dict(bot.user)}
        kicked = {"status": "kicked", "user": dict(bot.user), "until_date": 0}
        change = {
            "chat": dict(chat.info),
            "from": copy.deepcopy(bot.users.get(user_id) or {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}),
            "date": self._now(),
            "old_chat_member": member if blocked else kicked,
            "new_chat_member": kicked if blocked else member,
        }
        return self._enqueue(bot, "my_chat_member", change)

    @staticmethod
    def _block_args(a: int | str, b: int | str | None, token: str | None) -> tuple[str | None, int]:
        # Accept block(user_id), block(user_id, token=...) and block(token, user_id).
        if isinstance(a, str) and ":" in a:
            return a, int(b)  # type: ignore[arg-type]
        if isinstance(b, str):
            return b, int(a)
        return token, int(a)

    def block(
        self, user_or_token: int | str, user_id: int | None = None, *, token: str | None = None
    ) -> list[dict]:
        """The user blocks the bot (all bots if no token): sends then fail with 403.

        Returns the my_chat_member updates queued for bots that had a private chat with the user.
        The user writing to the bot again unblocks it (like pressing Restart).
        """
        token, uid = self._block_args(user_or_token, user_id, token)
        with self._lock:
            if token is not None:
                upd = self._set_blocked(self._bot(token), uid, True)
                return [upd] if upd else []
            out = []
            for bot in self._bots.values():
                upd = self._set_blocked(bot, uid, True)
                if upd:
                    out.append(upd)
            self._blocked_everywhere.add(uid)
            return out

    def unblock(
        self, user_or_token: int | str, user_id: int | None = None, *, token: str | None = None
    ) -> list[dict]:
        """Undo `block` (same argument forms)."""
        token, uid = self._block_args(user_or_token, user_id, token)
        with self._lock:
            bots = [self._bot(token)] if token is not None else list(self._bots.values())
            out = [u for bot in bots if (u := self._set_blocked(bot, uid, False))]
            if token is None:
                self._blocked_everywhere.discard(uid)
                for bot in self._bots.values():
                    bot.blocked.discard(uid)
            return out

    # ----------------------------------------------------------------- views

    def chat_messages(
        self, token: str, chat_id: int, *, include_deleted: bool = False
    ) -> list[dict]:
        """All messages of a chat in order (user and bot), current state, with extra keys:
        from_bot, edited (count), seq (change counter), reply_keyboard (if the bot showed one),
        deleted (only with include_deleted)."""
        with self._lock:
            chat = self._bot(token).chats.get(chat_id)
            if chat is None:
                return []
            out = []
            for rec in chat.records.values():
                if rec.deleted and not include_deleted:
                    continue
                view = copy.deepcopy(rec.message)
                view.update(from_bot=rec.from_bot, edited=rec.edited, seq=rec.seq)
                if rec.reply_keyboard is not None:
                    view["reply_keyboard"] = copy.deepcopy(rec.reply_keyboard)
                if include_deleted:
                    view["deleted"] = rec.deleted
                out.append(view)
            return out

    def bot_messages(self, token: str, chat_id: int) -> list[dict]:
        """The bot's messages in a chat (current state)."""
        return [m for m in self.chat_messages(token, chat_id) if m["from_bot"]]

    def last_bot_message(self, token: str, chat_id: int) -> dict | None:
        """The bot's newest message in a chat, or None."""
        messages = self.bot_messages(token, chat_id)
        return messages[-1] if messages else None

    def chat_seq(self, token: str, chat_id: int) -> int:
        """The chat's change counter (grows with every new message or edit)."""
        with self._lock:
            chat = self._bot(token).chats.get(chat_id)
            return chat.seq if chat else 0

    def update_seq(self, token: str, update: Mapping[str, Any]) -> int:
        """The chat change counter right after a user-side update (its message's own seq)."""
        with self._lock:
            payload = update.get("message") or update.get("edited_message")
            if payload is None:
                query = update.get("callback_query") or {}
                payload = query.get("message") or {}
            chat = self._bot(token).chats.get(payload.get("chat", {}).get("id"))
            if chat is None:
                return 0
            if "callback_query" in update:
                return chat.seq
            rec = chat.records.get(payload["message_id"])
            return rec.seq if rec else chat.seq

    def chat_actions(self, token: str, chat_id: int | None = None) -> list[str]:
        """sendChatAction actions the bot sent (optionally to one chat)."""
        with self._lock:
            return [a for c, a in self._bot(token).chat_actions if chat_id in (None, c)]

    def commands(
        self, token: str, scope: Mapping[str, Any] | None = None, language_code: str = ""
    ) -> list[dict]:
        """The command list stored for exactly this scope + language (like getMyCommands)."""
        with self._lock:
            return copy.deepcopy(
                self._bot(token).commands.get((_scope_key(scope), language_code or ""), [])
            )

    def menu_for(
        self, token: str, chat_id: int, language_code: str | None = None, user_id: int | None = None
    ) -> list[dict]:
        """The command menu a client in this chat would show, resolving scopes as Telegram does."""
        lang = (language_code or "")[:2].lower()
        with self._lock:
            bot = self._bot(token)
            chat = bot.chats.get(chat_id)
            private = chat is None or chat.info["type"] == "private"
            scopes: list[dict] = []
            if not private and user_id is not None:
                scopes.append({"type": "chat_member", "chat_id": chat_id, "user_id": user_id})
            scopes.append({"type": "chat", "chat_id": chat_id})
            scopes.append({"type": "all_private_chats" if private else "all_group_chats"})
            scopes.append({"type": "default"})
            for scope in scopes:
                for code in ([lang] if lang else []) + [""]:
                    found = bot.commands.get((_scope_key(scope), code))
                    if found:
                        return copy.deepcopy(found)
            return []

    def menu_button(self, token: str, chat_id: int | None = None) -> dict | None:
        """The menu button set for a chat (or the default one with chat_id None)."""
        with self._lock:
            return copy.deepcopy(self._bot(token).menu_buttons.get(chat_id))

    def pending_updates(self, token: str) -> list[dict]:
        """Updates queued and not yet confirmed through getUpdates' offset."""
        with self._lock:
            return copy.deepcopy(self._bot(token).pending)

    def file_bytes(self, token: str, file_path: str) -> bytes | None:
        """Bytes served at the file URL, or None."""
        with self._lock:
            bot = self._bots.get(token)
            if bot is None:
                return None
            file_id = bot.paths.get(file_path)
            return bot.files[file_id].data if file_id else None

    def file_by_id(self, token: str, file_id: str) -> bytes | None:
        """Bytes behind a file_id of this bot, or None."""
        with self._lock:
            bot = self._bots.get(token)
            stored = bot.files.get(file_id) if bot else None
            return stored.data if stored else None

    buttons = staticmethod(buttons)
    reply_buttons = staticmethod(reply_buttons)

    # ----------------------------------------------------------------- transport

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport that answers PTB's requests from this object, with no socket."""
        return _LocalTransport(self)

    def httpx_kwargs(self) -> dict[str, Any]:
        """`httpx_kwargs` for PTB's HTTPXRequest: this transport, and no proxies from the env."""
        return {"transport": self.transport(), "trust_env": False}


def _resolve_future(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def _update_allowed(update: dict, wanted: set[str] | None) -> bool:
    kind = next(k for k in update if k != "update_id")
    if wanted is None:
        return kind not in _NOT_DEFAULT_UPDATES
    return kind in wanted


_BOT_PATH_RE = re.compile(r"(?:.*/)?bot([^/]+)/([A-Za-z0-9_]+)/?")
_FILE_PATH_RE = re.compile(r"(?:.*/)?file/bot([^/]+)/(.+)")


class _LocalTransport(httpx.AsyncBaseTransport):
    """Routes `.../bot<token>/<method>` and `.../file/bot<token>/<path>` to a LocalBotAPI."""

    def __init__(self, api: LocalBotAPI) -> None:
        self.api = api

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        path = unquote(request.url.path)
        m = _FILE_PATH_RE.fullmatch(path)
        if m:
            data = self.api.file_bytes(m.group(1), m.group(2))
            if data is None:
                return httpx.Response(404, json=_NOT_FOUND, request=request)
            return httpx.Response(200, content=data, request=request)
        m = _BOT_PATH_RE.fullmatch(path)
        if not m:
            return httpx.Response(404, json=_NOT_FOUND, request=request)
        query = {k: [v.encode()] for k, v in request.url.params.multi_items()}
        params, files = _parse_http_params(request.headers.get("content-type", ""), body, query)
        timeouts = request.extensions.get("timeout") or {}
        read_timeout = timeouts.get("read")
        try:
            # Imitate httpx's own read timeout, which a mock transport would not apply.
            status, payload = await asyncio.wait_for(
                self.api.handle(m.group(1), m.group(2), params, files), read_timeout
            )
        except TimeoutError:
            raise httpx.ReadTimeout("local Bot API: read timed out", request=request) from None
        except DroppedConnection:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None
        content = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        return httpx.Response(
            status, content=content, headers={"content-type": "application/json"}, request=request
        )


# --------------------------------------------------------------------------- HTTP server


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class _BotApiHandler(tornado.web.RequestHandler):
    """`/bot<token>/<method>`: the Bot API itself."""

    def initialize(self, server: LocalBotAPIServer) -> None:
        self.server = server
        self._task: asyncio.Future | None = None
        self._method = ""

    async def get(self, token: str, method: str) -> None:
        self._method = method.lower()
        try:
            params, files = _parse_http_params(
                self.request.headers.get("Content-Type", ""),
                self.request.body,
                self.request.query_arguments,
            )
        except Exception as exc:  # answer like an API, not with tornado's HTML error page
            self.set_status(400)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(_bad(f"can't parse request body: {exc}").body()))
            return
        task = asyncio.ensure_future(self.server.api.handle(token, method, params, files))
        self._task = task
        self.server._inflight.add(task)
        try:
            status, body = await task
        except DroppedConnection:
            self.detach().close()
            return
        except asyncio.CancelledError:
            # Server stopping or client gone: nobody is listening any more.
            with contextlib.suppress(Exception):
                self.detach().close()
            return
        finally:
            self.server._inflight.discard(task)
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body, ensure_ascii=False))

    post = get

    def on_connection_close(self) -> None:
        # A client that gave up on a long poll must not keep a waiter (it would steal updates).
        if self._task is not None and self._method == "getupdates" and not self._task.done():
            self._task.cancel()

    def check_xsrf_cookie(self) -> None:  # a Bot API has no cookies
        pass


class _FileHandler(tornado.web.RequestHandler):
    """`/file/bot<token>/<path>`: downloads."""

    def initialize(self, server: LocalBotAPIServer) -> None:
        self.server = server

    def get(self, token: str, file_path: str) -> None:
        data = self.server.api.file_bytes(token, file_path)
        if data is None:
            self.set_status(404)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(_NOT_FOUND))
            return
        self.set_header("Content-Type", mimetypes.guess_type(file_path)[0] or "application/octet-stream")
        self.finish(data)


_INT_KEYS = {"user_id", "chat_id", "message_id", "after_message_id", "count", "status",
             "retry_after", "delay_ms", "contact_user_id", "reply_to_message_id", "duration"}  # fmt: skip
_BOOL_KEYS = {"forward", "own", "drop", "include_deleted", "clear"}
_USER_KEYS = ("first_name", "username", "language_code", "chat_id", "chat_type", "chat_title",
              "forward", "reply_to_message_id")  # fmt: skip


def _pick(body: Mapping[str, Any], keys: tuple[str, ...] | list[str]) -> dict[str, Any]:
    return {k: body[k] for k in keys if k in body}


class _ControlHandler(tornado.web.RequestHandler):
    """`/_local/<action>`: JSON control API mirroring the Python user side and views."""

    def initialize(self, server: LocalBotAPIServer) -> None:
        self.server = server

    def _body(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for k, values in self.request.query_arguments.items():
            v = values[-1].decode("utf-8")
            if k in _INT_KEYS:
                body[k] = int(v)
            elif k in _BOOL_KEYS:
                body[k] = v.lower() in ("1", "true", "yes")
            elif k == "scope":
                body[k] = json.loads(v)
            else:
                body[k] = v
        if self.request.body:
            decoded = json.loads(self.request.body)
            if not isinstance(decoded, dict):
                raise ValueError("the body must be a JSON object")
            body.update(decoded)
        return body

    async def get(self, action: str) -> None:
        try:
            result = self.server.control(action, self._body(), method=self.request.method or "GET")
        except KeyError as exc:
            self._answer(400, {"ok": False, "description": f"missing field {exc}"})
        except LookupError as exc:
            self._answer(404, {"ok": False, "description": str(exc)})
        except (ValueError, TypeError) as exc:
            self._answer(400, {"ok": False, "description": str(exc)})
        else:
            self._answer(200, {"ok": True, **result})

    post = get
    delete = get

    def _answer(self, status: int, body: dict) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(_jsonable(body), ensure_ascii=False))

    def check_xsrf_cookie(self) -> None:
        pass


class LocalBotAPIServer:
    """Serves a LocalBotAPI over HTTP (tornado): Bot API, file downloads and `/_local/` control."""

    def __init__(self, api: LocalBotAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api = api
        self.host = host
        self.port = port
        self._http: tornado.httpserver.HTTPServer | None = None
        self._inflight: set[asyncio.Future] = set()

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """For PTB's `base_url` (PTB appends the token)."""
        return f"{self.root_url}/bot"

    @property
    def file_base_url(self) -> str:
        """For PTB's `base_file_url`."""
        return f"{self.root_url}/file/bot"

    async def start(self) -> None:
        """Bind and serve; `port` then holds the real port (useful with port 0)."""
        app = tornado.web.Application(
            [
                (r"/file/bot([^/]+)/(.+)", _FileHandler, {"server": self}),
                (r"/bot([^/]+)/([A-Za-z0-9_]+)/?", _BotApiHandler, {"server": self}),
                (r"/_local/([a-z_]+)", _ControlHandler, {"server": self}),
            ],
            log_function=lambda handler: None,  # no access log noise in test output
        )
        sockets = tornado.netutil.bind_sockets(self.port, self.host)
        self.port = sockets[0].getsockname()[1]
        self._http = tornado.httpserver.HTTPServer(app, max_body_size=MAX_UPLOAD + 1024 * 1024)
        self._http.add_sockets(sockets)

    async def stop(self) -> None:
        """Stop listening, end waiting long polls and close connections."""
        if self._http is None:
            return
        self._http.stop()
        for task in list(self._inflight):
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._http.close_all_connections(), 5)
        self._http = None

    def control(self, action: str, body: dict[str, Any], method: str = "POST") -> dict[str, Any]:
        """Run one `/_local/` action; returns the JSON fields to add to {"ok": true}."""
        api = self.api
        token = body.get("token")

        def user_action(update: dict) -> dict[str, Any]:
            return {"result": update, "seq": api.update_seq(body["token"], update)}

        user_kw = _pick(body, _USER_KEYS)
        if action == "health":
            return {"result": True}
        if action == "send_text":
            return user_action(api.send_text(body["token"], body["user_id"], body["text"], **user_kw))
        if action in ("send_photo", "send_document"):
            data = base64.b64decode(body.get("data_b64") or body.get("data") or "")
            if action == "send_photo":
                upd = api.send_photo(body["token"], body["user_id"], data, caption=body.get("caption"), **user_kw)
            else:
                upd = api.send_document(
                    body["token"], body["user_id"], data, body.get("filename", "file.bin"),
                    mime_type=body.get("mime_type"), caption=body.get("caption"), **user_kw,
                )  # fmt: skip
            return user_action(upd)
        if action == "send_location":
            lat = body.get("latitude", body.get("lat"))
            lon = body.get("longitude", body.get("lon"))
            return user_action(api.send_location(body["token"], body["user_id"], lat, lon, **user_kw))
        if action == "send_contact":
            extra = _pick(body, ("own", "contact_first_name", "contact_user_id"))
            return user_action(
                api.send_contact(body["token"], body["user_id"], body["phone_number"], **extra, **user_kw)
            )
        if action == "send_sticker":
            return user_action(api.send_sticker(body["token"], body["user_id"], **user_kw))
        if action == "send_voice":
            return user_action(api.send_voice(body["token"], body["user_id"], **user_kw))
        if action == "edit_text":
            upd = api.edit_text(
                body["token"], body["user_id"], body["message_id"], body["text"],
                chat_id=body.get("chat_id"),
            )  # fmt: skip
            return user_action(upd)
        if action == "press_button":
            data = body.get("callback_data", body.get("data"))
            kw = _pick(body, ("chat_id", "first_name", "username", "language_code"))
            return user_action(api.press_button(body["token"], body["user_id"], body["message_id"], data, **kw))
        if action in ("block", "unblock"):
            fn = api.block if action == "block" else api.unblock
            return {"result": fn(body["user_id"], token=token)}
        if action in ("chat_messages", "bot_messages", "last_bot_message"):
            chat_id = body.get("chat_id", body.get("user_id"))
            messages = api.chat_messages(
                body["token"], chat_id, include_deleted=bool(body.get("include_deleted"))
            )
            if action != "chat_messages":
                messages = [m for m in messages if m["from_bot"]]
            if action == "last_bot_message":
                return {"result": messages[-1] if messages else None}
            return {"result": messages, "seq": api.chat_seq(body["token"], chat_id)}
        if action == "calls":
            with api._lock:
                calls = [
                    [m, p]
                    for (m, p), t in zip(api.calls, api._call_tokens)
                    if token in (None, t) and body.get("method") in (None, m)
                ]
            return {"result": calls, "counts": api.call_counts(token)}
        if action == "faults":
            if method == "DELETE" or body.get("clear"):
                api.clear_faults()
            elif "method" in body:
                api.inject_fault(
                    body["method"],
                    **_pick(body, ("status", "count", "retry_after", "description", "delay_ms", "drop")),
                )
            return {"result": api.pending_faults()}
        if action == "commands":
            return {"result": api.commands(body["token"], body.get("scope"), body.get("language_code", ""))}
        if action == "menu_for":
            return {
                "result": api.menu_for(
                    body["token"], body.get("chat_id", body.get("user_id")),
                    body.get("language_code"), body.get("user_id"),
                )
            }  # fmt: skip
        if action == "callback_answers":
            return {"result": [a for a in api.callback_answers if token in (None, a["token"])]}
        if action == "presses":
            return {"result": [p for p in api.presses if token in (None, p["token"])]}
        if action == "pending_updates":
            return {"result": api.pending_updates(body["token"])}
        raise LookupError(f"unknown control action {action!r}")


def run_in_thread(
    api: LocalBotAPI | None = None, host: str = "127.0.0.1", port: int = 0
) -> tuple[LocalBotAPIServer, Callable[[], None]]:
    """Serve `api` from a background thread with its own event loop.

    Returns (server, stop); `server.port` is already bound. Call stop() once to shut down.
    """
    api = api or LocalBotAPI()
    ready = threading.Event()
    box: dict[str, Any] = {}

    def runner() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        server = LocalBotAPIServer(api, host, port)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:  # report bind errors to the caller
            box["error"] = exc
            ready.set()
            loop.close()
            return
        box["server"], box["loop"] = server, loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(server.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=runner, name="localapi-server", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("local Bot API server did not start within 10 s")
    if "error" in box:
        raise box["error"]
    server: LocalBotAPIServer = box["server"]
    loop: asyncio.AbstractEventLoop = box["loop"]
    stopped = threading.Event()

    def stop() -> None:
        if stopped.is_set():
            return
        stopped.set()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return server, stop


@contextlib.contextmanager
def serve_in_thread(
    api: LocalBotAPI | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[LocalBotAPIServer]:
    """Context manager around `run_in_thread`; yields the running server (`server.api`)."""
    server, stop = run_in_thread(api, host, port)
    try:
        yield server
    finally:
        stop()


# --------------------------------------------------------------------------- out-of-process user


class LocalAPIUser:
    """One simulated Telegram user driving a LocalBotAPIServer through `/_local/` (synchronous).

    Keeps a mark of the chat's change counter at its last action, so `wait_for_bot_message`
    by default waits for something new (a new bot message, or an edit) since then.
    """

    def __init__(
        self,
        server_root: str,
        token: str,
        user_id: int,
        language_code: str | None = "zh-hans",
        *,
        first_name: str | None = None,
        username: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        root = server_root.rstrip("/")
        if root.endswith("/bot"):  # tolerate being given base_url
            root = root[: -len("/bot")]
        self.server_root = root
        self.token = token
        self.user_id = user_id
        self.language_code = language_code
        self.first_name = first_name
        self.username = username
        self._mark = 0
        self._client = httpx.Client(base_url=root, timeout=timeout, trust_env=False)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LocalAPIUser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, action: str, **body: Any) -> dict[str, Any]:
        body = {"token": self.token, "user_id": self.user_id, **body}
        response = self._client.post(f"/_local/{action}", json=body)
        data = response.json()
        if response.status_code != 200 or not data.get("ok"):
            raise RuntimeError(f"/_local/{action} failed: {data.get('description', data)}")
        return data

    def _act(self, action: str, **body: Any) -> dict:
        user = {"language_code": self.language_code}
        if self.first_name:
            user["first_name"] = self.first_name
        if self.username:
            user["username"] = self.username
        data = self._call(action, **user, **body)
        # Whatever the bot does in reply has a higher seq than this action.
        self._mark = max(self._mark, int(data.get("seq", 0)))
        return data["result"]

    def send_text(self, text: str, **kw: Any) -> dict:
        """Send text; returns the Update dict."""
        return self._act("send_text", text=text, **kw)

    def send_command(self, command: str, args: str = "", **kw: Any) -> dict:
        """Send "/command args"."""
        text = command if command.startswith("/") else "/" + command
        return self.send_text(f"{text} {args}".strip(), **kw)

    def send_photo(self, data: bytes, caption: str | None = None, **kw: Any) -> dict:
        return self._act(
            "send_photo", data_b64=base64.b64encode(data).decode(), caption=caption, **kw
        )

    def send_document(
        self, data: bytes, filename: str, mime_type: str | None = None, **kw: Any
    ) -> dict:
        return self._act(
            "send_document", data_b64=base64.b64encode(data).decode(), filename=filename,
            mime_type=mime_type, **kw,
        )  # fmt: skip

    def send_location(self, latitude: float, longitude: float, **kw: Any) -> dict:
        return self._act("send_location", latitude=latitude, longitude=longitude, **kw)

    def send_contact(self, phone_number: str, own: bool = True, **kw: Any) -> dict:
        return self._act("send_contact", phone_number=phone_number, own=own, **kw)

    def send_sticker(self, **kw: Any) -> dict:
        return self._act("send_sticker", **kw)

    def send_voice(self, **kw: Any) -> dict:
        return self._act("send_voice", **kw)

    def edit_text(self, message_id: int, text: str) -> dict:
        return self._act("edit_text", message_id=message_id, text=text)

    def press_button(self, message_id: int, data: str) -> dict:
        """Press the inline button carrying `data` on bot message `message_id`."""
        return self._act("press_button", message_id=message_id, callback_data=data)

    def click(self, button_text: str, message_id: int | None = None) -> dict:
        """Press the button labelled `button_text` (newest bot message showing it by default)."""
        candidates = self.bot_messages()
        if message_id is not None:
            candidates = [m for m in candidates if m["message_id"] == message_id]
        for message in reversed(candidates):
            for text, data in buttons(message):
                if text == button_text:
                    return self.press_button(message["message_id"], data)
        raise LookupError(f"no button {button_text!r}; chat:\n{_format_history(candidates)}")

    def chat_messages(self, chat_id: int | None = None) -> list[dict]:
        """The chat's messages (default: the private chat with the bot), current state."""
        body = {} if chat_id is None else {"chat_id": chat_id}
        return self._call("chat_messages", **body)["result"]

    def bot_messages(self, chat_id: int | None = None) -> list[dict]:
        return [m for m in self.chat_messages(chat_id) if m["from_bot"]]

    def last_bot_message(self) -> dict | None:
        messages = self.bot_messages()
        return messages[-1] if messages else None

    def wait_for_bot_message(
        self,
        predicate: Callable[[dict], bool] | str | None = None,
        timeout: float = 10.0,
        after_message_id: int | None = None,
        *,
        poll_interval: float = 0.05,
    ) -> dict:
        """Poll until a bot message satisfies `predicate` and return it.

        Only messages newer than `after_message_id`, or by default messages new or edited
        since this user's last action (or since the last message this method returned), count.
        A str predicate means "this substring is in the text or caption".
        Raises TimeoutError listing the recent chat history.
        """
        if isinstance(predicate, str):
            needle = predicate
            predicate = lambda m: needle in (m.get("text") or m.get("caption") or "")  # noqa: E731
        deadline = time.monotonic() + timeout
        messages: list[dict] = []
        while True:
            messages = self.chat_messages()
            for m in messages:
                if not m["from_bot"]:
                    continue
                if after_message_id is not None:
                    if m["message_id"] <= after_message_id:
                        continue
                elif m["seq"] <= self._mark:
                    continue
                try:
                    matched = predicate is None or bool(predicate(m))
                except (KeyError, TypeError, AttributeError):
                    matched = False  # e.g. m["text"] on a photo message
                if matched:
                    self._mark = max(self._mark, m["seq"])
                    return m
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"no matching bot message within {timeout}s; recent chat:\n"
                    + _format_history(messages[-12:])
                )
            time.sleep(poll_interval)


def _format_history(messages: list[dict]) -> str:
    lines = []
    for m in messages:
        who = "bot " if m.get("from_bot") else "user"
        body = m.get("text") or m.get("caption") or next(
            (f"<{k}>" for k in ("photo", "document", "location", "contact", "sticker", "voice") if k in m),
            "<?>",
        )
        extra = f" buttons={buttons(m)}" if buttons(m) else ""
        edited = f" (edited x{m['edited']})" if m.get("edited") else ""
        lines.append(f"  #{m['message_id']} {who}: {body!r}{edited}{extra}")
    return "\n".join(lines) or "  (empty)"


# --------------------------------------------------------------------------- CLI


async def _serve_forever(host: str, port: int, api: LocalBotAPI) -> None:
    server = LocalBotAPIServer(api, host, port)
    await server.start()
    print(
        f"local Bot API: base_url={server.base_url} file_base_url={server.file_base_url} "
        f"control={server.root_url}/_local/",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m sandbox.localapi --host 127.0.0.1 --port 18081`."""
    parser = argparse.ArgumentParser(description="In-memory Telegram Bot API for local testing")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18081)
    parser.add_argument("--bot-username", default="gridbot_local_bot")
    parser.add_argument("--bot-first-name", default="网格助手")
    args = parser.parse_args(argv)
    api = LocalBotAPI(args.bot_username, args.bot_first_name)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args.host, args.port, api))


if __name__ == "__main__":
    main()
