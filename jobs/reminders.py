"""Scheduled reminders (visit pace, resolution) and the machinery every scheduled job shares.

Each job (`visit_pace`, `overdue`, `digest`) computes its messages through models/, writes them to
the outbox in batches (one transaction each) and then moves its `job_run` row (the scheduled moment
it covers): a crash in the middle leaves a prefix and the run is made again, the outbox's unique key
writing only the missing rows; a second run of the same moment (misfire, catch-up, a double fire)
finds `job_run` moved on. Sending is the outbox sender's business (bot/delivery.py).

Quiet hours: a reminder or digest written during them waits until they end (`next_attempt_at`);
urgent issues and event notifications (escalations) do not wait.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from bot.delivery import buttons_payload
from bot.i18n import gettext_for, resolve_language
from models import clock, outbox, periods
from models import reminders as rm
from models.outbox import NewMessage
from models.stats import GridCoverage, grid_coverage
from models.tables import Role
from models.vocabulary import category_label, status_label

log = logging.getLogger(__name__)

Producer = Callable[..., Awaitable[list[NewMessage]]]


def esc(text: str) -> str:
    return html.escape(text, quote=False)


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _t(settings, language: str | None):  # noqa: ANN001, ANN202
    return gettext_for(resolve_language(language, None, settings.default_language))


def local_date(at: datetime, settings) -> str:  # noqa: ANN001
    return at.astimezone(settings.tz).date().isoformat()


# -- visit pace -------------------------------------------------------------------------------------


def grid_section(_, cov: GridCoverage, households: list[rm.HouseholdToVisit], own_visits: int | None, at: datetime, tz) -> str:  # noqa: ANN001
    """One grid of a worker's visit reminder or /due (HTML)."""
    lines = [f"<b>{esc(cov.grid_code)} · {esc(cov.grid_name)}</b>"]
    if cov.behind:
        lines.append(_("Behind pace: coverage {coverage} (target {target}, {expected} expected by now); {gap} more households to visit to catch up.").format(
            coverage=pct(cov.coverage), target=pct(cov.target), expected=pct(cov.expected), gap=cov.gap_households))
    else:
        lines.append(_("On pace: coverage {coverage} (target {target}).").format(coverage=pct(cov.coverage), target=pct(cov.target)))
    if own_visits is not None:
        lines.append(_("Your visits this half-year: {n}").format(n=own_visits))
    if households:
        lines.append(_("Visit next:"))
        for h in households:
            last = h.last_visit.astimezone(tz).date().isoformat() if h.last_visit else _("never visited")
            tags = f" [{esc('、'.join(h.tags))}]" if h.tags else ""
            due = " " + _("⏰ due") if h.due else ""
            last_visit = _("last visit")
            lines.append(f"• {esc(h.address)}{tags} · {last_visit} {last}{due}")
    return "\n".join(lines)


async def worker_plan(session, settings, at: datetime, worker_ids: list[int] | None = None):  # noqa: ANN001, ANN201
    """Everything the visit reminder (and /due) needs, in a few grouped queries.

    Returns (coverage by grid, households by grid, workers by grid, half-year visits by worker).
    """
    half = periods.current("half", at, settings.tz)
    workers = await rm.grid_people(session, Role.WORKER)
    if worker_ids is not None:
        workers = {g: [p for p in ps if p.user_id in worker_ids] for g, ps in workers.items()}
        workers = {g: ps for g, ps in workers.items() if ps}
    grid_ids = sorted(workers)
    coverage = {c.grid_id: c for c in await grid_coverage(session, grid_ids, half, at)}
    behind = {g for g, c in coverage.items() if c.behind}
    households = await rm.households_to_visit(session, grid_ids, at, behind)
    own = await rm.half_year_visits_by_worker(session, sorted({p.user_id for ps in workers.values() for p in ps}), half.start, half.end)
    return coverage, households, workers, own


async def produce_visit_pace(session, app, scheduled: datetime, now: datetime) -> list[NewMessage]:  # noqa: ANN001
    settings = app.settings
    coverage, households, workers, own = await worker_plan(session, settings, now)
    letters: dict[str, tuple[rm.Person, list[str]]] = {}  # by recipient
    for n, (gid, people) in enumerate(workers.items()):
        if n % 50 == 49:
            await asyncio.sleep(0)  # formatting a city's letters is CPU work: let replies run in between
        cov = coverage.get(gid)
        if cov is None:
            continue
        listed = households.get(gid, [])
        if not cov.behind and not listed:
            continue  # on pace and no care household due: nothing to say
        for person in people:
            _ = _t(settings, person.language)
            section = grid_section(_, cov, listed, own.get(person.user_id, 0) if cov.behind else None, now, settings.tz)
            if person.recipient is not None:
                letters.setdefault(person.recipient, (person, []))[1].append(section)
    out = []
    for to, (person, sections) in letters.items():
        _ = _t(settings, person.language)
        body = _("🏠 <b>Home visits</b>") + "\n\n" + "\n\n".join(sections) + "\n\n" + _("Send /visit to log a visit, /due for this list at any time.")
        out.append(NewMessage("visit_pace", local_date(scheduled, settings), to, body[:4096]))
    return out


