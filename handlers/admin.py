"""Admin tools: `/invite`, `/grid_add`, figures (`/stats`, `/overdue`, `/workers`, `/grids`, `/summary`),
targets, users (`/users`, `/setrole`, `/setgrid`, `/deactivate`), `/import` and `/export`.

Scope: supervisors see their grids, admins every grid; each command checks it. Workers have none of
these (they have /my, /tasks, /issue, /shop within their grids).

```mermaid
stateDiagram-v2
    [*] --> WAITING_FILE: /import KIND (admin)
    WAITING_FILE --> [*]: a document (CSV/XLSX): validated, then all rows written or none
    WAITING_FILE --> [*]: /import again or /cancel replaces or drops the wait
```
"""

from __future__ import annotations

import contextlib
import io
import logging

import segno

from bot.chat import ChannelError, Inbound
from bot.context import GridContext
from bot.engine import Command, OnFile
from bot.exporter import KINDS as EXPORT_KINDS
from bot.exporter import build_export, summary_workbook
from bot.i18n import N_, gettext_for
from bot.importer import FileProblem, read_upload, report, template
from handlers.common import address_of, esc, percent, requires, role_name
from handlers.flow import rule_message
from models import admin as admin_model
from models import audit, clock, periods, stats
from models.errors import RuleError
from models.importer import KINDS as IMPORT_KINDS
from models.importer import ImportRefused, run_import
from models.periods import Period
from models.summary import numbers_from, paragraph
from models.tables import Role
from models.text import clean_args
from models.users import Member, create_grid, create_invitation, grids_by_ids, parse_role, scope_grid_ids
from models.vocabulary import category_label, status_label

ADMIN_RULES = {
    "role_unknown": N_("Unknown role «{role}». Use worker, supervisor or admin."),
    "grid_unknown": N_("There is no grid with code «{code}». Create it with /grid_add first."),
    "invite_needs_grid": N_("Workers and supervisors need at least one grid: /invite worker G01[,G02]"),
    "grid_code_invalid": N_("«{code}» is not a valid grid code: use 1-32 letters, digits, - or _, e.g. G01."),
    "grid_name_invalid": N_("The grid name must be 1 to 100 characters."),
    "grid_exists": N_("A grid with code «{code}» already exists."),
    "grid_out_of_scope": N_("Grid «{code}» is not one of your grids."),
    "period_invalid": N_("«{text}» is not a period. Use 2026-05, 2026Q2, 2026H1, 2026 or 2026-W21, or say 本月, 上周, 今年, 上半年, 2026下半年."),
    "as_of_invalid": N_("«{text}» is not a cut-off day for this period: give a day from the period's start until today, e.g. as-of 2026-05-20."),
    "user_unknown": N_("No user «{user}». Use their id on a chat platform (a Telegram id), #number from /users, or their exact name."),
    "user_ambiguous": N_("Several users are called «{user}». Use their id on a chat platform or #number from /users."),
    "not_yourself": N_("You cannot change your own account this way."),
    "role_needs_grid": N_("{user} has no grid; give them one with /setgrid first."),
    "already_inactive": N_("{user} is already deactivated."),
    "target_range": N_("The target must be a percentage above 0 and at most 100."),
}
log = logging.getLogger(__name__)
MANAGERS = (Role.SUPERVISOR, Role.ADMIN)


