"""Joining (`/start <code>`), `/help`, `/lang`, the command menu, and what falls outside any flow.

```mermaid
stateDiagram-v2
    [*] --> NAME: /start CODE (valid invitation) or first /start of a configured admin
    NAME --> PHONE: display name
    PHONE --> [*]: shared contact, typed number or /skip
```
"""

from __future__ import annotations

import logging
import re

from bot.chat import CLEAR, COMMAND, OPENED, AskContact, Button, Buttons, ChannelError, Inbound
from bot.context import GridContext
from bot.engine import Command, OnButton
from bot.i18n import N_, gettext_for
from bot.settings import SUPPORTED_LANGUAGES
from handlers.common import address_of, esc, not_registered_text, role_name
from handlers.flow import END, STAY, Flow, Step, keyboard, register_flow, rule_message, tell_outcome, timed_out_flow
from models.errors import RuleError
from models.tables import Role
from models.text import one_line
from models.users import (
    Member,
    create_link_code,
    grids_by_ids,
    member_by_id,
    redeem_invitation,
    redeem_link_code,
    register_configured_admin,
    set_language,
    set_profile,
)

log = logging.getLogger(__name__)

ALL = (Role.WORKER, Role.SUPERVISOR, Role.ADMIN)
# (command, one line of help, roles that may use it) — /help and the command menu both come from here.
COMMANDS: list[tuple[str, str, tuple[Role, ...]]] = [
    ("visit", N_("log a home visit"), ALL),
    ("my", N_("my visits and patrols, and my grids' coverage"), ALL),
    ("patrol", N_("log a food-safety patrol of a shop"), ALL),
    ("shop", N_("a shop's risk level and last patrols: /shop NAME"), ALL),
    ("shop_add", N_("register a food shop"), (Role.SUPERVISOR, Role.ADMIN)),
    ("report", N_("report a problem in your grid (an issue)"), (Role.WORKER,)),
    ("tasks", N_("issues waiting for you: to do, to dispatch, to verify"), ALL),
    ("issue", N_("an issue and its history: /issue 2605-0042"), ALL),
    ("void", N_("void a saved record with a reason: /void visit|patrol|issue ID REASON"), ALL),
    ("correct", N_("correct a saved record: /correct visit ID people|situation|notes VALUE -- REASON"), ALL),
    ("due", N_("households to visit next, care households due first"), (Role.WORKER, Role.SUPERVISOR)),
    ("outbox", N_("reminders and digests waiting or failed"), (Role.ADMIN,)),
    ("digest_now", N_("this week's digest now, to you only: /digest_now [GRID]"), (Role.ADMIN,)),
    ("schedule", N_("scheduled jobs and their next run"), (Role.ADMIN,)),
    ("invite", N_("invite someone: /invite worker|supervisor|admin GRID[,GRID]"), (Role.ADMIN,)),
    ("grid_add", N_("add a grid: /grid_add CODE NAME"), (Role.ADMIN,)),
    ("stats", N_("all figures: /stats [PERIOD] [GRID]"), (Role.SUPERVISOR, Role.ADMIN)),
    ("overdue", N_("overdue issues: /overdue [GRID]"), (Role.SUPERVISOR, Role.ADMIN)),
    ("workers", N_("per worker visits, patrols, reports: /workers [PERIOD]"), (Role.SUPERVISOR, Role.ADMIN)),
    ("grids", N_("the grids, their households, shops, workers and targets"), (Role.SUPERVISOR, Role.ADMIN)),
    ("summary", N_("the period work-report paragraph and table: /summary PERIOD"), (Role.SUPERVISOR, Role.ADMIN)),
    ("export", N_("export as XLSX: /export visits|patrols|issues|summary PERIOD [GRID]"), (Role.SUPERVISOR, Role.ADMIN)),
    ("users", N_("the users of your grids"), (Role.SUPERVISOR, Role.ADMIN)),
    ("targets", N_("set the visit target: /targets half PERCENT [GRID]"), (Role.ADMIN,)),
    ("setrole", N_("change a role: /setrole USER ROLE"), (Role.ADMIN,)),
    ("setgrid", N_("change grids: /setgrid USER GRID[,GRID]"), (Role.ADMIN,)),
    ("deactivate", N_("deactivate a user: /deactivate USER [reason]"), (Role.ADMIN,)),
    ("forget", N_("anonymise a departing user and close their account: /forget USER"), (Role.ADMIN,)),
    ("import", N_("import a registry or ledger: /import KIND, then the file"), (Role.ADMIN,)),
    ("link", N_("use gridbot on another platform too (WeCom, Telegram): a code to send there"), ALL),
    ("forget_me", N_("remove my name and phone and close my account"), ALL),
    ("menu", N_("the main menu: buttons for visit, patrol, report, to do, mine"), ALL),
    ("lang", N_("switch language (中文 / English)"), ALL),
    ("cancel", N_("cancel the form you are filling in"), ALL),
    ("help", N_("the commands you can use"), ALL),
]
GUEST_COMMANDS = [("start", N_("join gridbot with your invitation code")), ("help", N_("how to join"))]