# -- resolution (overdue) -----------------------------------------------------------------------------


def _issue_line(_, issue, now: datetime, tz) -> str:  # noqa: ANN001
    due = issue.due_at.astimezone(tz).strftime("%m-%d %H:%M")
    mark = _("⏰ overdue") if issue.due_at < now else _("due today")
    urgent = " 🔴" if issue.urgent else ""
    category = esc(category_label(_, issue.category))
    return f"• <b>{issue.human_id}</b>{urgent} · {category} · {esc(issue.grid_code)} · {status_label(_, issue.status)} · {due} {mark}"


def _open_buttons(_, issues, snooze: str | None = None) -> dict:  # noqa: ANN001
    rows = [[(f"🔎 {i.human_id}", f"rem:open:{i.id}")] for i in issues[:10]]
    if snooze is not None and not any(i.urgent for i in issues):
        rows.append(_snooze_row(_, snooze))
    return buttons_payload(rows)


def _snooze_row(_, kind: str) -> list[tuple[str, str]]:  # noqa: ANN001
    return [(_("😴 Snooze for a day"), f"snz:{kind}")]


def _snooze_buttons(_, kind: str) -> dict:  # noqa: ANN001
    return buttons_payload([_snooze_row(_, kind)])


async def produce_overdue(session, app, scheduled: datetime, now: datetime) -> list[NewMessage]:  # noqa: ANN001
    from models.checklist import item_label
    from models.patrols import local_day_start

    settings, tz = app.settings, app.settings.tz
    key = local_date(scheduled, settings)
    end_of_today = local_day_start(now, tz, days=1)
    issues = await rm.open_issues_due_by(session, end_of_today)
    out: list[NewMessage] = []

    # Assignees: overdue or due today, with a button to open each.
    by_assignee: dict[int, list] = {}
    for issue in issues:
        if issue.assignee_id is not None and issue.status in ("assigned", "in_progress"):
            by_assignee.setdefault(issue.assignee_id, []).append(issue)
    people = await rm.people_by_ids(session, list(by_assignee))
    quiet = await rm.snoozed(session, "overdue", scheduled)  # by the run's moment (a late catch-up too); an urgent issue is said anyway
    for uid, mine in by_assignee.items():
        person = people.get(uid)
        if person is None or person.recipient is None or (uid in quiet and not any(i.urgent for i in mine)):
            continue
        _ = _t(settings, person.language)
        lines = [_("⏰ <b>Your issues overdue or due today</b>: {n}").format(n=len(mine))] + [_issue_line(_, i, now, tz) for i in mine[:20]]
        out.append(NewMessage("overdue_assignee", key, person.recipient, "\n".join(lines)[:4096], payload=_open_buttons(_, mine, "overdue"),
                              urgent=any(i.urgent for i in mine)))

    # Supervisors: the overdue issues and overdue re-inspections of their grids.
    overdue = [i for i in issues if i.due_at < now]
    orders = await rm.overdue_orders(session, now, tz)
    supervisors = await rm.grid_people(session, Role.SUPERVISOR)
    letters: dict[str, tuple[rm.Person, list, list]] = {}  # by recipient
    for gid, sups in supervisors.items():
        g_issues = [i for i in overdue if i.grid_id == gid]
        g_orders = [o for o in orders if o.grid_id == gid]
        if not g_issues and not g_orders:
            continue
        for sup in sups:
            if sup.recipient is None:
                continue
            entry = letters.setdefault(sup.recipient, (sup, [], []))
            entry[1].extend(g_issues)
            entry[2].extend(g_orders)
    for to, (sup, s_issues, s_orders) in letters.items():
        if sup.user_id in quiet and not any(i.urgent for i in s_issues):
            continue
        _ = _t(settings, sup.language)
        lines = []
        if s_issues:
            lines.append(_("⏰ <b>Overdue issues in your grids</b>: {n}").format(n=len(s_issues)))
            lines += [_issue_line(_, i, now, tz) for i in s_issues[:20]]
        if s_orders:
            lines.append(_("🔁 <b>Re-inspections past their day</b>: {n}").format(n=len(s_orders)))
            lines += [_("• {shop}: «{item}», deadline {date}").format(shop=esc(o.shop_name), item=item_label(_, o.item),
                                                                   date=o.deadline.astimezone(tz).date().isoformat()) for o in s_orders[:20]]
        buttons = _open_buttons(_, s_issues, "overdue") if s_issues else _snooze_buttons(_, "overdue")
        out.append(NewMessage("overdue_supervisor", key, to, "\n".join(lines)[:4096], payload=buttons,
                              urgent=any(i.urgent for i in s_issues)))

    # Escalation: overdue by more than N days -> the admins, once per issue (an event: no quiet hours).
    limit = now - timedelta(days=settings.overdue_escalation_days)
    admin_list = await rm.admins(session)
    for issue in overdue:
        if issue.due_at >= limit or await outbox.exists(session, "escalation", f"issue:{issue.id}"):
            continue
        for admin in admin_list:
            if admin.recipient is None:
                continue
            _ = _t(settings, admin.language)
            body = _("🚨 Issue {id} ({category}, {grid}) is overdue by more than {days} days: due {due}.").format(
                id=issue.human_id, category=esc(category_label(_, issue.category)), grid=esc(issue.grid_code),
                days=settings.overdue_escalation_days, due=issue.due_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"))
            out.append(NewMessage("escalation", f"issue:{issue.id}", admin.recipient, body, payload=_open_buttons(_, [issue]), urgent=True))
    return out


# -- running a job -------------------------------------------------------------------------------------


def producers() -> dict[str, Producer]:
    from jobs.digest import produce_digest

    return {"visit_pace": produce_visit_pace, "overdue": produce_overdue, "digest": produce_digest}


# Rows per outbox transaction. One transaction for a whole city's fan-out held SQLite's write lock for
# seconds (bench/: a reply's p95 during the build was 232x idle); batches let replies in between. Small,
# because building a multi-row INSERT is CPU work on the event loop (~1 ms a row under load).
BATCH = 50


async def run_job(app, name: str, scheduled: datetime | None = None) -> int | None:  # noqa: ANN001
    """Make the run of `name` scheduled at `scheduled` (default: the latest scheduled moment); returns
    the outbox rows written, or None when that run was made already.

    The messages are computed in one read, then written in batches of BATCH rows, each its own
    transaction, and `job_run` is moved last. A crash in the middle leaves a prefix of the rows and
    `job_run` where it was, so the run is made again (catch-up, next fire) and the outbox's
    insert-if-absent key writes only the rows still missing: every row exactly once.
    """
    settings = app.settings
    now = clock.now()
    scheduled = scheduled or settings.schedules[name].previous(now, settings.tz)
    quiet = settings.quiet
    release = quiet.release_at(now, settings.tz) if quiet else None
    async with app.db.session() as session:
        last = await rm.last_run(session, name)
        if last is not None and last.last_scheduled_at >= scheduled:
            return None
        messages = await producers()[name](session, app, scheduled, now)
        disabled = await rm.disabled_channels(session)
    messages = [m for m in messages if m.recipient not in disabled]
    for m in messages:
        if release is not None and not m.urgent:
            m.not_before = release
    written = 0
    for i in range(0, len(messages), BATCH):
        async with app.db.session() as session:
            written += await outbox.enqueue(session, messages[i:i + BATCH])
        await asyncio.sleep(0)  # a reply waiting for the loop goes first
    async with app.db.session() as session:
        if not await rm.claim_run(session, name, scheduled, now):
            # Another run of the same moment finished meanwhile; the key kept its rows and ours apart.
            log.info("job %s (scheduled %s) was made concurrently", name, scheduled.isoformat())
    log.info("job %s (scheduled %s): %d messages, %d new outbox rows", name, scheduled.isoformat(), len(messages), written)
    return written


async def catch_up(app) -> list[str]:  # noqa: ANN001
    """At start-up: each job whose latest scheduled moment passed while the bot was down runs once now.

    A job never recorded (a new database) gets its baseline instead: nothing was missed.
    """
    now, ran = clock.now(), []
    for name, schedule in app.settings.schedules.items():
        expected = schedule.previous(now, app.settings.tz)
        async with app.db.session() as session:
            last = await rm.last_run(session, name)
            if last is None:
                await rm.set_baseline(session, name, expected, now)
                continue
        if last.last_scheduled_at < expected and await run_job(app, name, expected) is not None:
            ran.append(name)
    return ran


def job_callback(name: str):  # noqa: ANN201
    async def callback(runtime) -> None:  # noqa: ANN001 - bot.runtime.Runtime
        await run_job(runtime, name)
        from bot.delivery import drain

        await drain(runtime)

    callback.__name__ = f"{name}_job"
    return callback
