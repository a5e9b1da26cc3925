"""Handlers: thin layers that turn neutral chat events into calls on models/ and results into messages.

Each module exposes `FLOWS` (guided conversations), `HANDLERS` (commands, buttons and files that
work whatever the user is doing: `Command`, `OnButton`, `OnFile` of bot/engine.py) and optionally
`async def on_startup(app)` (e.g. to schedule its jobs). `routes()` gives the engine all of it.
Where two modules claim the same input, the earlier module wins.
"""

from __future__ import annotations

import logging
import re

from bot.engine import Command, OnButton, OnFile, Routes
from handlers import admin, corrections, errors, issues, menu, patrols, privacy, reminders, start, visits
from handlers.common import gate
from handlers.flow import FLOW_BY_NAME, stale_button

log = logging.getLogger(__name__)

MODULES = (start, visits, patrols, issues, reminders, menu, admin, corrections, privacy)


def routes() -> Routes:
    commands, buttons, files = {}, [], None
    for module in MODULES:
        for route in getattr(module, "HANDLERS", []):
            if isinstance(route, Command):
                commands.setdefault(route.name, route.handler)
            elif isinstance(route, OnButton):
                buttons.append((re.compile(route.pattern), route.handler))
            elif isinstance(route, OnFile):
                files = files or route.handler
    flows = {flow.name: flow for module in MODULES for flow in getattr(module, "FLOWS", [])}
    return Routes(gate=gate, flows=flows, commands=commands, buttons=buttons, files=files,
                  cancel_outside=start.cancel_outside_flow, stale_button=stale_button, anything_else=start.outside_any_flow,
                  on_error=errors.on_error)


def commands() -> set[str]:
    """Every command some handler takes (the flows' and the others')."""
    return {flow.command for flow in FLOW_BY_NAME.values()} | {r.name for m in MODULES for r in getattr(m, "HANDLERS", []) if isinstance(r, Command)}


async def on_startup(app) -> None:  # noqa: ANN001
    """Each channel's guest menus and each module's start-up (jobs)."""
    for channel in app.channels.values():
        try:
            await start.set_default_menus(channel, app.settings.default_language)
        except Exception:  # noqa: BLE001 - a menu is not worth refusing to start over
            log.warning("could not set the default command menu of %s", channel.name, exc_info=True)
    for module in MODULES:
        hook = getattr(module, "on_startup", None)
        if hook is not None:
            await hook(app)