@requires(Role.ADMIN)
async def invite_command(event: Inbound, context: GridContext) -> None:
    args = clean_args(context.args)
    if not 1 <= len(args) <= 2:
        await context.reply(context._("Usage: /invite worker|supervisor|admin GRID[,GRID]\nExample: /invite worker G01,G02"))
        return
    codes = [c.strip() for c in args[1].replace("，", ",").split(",") if c.strip()] if len(args) == 2 else []
    try:
        role = parse_role(args[0])
        async with context.db.session() as session:
            invitation, grids = await create_invitation(session, role, codes, context.member.id, context.settings.invite_valid_days)
    except RuleError as err:
        await context.reply(esc_rule(context, err))
        return
    link = context.channel.join_link(invitation.code) or f"/start {invitation.code}"
    expires = invitation.expires_at.astimezone(context.settings.tz).strftime("%Y-%m-%d %H:%M")
    grid_text = "、".join(f"{g.code} {g.name}" for g in grids) or "—"
    await context.reply(context._(
        "🎟 Invitation for a {role}, grids: {grids}\nCode: <code>{code}</code>\nLink: {link}\n"
        "Valid until {expires}, for one person. Send them the link; opening it registers them."
    ).format(role=role_name(context, role), grids=esc(grid_text), code=invitation.code, link=esc(link), expires=expires))
    # A QR code of the link, for signing people up in person: they scan it with the phone's camera.
    with contextlib.suppress(ChannelError):
        await context.channel.send_photo(context.address, qr_png(link), caption=context._("📷 Scan to join: {role}, {grids}").format(
            role=role_name(context, role), grids=grid_text))


def qr_png(text: str) -> bytes:
    buf = io.BytesIO()
    segno.make(text, error="m").save(buf, kind="png", scale=8, border=4)
    return buf.getvalue()


@requires(Role.ADMIN)
async def grid_add_command(event: Inbound, context: GridContext) -> None:
    args = clean_args(context.args)
    if len(args) < 2:
        await context.reply(context._("Usage: /grid_add CODE NAME\nExample: /grid_add G01 幸福里第一网格"))
        return
    try:
        async with context.db.session() as session:
            grid = await create_grid(session, args[0], " ".join(args[1:]), context.settings.visit_target)
    except RuleError as err:
        await context.reply(esc_rule(context, err))
        return
    await context.reply(context._("Grid {code} · {name} added; its half-year visit-coverage target is {target}%.").format(
        code=esc(grid.code), name=esc(grid.name), target=f"{grid.target_coverage * 100:g}"))


def esc_rule(context: GridContext, err: RuleError) -> str:
    """A rule message whose details (typed by the user) are HTML-escaped and cut short (a 4,096-character
    argument quoted back whole would make the reply longer than Telegram takes)."""
    safe = RuleError(err.code, **{k: esc(str(v) if len(str(v)) <= 200 else str(v)[:200] + "…") for k, v in err.details.items()})
    return rule_message(context, safe, ADMIN_RULES)


# -- scope and arguments ----------------------------------------------------------------------


def _member(context: GridContext) -> Member:
    assert context.member is not None
    return context.member


async def _scope(session, context: GridContext, code: str | None) -> list[int]:  # noqa: ANN001
    """Grid ids the caller may see, narrowed to grid `code` when given (RuleError when unknown or out of scope)."""
    from models.users import grids_by_codes

    member = _member(context)
    allowed = await scope_grid_ids(session, member)
    if code is None:
        return allowed
    (grid,) = await grids_by_codes(session, [code])
    if grid.id not in allowed:
        raise RuleError("grid_out_of_scope", code=code)
    return [grid.id]


def _parse_period(context: GridContext, text: str | None, default_kind: str = "half") -> Period:
    if text is None:
        return periods.current(default_kind, clock.now(), context.settings.tz)
    try:
        return periods.parse(text, context.settings.tz, clock.now())
    except ValueError:
        raise RuleError("period_invalid", text=text) from None


def _period_and_grid(context: GridContext, args: list[str]) -> tuple[Period, str | None]:
    """`[period] [grid]` in either order: what parses as a period is the period (two words may make
    one: `last month`, `去年 下半年`)."""
    period_text, grid = None, None
    for i in range(min(len(args), 3) - 1):
        pair = f"{args[i]} {args[i + 1]}"
        try:
            periods.parse(pair, context.settings.tz, clock.now())
        except ValueError:
            continue
        args = [pair, *args[:i], *args[i + 2:]]
        break
    for arg in args[:2]:
        try:
            periods.parse(arg, context.settings.tz, clock.now())
            period_text = arg
        except ValueError:
            grid = arg
    return _parse_period(context, period_text), grid


