"""The main menu's commands: /menu, and the list buttons (`menu:tasks`, `menu:my`).

The buttons themselves (handlers.start.menu_markup) come with /menu, /help, the welcome and every
"not waiting for anything"; a form's button (`menu:visit`, …) is an entry of that form
(handlers.flow.Flow.handler).
"""

from __future__ import annotations

from bot.chat import Inbound
from bot.context import GridContext
from bot.engine import Command, OnButton
from handlers.issues import tasks_command
from handlers.start import may_use, menu_markup
from handlers.visits import my_command

LISTS = {"tasks": tasks_command, "my": my_command}


async def menu_command(event: Inbound, context: GridContext) -> None:
    await context.reply(context._("What would you like to do?"), markup=menu_markup(context))


async def menu_button(event: Inbound, context: GridContext) -> None:
    """`menu:tasks`, `menu:my`: the list, as its command gives it."""
    command = event.button.removeprefix("menu:")
    if command not in LISTS or not may_use(context, command):
        await context.toast(context._("This button is not for your role."))
        return
    await context.toast()
    await LISTS[command](event, context)


HANDLERS = [
    Command("menu", menu_command),
    OnButton(r"^menu:(tasks|my)$", menu_button),
]
