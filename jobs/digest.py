"""The weekly digest (DESIGN.md §2 figures, from models.stats) for supervisors, admins, Telegram
digest groups and WeCom group robots, with a PNG chart of the last 8 weeks.

The figures of every grid are computed once, in grouped queries; each recipient's digest is a
selection of them: a supervisor's grids, the whole street for admins and street-wide channels, one
grid for a grid's group chat or robot.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from babel.dates import format_date, format_interval

from bot import wecom
from bot.chart import weekly_chart
from bot.delivery import tg
from bot.i18n import gettext_for, resolve_language
from jobs.reminders import esc, pct
from models import periods
from models import reminders as rm
from models.admin import mask_name
from models.outbox import NewMessage
from models.periods import Period
from models.stats import (
    GridCoverage,
    GridPatrolFigures,
    IssueFigures,
    grid_coverage,
    idle_workers,
    patrol_figures,
    weekly_issue_figures,
    weekly_visits_by_grid,
)
from models.tables import Role

WEEKS = 8
TG_LIMIT = 4000


@dataclass(frozen=True)
class GridWeek:
    grid_id: int
    code: str
    name: str
    visits: int
    visits_prev: int
    coverage: GridCoverage
    patrols: GridPatrolFigures
    patrols_prev: GridPatrolFigures
    issues: IssueFigures | None
    issues_prev: IssueFigures | None
    idle: list[str]


@dataclass(frozen=True)
class Digest:
    week: Period
    weeks: list[Period]  # the last WEEKS weeks, oldest first, ending with `week`
    grids: dict[int, GridWeek]
    visits_series: dict[int, list[int]]
    issue_series: list[dict[int, IssueFigures]]
    at: datetime  # the cut-off every figure is taken at (the week's end, or now for a week still running)


def _week_before(week: Period, tz, n: int = 1) -> Period:  # noqa: ANN001
    return periods.current("week", week.start - timedelta(days=7 * n - 1), tz)


async def compute(session, settings, week: Period, at: datetime) -> Digest:  # noqa: ANN001
    """All grids' figures for `week` (cut-off `at` if it falls inside the week) and the 7 weeks before."""
    tz = settings.tz
    cut = min(at, week.end)
    weeks = [_week_before(week, tz, n) for n in range(WEEKS - 1, 0, -1)] + [week]
    prev = weeks[-2]
    all_grids = await rm.grids(session)
    ids = [g[0] for g in all_grids]
    visits = await weekly_visits_by_grid(session, ids, weeks)
    issues = await weekly_issue_figures(session, ids, weeks, cut)
    half = periods.current("half", cut - timedelta(microseconds=1), tz)
    upto = Period(half.kind, half.label, half.start, cut)
    coverage = {c.grid_id: replace(c, elapsed=half.elapsed_fraction(cut)) for c in await grid_coverage(session, ids, upto, cut)}
    patrols = {p.grid_id: p for p in await patrol_figures(session, ids, week, cut, tz)}
    patrols_prev = {p.grid_id: p for p in await patrol_figures(session, ids, prev, prev.end, tz)}
    idle = await idle_workers(session, ids, Period(week.kind, week.label, week.start, cut))
    grids = {
        gid: GridWeek(gid, code, name, visits[gid][-1], visits[gid][-2], coverage[gid], patrols[gid], patrols_prev[gid],
                      issues[-1].get(gid), issues[-2].get(gid), idle.get(gid, []))
        for gid, code, name in all_grids
    }
    return Digest(week, weeks, grids, visits, issues, cut)


def _delta(now: int, before: int) -> str:
    d = now - before
    return f"{d:+d}"


def _rate_delta(_, now: float | None, before: float | None) -> str:  # noqa: ANN001
    if now is None or before is None:
        return ""
    return _(" ({delta} percentage points)").format(delta=f"{(now - before) * 100:+.1f}")


def week_dates(week: Period, tz, language: str) -> str:  # noqa: ANN001
    """The week as people say it: 12月1日至7日 / Dec 1 – 7 (the year only when the week spans two)."""
    first, last = week.start.astimezone(tz).date(), (week.end - timedelta(microseconds=1)).astimezone(tz).date()
    return format_interval(first, last, "MMMd" if first.year == last.year else "yMMMd", locale=language)


def cutoff_text(at: datetime, tz, language: str) -> str:  # noqa: ANN001
    """The cut-off's day (and time of day, unless it is the day's end), in the reader's language."""
    day, clock_time = periods.cutoff_day(at, tz)
    text = format_date(day, "long", locale=language)
    return f"{text} {clock_time}" if clock_time else text