AS_OF_WORDS = ("as-of", "asof", "as_of", "截至", "截止")


def _split_as_of(args: list[str]) -> tuple[list[str], str | None]:
    """`/stats 2021H1 as-of 2021-08-05` (or 截至 2021-08-05, 截至2021-08-05): the other arguments and the cut-off day."""
    rest, day = [], None
    i = 0
    while i < len(args):
        word = args[i]
        lowered = word.lower()
        if lowered in AS_OF_WORDS:
            day = args[i + 1] if i + 1 < len(args) else ""
            i += 2
            continue
        joined = next((w for w in AS_OF_WORDS if lowered.startswith(w) and len(word) > len(w)), None)
        if joined:
            day = word[len(joined):].lstrip("=:：")
        else:
            rest.append(word)
        i += 1
    return rest, day


def _cutoff(context: GridContext, period: Period, as_of: str | None):  # noqa: ANN202
    """Now, or the end of the `as-of` day."""
    if as_of is None:
        return clock.now()
    try:
        return periods.cutoff_of_day(as_of, period, clock.now(), context.settings.tz)
    except ValueError:
        raise RuleError("as_of_invalid", text=as_of) from None


def _rate(value: float | None) -> str:
    return percent(value) if value is not None else "—"


def _duration(context: GridContext, seconds: float | None) -> str:
    if seconds is None:
        return "—"
    hours = seconds / 3600
    return context._("{n} h").format(n=f"{hours:.1f}") if hours < 48 else context._("{n} d").format(n=f"{hours / 24:.1f}")


def _when(context: GridContext, at) -> str:  # noqa: ANN001
    return at.astimezone(context.settings.tz).strftime("%Y-%m-%d %H:%M") if at else "—"


async def _run(event: Inbound, context: GridContext, body) -> None:  # noqa: ANN001
    """Run a command body; a RuleError becomes its message."""
    context.args = clean_args(context.args)  # arguments reach SQL: no control characters (a NUL breaks PostgreSQL)
    try:
        await body()
    except RuleError as err:
        await context.reply(esc_rule(context, err))


# -- figures ----------------------------------------------------------------------------------


def stats_text(context: GridContext, f: stats.StreetFigures, scope_label: str) -> str:
    _ = context._
    i = f.issues
    day, at_time = periods.cutoff_day(f.at, context.settings.tz)
    cutoff = day.isoformat() + (f" {at_time}" if at_time else "")
    lines = [
        _("📊 <b>Figures {period}</b> · {scope}").format(period=f.period.label, scope=esc(scope_label)),
        _("as at {cutoff}").format(cutoff=cutoff),
        "",
        _("🏠 <b>Home visits</b>"),
        _("Visits: {n}").format(n=f.visits),
        _("Households visited: {visited} of {households} = coverage {coverage}").format(
            visited=f.households_visited, households=f.households, coverage=percent(f.coverage)),
        _("Street target {target} (households-weighted over the grids' targets): {verdict}").format(
            target=percent(f.target), verdict=_("met") if f.coverage >= f.target - 1e-12 else _("not met")),
        _("Grids at their target: {met} of {n}; behind pace: {behind}").format(met=f.grids_target_met, n=len(f.grids), behind=f.grids_behind),
        _("Residents on file: {n}").format(n=f.residents),
        "",
        _("🍽 <b>Food-safety patrols</b>"),
        _("Patrols: {n}; shops checked: {covered} of {registered} registered").format(
            n=f.patrol("patrols"), covered=f.patrol("shops_covered"), registered=f.patrol("shops_registered")),
        _("Corrected on the spot: {c}; escalated: {e}").format(c=f.patrol("corrections"), e=f.patrol("escalations")),
        _("Shops ordered to rectify on site: {r}; fined: {fi}; closed for rectification: {s}; outcome pending: {p}").format(
            r=f.patrol("rectify_on_site"), fi=f.patrol("fined"), s=f.patrol("suspended"), p=f.patrol("pending")),
        _("Open rectification orders: {o}; re-inspections overdue: {od}").format(o=f.patrol("open_orders"), od=f.patrol("overdue_reinspections")),
        "",
        _("📝 <b>Issue reports</b>"),
        _("Problems collected: {n} (besides them, rejected: {x}); resolved or closed: {r}; open: {o}; overdue: {od}").format(
            n=i.collected, r=i.resolved, x=i.rejected, o=i.open, od=i.overdue),
        _("Resolution rate: {rate}; on time: {on_time}; median time to resolve: {median}").format(
            rate=_rate(i.resolution_rate), on_time=_rate(i.on_time_rate), median=_duration(context, i.median_resolve_seconds)),
    ]
    return "\n".join(lines)


