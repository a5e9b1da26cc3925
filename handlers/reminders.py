"""Reminders, digests and the outbox: `/due`, `/outbox`, `/digest_now`, `/schedule`, the 🔎 buttons
of a reminder that open an issue, and the start-up that schedules the jobs.

Jobs (the runtime's APScheduler, bot/runtime.py; calendar jobs in TIMEZONE, explicit misfire grace and coalescing):
`visit_pace`, `overdue`, `digest` (jobs/reminders.py, jobs/digest.py) write to the outbox;
`outbox` (every 2 s) sends what is due (bot/delivery.py); `lease` renews the single-process lease.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from babel.dates import format_date, format_skeleton, get_day_names

from bot import delivery
from bot.chat import Button, Buttons, Inbound
from bot.context import GridContext
from bot.engine import Command, OnButton
from bot.i18n import N_
from handlers.common import esc, requires
from jobs import digest as digest_job
from jobs import reminders as rjobs
from jobs.scheduling import Schedule
from models import clock, outbox, periods
from models import reminders as rm
from models.tables import Role

log = logging.getLogger(__name__)

MISFIRE_GRACE_SECONDS = 15 * 60
DRAIN_SECONDS = 2
LEASE_TTL = timedelta(seconds=60)
JOB_KWARGS = {"misfire_grace_time": MISFIRE_GRACE_SECONDS, "coalesce": True, "max_instances": 1}  # APScheduler job options


# -- /due ------------------------------------------------------------------------------------------


@requires(Role.WORKER, Role.SUPERVISOR)
async def due_command(event: Inbound, context: GridContext) -> None:
    member = context.member
    assert member is not None
    now, settings = clock.now(), context.settings
    async with context.db.session() as session:
        half = periods.current("half", now, settings.tz)
        from models.stats import grid_coverage

        coverage = {c.grid_id: c for c in await grid_coverage(session, list(member.grid_ids), half, now)}
        behind = {g for g, c in coverage.items() if c.behind}
        households = await rm.households_to_visit(session, list(member.grid_ids), now, behind)
        own = await rm.half_year_visits_by_worker(session, [member.id], half.start, half.end)
    if not coverage:
        await context.reply(context._("You have no grid yet."))
        return
    sections = []
    for gid, cov in sorted(coverage.items(), key=lambda kv: kv[1].grid_code):
        listed = households.get(gid, [])
        section = rjobs.grid_section(context._, cov, listed, own.get(member.id, 0), now, settings.tz)
        if not listed:
            section += "\n" + context._("No household is due now.")
        sections.append(section)
    # One tap from the list into /visit with the household chosen.
    listed = [h for gid in sorted(coverage, key=lambda g: coverage[g].grid_code) for h in households.get(gid, [])][:DUE_BUTTONS]
    markup = Buttons.of([[Button(f"🏠 {h.address}"[:60], data=f"vgo:{h.household_id}")] for h in listed]) if listed else None
    await context.reply((context._("🏠 <b>Home visits</b>") + "\n\n" + "\n\n".join(sections))[:4096], markup=markup)


DUE_BUTTONS = 10  # households of /due with a ▶ visit button (the list itself may be longer)


# -- 😴 snooze: a repeated reminder kept quiet for a day -----------------------------------------------


async def snooze_button(event: Inbound, context: GridContext) -> None:
    """`snz:<kind>`: no such reminder for the presser for a day (an urgent issue is still said)."""
    member = context.member
    kind = event.button.removeprefix("snz:")
    if member is None or kind not in rm.SNOOZABLE:
        await context.toast(context._("This button has expired."))
        return
    async with context.db.session() as session:
        until = await rm.snooze(session, member.id, kind, clock.now())
    when = until.astimezone(context.settings.tz).strftime("%m-%d %H:%M")
    await context.toast(context._("😴 No {kind} until {when}.").format(kind=context._(SNOOZE_NAMES[kind]), when=when), alert=True)


SNOOZE_NAMES = {"overdue": N_("overdue reminders")}


# -- the 🔎 buttons of a reminder --------------------------------------------------------------------


async def open_issue_button(event: Inbound, context: GridContext) -> None:
    from handlers.issues import action_markup, card
    from models.issues import get_issue, may_view

    member = context.member
    assert member is not None
    try:
        issue_id = int(event.button.split(":")[2])
    except (IndexError, ValueError):
        await context.toast()
        return
    async with context.db.session() as session:
        issue = await get_issue(session, issue_id)
    if issue is None or not may_view(issue, member):
        await context.toast(context._("That issue is not in your grids."), alert=True)
        return
    await context.toast()
    await context.reply(card(context, context._, issue), markup=action_markup(context._, issue, member))


# -- admin commands --------------------------------------------------------------------------------------


@requires(Role.ADMIN)
async def outbox_command(event: Inbound, context: GridContext) -> None:
    tz = context.settings.tz
    async with context.db.session() as session:
        counts = await outbox.counts(session)
        problems = await outbox.problems(session)
    lines = [context._("📮 <b>Outbox</b>: {pending} pending, {sending} sending, {sent} sent, {failed} failed (will retry), {dead} given up").format(**counts)]
    if problems:
        lines.append("")
        lines.append(context._("Failures, newest first:"))
    for row in problems:
        when = row.next_attempt_at.astimezone(tz).strftime("%m-%d %H:%M")
        state = context._("retry at {when}").format(when=when) if row.state == outbox.FAILED else context._("given up")
        kind = esc(context._(OUTBOX_TITLES.get(row.kind, row.kind)))
        lines.append(f"#{row.id} {kind} {esc(row.period_key)} → {esc(row.recipient)} · {row.attempts}× · {state}\n"
                     f"    {esc(row.last_error or '')}")
    await context.reply("\n".join(lines)[:4096])


@requires(Role.ADMIN)
async def digest_now_command(event: Inbound, context: GridContext) -> None:
    """The digest of the current week so far, to the caller only (not through the outbox)."""
    now, settings = clock.now(), context.settings
    week = periods.current("week", now, settings.tz)
    async with context.db.session() as session:
        digest = await digest_job.compute(session, settings, week, now)
    grid_ids = sorted(digest.grids, key=lambda g: digest.grids[g].code)
    if context.args:
        code = context.args[0].strip()
        grid_ids = [g for g in grid_ids if digest.grids[g].code.lower() == code.lower()]
        if not grid_ids:
            await context.reply(context._("No grid {code}.").format(code=esc(code[:32])))
            return
    if not grid_ids:
        await context.reply(context._("There are no grids yet."))
        return
    for part in digest_job.split_text(digest_job.render(context._, digest, grid_ids, settings.tz, context.lang)):
        await context.reply(part)
    caption = context._("📈 Last {n} weeks: visits (bars) and issue resolution rate (line)").format(n=len(digest.weeks))
    await context.channel.send_photo(context.address, digest_job.chart(context._, digest, grid_ids), caption=caption)


OUTBOX_TITLES = {  # what each kind of queued message is, as /outbox names it
    "visit_pace": N_("visit-pace reminder"), "overdue_assignee": N_("overdue reminder to the assignee"),
    "overdue_supervisor": N_("overdue reminder to the supervisor"), "escalation": N_("escalation of an urgent issue"),
    "digest": N_("weekly digest"), "digest_chart": N_("weekly digest chart"), "reinspection": N_("re-inspection reminder"),
    "confirm": N_("confirmation of a save"), "notice": N_("notification"), "wecom_disabled": N_("WeCom channel switched off"),
}
JOB_TITLES = {
    "visit_pace": N_("visit-pace reminder"), "overdue": N_("overdue reminder"), "digest": N_("weekly digest"),
    "reinspection-reminders": N_("re-inspection reminder"), "outbox": N_("outbox sender"), "lease": N_("single-process lease"),
}


def _moment(at: datetime, tz, language: str) -> str:  # noqa: ANN001
    """周二 12月8日 08:07 / Tue Dec 8 08:07."""
    local = at.astimezone(tz)
    return f"{format_date(local, 'EEE', locale=language)} {format_skeleton('MMMd', local, locale=language)} {local:%H:%M}"


def _days(schedule: Schedule, _, language: str) -> str:  # noqa: ANN001
    """每天 / 周一至周五 / 周一、周四, in the reader's language."""
    days = sorted(schedule.days)
    if len(days) == 7:
        return _("daily")
    names = get_day_names("abbreviated", locale=language)  # 0 = Monday
    if len(days) >= 3 and days == list(range(days[0], days[-1] + 1)):
        return _("{first} to {last}").format(first=names[days[0] - 1], last=names[days[-1] - 1])
    return _(", ").join(names[d - 1] for d in days)