NAME, PHONE = "NAME", "PHONE"
JOIN_RULES = {
    "invite_unknown": N_("This invitation code is not valid. Check the link, or ask your administrator for a new one."),
    "invite_used": N_("This invitation has already been used. Ask your administrator for a new one."),
    "invite_expired": N_("This invitation has expired. Ask your administrator for a new one."),
    "already_registered": N_("You are already registered; the invitation was not used."),
}


LINK_RULES = {
    "link_unknown": N_("That link code is not valid. Send /link on the platform where you already use gridbot to get a new one."),
    "link_used": N_("That link code has already been used. Send /link on your other platform for a new one."),
    "link_expired": N_("That link code has expired (they last 10 minutes). Send /link on your other platform for a new one."),
    "link_same_channel": N_("Your account already has an identity on this platform; a link code binds a second platform."),
    "already_registered": N_("You are already registered here; a link code is for a platform where you are not yet."),
}


# A few commands do less for some roles: a worker's /tasks has nothing to dispatch or verify.
FOR_ROLE = {
    ("tasks", Role.WORKER): N_("your assigned issues: start, resolve or hand back each"),
    ("users", Role.ADMIN): N_("every user, with role and grids"),
}
# /help for supervisors and admins, who have many commands, in groups (workers get one short list).
GROUPS = (
    (N_("Daily work"), ("visit", "patrol", "report", "tasks", "issue", "due", "my", "shop", "shop_add", "void", "correct")),
    (N_("Figures"), ("stats", "overdue", "workers", "grids", "summary", "digest_now")),
    (N_("People"), ("users", "invite", "setrole", "setgrid", "deactivate", "forget")),
    (N_("Ledgers"), ("import", "export", "grid_add", "targets", "outbox", "schedule")),
)


# The main menu, for people who do not type commands: (command, label), two to a row.
MENU = (("visit", N_("🏠 Visit")), ("patrol", N_("🍽 Patrol")), ("report", N_("📝 Report")), ("tasks", N_("📋 To do")), ("my", N_("📊 Mine")))


def may_use(context: GridContext, command: str) -> bool:
    member = context.member
    return member is not None and member.active and any(c == command and member.role in roles for c, _d, roles in COMMANDS)


def menu_markup(context: GridContext) -> Buttons | None:
    """The menu buttons the caller's role may use (a worker reports; supervisors dispatch instead)."""
    items = [Button(context._(label), data=f"menu:{cmd}") for cmd, label in MENU if may_use(context, cmd)]
    return Buttons.of([items[i:i + 2] for i in range(0, len(items), 2)]) if items else None


def commands_for(role: Role | None) -> list[tuple[str, str]]:
    if role is None:
        return GUEST_COMMANDS
    return [(c, FOR_ROLE.get((c, role), d)) for c, d, roles in COMMANDS if role in roles]


def help_text(context: GridContext) -> str:
    member = context.member
    if member is None or not member.active:
        return not_registered_text(context)
    lines = [context._("Your role: {role}. Your commands:").format(role=role_name(context, member.role))]
    mine = commands_for(member.role)
    if member.role == Role.WORKER:
        lines += [f"/{cmd} — {esc(context._(desc))}" for cmd, desc in mine]
        return "\n".join(lines)
    grouped = {c for _title, names in GROUPS for c in names}
    for title, names in (*GROUPS, (N_("Other"), tuple(c for c, _d in mine if c not in grouped))):
        part = [f"/{cmd} — {esc(context._(desc))}" for cmd, desc in mine if cmd in names]
        if part:
            lines += ["", f"<b>{esc(context._(title))}</b>", *part]
    return "\n".join(lines)