def _totals(digest: Digest, grid_ids: list[int]) -> GridWeek:
    """The sum of several grids, as one pseudo-grid (coverage from summed households)."""
    gs = [digest.grids[g] for g in grid_ids]
    households = sum(g.coverage.households for g in gs)
    visited = sum(g.coverage.households_visited for g in gs)
    target = sum(g.coverage.target * g.coverage.households for g in gs) / households if households else (gs[0].coverage.target if gs else 0)
    cov = GridCoverage(0, "*", "", households, visited, sum(g.coverage.visits for g in gs), target, gs[0].coverage.elapsed if gs else 0)

    def psum(attr: str) -> GridPatrolFigures:
        items = [getattr(g, attr) for g in gs]
        fields = GridPatrolFigures.__dataclass_fields__
        values = {f: sum(getattr(p, f) for p in items) for f in fields if f not in ("grid_id", "grid_code", "grid_name")}
        return GridPatrolFigures(0, "*", "", **values)

    def isum(attr: str) -> IssueFigures | None:
        items = [getattr(g, attr) for g in gs if getattr(g, attr) is not None]
        if not items:
            return None
        keys = ("reported", "resolved", "closed", "rejected", "open", "overdue", "on_time")
        return IssueFigures(None, None, *(sum(getattr(i, k) for i in items) for k in keys), None)

    return GridWeek(0, "*", "", sum(g.visits for g in gs), sum(g.visits_prev for g in gs), cov, psum("patrols"), psum("patrols_prev"),
                    isum("issues"), isum("issues_prev"), [])


def _grid_lines(_, g: GridWeek, title: str, bold, mask: bool = False) -> list[str]:  # noqa: ANN001
    i, ip = g.issues, g.issues_prev
    lines = [bold(title),
             _("Visits: {n} ({delta} on the week before) · coverage {coverage} (target {target}; {expected} expected by now)").format(
                 n=g.visits, delta=_delta(g.visits, g.visits_prev), coverage=pct(g.coverage.coverage), target=pct(g.coverage.target),
                 expected=pct(g.coverage.expected)),
             _("Patrols: {n} ({delta}) · corrected on the spot {c} · escalated {e}").format(
                 n=g.patrols.patrols, delta=_delta(g.patrols.patrols, g.patrols_prev.patrols), c=g.patrols.corrections, e=g.patrols.escalations)]
    if i is None:
        lines.append(_("Issues: none reported ({delta})").format(delta=_delta(0, ip.reported if ip else 0)))
    else:
        lines.append(_("Issues: reported {r} ({delta}) · resolved {s} · overdue {o} · resolution {rate}{rd} · on time {ot}").format(
            r=i.reported, delta=_delta(i.reported, ip.reported if ip else 0), s=i.resolved, o=i.overdue, rate=pct(i.resolution_rate),
            rd=_rate_delta(_, i.resolution_rate, ip.resolution_rate if ip else None), ot=pct(i.on_time_rate)))
    if g.idle:
        names = [mask_name(n) or "?" for n in g.idle] if mask else g.idle
        lines.append(_("Logged nothing this week: {names}").format(names=esc("、".join(names))))
    return lines


def render(_, digest: Digest, grid_ids: list[int], tz, language: str, *, markdown: bool = False,  # noqa: ANN001
           mask: bool = False) -> str:
    """The digest of `grid_ids`: HTML for Telegram, or WeCom markdown; `mask` for group chats and robots, whose
    members are not known to be within the grids' staff (DESIGN §4: names only within the viewer's scope)."""
    def bold(text: str) -> str:
        return f"**{text}**" if markdown else f"<b>{esc(text)}</b>"

    lines = ["📊 " + bold(_("Weekly digest {dates}").format(dates=week_dates(digest.week, tz, language))),
             _("Figures as at {cutoff}.").format(cutoff=cutoff_text(digest.at, tz, language))]
    for gid in grid_ids:
        g = digest.grids[gid]
        lines.append("")
        lines += _grid_lines(_, g, f"{g.code} · {g.name}", bold, mask)
    if len(grid_ids) > 1:
        lines.append("")
        lines += _grid_lines(_, _totals(digest, grid_ids), _("All {n} grids").format(n=len(grid_ids)), bold)
    return "\n".join(lines)


