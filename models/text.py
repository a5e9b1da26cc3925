"""Rules for free text typed by workers."""

from __future__ import annotations

import re
import unicodedata

# 18-digit resident ID numbers (last character may be X), not part of a longer number.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8})(\d{3}[0-9Xx])(?![0-9A-Za-z])")


def mask_id_numbers(text: str) -> str:
    """Mask ID-card-like numbers before they are stored: 110101********123X."""
    return _ID_NUMBER.sub(lambda m: m.group(1) + "*" * 8 + m.group(3)[-4:], text)


def clean_text(text: str) -> str:
    """Trim and drop control characters; Chinese punctuation stays as typed."""
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return text.strip()


def clean_args(args: list[str] | None) -> list[str]:
    """Command arguments without control characters (PostgreSQL refuses NUL in text parameters), empty ones dropped."""
    return [a for a in (clean_text(arg) for arg in args or []) if a]


def one_line(text: str) -> str:
    return " ".join(clean_text(text).split())


def ascii_digits(text: str) -> str:
    """Full-width digits and letters as ASCII (３ -> 3), for parsing numbers."""
    return unicodedata.normalize("NFKC", text)


_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "俩": 2, "三": 3, "仨": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_COUNT_RE = re.compile(r"^(?:共|一共|见了|见到)?\s*([0-9]+|[零〇一二两俩三仨四五六七八九十百]+)\s*"
                       r"(?:个|人|位|名|口|户|次|家|间|条|people|persons?)?\s*(?:人)?$",
                       re.IGNORECASE)


def chinese_number(text: str) -> int | None:
    """一 -> 1, 两 -> 2, 十二 -> 12, 二十 -> 20, 一百零五 -> 105; None when it is not one (up to 999)."""
    if not text:
        return None
    if len(text) == 1 and text in _CN_DIGITS:  # 两, 俩, 仨 alone
        return _CN_DIGITS[text]
    if all(c in "零〇一二三四五六七八九" for c in text):  # digit by digit: 二〇二一 (两/俩/仨 never are: 一两个 is "one or two")
        value = 0
        for c in text:
            value = value * 10 + _CN_DIGITS[c]
        return value if len(text) == 1 or text[0] not in "零〇" else None
    m = re.fullmatch(r"(?:([一二两三四五六七八九])百)?(零)?(?:([一二两三四五六七八九])?(十))?([一二两三四五六七八九])?", text)
    if not m or not any(m.groups()):
        return None
    hundreds, _zero, tens_digit, ten, ones = m.groups()
    value = _CN_DIGITS[hundreds] * 100 if hundreds else 0
    if ten:
        value += (_CN_DIGITS[tens_digit] if tens_digit else 1) * 10
    value += _CN_DIGITS[ones] if ones else 0
    return value


def parse_count(text: str) -> int | None:
    """A number as people write it where a count is due: 2, ２, 2人, 两个, 三人, 十二位, 0 → the int, else None."""
    m = _COUNT_RE.match(ascii_digits(one_line(text)))
    if not m:
        return None
    word = m.group(1)
    return int(word) if word.isdigit() else chinese_number(word)