@requires(*MANAGERS)
async def stats_command(event: Inbound, context: GridContext) -> None:
    async def body() -> None:
        args, as_of = _split_as_of(context.args or [])
        period, code = _period_and_grid(context, args)
        at = _cutoff(context, period, as_of)
        async with context.db.session() as session:
            ids = await _scope(session, context, code)
            figures = await stats.street_figures(session, ids, period, at, context.settings.tz)
        label = code or (context._("all grids") if _member(context).is_admin else context._("your grids"))
        await context.reply(stats_text(context, figures, label))

    await _run(event, context, body)


@requires(*MANAGERS)
async def overdue_command(event: Inbound, context: GridContext) -> None:
    async def body() -> None:
        args = context.args or []
        async with context.db.session() as session:
            ids = await _scope(session, context, args[0] if args else None)
            issues, total = await admin_model.overdue_issues(session, ids, clock.now())
        if not issues:
            await context.reply(context._("✅ No overdue issue."))
            return
        lines = [context._("⏰ <b>Overdue issues: {n}</b>").format(n=total)]
        for v in issues:
            lines.append(context._("{id} · {grid} · {category} · {status} · due {due} · {who}").format(
                id=v.human_id, grid=esc(v.grid_code), category=esc(category_label(context._, v.category)), status=esc(status_label(context._, v.status)), due=_when(context, v.due_at),
                who=esc(v.assignee_name or context._("not assigned"))))
        if total > len(issues):
            lines.append(context._("… and {n} more").format(n=total - len(issues)))
        await context.reply("\n".join(lines))

    await _run(event, context, body)


@requires(*MANAGERS)
async def workers_command(event: Inbound, context: GridContext) -> None:
    async def body() -> None:
        args = context.args or []
        period = _parse_period(context, args[0] if args else None, "month")
        async with context.db.session() as session:
            ids = await scope_grid_ids(session, _member(context))
            rows = await stats.worker_activity(session, ids, period)
        lines = [context._("👷 <b>Workers, {period}</b>: visits / patrols / reports · last activity").format(period=period.label)]

        def line(w) -> str:  # noqa: ANN001
            mark = "" if w.active else " ⛔"
            return f"{esc(w.name or '?')}{mark} ({esc(','.join(w.grid_codes))}): {w.visits} / {w.patrols} / {w.reports} · {_when(context, w.last_activity)}"

        lines += [line(w) for w in rows if w.role == Role.WORKER.value] or [context._("No workers in your grids.")]
        supervisors = [line(w) for w in rows if w.role == Role.SUPERVISOR.value]
        if supervisors:
            lines += ["", context._("🧭 <b>Supervisors</b>"), *supervisors]
        await context.reply("\n".join(lines))

    await _run(event, context, body)


@requires(*MANAGERS)
async def grids_command(event: Inbound, context: GridContext) -> None:
    async with context.db.session() as session:
        rows = await admin_model.grid_rows(session, await scope_grid_ids(session, _member(context)))
    lines = [context._("🗺 <b>Grids: {n}</b>").format(n=len(rows))]
    for g in rows:
        lines.append(context._("{code} · {name}: {households} households, {shops} shops, {workers} workers, target {target}; supervisors: {sups}").format(
            code=esc(g.code), name=esc(g.name), households=g.households, shops=g.shops, workers=g.workers, target=f"{g.target * 100:g}%",
            sups=esc("、".join(g.supervisors) or "—")))
    await context.reply("\n".join(lines))