async def set_menu(context: GridContext, member: Member, language: str) -> None:
    """The command menu of one user (where the channel has one): their role's commands in their language."""
    if not context.channel.abilities.commands_menu:
        return
    t = gettext_for(language)
    try:
        await context.channel.set_commands(address_of(member, context.channel.name), [(c, t(d)) for c, d in commands_for(member.role)])
    except ChannelError:
        log.warning("could not set the command menu of user %s", member.id)


async def set_default_menus(channel, default_language: str) -> None:  # noqa: ANN001 - a bot.chat.Channel
    """Guests see /start and /help, in Chinese by default and in English for English clients."""
    if not channel.abilities.commands_menu:
        return
    for language, code in ((default_language, None), ("en", "en"), ("zh_CN", "zh")):
        t = gettext_for(language)
        await channel.set_commands(None, [(c, t(d)) for c, d in GUEST_COMMANDS], language=code)


# -- /start and joining ----------------------------------------------------------------------


async def begin_join(event: Inbound, context: GridContext) -> dict | None:
    code = context.args[0] if context.args else None
    member = context.member
    if member is not None:
        if not member.active:
            await context.reply(context._("Your gridbot account has been deactivated. Ask your street office if this is a mistake."))
        else:
            prefix = context._("You are already registered; the invitation was not used.") + "\n\n" if code else ""
            welcome = context._("Welcome back, {name}!").format(name=esc(member.display_name or event.name))
            await context.reply(prefix + welcome + "\n\n" + help_text(context), markup=menu_markup(context))
        return None
    async with context.db.session() as session:
        if code:
            try:
                member = await redeem_invitation(session, code[:64], event.user_key, event.name[:64], context.lang, context.channel.name)
            except RuleError as err:
                await context.reply(rule_message(context, err, JOIN_RULES))
                return None
        elif context.settings.is_configured_admin(context.channel.name, event.user_key):
            member = await register_configured_admin(session, event.user_key, event.name[:64], context.lang, context.channel.name)
        else:
            await context.reply(not_registered_text(context))
            return None
        grids = await grids_by_ids(session, member.grid_ids)
    context.member = member
    await set_menu(context, member, context.lang)
    grid_text = "、".join(f"{g.code} {g.name}" for g in grids) or "—"
    await context.reply(context._("Welcome to gridbot! You joined as {role}; grids: {grids}.").format(
        role=role_name(context, member.role), grids=esc(grid_text)))
    return {"telegram_name": event.name[:64]}


async def ask_name(event: Inbound, context: GridContext, draft: dict) -> None:
    await context.reply(context._("What name should colleagues see? Send your name (e.g. 王芳)."))


async def name_text(event: Inbound, context: GridContext, draft: dict) -> str | None:
    name = one_line(event.text)
    if not 1 <= len(name) <= 32:
        await context.reply(context._("Please send a name of 1 to 32 characters."))
        return STAY
    draft["data"]["name"] = name
    return PHONE


async def ask_phone(event: Inbound, context: GridContext, draft: dict) -> None:
    if context.channel.abilities.contact_button:
        text = context._("Share your phone number with the button below (supervisors use it to reach you), type it, or /skip.")
    else:
        text = context._("Type your phone number (supervisors use it to reach you), or /skip.")
    await context.reply(text, AskContact(context._("📱 Share my phone number")))


_PHONE = re.compile(r"^\+?\d[\d\- ]{5,18}\d$")


async def phone_contact(event: Inbound, context: GridContext, draft: dict) -> str | None:
    contact = event.contact
    assert contact is not None
    if not contact.own:
        await context.reply(context._("Please share your own number with the button, type it, or /skip."))
        return STAY
    return await _finish_join(event, context, draft, contact.phone)


async def phone_text(event: Inbound, context: GridContext, draft: dict) -> str | None:
    phone = one_line(event.text)
    if not _PHONE.match(phone):
        await context.reply(context._("That does not look like a phone number. Type it like 13812345678, share it with the button, or /skip."))
        return STAY
    return await _finish_join(event, context, draft, phone)


async def phone_skip(event: Inbound, context: GridContext, draft: dict) -> str | None:
    return await _finish_join(event, context, draft, None)


