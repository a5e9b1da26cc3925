"""Calendar periods (DESIGN.md §2): bounds computed in the configured zone, queried as UTC ranges.

Written as `2021-W23`, `2021-06`, `2021Q2`, `2021H1`, `2021`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Period:
    kind: str  # week | month | quarter | half | year
    label: str
    start: datetime  # aware UTC, inclusive
    end: datetime  # aware UTC, exclusive

    def elapsed_fraction(self, at: datetime) -> float:
        """Share of the period gone by at `at` (0..1)."""
        if at <= self.start:
            return 0.0
        if at >= self.end:
            return 1.0
        return (at - self.start) / (self.end - self.start)


def _bounds(first: date, after: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(first, time.min, tzinfo=tz).astimezone(UTC)
    end = datetime.combine(after, time.min, tzinfo=tz).astimezone(UTC)
    return start, end


def _month_after(year: int, month: int, months: int) -> date:
    m = month - 1 + months
    return date(year + m // 12, m % 12 + 1, 1)


def week(year: int, iso_week: int, tz: ZoneInfo) -> Period:
    first = date.fromisocalendar(year, iso_week, 1)
    return Period("week", f"{year}-W{iso_week:02d}", *_bounds(first, first + timedelta(days=7), tz))


def month(year: int, m: int, tz: ZoneInfo) -> Period:
    return Period("month", f"{year}-{m:02d}", *_bounds(date(year, m, 1), _month_after(year, m, 1), tz))


def quarter(year: int, q: int, tz: ZoneInfo) -> Period:
    m = 3 * (q - 1) + 1
    return Period("quarter", f"{year}Q{q}", *_bounds(date(year, m, 1), _month_after(year, m, 3), tz))


def half(year: int, h: int, tz: ZoneInfo) -> Period:
    m = 1 if h == 1 else 7
    return Period("half", f"{year}H{h}", *_bounds(date(year, m, 1), _month_after(year, m, 6), tz))


def year(y: int, tz: ZoneInfo) -> Period:
    return Period("year", f"{y}", *_bounds(date(y, 1, 1), date(y + 1, 1, 1), tz))


def current(kind: str, at: datetime, tz: ZoneInfo) -> Period:
    """The period of `kind` that contains the instant `at`."""
    local = at.astimezone(tz).date()
    if kind == "week":
        iso = local.isocalendar()
        return week(iso.year, iso.week, tz)
    if kind == "month":
        return month(local.year, local.month, tz)
    if kind == "quarter":
        return quarter(local.year, (local.month - 1) // 3 + 1, tz)
    if kind == "half":
        return half(local.year, 1 if local.month <= 6 else 2, tz)
    if kind == "year":
        return year(local.year, tz)
    raise ValueError(f"unknown period kind {kind!r}")


_PATTERNS = [
    (re.compile(r"^(\d{4})-W(\d{1,2})$"), lambda y, n, tz: week(y, int(n), tz)),
    (re.compile(r"^(\d{4})-(\d{1,2})$"), lambda y, n, tz: month(y, int(n), tz)),
    (re.compile(r"^(\d{4})Q([1-4])$"), lambda y, n, tz: quarter(y, int(n), tz)),
    (re.compile(r"^(\d{4})H([12])$"), lambda y, n, tz: half(y, int(n), tz)),
]


_CN_NUMBER = {"一": 1, "二": 2, "三": 3, "四": 4}
# Periods as people say them: 2026下半年, 2026年第二季度, 2026年5月, 2026年第23周, 2026年 ...
_SAID = [
    (re.compile(r"^(\d{4})年?([上下])半年度?$"), lambda y, n, tz: half(y, 1 if n == "上" else 2, tz)),
    (re.compile(r"^(\d{4})年?第?([1-4一二三四])季度$"), lambda y, n, tz: quarter(y, int(_CN_NUMBER.get(n, n)), tz)),
    (re.compile(r"^(\d{4})年?Q([1-4])$"), lambda y, n, tz: quarter(y, int(n), tz)),
    (re.compile(r"^(\d{4})年(\d{1,2})月份?$"), lambda y, n, tz: month(y, int(n), tz)),
    (re.compile(r"^(\d{4})年?第(\d{1,2})周$"), lambda y, n, tz: week(y, int(n), tz)),
]
# ... and relative to now: (kind, how many periods back)
_RELATIVE = {
    **dict.fromkeys(("本周", "这周", "本星期", "这星期", "THISWEEK"), ("week", 0)),
    **dict.fromkeys(("上周", "上星期", "上个星期", "LASTWEEK"), ("week", 1)),
    **dict.fromkeys(("本月", "这个月", "当月", "THISMONTH"), ("month", 0)),
    **dict.fromkeys(("上月", "上个月", "LASTMONTH"), ("month", 1)),
    **dict.fromkeys(("本季度", "这个季度", "本季", "THISQUARTER"), ("quarter", 0)),
    **dict.fromkeys(("上季度", "上个季度", "LASTQUARTER"), ("quarter", 1)),
    **dict.fromkeys(("今年", "本年", "本年度", "THISYEAR"), ("year", 0)),
    **dict.fromkeys(("去年", "上一年", "上年", "LASTYEAR"), ("year", 1)),
}


def _back(kind: str, steps: int, at: datetime, tz: ZoneInfo) -> Period:
    period = current(kind, at, tz)
    for _ in range(steps):
        period = current(kind, period.start - timedelta(microseconds=1), tz)
    return period


def parse(text: str, tz: ZoneInfo, at: datetime | None = None) -> Period:
    """Parse a period: a label (2026-W23, 2026-06, 2026Q2, 2026H1, 2026), as people say it
    (2026下半年, 2026年5月, 2026年第二季度), or, given `at` (now), relative to it (本月, 上周,
    今年, 上半年, 去年下半年, last month). ValueError with a readable reason otherwise."""
    said = unicodedata.normalize("NFKC", text)
    text = "".join(said.split()).upper()
    if at is not None:
        if text in _RELATIVE:
            return _back(*_RELATIVE[text], at, tz)
        m = re.fullmatch(r"(今年|去年)?([上下])半年", text)
        if m:
            y = at.astimezone(tz).year - (1 if m.group(1) == "去年" else 0)
            return half(y, 1 if m.group(2) == "上" else 2, tz)
    m = re.fullmatch(r"(\d{4})年?度?", text)
    if m:
        return year(int(m.group(1)), tz)
    for pattern, build in [*_PATTERNS, *_SAID]:
        m = pattern.match(text)
        if m:
            try:
                return build(int(m.group(1)), m.group(2), tz)
            except ValueError:
                break
    raise ValueError(f"not a period: {text!r} (use 2026-W23, 2026-06, 2026Q2, 2026H1 or 2026)")


def cutoff_of_day(text: str, period: Period, now: datetime, tz: ZoneInfo) -> datetime:
    """The cut-off of a report asked "as of" a day: the end of that day in `tz` (never later than now).

    ValueError with a readable reason: not a date (YYYY-MM-DD, also 2021/8/5 and 2021年8月5日), a day
    that does not exist, a day before the period began, or a day still to come.
    """
    m = re.fullmatch(r"\s*(\d{4})\s*(?:[-/.]|年)\s*(\d{1,2})\s*(?:[-/.]|月)\s*(\d{1,2})\s*日?\s*", text)
    if not m:
        raise ValueError(f"not a date: {text.strip()!r} (use 2021-08-05)")
    y, mo, d = (int(g) for g in m.groups())
    try:
        day = date(y, mo, d)
    except ValueError:
        raise ValueError(f"{text.strip()}: that day does not exist") from None
    end_of_day = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC)
    if end_of_day <= period.start:
        raise ValueError(f"{day.isoformat()} is before the period {period.label} began")
    if datetime.combine(day, time.min, tzinfo=tz) > now:
        raise ValueError(f"{day.isoformat()} has not come yet")
    return min(end_of_day, now)


def cutoff_day(at: datetime, tz: ZoneInfo) -> tuple[date, str | None]:
    """How a report names its cut-off: the local day, and the time of day unless the cut-off is that day's end."""
    local = at.astimezone(tz)
    if local.time() == time.min:
        return (local - timedelta(days=1)).date(), None
    return local.date(), local.strftime("%H:%M")