@requires(Role.ADMIN)
async def targets_command(event: Inbound, context: GridContext) -> None:
    async def body() -> None:
        args = context.args or []
        if len(args) not in (2, 3) or args[0].lower() not in ("half", "半年", "h"):
            await context.reply(context._("Usage: /targets half PERCENT [GRID]\nExample: /targets half 25 G01 (the half-year visit-coverage target)"))
            return
        try:
            value = float(args[1].rstrip("%"))
        except ValueError:
            raise RuleError("target_range") from None
        async with context.db.session() as session:
            ids = await _scope(session, context, args[2] if len(args) == 3 else None)
            n = await admin_model.set_targets(session, ids, value)
            await audit.record(session, _member(context).id, _actor(context), "targets", percent=value, grids=ids)
        await context.reply(context._("Half-year visit-coverage target set to {target} for {n} grid(s).").format(target=f"{value:g}%", n=n))

    await _run(event, context, body)


@requires(*MANAGERS)
async def summary_command(event: Inbound, context: GridContext) -> None:
    async def body() -> None:
        args, as_of = _split_as_of(context.args or [])
        period = _parse_period(context, args[0] if args else None)
        at = _cutoff(context, period, as_of)
        async with context.db.session() as session:
            ids = await scope_grid_ids(session, _member(context))
            figures = await stats.street_figures(session, ids, period, at, context.settings.tz)
        numbers = numbers_from(figures, context.settings.tz)
        text = paragraph(numbers, context.lang)
        await context.reply(esc(text))
        from models.summary import paragraph_en, paragraph_zh

        data = summary_workbook(figures, context.settings.tz, [paragraph_zh(numbers), paragraph_en(numbers)])
        await context.channel.send_document(context.address, data, f"gridbot-summary-{period.label}.xlsx")

    await _run(event, context, body)


# -- users ----------------------------------------------------------------------------------------


def _actor(context: GridContext) -> str:
    member = _member(context)
    return member.display_name or member.handle


@requires(*MANAGERS)
async def users_command(event: Inbound, context: GridContext) -> None:
    member = _member(context)
    async with context.db.session() as session:
        rows = await admin_model.list_users(session, None if member.is_admin else list(member.grid_ids))
    lines = [context._("👥 <b>Users: {n}</b>").format(n=len(rows))]
    for u in rows:
        name, phone = u.name, u.phone  # within the caller's scope: shown (supervisors reach their workers by phone)
        state = "" if u.active else " ⛔ " + context._("deactivated")
        lines.append(f"#{u.id} {esc(name or '?')} · {role_name(context, Role(u.role))} · {esc(','.join(u.grid_codes) or '—')} · "
                     f"<code>{esc(u.handle)}</code>{' · ' + esc(phone) if phone else ''}{state}")
    await context.reply("\n".join(lines))


async def refresh_menu(context: GridContext, member: Member) -> None:
    """The changed user's command menu, at once, in their language."""
    from handlers.start import set_menu

    await set_menu(context, member, member.language or context.settings.default_language)


@requires(Role.ADMIN)
async def setrole_command(event: Inbound, context: GridContext) -> None:
    async def body() -> None:
        args = context.args or []
        if len(args) != 2:
            await context.reply(context._("Usage: /setrole USER worker|supervisor|admin"))
            return
        role = parse_role(args[1])
        async with context.db.session() as session:
            target = await admin_model.find_user(session, args[0])
            changed = await admin_model.set_role(session, _member(context), target, role)
            await audit.record(session, _member(context).id, _actor(context), "setrole", user=target.id, old=target.role.value, new=role.value)
        await refresh_menu(context, changed)
        await context.reply(context._("{user} is now {role}.").format(user=esc(changed.display_name or changed.handle),
                                                                              role=role_name(context, role)))

    await _run(event, context, body)


