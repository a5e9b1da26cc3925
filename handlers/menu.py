"""The main menu's commands: /menu, and the list buttons (`menu:tasks`, `menu:my`).

The buttons themselves (handlers.start.menu_markup) come with /menu, /help, the welcome and every
"not waiting for anything"; a form's button (`menu:visit`, …) is an entry of that form
(handlers.flow.Flow.handler).
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler

from bot.context import GridContext
from handlers.common import reply
from handlers.flow import answer_query
from handlers.issues import tasks_command
from handlers.start import may_use, menu_markup
from handlers.visits import my_command

LISTS = {"tasks": tasks_command, "my": my_command}


async def menu_command(update: Update, context: GridContext) -> None:
    await reply(update, context, context._("What would you like to do?"), reply_markup=menu_markup(context))


async def menu_button(update: Update, context: GridContext) -> None:
    """`menu:tasks`, `menu:my`: the list, as its command gives it."""
    query = update.callback_query
    command = (query.data or "").removeprefix("menu:")
    if command not in LISTS or not may_use(context, command):
        await answer_query(query, context._("This button is not for your role."))
        return
    await answer_query(query)
    await LISTS[command](update, context)


HANDLERS = [
    CommandHandler("menu", menu_command),
    CallbackQueryHandler(menu_button, pattern=r"^menu:(tasks|my)$"),
]
