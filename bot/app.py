"""Application factory: PTB Application wired to settings, database, persistence and handlers."""

from __future__ import annotations

import logging
import warnings

from telegram import Update
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ContextTypes, Defaults
from telegram.request import BaseRequest, HTTPXRequest

from bot.context import GridContext
from bot.db import Database
from bot.media import MediaStore
from bot.persistence import DatabasePersistence
from bot.settings import Settings

log = logging.getLogger(__name__)
# Flows track state per user and chat, not per message, on purpose: their buttons carry the
# draft id and are checked against it (handlers/flow.py), which is what per_message would buy.
warnings.filterwarnings("ignore", message="If 'per_message=False'", category=UserWarning)


class GridApplication(Application):
    """PTB's Application, plus our services and a persistence write after every update."""

    settings: Settings
    db: Database
    media: MediaStore

    async def process_update(self, update: object) -> None:
        await super().process_update(update)
        # PTB flushes persistence on a timer; writing now means a SIGKILL loses no step or draft.
        if self.persistence is not None:
            try:
                await self.update_persistence()
            except Exception:  # staged changes stay and are retried with the next round
                log.exception("could not write the chat state after update %s", getattr(update, "update_id", None))

    async def update_persistence(self) -> None:
        await super().update_persistence()
        if isinstance(self.persistence, DatabasePersistence):
            await self.persistence.write_staged()


def build_application(
    settings: Settings,
    *,
    db: Database | None = None,
    request: BaseRequest | None = None,
    updates_request: BaseRequest | None = None,
) -> GridApplication:
    if not settings.telegram_bot_token:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    db = db or Database(settings.database_url)
    builder = (
        ApplicationBuilder()
        .application_class(GridApplication)
        .token(settings.telegram_bot_token)
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_file_base_url)
        .defaults(Defaults(tzinfo=settings.tz, parse_mode="HTML"))
        .context_types(ContextTypes(context=GridContext))
        .persistence(DatabasePersistence(db))
        .rate_limiter(AIORateLimiter(max_retries=3))
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
    )
    builder = builder.request(request or HTTPXRequest(connection_pool_size=16, read_timeout=15, write_timeout=15))
    builder = builder.get_updates_request(updates_request or HTTPXRequest(read_timeout=40))
    app: GridApplication = builder.build()  # type: ignore[assignment]
    app.settings = settings
    app.db = db
    app.media = MediaStore(settings.media_dir)

    from handlers import register_all

    register_all(app)
    return app


async def _post_init(app: Application) -> None:
    from handlers import on_startup

    await on_startup(app)  # type: ignore[arg-type]


async def _post_shutdown(app: Application) -> None:
    await app.db.dispose()  # type: ignore[attr-defined]


def allowed_updates() -> list[str]:
    return [Update.MESSAGE, Update.EDITED_MESSAGE, Update.CALLBACK_QUERY]