def chart(_, digest: Digest, grid_ids: list[int]) -> bytes:  # noqa: ANN001
    visits = [sum(digest.visits_series.get(g, [0] * WEEKS)[k] for g in grid_ids) for k in range(len(digest.weeks))]
    rates: list[float | None] = []
    for week_figures in digest.issue_series:
        items = [week_figures[g] for g in grid_ids if g in week_figures]
        base = sum(f.collected for f in items)
        rates.append(sum(f.resolved for f in items) / base if base else None)
    codes = ", ".join(digest.grids[g].code for g in grid_ids[:6]) + (" ..." if len(grid_ids) > 6 else "")
    # Chart text stays ASCII: the server may have no CJK font; the caption carries the words.
    return weekly_chart([w.label for w in digest.weeks], visits, rates, title=f"{codes}  {digest.weeks[0].label} .. {digest.week.label}",
                        visits_label="visits", rate_label="resolved")


def split_text(text: str, limit: int = TG_LIMIT) -> list[str]:
    parts, current = [], ""
    for block in text.split("\n\n"):
        candidate = f"{current}\n\n{block}" if current else block
        if len(candidate) > limit and current:
            parts.append(current)
            current = block[:limit]
        else:
            current = candidate[:limit]
    if current:
        parts.append(current)
    return parts


def chat_messages(settings, digest: Digest, grid_ids: list[int], to: str, language: str | None, key: str,  # noqa: ANN001
                  mask: bool = False) -> list[NewMessage]:
    """The digest for one chat (a person's or a group's) on a conversation channel; `to` is the outbox recipient."""
    lang = resolve_language(language, None, settings.default_language)
    _ = gettext_for(lang)
    text = render(_, digest, grid_ids, settings.tz, lang, mask=mask)
    out = [NewMessage("digest", key, to, part, part=n) for n, part in enumerate(split_text(text))]
    caption = _("📈 Last {n} weeks: visits (bars) and issue resolution rate (line)").format(n=len(digest.weeks))
    out.append(NewMessage("digest_chart", key, to, caption, image=chart(_, digest, grid_ids)))
    return out


def wecom_messages(settings, digest: Digest, grid_ids: list[int], url: str, key: str) -> list[NewMessage]:  # noqa: ANN001
    lang = settings.default_language
    _ = gettext_for(lang)
    to = wecom.recipient(url)
    text = render(_, digest, grid_ids, settings.tz, lang, markdown=True, mask=True)
    out = [NewMessage("digest", key, to, chunk, part=n) for n, chunk in enumerate(wecom.split_markdown(text))]
    out.append(NewMessage("digest_chart", key, to, "", image=chart(_, digest, grid_ids)))
    return out


def _scope_grids(scope: str, codes: dict[str, int], all_ids: list[int]) -> list[int]:
    if scope == "*":
        return all_ids
    return [codes[scope]] if scope in codes else []


async def produce_digest(session, app, scheduled: datetime, now: datetime) -> list[NewMessage]:  # noqa: ANN001
    settings, tz = app.settings, app.settings.tz
    week = periods.current("week", scheduled - timedelta(days=7), tz)
    digest = await compute(session, settings, week, week.end)
    all_ids = sorted(digest.grids, key=lambda g: digest.grids[g].code)
    if not all_ids:
        return []
    codes = {g.code: gid for gid, g in digest.grids.items()}
    out: list[NewMessage] = []
    sup_grids: dict[str, tuple[rm.Person, list[int]]] = {}
    for gid, people in (await rm.grid_people(session, Role.SUPERVISOR)).items():
        for p in people:
            if p.recipient is not None:
                sup_grids.setdefault(p.recipient, (p, []))[1].append(gid)
    for to, (person, gids) in sup_grids.items():
        out += chat_messages(settings, digest, sorted(gids, key=lambda g: digest.grids[g].code), to, person.language, week.label)
    for admin in await rm.admins(session):
        if admin.recipient is not None and admin.recipient not in sup_grids:
            out += chat_messages(settings, digest, all_ids, admin.recipient, admin.language, week.label)
    for scope, chat_ids in settings.digest_chats.items():
        gids = _scope_grids(scope, codes, all_ids)
        for chat_id in chat_ids if gids else []:
            out += chat_messages(settings, digest, gids, tg(chat_id), None, f"{week.label}:{scope}", mask=True)
    for scope, urls in settings.wecom_robots.items():
        gids = _scope_grids(scope, codes, all_ids)
        for url in urls if gids else []:
            out += wecom_messages(settings, digest, gids, url, f"{week.label}:{scope}")
    return out