@requires(Role.ADMIN)
async def setgrid_command(event: Inbound, context: GridContext) -> None:
    async def body() -> None:
        args = context.args or []
        if len(args) != 2:
            await context.reply(context._("Usage: /setgrid USER GRID[,GRID]"))
            return
        async with context.db.session() as session:
            target = await admin_model.find_user(session, args[0])
            old = [g.code for g in await grids_by_ids(session, target.grid_ids)]
            changed, grids = await admin_model.set_grids(session, target, admin_model.parse_grid_codes(args[1]))
            await audit.record(session, _member(context).id, _actor(context), "setgrid", user=target.id, old=old, new=[g.code for g in grids])
        await refresh_menu(context, changed)
        await context.reply(context._("{user}'s grids: {grids}.").format(user=esc(changed.display_name or changed.handle),
                                                                                  grids=esc("、".join(f"{g.code} {g.name}" for g in grids))))

    await _run(event, context, body)


@requires(Role.ADMIN)
async def deactivate_command(event: Inbound, context: GridContext) -> None:
    async def body() -> None:
        args = context.args or []
        if not args:
            await context.reply(context._("Usage: /deactivate USER [reason]"))
            return
        note = " ".join(args[1:]) or context._("account deactivated")
        async with context.db.session() as session:
            target = await admin_model.find_user(session, args[0])
            handed = await admin_model.deactivate(session, _member(context), target, note)
            await audit.record(session, _member(context).id, _actor(context), "deactivate", user=target.id, issues=[h.issue.human_id for h in handed])
        name = target.display_name or target.handle
        await after_deactivation(context, target, handed, name)
        await context.reply(context._("{user} is deactivated; their records stay. Issues handed back to the supervisors: {n}.").format(
            user=esc(name), n=len(handed)))

    await _run(event, context, body)


async def after_deactivation(context: GridContext, target: Member, handed: list, name: str) -> None:
    """After the commit: clear the user's command menu and tell the supervisors which issues came back."""
    try:
        await context.channel.set_commands(address_of(target, context.channel.name), None)
    except ChannelError:
        log.warning("could not clear the command menu of user %s", target.id)
    for h in handed:
        for sup in h.supervisors:
            t = gettext_for(sup.language or context.settings.default_language)
            try:
                await context.send_to(address_of(sup, context.channel.name), t(
                    "↩️ Issue {id} ({category}, {grid}) is back in your dispatch queue: its assignee {name} was deactivated. See /tasks."
                ).format(id=h.issue.human_id, category=esc(h.issue.category), grid=esc(h.issue.grid_code), name=esc(name)))
            except ChannelError:
                log.warning("could not tell supervisor %s about issue %s", sup.id, h.issue.id)


# -- import and export ----------------------------------------------------------------------------

IMPORT_WAIT = "import_kind"


@requires(Role.ADMIN)
async def import_command(event: Inbound, context: GridContext) -> None:
    args = context.args or []
    if len(args) != 1 or args[0].lower() not in IMPORT_KINDS:
        await context.reply(context._("Usage: /import {kinds}\nThen send the CSV or XLSX file as a document (formats: README).").format(
            kinds="|".join(IMPORT_KINDS)))
        return
    kind = args[0].lower()
    context.user_data[IMPORT_WAIT] = kind
    await context.reply(context._("Send the {kind} file now as a document (CSV in UTF-8 or GBK, or XLSX). Every row is checked first; "
                                           "if any is wrong, nothing is written.").format(kind=kind))
    name, data = template(kind)
    with contextlib.suppress(ChannelError):  # the template is a help; the import waits either way
        await context.channel.send_document(context.address, data, name,
                                            caption=context._("📄 A template with example rows: fill it in (keep the header row) and send it back."))