@requires(Role.ADMIN)
async def schedule_command(event: Inbound, context: GridContext) -> None:
    """Each job's next and last run by the bot's own clock (the one the runs are claimed by), soonest
    first; the repeating ones with their interval."""
    tz, settings, _, language = context.settings.tz, context.settings, context._, context.lang
    now = clock.now()
    async with context.db.session() as session:
        runs = await rm.all_runs(session)
    lines = [_("🗓 <b>Schedule</b> ({tz}; quiet hours {quiet})").format(tz=settings.timezone, quiet=settings.quiet_hours)]
    running = {job.name: job for job in context.app.scheduler.jobs()}
    daily = sorted(((name, schedule, schedule.next(now, tz)) for name, schedule in settings.schedules.items() if name in running),
                   key=lambda item: item[2])
    for name, schedule, nxt in daily:
        line = _("• {name}: next {next} ({days} {time})").format(
            name=_(JOB_TITLES.get(name, name)), next=_moment(nxt, tz, language), days=_days(schedule, _, language), time=f"{schedule.at:%H:%M}")
        if name in runs:
            line += " · " + _("last {when}").format(when=_moment(runs[name].last_scheduled_at, tz, language))
        lines.append(line)
    for name, job in sorted(running.items()):
        if name in settings.schedules or name.startswith("_") or job.interval is None:
            continue
        lines.append(_("• {name}: every {seconds} s").format(name=_(JOB_TITLES.get(name, name)), seconds=f"{job.interval.total_seconds():g}"))
    await context.reply("\n".join(lines))


