"""Application factory: PTB Application wired to settings, database, persistence and handlers."""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict

from telegram import Update
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ContextTypes, Defaults
from telegram.request import BaseRequest, HTTPXRequest

from bot.context import GridContext
from bot.db import Database
from bot.media import MediaStore
from bot.persistence import DatabasePersistence, update_digest
from bot.settings import Settings

log = logging.getLogger(__name__)
# Flows track state per user and chat, not per message, on purpose: their buttons carry the
# draft id and are checked against it (handlers/flow.py), which is what per_message would buy.
warnings.filterwarnings("ignore", message="If 'per_message=False'", category=UserWarning)


RECENT_UPDATES = 4096  # update ids remembered in memory (the database remembers them all, for 48 hours)


class GridApplication(Application):
    """PTB's Application, plus our services, a persistence write after every update, and each
    update handled once.

    Handled once: an update whose id was already handled (a webhook retry; after a crash, polling
    gets again what Telegram was not yet told was received) is skipped. The id is recorded in the
    same transaction as the chat state the update produced (bot/persistence.py), so after a crash
    either both are saved or neither, and the update is then handled again from the state before
    it. Records it wrote in its own transactions (a visit, a patrol) are idempotent by draft id,
    which covers that gap. A bounded in-memory record answers for the ids seen by this process
    and for those whose write is still pending (the database may be down); anything above the
    highest id ever recorded needs no look-up at all.
    """

    settings: Settings
    db: Database
    media: MediaStore
    _recent_updates: OrderedDict[int, str]
    _high_water: int | None

    async def process_update(self, update: object) -> None:
        update_id = update.update_id if isinstance(update, Update) else None
        digest = ""
        if update_id is not None:
            digest = update_digest(update)  # type: ignore[arg-type]
            if await self._already_handled(update_id, digest):
                log.info("update %s was delivered again; it was handled already, so it is skipped", update_id)
                return
            self._remember_update(update_id, digest)
        await super().process_update(update)
        if update_id is not None and isinstance(self.persistence, DatabasePersistence):
            self.persistence.mark_processed(self.bot.id, update_id, digest)
        # PTB flushes persistence on a timer; writing now means a SIGKILL loses no step or draft.
        if self.persistence is not None:
            try:
                await self.update_persistence()
            except Exception:  # staged changes stay and are retried with the next round
                log.exception("could not write the chat state after update %s", update_id)

    def _remember_update(self, update_id: int, digest: str) -> None:
        recent = self.__dict__.setdefault("_recent_updates", OrderedDict())
        recent[update_id] = digest
        recent.move_to_end(update_id)
        while len(recent) > RECENT_UPDATES:
            recent.popitem(last=False)
        if self.__dict__.get("_high_water") is not None:
            self._high_water = max(self._high_water, update_id)  # type: ignore[type-var]

    async def _already_handled(self, update_id: int, digest: str) -> bool:
        recent = self.__dict__.get("_recent_updates", {})
        if update_id in recent:
            return recent[update_id] == digest
        persistence = self.persistence
        if not isinstance(persistence, DatabasePersistence):
            return False
        try:
            if self.__dict__.get("_high_water") is None:
                self._high_water = await persistence.highest_processed(self.bot.id)
            if update_id > self._high_water:  # type: ignore[operator]
                return False  # above every id on record: new, no look-up needed
            return await persistence.was_processed(self.bot.id, update_id, digest)
        except Exception:  # noqa: BLE001 - the database may be down: handle it (saves are idempotent anyway)
            log.warning("could not check whether update %s was handled already", update_id, exc_info=True)
            return False

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
