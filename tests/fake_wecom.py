"""A local fake of WeCom group robots (企业微信群机器人) for the tests: an httpx.MockTransport.

It checks what the real robot checks (msgtype, markdown content <= 4096 bytes, image base64 whose
md5 matches and whose size is <= 2 MB) and enforces 20 messages a minute per key on the test
clock (models.clock), answering errcode 45009 beyond. Keys in `bad_keys` get errcode 93000. `fail(key,
errcode, count)` makes the next calls fail. It answers like WeCom: HTTP 200 with {errcode, errmsg}.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx

from models import clock

BASE = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key="


def url(key: str) -> str:
    return BASE + key


@dataclass
class FakeWeCom:
    bad_keys: set[str] = field(default_factory=set)
    received: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    answers: list[tuple[str, int]] = field(default_factory=list)  # (key, errcode) of every call
    _faults: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    _window: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))

    def fail(self, key: str, errcode: int, count: int = 1) -> None:
        self._faults[key] += [errcode] * count

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport())

    def _answer(self, key: str, errcode: int, errmsg: str = "ok") -> httpx.Response:
        self.answers.append((key, errcode))
        return httpx.Response(200, json={"errcode": errcode, "errmsg": errmsg})

    def handle(self, request: httpx.Request) -> httpx.Response:
        parts = urlsplit(str(request.url))
        if parts.path != "/cgi-bin/webhook/send" or request.method != "POST":
            return httpx.Response(404)
        key = parse_qs(parts.query).get("key", [""])[0]
        if key in self.bad_keys:
            return self._answer(key, 93000, "invalid webhook url, hint: [x]")
        if self._faults[key]:
            return self._answer(key, self._faults[key].pop(0), "injected")
        now = clock.now()
        window = self._window[key]
        while window and now - window[0] >= timedelta(minutes=1):
            window.popleft()
        if len(window) >= 20:
            return self._answer(key, 45009, "api freq out of limit")
        try:
            body = json.loads(request.content)
        except ValueError:
            return self._answer(key, 40001, "invalid json")
        kind = body.get("msgtype")
        if kind == "markdown":
            content = body.get("markdown", {}).get("content", "")
            if not content or len(content.encode()) > 4096:
                return self._answer(key, 40058, "markdown.content exceed max length 4096")
        elif kind == "image":
            raw = base64.b64decode(body["image"]["base64"])
            if len(raw) > 2 * 1024 * 1024:
                return self._answer(key, 40009, "invalid image size")
            if hashlib.md5(raw).hexdigest() != body["image"]["md5"]:  # noqa: S324
                return self._answer(key, 301019, "media md5 not match")
        else:
            return self._answer(key, 40008, "invalid message type")
        window.append(now)
        self.received[key].append(body)
        return self._answer(key, 0)
