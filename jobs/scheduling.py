"""Cron-ish schedules with weekday NAMES, and quiet hours.

A schedule is written `DAYS HH:MM`, DAYS being `daily` (or `*`), or weekday names and ranges
separated by commas: `mon,thu 09:07`, `mon-fri 18:00`, `daily 08:37`. Names, because cron
(0 = Sunday, or 7) and ISO (1 = Monday) number days differently; `Schedule.days` are ISO.

Quiet hours are `HH:MM-HH:MM` (may wrap midnight, `21:00-08:00`), or `off`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index + 1 = ISO weekday
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")


def parse_time(text: str) -> time:
    m = _TIME_RE.match(text.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f"{text.strip()!r} is not a time of day HH:MM")
    return time(int(m.group(1)), int(m.group(2)))


_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _day(name: str) -> int:
    key = name.strip().lower()
    if key in DAY_NAMES:
        return DAY_NAMES.index(key) + 1
    if key in _FULL_NAMES:
        return _FULL_NAMES.index(key) + 1
    raise ValueError(f"unknown weekday {name.strip()!r}; use mon, tue, wed, thu, fri, sat, sun")


@dataclass(frozen=True)
class Schedule:
    days: frozenset[int]  # ISO weekdays, 1 = Monday
    at: time  # local time of day (naive; the zone is TIMEZONE)

    def __str__(self) -> str:
        days = "daily" if len(self.days) == 7 else ",".join(DAY_NAMES[d - 1] for d in sorted(self.days))
        return f"{days} {self.at:%H:%M}"

    def previous(self, at: datetime, tz: ZoneInfo) -> datetime:
        """The latest scheduled moment at or before `at` (aware UTC)."""
        local = at.astimezone(tz)
        for back in range(8):
            day = local.date() - timedelta(days=back)
            if day.isoweekday() in self.days:
                moment = datetime.combine(day, self.at, tzinfo=tz)
                if moment <= local:
                    return moment.astimezone(UTC)
        raise AssertionError("a schedule fires at least weekly")

    def next(self, at: datetime, tz: ZoneInfo) -> datetime:
        """The first scheduled moment strictly after `at` (aware UTC)."""
        local = at.astimezone(tz)
        for ahead in range(9):
            day = local.date() + timedelta(days=ahead)
            if day.isoweekday() in self.days:
                moment = datetime.combine(day, self.at, tzinfo=tz)
                if moment > local:
                    return moment.astimezone(UTC)
        raise AssertionError("a schedule fires at least weekly")


def parse_schedule(text: str) -> Schedule:
    """`mon,thu 09:07` -> Schedule; ValueError saying what is wrong."""
    parts = text.strip().split()
    if len(parts) != 2:
        raise ValueError(f"{text.strip()!r} is not 'DAYS HH:MM' (e.g. 'mon,thu 09:07' or 'daily 08:37')")
    days_text, at_text = parts
    days: set[int] = set()
    if days_text.lower() in ("daily", "*"):
        days = set(range(1, 8))
    else:
        for item in days_text.split(","):
            if not item:
                raise ValueError(f"empty weekday in {days_text!r}")
            if "-" in item:
                first, last = (_day(x) for x in item.split("-", 1))
                d = first
                days.add(d)
                while d != last:
                    d = d % 7 + 1
                    days.add(d)
            else:
                if item.strip().isdigit():
                    raise ValueError(f"write weekdays as names (mon, tue, ...), not numbers; got {item!r}")
                days.add(_day(item))
    return Schedule(frozenset(days), parse_time(at_text))


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def release_at(self, at: datetime, tz: ZoneInfo) -> datetime | None:
        """None when `at` is outside the quiet hours, else the moment they end (aware UTC)."""
        local = at.astimezone(tz)
        t = local.time().replace(tzinfo=None)
        if self.start <= self.end:
            inside = self.start <= t < self.end
            end_day = local.date()
        else:  # wraps midnight
            inside = t >= self.start or t < self.end
            end_day = local.date() + timedelta(days=1) if t >= self.start else local.date()
        if not inside:
            return None
        return datetime.combine(end_day, self.end, tzinfo=tz).astimezone(UTC)


def parse_quiet_hours(text: str) -> QuietHours | None:
    text = text.strip()
    if text.lower() in ("", "off", "none"):
        return None
    if "-" not in text:
        raise ValueError(f"{text!r} is not 'HH:MM-HH:MM' (e.g. 21:00-08:00) or 'off'")
    start, end = (parse_time(x) for x in text.split("-", 1))
    if start == end:
        raise ValueError("start and end are the same; write 'off' for no quiet hours")
    return QuietHours(start, end)
