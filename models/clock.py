"""The one clock every part of gridbot reads, so tests (and the sandbox) can move time.

All code calls `clock.now()` instead of `datetime.now()`; it always returns an aware UTC datetime.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_offset = timedelta(0)
_frozen: datetime | None = None


def now() -> datetime:
    """Current time, timezone-aware, in UTC."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC) + _offset


def freeze(at: datetime) -> None:
    """Stop the clock at `at` (tests)."""
    global _frozen
    if at.tzinfo is None:
        raise ValueError("clock.freeze needs an aware datetime")
    _frozen = at.astimezone(UTC)


def advance(delta: timedelta) -> None:
    """Move the clock forward (a frozen clock moves too)."""
    global _offset, _frozen
    if _frozen is not None:
        _frozen += delta
    else:
        _offset += delta


def reset() -> None:
    global _offset, _frozen
    _offset, _frozen = timedelta(0), None


@contextmanager
def frozen_at(at: datetime) -> Iterator[None]:
    """Run a block with the clock stopped at `at`, then give back exactly the clock there was."""
    global _offset, _frozen
    saved = (_frozen, _offset)
    freeze(at)
    try:
        yield
    finally:
        _frozen, _offset = saved
