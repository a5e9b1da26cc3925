"""Handlers: thin layers that turn chat input into calls on models/ and results into messages.

Each flow module exposes `FLOWS` (guided conversations), `HANDLERS` (commands and buttons that
work whatever the user is doing) and optionally `async def on_startup(app)` (e.g. to schedule
its jobs). Order matters inside group 0: the first matching handler wins, so conversations come
first and the catch-alls last.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, MessageHandler, TypeHandler, filters

from handlers import admin, corrections, errors, issues, menu, patrols, privacy, reminders, start, visits
from handlers.common import gate
from handlers.flow import FLOW_BY_NAME, stale_button

log = logging.getLogger(__name__)

GATE_GROUP = -1
MODULES = (start, visits, patrols, issues, reminders, menu, admin, corrections, privacy)


def register_all(app) -> None:  # noqa: ANN001
    timeout = app.settings.conversation_timeout_minutes
    app.add_handler(TypeHandler(Update, gate), group=GATE_GROUP)
    for module in MODULES:
        for flow in getattr(module, "FLOWS", []):
            app.add_handler(flow.handler(timeout))
    for module in MODULES:
        app.add_handlers(getattr(module, "HANDLERS", []))
    app.add_handlers([
        CommandHandler("cancel", start.cancel_outside_flow),
        CallbackQueryHandler(stale_button),
        MessageHandler(filters.ALL, start.outside_any_flow),
    ])
    app.add_error_handler(errors.on_error)


async def on_startup(app) -> None:  # noqa: ANN001
    """Guest command menus, timeouts for drafts open when the bot stopped, and each module's start-up."""
    try:
        await start.set_default_menus(app.bot, app.settings.default_language)
    except Exception:  # noqa: BLE001 - a menu is not worth refusing to start over
        log.warning("could not set the default command menu", exc_info=True)
    for flow in FLOW_BY_NAME.values():
        await flow.sweep_on_startup(app, app.user_data)
    for module in MODULES:
        hook = getattr(module, "on_startup", None)
        if hook is not None:
            await hook(app)
