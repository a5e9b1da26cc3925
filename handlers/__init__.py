"""Handlers: thin layers that turn chat input into calls on models/ and results into messages."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, MessageHandler, TypeHandler, filters

from handlers import admin, errors, start, visits
from handlers.common import gate
from handlers.flow import FLOW_BY_NAME, stale_button

log = logging.getLogger(__name__)

GATE_GROUP = -1


def register_all(app) -> None:  # noqa: ANN001
    timeout = app.settings.conversation_timeout_minutes
    app.add_handler(TypeHandler(Update, gate), group=GATE_GROUP)
    # Group 0: the first matching handler wins, so flows come before the catch-alls.
    for flow in (start.JOIN_FLOW, visits.VISIT_FLOW):
        app.add_handler(flow.handler(timeout))
    app.add_handlers([
        CommandHandler("help", start.help_command),
        CommandHandler("lang", start.lang_command),
        CallbackQueryHandler(start.lang_button, pattern=r"^lang:"),
        CommandHandler("my", visits.my_command),
        CommandHandler("invite", admin.invite_command),
        CommandHandler("grid_add", admin.grid_add_command),
        CommandHandler("cancel", start.cancel_outside_flow),
        CallbackQueryHandler(stale_button),
        MessageHandler(filters.ALL, start.outside_any_flow),
    ])
    app.add_error_handler(errors.on_error)


async def on_startup(app) -> None:  # noqa: ANN001
    """Guest command menus, and timeouts for drafts that were open when the bot stopped."""
    try:
        await start.set_default_menus(app.bot, app.settings.default_language)
    except Exception:  # noqa: BLE001 - a menu is not worth refusing to start over
        log.warning("could not set the default command menu", exc_info=True)
    for flow in FLOW_BY_NAME.values():
        await flow.sweep_on_startup(app, app.user_data)