async def _progress_message(event: Inbound, context: GridContext):  # noqa: ANN202
    """'Importing… n%' as one message edited as rows go in (where the channel cannot edit, only the
    start and the outcome are said); returns how to say the outcome, and the progress callback."""
    ref = await context.reply(context._("⏳ Importing… 0%"))
    state = {"pct": 0}

    async def progress(done: int, total: int) -> None:
        pct = min(100, int(100 * done / total)) if total else 100
        if pct - state["pct"] < 20 and pct < 100 or not context.channel.abilities.edit or ref is None:
            return  # a few edits, not one per batch
        state["pct"] = pct
        with contextlib.suppress(ChannelError):
            await context.channel.edit(context.address, ref, context._("⏳ Importing… {pct}%").format(pct=pct))

    async def outcome(text: str) -> None:
        if context.channel.abilities.edit and ref is not None:
            try:
                await context.channel.edit(context.address, ref, text)
                return
            except ChannelError:
                log.info("could not edit the import progress message; sending the outcome anew")
        await context.reply(text)

    return outcome, progress


async def import_document(event: Inbound, context: GridContext) -> None:
    """A document: the file of a pending /import (admins only)."""
    member = context.member
    kind = (context.user_data or {}).get(IMPORT_WAIT)
    if member is None or not member.is_admin or kind is None:
        from handlers.start import outside_any_flow

        await outside_any_flow(event, context)  # no import is waiting: a document like any other stray message
        return
    context.user_data.pop(IMPORT_WAIT, None)
    document = event.file
    data = await context.channel.download(document)
    name = document.name or "upload"
    try:
        (headers, rows), history = read_upload(kind, data, name)
    except FileProblem as exc:
        await context.reply(context._("❌ Import refused, nothing was written:") + "\n" + esc("\n".join(report([exc.problem], context._))))
        return
    outcome, progress = await _progress_message(event, context)
    try:
        async with context.db.session() as session:
            result = await run_import(session, kind, headers, rows, context.settings.tz, context.settings.visit_target,
                                      context.settings.issue_categories, progress, context.settings.rectify_days_default, history)
            await audit.record(session, member.id, _actor(context), "import", kind=kind, file=name, rows=result.rows, created=result.created,
                               updated=result.updated, unchanged=result.unchanged)
    except ImportRefused as exc:
        text = context.n_("❌ Import refused: {n} problem; nothing was written.", "❌ Import refused: {n} problems; nothing was written.",
                          len(exc.problems)).format(n=len(exc.problems))
        await outcome(text + "\n" + esc("\n".join(report(exc.problems, context._, limit=30))))
        return
    await outcome(context.n_("✅ Imported {kind}: {rows} row — {created} new, {updated} updated, {unchanged} unchanged.",
                                       "✅ Imported {kind}: {rows} rows — {created} new, {updated} updated, {unchanged} unchanged.", result.rows).format(
        kind=kind, rows=result.rows, created=result.created, updated=result.updated, unchanged=result.unchanged))


@requires(*MANAGERS)
async def export_command(event: Inbound, context: GridContext) -> None:
    async def body() -> None:
        args = context.args or []
        if not 2 <= len(args) <= 3 or args[0].lower() not in EXPORT_KINDS:
            await context.reply(context._("Usage: /export visits|patrols|issues|summary PERIOD [GRID]\nExample: /export visits 2026H1 G01"))
            return
        kind, period = args[0].lower(), _parse_period(context, args[1])
        code = args[2] if len(args) == 3 else None
        member = _member(context)
        async with context.db.session() as session:
            ids = await _scope(session, context, code)
            name, data = await build_export(session, kind, period, ids, context.settings.tz, not member.is_admin, clock.now(), code or "")
            await audit.record(session, member.id, _actor(context), "export", kind=kind, period=period.label, grid=code,
                               masked=not member.is_admin)
        await context.channel.send_document(context.address, data, name)

    await _run(event, context, body)


HANDLERS = [
    Command("invite", invite_command),
    Command("grid_add", grid_add_command),
    Command("stats", stats_command),
    Command("overdue", overdue_command),
    Command("workers", workers_command),
    Command("grids", grids_command),
    Command("targets", targets_command),
    Command("summary", summary_command),
    Command("users", users_command),
    Command("setrole", setrole_command),
    Command("setgrid", setgrid_command),
    Command("deactivate", deactivate_command),
    Command("import", import_command),
    Command("export", export_command),
    OnFile(import_document),
]