# -- start-up ------------------------------------------------------------------------------------------


async def lease_job(runtime) -> None:  # noqa: ANN001
    async with runtime.db.session() as session:
        ok = await rm.renew_lease(session, runtime.lease_holder, clock.now(), LEASE_TTL)
    if not ok:
        log.critical("the single-process lease was taken by another process: stopping")
        runtime.stop_running()


async def on_startup(runtime) -> None:  # noqa: ANN001
    """Put back rows a crash left in `sending`, make each run missed while down (once), schedule the jobs."""
    async with runtime.db.session() as session:
        recovered = await outbox.recover_interrupted(session)
    if recovered:
        log.warning("%d outbox rows were being sent when the bot stopped: sending them again", recovered)
    ran = await rjobs.catch_up(runtime)
    if ran:
        log.info("made the runs missed while the bot was down: %s", ", ".join(ran))
    scheduler = runtime.scheduler
    for name, schedule in runtime.settings.schedules.items():
        scheduler.daily(name, rjobs.job_callback(name), schedule.at, schedule.days, **JOB_KWARGS)
    scheduler.every("outbox", delivery.drain_job, DRAIN_SECONDS, first=1)
    if runtime.lease_holder:
        scheduler.every("lease", lease_job, LEASE_TTL.total_seconds() / 3)


FLOWS: list = []
HANDLERS = [
    Command("due", due_command),
    Command("outbox", outbox_command),
    Command("digest_now", digest_now_command),
    Command("schedule", schedule_command),
    OnButton(r"^rem:open:\d+$", open_issue_button),
    OnButton(r"^snz:\w{1,32}$", snooze_button),
]
