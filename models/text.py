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
