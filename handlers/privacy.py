"""Privacy (DESIGN.md §4): `/forget_me` (anyone, after a confirmation button) and `/forget USER` (admin).

A departing user is anonymised, not deleted: name -> 已注销用户#<id>, phone removed, their
persisted chat data (drafts) dropped, the account deactivated and their open assigned issues handed
back to dispatch. Their visits, patrols and reports stay, under the new name.
"""

from __future__ import annotations

import dataclasses
import logging

from bot.chat import Button, Buttons, Inbound
from bot.context import GridContext
from bot.engine import Command, OnButton
from handlers.admin import _actor, _run, after_deactivation
from handlers.common import esc, requires
from models import admin as admin_model
from models import audit
from models.errors import RuleError
from models.tables import Role
from models.users import Member, forget_user, forgotten_name

log = logging.getLogger(__name__)
ALL = (Role.WORKER, Role.SUPERVISOR, Role.ADMIN)


async def _forget(context: GridContext, actor: Member, target: Member) -> list | None:
    """Anonymise and deactivate `target` in one transaction; None when already forgotten. Then clean up."""
    async with context.db.session() as session:
        was_active = target.active
        if not await forget_user(session, target.id):  # the claim comes first: a second request stops here
            return None
        handed = []
        if was_active:
            handed = await admin_model.deactivate(session, actor, dataclasses.replace(target, active=True),
                                                  context._("account closed at the user's request"), allow_self=True)
        await audit.record(session, actor.id, forgotten_name(actor.id) if actor.id == target.id else _actor(context), "forget",
                           user=target.id, issues=[h.issue.human_id for h in handed])
    for channel, key in target.identities:  # loaded before the forgetting deleted them
        context.app.engine.drop(channel, key)
    await after_deactivation(context, target, handed, forgotten_name(target.id))
    return handed


@requires(*ALL)
async def forget_me_command(event: Inbound, context: GridContext) -> None:
    member = context.member
    assert member is not None
    markup = Buttons.of([
        [Button(context._("🗑 Yes, forget me"), data=f"forget:yes:{member.id}")],
        [Button(context._("Keep my account"), data="forget:no")],
    ])
    await context.reply(context._(
        "This removes your name and phone number from gridbot and closes your account. Your visits, patrols and reports stay, "
        "under the name «{name}». This cannot be undone."
    ).format(name=forgotten_name(member.id)), markup=markup)


async def forget_button(event: Inbound, context: GridContext) -> None:
    member = context.member
    assert member is not None
    parts = event.button.split(":")
    if parts[1:2] == ["no"]:
        await context.toast()
        await context.edit(context._("Nothing was changed."))
        return
    if len(parts) != 3 or parts[1] != "yes" or parts[2] != str(member.id):  # forged or someone else's button
        await context.toast(context._("This button has expired."))
        return
    done = await _forget(context, member, member)
    await context.toast()
    if done is not None:
        await context.edit(context._("Your personal data has been removed and your account is closed. Thank you for your work."))


@requires(Role.ADMIN)
async def forget_command(event: Inbound, context: GridContext) -> None:
    async def body() -> None:
        args = context.args or []
        if len(args) != 1:
            await context.reply(context._("Usage: /forget USER"))
            return
        actor = context.member
        assert actor is not None
        async with context.db.session() as session:
            target = await admin_model.find_user(session, args[0])
        if target.id == actor.id:
            raise RuleError("not_yourself")
        handed = await _forget(context, actor, target)
        if handed is None:
            await context.reply(context._("{user} has already been forgotten.").format(user=esc(args[0])))
            return
        await context.reply(context._(
            "{user} is forgotten: name and phone removed, account closed, records kept as «{name}». Issues handed back to the supervisors: {n}."
        ).format(user=esc(target.display_name or target.handle), name=forgotten_name(target.id), n=len(handed)))

    await _run(event, context, body)


HANDLERS = [
    Command("forget_me", forget_me_command),
    Command("forget", forget_command),
    OnButton(r"^forget:", forget_button),
]