async def _finish_join(event: Inbound, context: GridContext, draft: dict, phone: str | None) -> str:
    member = context.member
    assert member is not None
    async with context.db.session() as session:
        await set_profile(session, member.id, display_name=draft["data"]["name"], phone=phone)
    await tell_outcome(event, context, draft, [
        (context._("Thank you, {name}. You are all set.").format(name=esc(draft["data"]["name"])), CLEAR),
        (help_text(context), menu_markup(context)),
    ])
    return END


JOIN_FLOW = register_flow(Flow(
    name="join",
    title=N_("registration"),
    command="start",
    confirm=PHONE,
    begin=begin_join,
    steps=[
        Step(NAME, ask_name, N_("your name as text"), on_text=name_text),
        Step(PHONE, ask_phone, N_("your phone number (button or typed), or /skip"), on_contact=phone_contact, on_text=phone_text, on_skip=phone_skip),
    ],
))


# -- help, language, and what falls outside any flow ------------------------------------------


async def help_command(event: Inbound, context: GridContext) -> None:
    await context.reply(help_text(context), markup=menu_markup(context))


LANGUAGE_NAMES = {"zh_CN": "中文", "en": "English"}


async def lang_command(event: Inbound, context: GridContext) -> None:
    rows = [[_lang_button(code)] for code in SUPPORTED_LANGUAGES]
    await context.reply(context._("Choose your language:"), markup=keyboard(rows))


def _lang_button(code: str) -> Button:
    return Button(LANGUAGE_NAMES[code], data=f"lang:{code}")


async def lang_button(event: Inbound, context: GridContext) -> None:
    code = event.button.removeprefix("lang:")
    member = context.member
    if code not in SUPPORTED_LANGUAGES or member is None:
        await context.toast()
        return
    async with context.db.session() as session:
        await set_language(session, member.id, code)
        member = await member_by_id(session, member.id)
    context.lang, context.member = code, member
    if context.draft is not None:
        context.draft["lang"] = code
    await context.toast()
    await context.edit(context._("Language set to {language}.").format(language=LANGUAGE_NAMES[code]))
    await set_menu(context, member, code)


async def cancel_outside_flow(event: Inbound, context: GridContext) -> None:
    await context.reply(context._("There is nothing to cancel."))


async def outside_any_flow(event: Inbound, context: GridContext) -> None:
    """A message no flow is waiting for."""
    closed = timed_out_flow(context)
    if event.kind == OPENED:  # the person opened the chat (WeCom's enter_chat): the welcome is their menu
        await help_command(event, context)
    elif closed is not None and event.kind != COMMAND:  # the first message after a timeout closed a form
        await context.reply(context._("That form is no longer open. Send /{command} to start again.").format(command=closed.command))
    elif event.kind == COMMAND or event.text.startswith("/"):
        await context.reply(context._("Unknown command. Send /help to see yours."))
    else:
        await context.reply(context._("I am not waiting for anything right now. Send /help to see what you can do."),
                    markup=menu_markup(context))


# -- /link: the same person on a second platform ---------------------------------------------------


async def link_command(event: Inbound, context: GridContext) -> None:
    """`/link` (registered): a code to send on the other platform. `/link CODE` (not yet registered
    here): this platform's identity joins the account that made the code, with its role and grids."""
    member = context.member
    if not context.args:
        if member is None or not member.active:
            await context.reply(not_registered_text(context))
            return
        async with context.db.session() as session:
            link = await create_link_code(session, member.id)
        await context.reply(context._(
            "To use gridbot on another platform (WeCom, Telegram, …) as the same person, send this there within 10 minutes:\n"
            "<code>/link {code}</code>\nOnly send it yourself: whoever sends it becomes you there.").format(code=link.code))
        return
    if member is not None:
        await context.reply(context._(LINK_RULES["already_registered"]))
        return
    try:
        async with context.db.session() as session:
            member = await redeem_link_code(session, context.args[0][:16], event.user_key, context.channel.name)
    except RuleError as err:
        await context.reply(rule_message(context, err, LINK_RULES))
        return
    context.member = member
    context.lang = member.language or context.lang
    await set_menu(context, member, context.lang)
    await context.reply(context._("Linked: you are {name} here too, with the same role and grids.").format(
        name=esc(member.display_name or event.name)) + "\n\n" + help_text(context), markup=menu_markup(context))


FLOWS = [JOIN_FLOW]
HANDLERS = [
    Command("link", link_command),
    Command("help", help_command),
    Command("lang", lang_command),
    OnButton(r"^lang:", lang_button),
]
