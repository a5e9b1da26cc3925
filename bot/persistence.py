"""PTB persistence in the application's own database.

Conversation states and user data are written after every update (see `GridApplication`), not only
on PTB's periodic flush, so a SIGKILL mid-flow resumes the worker at the same step with the draft.
PTB hands over each changed blob separately; they are staged and written together in one
transaction (`write_staged`), so a user's draft and their conversation step never disagree.
Chat and bot data are not used by gridbot and not stored.

Processed updates: the id of every update handled is written in that same transaction
(`processed_update`), so a redelivered update (a webhook retry, or polling after a crash that
came before Telegram was told the offset) is recognised and skipped, and the chat state it
produced is either saved with its id or not at all. Rows older than `PROCESSED_KEEP` are pruned
(Telegram keeps an undelivered update at most 24 hours).
"""

from __future__ import annotations

import hashlib
import json
from copy import deepcopy
from datetime import datetime, timedelta

from telegram import Update
from telegram.ext import BasePersistence, PersistenceInput
from telegram.ext._utils.types import ConversationDict, ConversationKey

from bot.db import Database
from models import clock, state

PROCESSED_KEEP = timedelta(hours=48)
PRUNE_EVERY = timedelta(hours=1)


def update_digest(update: Update) -> str:
    return hashlib.sha256(json.dumps(update.to_dict(), sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:32]


_DELETE = object()
USER_DATA = "user_data"
CHAT_DATA = "chat_data"
BOT_DATA = "bot_data"


def _conv_kind(name: str) -> str:
    return f"conv:{name}"


class DatabasePersistence(BasePersistence[dict, dict, dict]):
    def __init__(self, db: Database, update_interval: float = 5) -> None:
        super().__init__(
            store_data=PersistenceInput(bot_data=False, chat_data=False, user_data=True, callback_data=False),
            update_interval=update_interval,
        )
        self.db = db
        self._staged: dict[tuple[str, str], object] = {}  # (kind, key) -> data, or _DELETE
        self._processed: list[tuple[int, int, str]] = []  # (bot id, update id, digest) handled since the last write
        self._pruned_at: datetime | None = None

    # -- reads (once, at start-up) --------------------------------------------------------------

    async def _load(self, kind: str) -> dict[str, object]:
        async with self.db.session() as session:
            return await state.load_kind(session, kind)

    async def get_user_data(self) -> dict[int, dict]:
        return {int(k): v for k, v in (await self._load(USER_DATA)).items()}  # type: ignore[misc]

    async def get_chat_data(self) -> dict[int, dict]:
        return {int(k): v for k, v in (await self._load(CHAT_DATA)).items()}  # type: ignore[misc]

    async def get_bot_data(self) -> dict:
        return deepcopy((await self._load(BOT_DATA)).get("bot", {}))  # type: ignore[return-value]

    async def get_callback_data(self) -> None:
        return None

    async def get_conversations(self, name: str) -> ConversationDict:
        rows = await self._load(_conv_kind(name))
        return {tuple(json.loads(k)): v for k, v in rows.items()}

    # -- writes ---------------------------------------------------------------------------------

    async def _put(self, kind: str, key: str, data: object) -> None:
        self._staged[(kind, key)] = data

    async def _remove(self, kind: str, key: str) -> None:
        self._staged[(kind, key)] = _DELETE

    def mark_processed(self, bot_id: int, update_id: int, digest: str) -> None:
        """Stage an update's id: it is written with the chat state the update produced."""
        self._processed.append((bot_id, update_id, digest))

    async def was_processed(self, bot_id: int, update_id: int, digest: str) -> bool:
        if (bot_id, update_id, digest) in self._processed:  # handled, its write still to come
            return True
        async with self.db.session() as session:
            return await state.was_processed(session, bot_id, update_id, digest, clock.now() - PROCESSED_KEEP)

    async def highest_processed(self, bot_id: int) -> int:
        async with self.db.session() as session:
            high = await state.highest_processed(session, bot_id, clock.now() - PROCESSED_KEEP)
        return max([high] + [u for b, u, _d in self._processed if b == bot_id])

    async def write_staged(self) -> None:
        """Write every staged change and processed update id in one transaction (after each round)."""
        if not self._staged and not self._processed:
            return
        staged, self._staged = self._staged, {}
        processed, self._processed = self._processed, []
        now = clock.now()
        prune = self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY
        try:
            async with self.db.session() as session:
                for (kind, key), data in staged.items():
                    if data is _DELETE:
                        await state.remove(session, kind, key)
                    else:
                        await state.put(session, kind, key, data)
                await state.record_processed(session, processed, now)
                if prune:
                    await state.prune_processed(session, now - PROCESSED_KEEP)
        except Exception:
            # Keep the changes for the next round, unless newer ones were staged meanwhile.
            self._staged = {**staged, **self._staged}
            self._processed = processed + self._processed
            raise
        if prune:
            self._pruned_at = now

    async def update_user_data(self, user_id: int, data: dict) -> None:
        await self._put(USER_DATA, str(user_id), data)

    async def update_chat_data(self, chat_id: int, data: dict) -> None:
        await self._put(CHAT_DATA, str(chat_id), data)

    async def update_bot_data(self, data: dict) -> None:
        await self._put(BOT_DATA, "bot", data)

    async def update_callback_data(self, data: object) -> None:
        return None

    async def update_conversation(self, name: str, key: ConversationKey, new_state: object | None) -> None:
        if new_state is None:
            await self._remove(_conv_kind(name), json.dumps(list(key)))
        else:
            await self._put(_conv_kind(name), json.dumps(list(key)), new_state)

    async def drop_user_data(self, user_id: int) -> None:
        await self._remove(USER_DATA, str(user_id))

    async def drop_chat_data(self, chat_id: int) -> None:
        await self._remove(CHAT_DATA, str(chat_id))

    async def refresh_user_data(self, user_id: int, user_data: dict) -> None:
        return None

    async def refresh_chat_data(self, chat_id: int, chat_data: dict) -> None:
        return None

    async def refresh_bot_data(self, bot_data: dict) -> None:
        return None

    async def flush(self) -> None:
        await self.write_staged()
