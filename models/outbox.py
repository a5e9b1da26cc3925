"""The outbox: every reminder and digest is written here under a unique key, then sent.

Key: (kind, period_key, recipient, part); recipient is `<channel>:<address>` (`recipient()`): a
person on a conversation channel (`tg:<chat id>` on Telegram) or a WeCom group robot (`wecom:<robot id>`).
States: pending -> sending -> sent; a failed try goes to `failed` (attempts, next_attempt_at,
last_error) and is retried with backoff; a permanent failure (blocked bot, bad robot key, too many
attempts) ends in `dead`. Writing a row is insert-if-absent, so a job run twice (a misfire, a
catch-up, a crash and a restart) never writes a second row.

The one window: a row is marked `sending` (committed), sent, then marked `sent` (committed). If the
process dies after Telegram accepted the message and before `sent` is committed, the row is found
in `sending` at the next start and sent again: at most one duplicate, and only then. The sender
claims one row at a time, so a crash leaves at most one row in `sending`: at most one duplicate per
crash over the whole outbox (tests/test_crash.py kills a real process on both sides of the window).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import clock
from models.tables import OutboxMessage

PENDING, SENDING, SENT, FAILED, DEAD = "pending", "sending", "sent", "failed", "dead"
STATES = (PENDING, SENDING, SENT, FAILED, DEAD)

ROBOT_PREFIX = "wecom"  # a WeCom group robot's recipient is `wecom:<robot id>` (bot/wecom.py)
WECOM_ROBOT = "wecom-robot"  # what `split_recipient` gives for one: no conversation channel is called so
# Stored prefixes that differ from the channel's name: Telegram's rows were `tg:` before channels had
# names, and `wecom:` was taken by the group robots before the WeCom AI bot channel (named "wecom").
PREFIX = {"telegram": "tg", "wecom": "wxuser"}
_CHANNEL = {prefix: name for name, prefix in PREFIX.items()}


def recipient(channel: str, address: str) -> str:
    """The outbox recipient of `address` on `channel` (a channel adapter's name)."""
    return f"{PREFIX.get(channel, channel)}:{address}"


def split_recipient(value: str) -> tuple[str, str]:
    """(channel name, address) of a recipient; (WECOM_ROBOT, robot id) for a group robot."""
    prefix, _, address = value.partition(":")
    if prefix == ROBOT_PREFIX:
        return WECOM_ROBOT, address
    return _CHANNEL.get(prefix, prefix), address


@dataclass
class NewMessage:
    """A message to write to the outbox (see `enqueue`)."""

    kind: str
    period_key: str
    recipient: str
    body: str = ""
    part: int = 0
    payload: dict | None = None
    image: bytes | None = None
    urgent: bool = False
    not_before: datetime | None = None


@dataclass(frozen=True)
class Row:
    """An outbox row as the sender sees it: a plain value."""

    id: int
    kind: str
    period_key: str
    recipient: str
    part: int
    body: str
    payload: dict | None
    image: bytes | None
    urgent: bool
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None = None
    created_at: datetime | None = field(default=None, compare=False)


def _row(m: OutboxMessage) -> Row:
    return Row(m.id, m.kind, m.period_key, m.recipient, m.part, m.body, m.payload, m.image, m.urgent, m.state, m.attempts,
               m.next_attempt_at, m.last_error, m.created_at)


async def enqueue(session: AsyncSession, messages: list[NewMessage]) -> int:
    """Write each message unless a row with its key exists; returns how many rows were written."""
    if not messages:
        return 0
    now = clock.now()
    values = [
        {"kind": m.kind, "period_key": m.period_key[:64], "recipient": m.recipient, "part": m.part, "body": m.body,
         "payload": m.payload, "image": m.image, "urgent": m.urgent, "state": PENDING, "attempts": 0,
         "next_attempt_at": m.not_before or now, "created_at": now}
        for m in messages
    ]
    dialect = session.bind.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # One statement with the rows as parameters: compiled once and cached ("insertmanyvalues"
    # batches them), 2-4x faster than a VALUES list built per call (bench/: the build's CPU time
    # on the event loop is what delays replies during a fan-out). RETURNING counts what was new.
    stmt = insert(OutboxMessage).on_conflict_do_nothing(
        index_elements=["kind", "period_key", "recipient", "part"]).returning(OutboxMessage.id)
    result = await session.exec(stmt, params=values)  # type: ignore[call-overload]
    return len(result.all())


async def exists(session: AsyncSession, kind: str, period_key: str) -> bool:
    row = (await session.exec(select(OutboxMessage.id).where(OutboxMessage.kind == kind, OutboxMessage.period_key == period_key).limit(1))).first()
    return row is not None


async def due(session: AsyncSession, at: datetime, limit: int = 500) -> list[Row]:
    """Rows to try now: pending or failed, whose time has come; urgent first, then oldest first."""
    rows = await session.exec(
        select(OutboxMessage)
        .where(col(OutboxMessage.state).in_((PENDING, FAILED)), OutboxMessage.next_attempt_at <= at)
        .order_by(col(OutboxMessage.urgent).desc(), OutboxMessage.id)
        .limit(limit)
    )
    return [_row(m) for m in rows.all()]


async def claim(session: AsyncSession, row_id: int) -> bool:
    """pending/failed -> sending (compare-and-set): only one sender sends a row."""
    done = await session.exec(  # type: ignore[call-overload]
        update(OutboxMessage).where(col(OutboxMessage.id) == row_id, col(OutboxMessage.state).in_((PENDING, FAILED)))
        .values(state=SENDING, attempts=OutboxMessage.attempts + 1)
    )
    return done.rowcount == 1


async def mark_sent(session: AsyncSession, row_id: int, at: datetime) -> None:
    await session.exec(update(OutboxMessage).where(col(OutboxMessage.id) == row_id).values(state=SENT, sent_at=at, last_error=None))  # type: ignore[call-overload]


async def mark_failed(session: AsyncSession, row_id: int, error: str, retry_at: datetime | None) -> None:
    """A failed try: retried at `retry_at`, or never again (`dead`) when it is None."""
    values: dict = {"state": FAILED if retry_at else DEAD, "last_error": error[:500]}
    if retry_at:
        values["next_attempt_at"] = retry_at
    await session.exec(update(OutboxMessage).where(col(OutboxMessage.id) == row_id).values(**values))  # type: ignore[call-overload]


async def give_back(session: AsyncSession, row_id: int, retry_at: datetime, error: str | None = None) -> None:
    """A row claimed but not tried (e.g. a flood wait): back to pending, the attempt not counted."""
    await session.exec(update(OutboxMessage).where(col(OutboxMessage.id) == row_id).values(  # type: ignore[call-overload]
        state=PENDING, next_attempt_at=retry_at, attempts=OutboxMessage.attempts - 1, last_error=error))


async def kill_recipient(session: AsyncSession, recipient: str, error: str) -> int:
    """Every unsent row of a recipient that cannot receive anything any more -> dead."""
    done = await session.exec(  # type: ignore[call-overload]
        update(OutboxMessage).where(OutboxMessage.recipient == recipient, col(OutboxMessage.state).in_((PENDING, FAILED)))
        .values(state=DEAD, last_error=error[:500])
    )
    return done.rowcount


async def recover_interrupted(session: AsyncSession) -> int:
    """At start-up (one process per database): rows left `sending` by a crash go back to pending.

    This is the documented window: such a row may already have reached Telegram, and is sent once more.
    """
    done = await session.exec(update(OutboxMessage).where(OutboxMessage.state == SENDING).values(state=PENDING))  # type: ignore[call-overload]
    return done.rowcount


async def counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.exec(select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state))
    out = dict.fromkeys(STATES, 0)
    out.update({s: int(n) for s, n in rows.all()})
    return out


async def problems(session: AsyncSession, limit: int = 10) -> list[Row]:
    """Rows that failed (to be retried) or gave up, newest first."""
    rows = await session.exec(
        select(OutboxMessage).where(col(OutboxMessage.state).in_((FAILED, DEAD))).order_by(col(OutboxMessage.id).desc()).limit(limit))
    return [_row(m) for m in rows.all()]


async def all_rows(session: AsyncSession) -> list[Row]:
    return [_row(m) for m in (await session.exec(select(OutboxMessage).order_by(OutboxMessage.id))).all()]


async def count_in_state(session: AsyncSession, kind: str, period_keys: list[str], state: str = SENT) -> int:
    if not period_keys:
        return 0
    rows = await session.exec(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.kind == kind, col(OutboxMessage.period_key).in_(period_keys), OutboxMessage.state == state))
    return int(rows.one())
