"""Admin commands of the foundation: `/invite` and `/grid_add`."""

from __future__ import annotations

from telegram import Update
from telegram.ext import CommandHandler

from bot.context import GridContext
from bot.i18n import N_
from handlers.common import esc, reply, requires, role_name
from handlers.flow import rule_message
from models.errors import RuleError
from models.tables import Role
from models.users import create_grid, create_invitation, parse_role

ADMIN_RULES = {
    "role_unknown": N_("Unknown role «{role}». Use worker, supervisor or admin."),
    "grid_unknown": N_("There is no grid with code «{code}». Create it with /grid_add first."),
    "invite_needs_grid": N_("Workers and supervisors need at least one grid: /invite worker G01[,G02]"),
    "grid_code_invalid": N_("«{code}» is not a valid grid code: use 1-32 letters, digits, - or _, e.g. G01."),
    "grid_name_invalid": N_("The grid name must be 1 to 100 characters."),
    "grid_exists": N_("A grid with code «{code}» already exists."),
}


@requires(Role.ADMIN)
async def invite_command(update: Update, context: GridContext) -> None:
    args = context.args or []
    if not 1 <= len(args) <= 2:
        await reply(update, context, context._("Usage: /invite worker|supervisor|admin GRID[,GRID]\nExample: /invite worker G01,G02"))
        return
    codes = [c.strip() for c in args[1].replace("，", ",").split(",") if c.strip()] if len(args) == 2 else []
    try:
        role = parse_role(args[0])
        async with context.db.session() as session:
            invitation, grids = await create_invitation(session, role, codes, context.member.id, context.settings.invite_valid_days)
    except RuleError as err:
        await reply(update, context, esc_rule(context, err))
        return
    link = f"https://t.me/{context.bot.username}?start={invitation.code}"
    expires = invitation.expires_at.astimezone(context.settings.tz).strftime("%Y-%m-%d %H:%M")
    grid_text = "、".join(f"{g.code} {g.name}" for g in grids) or "—"
    await reply(update, context, context._(
        "🎟 Invitation for a {role}, grids: {grids}\nCode: <code>{code}</code>\nLink: {link}\n"
        "Valid until {expires}, for one person. Send them the link; opening it registers them."
    ).format(role=role_name(context, role), grids=esc(grid_text), code=invitation.code, link=esc(link), expires=expires))


@requires(Role.ADMIN)
async def grid_add_command(update: Update, context: GridContext) -> None:
    args = context.args or []
    if len(args) < 2:
        await reply(update, context, context._("Usage: /grid_add CODE NAME\nExample: /grid_add G01 幸福里第一网格"))
        return
    try:
        async with context.db.session() as session:
            grid = await create_grid(session, args[0], " ".join(args[1:]), context.settings.visit_target)
    except RuleError as err:
        await reply(update, context, esc_rule(context, err))
        return
    await reply(update, context, context._("Grid {code} · {name} added; its half-year visit-coverage target is {target}%.").format(
        code=esc(grid.code), name=esc(grid.name), target=f"{grid.target_coverage * 100:g}"))


def esc_rule(context: GridContext, err: RuleError) -> str:
    """A rule message whose details (typed by the user) are HTML-escaped."""
    safe = RuleError(err.code, **{k: esc(str(v)) for k, v in err.details.items()})
    return rule_message(context, safe, ADMIN_RULES)


HANDLERS = [
    CommandHandler("invite", invite_command),
    CommandHandler("grid_add", grid_add_command),
]
