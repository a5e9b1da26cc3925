"""WeCom group robots (企业微信群机器人): message bodies, limits and the webhook call (httpx).

A robot is a webhook URL with its key (`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`),
configured per grid or for the street in `WECOM_ROBOTS`. Its outbox recipient is
`wecom:<robot id>`, the id a short hash of the URL, so keys never reach the database or /outbox.

Limits (WeCom's documentation): a markdown `content` of at most 4096 bytes (UTF-8), an image of at
most 2 MB given as base64 plus the md5 of the raw bytes, 20 messages a minute per robot. Errors are
decided on `errcode`, never on `errmsg`: 45009 = rate limit (wait and retry), 93000 = invalid
webhook key (stop using the robot; the admins are told).
"""

from __future__ import annotations

import base64
import hashlib

import httpx

MAX_MARKDOWN_BYTES = 4096
MAX_IMAGE_BYTES = 2 * 1024 * 1024
PER_MINUTE = 20
ERR_RATE_LIMIT = 45009
ERR_BAD_KEY = 93000


class WeComError(Exception):
    def __init__(self, errcode: int, errmsg: str = "") -> None:
        super().__init__(f"errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


def robot_id(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def recipient(url: str) -> str:
    return f"wecom:{robot_id(url)}"


def robots(config: dict[str, list[str]]) -> dict[str, str]:
    """Robot id -> URL over the whole configuration."""
    return {robot_id(u): u for urls in config.values() for u in urls}


def split_markdown(text: str, limit: int = MAX_MARKDOWN_BYTES) -> list[str]:
    """Split at line ends into chunks of at most `limit` UTF-8 bytes (a very long line is cut)."""
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line.encode()) > limit:  # cut an over-long line on a character boundary
            cut = line.encode()[:limit].decode("utf-8", errors="ignore")
            if current:
                chunks.append(current)
                current = ""
            chunks.append(cut)
            line = line[len(cut):]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate.encode()) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current.strip():
        chunks.append(current)
    return chunks


def markdown_message(content: str) -> dict:
    if len(content.encode()) > MAX_MARKDOWN_BYTES:
        raise ValueError("markdown content over 4096 bytes; split it first")
    return {"msgtype": "markdown", "markdown": {"content": content}}


def image_message(png: bytes) -> dict:
    if len(png) > MAX_IMAGE_BYTES:
        raise ValueError("image over 2 MB")
    return {"msgtype": "image", "image": {"base64": base64.b64encode(png).decode(), "md5": hashlib.md5(png).hexdigest()}}  # noqa: S324


async def post(client: httpx.AsyncClient, url: str, message: dict) -> None:
    """Send one message; WeComError on a non-zero errcode, httpx errors on transport/HTTP failures."""
    response = await client.post(url, json=message, timeout=15)
    response.raise_for_status()
    body = response.json()
    errcode = int(body.get("errcode", -1))
    if errcode != 0:
        raise WeComError(errcode, str(body.get("errmsg", ""))[:200])
