"""Database faults while a user saves: a real second writer holding the lock, a PostgreSQL connection
dropped in the middle of the save's transaction. The user is asked to try again, nothing of the
record is written, the form stays at its step with its draft, and the same button afterwards saves
exactly once. Every saving flow is covered: visit (with a household added on the spot), patrol
(new shop, findings, photo), shop registration, issue report (event, photo) and a transition.

SQLite: another connection holds the write lock (BEGIN IMMEDIATE) while the user presses Save; the
app's busy timeout is shortened (Database(busy_timeout_ms=...)). PostgreSQL: (1) another session
holds SHARE ROW EXCLUSIVE locks on the ledgers (the app's lock_timeout is shortened the same way);
(2) the save's own backend, and with it every pooled connection, is terminated
(pg_terminate_backend) right before its COMMIT, after all of the save's statements were sent.
"""

from __future__ import annotations

import asyncio
import copy
import re
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlmodel import select

from bot import delivery
from bot.db import Database
from models import metadata, outbox, state
from models.issues import Issue, IssueEvent, IssuePhoto
from models.outbox import NewMessage
from models.patrols import Finding, Patrol, Shop
from models.tables import Household, Visit
from sandbox.localapi import buttons
from tests.conftest import TOKEN, Tg, make_app, stop_app, texts
from tests.seed import SUPERVISOR_A, WORKER_A, seed
from tests.seed_issues import seed_issues
from tests.seed_patrols import seed_patrols

JPEG = b"\xff\xd8\xff\xe0" + b"db-fault-photo" * 10
BUSY_MS = 300  # the shortened lock wait of the app under test
# Chat state and the job bookkeeping are not ledgers: the fault may or may not let them be written.
NOT_LEDGERS = {"persisted_state", "processed_update", "job_run", "process_lease", "alembic_version"}


async def ledgers(db: Database) -> dict[str, list[tuple]]:
    """Every row of every ledger table, to compare before and after a failed save."""
    out = {}
    async with db.session() as s:
        for table in metadata.sorted_tables:
            if table.name in NOT_LEDGERS:
                continue
            conn = await s.connection()
            rows = (await conn.execute(table.select().order_by(*table.primary_key.columns))).all()
            out[table.name] = [tuple(r) for r in rows]
    return out


async def all_of(db: Database, model) -> list:  # noqa: ANN001
    async with db.session() as s:
        return list((await s.exec(select(model).order_by(model.id))).all())


# -- the flows, each up to the button that saves ---------------------------------------------------


@dataclass
class Save:
    user: Tg
    label: str  # the button that writes the record
    check: Callable[[], Awaitable[None]]  # the record is there exactly once, whole
    has_draft: bool = True


async def visit_with_a_new_household(app, api, db) -> Save:  # noqa: ANN001
    await seed(db)
    u = Tg(app, api, WORKER_A)
    await u.send("/visit")
    await u.press("New household")
    await u.send("9栋9单元909")
    await u.press("Done")
    await u.send("2")
    await u.press("Safety hazard")
    await u.press("Done")
    await u.send("燃气管老化")
    await u.photo(JPEG)
    await u.send("/done")
    await u.location(28.17, 112.98)

    async def check() -> None:
        (visit,) = await all_of(db, Visit)
        (house,) = [h for h in await all_of(db, Household) if h.address == "9栋9单元909"]
        assert (visit.household_id, visit.people_met, visit.situations, len(visit.photos)) == (house.id, 2, ["安全隐患"], 1)

    return Save(u, "Save", check)


async def patrol_with_a_new_shop_and_findings(app, api, db) -> Save:  # noqa: ANN001
    await seed_patrols(db)
    await Tg(app, api, SUPERVISOR_A).send("/help")  # the supervisor the escalation goes to
    u = Tg(app, api, WORKER_A)
    await u.send("/patrol")
    await u.press("New shop")
    await u.send("张姐早餐")
    await u.send("幸福路30号")
    await u.press("Catering service")
    await u.press("Environmental hygiene")
    await u.press("Food sample retention")
    await u.press("Done")
    await u.press("Corrected on the spot")
    await u.send("/skip")
    await u.press("Escalate")
    await u.send("没有留样")
    await u.photo(JPEG)
    await u.send("/done")

    async def check() -> None:
        (patrol,) = await all_of(db, Patrol)
        (shop,) = [s for s in await all_of(db, Shop) if s.name == "张姐早餐"]
        assert patrol.shop_id == shop.id and len(patrol.photos) == 1
        assert [(f.patrol_id, f.disposition) for f in await all_of(db, Finding)] == [(patrol.id, "corrected"), (patrol.id, "escalated")]

    return Save(u, "Save", check)


async def shop_registration(app, api, db) -> Save:  # noqa: ANN001
    await seed_patrols(db)
    u = Tg(app, api, SUPERVISOR_A)
    await u.send("/shop_add")
    await u.send("陈记烧烤")
    await u.send("幸福路88号")
    await u.press("Catering service")
    await u.send("/skip")
    await u.send("陈老板 13812345678")

    async def check() -> None:
        assert [s.contact for s in await all_of(db, Shop) if s.name == "陈记烧烤"] == ["陈老板 13812345678"]

    return Save(u, "Save", check)


async def issue_report_with_a_photo(app, api, db) -> Save:  # noqa: ANN001
    await seed_issues(db)
    await Tg(app, api, SUPERVISOR_A).send("/help")
    u = Tg(app, api, WORKER_A)
    await u.send("/report")
    await u.press("Outdoor signs")
    await u.send("招牌松动，有坠落风险")
    await u.location(28.17, 112.98)
    await u.send("幸福路12号")
    await u.photo(JPEG)
    await u.send("/done")
    await u.press("Normal")

    async def check() -> None:
        (issue,) = await all_of(db, Issue)
        assert [(e.issue_id, e.action) for e in await all_of(db, IssueEvent)] == [(issue.id, "submit")]
        assert [(p.issue_id, p.kind) for p in await all_of(db, IssuePhoto)] == [(issue.id, "before")]

    return Save(u, "Submit", check)


async def _report_only(app, api) -> Tg:  # noqa: ANN001
    u = Tg(app, api, WORKER_A)
    await u.send("/report")
    await u.press("Outdoor signs")
    await u.send("招牌松动，有坠落风险")
    await u.location(28.17, 112.98)
    await u.send("幸福路12号")
    await u.send("/done")
    await u.press("Normal")
    return u


async def assignment(app, api, db) -> Save:  # noqa: ANN001
    await seed_issues(db)
    sup = Tg(app, api, SUPERVISOR_A)
    await sup.send("/help")
    worker = await _report_only(app, api)
    await worker.press("Submit")
    await sup.press("Assign")

    async def check() -> None:
        (issue,) = await all_of(db, Issue)
        events = [(e.action, e.to_status) for e in await all_of(db, IssueEvent)]
        assert issue.status == "assigned" and events == [("submit", "reported"), ("assign", "assigned")]

    return Save(sup, "赵敏", check, has_draft=False)


FLOWS = {
    "visit": visit_with_a_new_household,
    "patrol": patrol_with_a_new_shop_and_findings,
    "shop_add": shop_registration,
    "report": issue_report_with_a_photo,
    "assign": assignment,
}


# -- the faults ------------------------------------------------------------------------------------


class SqliteWriter:
    """Another connection to the same file holding the write lock, as a second process would."""

    def __init__(self, url: str) -> None:
        self.path = make_url(url).database
        self.conn: sqlite3.Connection | None = None

    async def hold(self, db: Database) -> None:
        self.conn = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("UPDATE grid SET name = name")  # a real write of its own, uncommitted

    async def release(self) -> None:
        assert self.conn is not None
        self.conn.rollback()
        self.conn.close()


def _pg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PgLocker:
    """Another session holding SHARE ROW EXCLUSIVE on every ledger: reads pass, writes wait."""

    def __init__(self, url: str) -> None:
        self.dsn = _pg_dsn(url)

    async def hold(self, db: Database) -> None:
        import asyncpg

        self.conn = await asyncpg.connect(self.dsn)
        self.tx = self.conn.transaction()
        await self.tx.start()
        names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables if t.name not in NOT_LEDGERS | {"outbox"})
        await self.conn.execute(f"LOCK TABLE {names} IN SHARE ROW EXCLUSIVE MODE")

    async def release(self) -> None:
        await self.tx.rollback()
        await self.conn.close()


class LedgerCommits:
    """Watches the engine: the tables each committed transaction wrote, ledgers only (chat state,
    update ids and the outbox are written beside a save, not as part of the record).
    `before_commit(conn)` runs before the COMMIT of a transaction that wrote a ledger."""

    SKIP = {"persisted_state", "processed_update", "outbox", "job_run", "process_lease"}
    WRITE = re.compile(r'^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?', re.IGNORECASE)

    def __init__(self, db: Database, before_commit: Callable[[object], None] | None = None) -> None:
        self.engine = db.engine.sync_engine
        self.before_commit = before_commit
        self.committed: list[set[str]] = []

    def _on_execute(self, conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001, PLR0913
        m = self.WRITE.match(statement)
        if m and m.group(1) not in self.SKIP:
            conn.info.setdefault("ledger_tables", set()).add(m.group(1))

    def _on_commit(self, conn) -> None:  # noqa: ANN001
        tables = conn.info.pop("ledger_tables", None)
        if tables:
            if self.before_commit is not None:
                self.before_commit(conn)
            self.committed.append(tables)

    def _on_rollback(self, conn) -> None:  # noqa: ANN001
        conn.info.pop("ledger_tables", None)

    def _listeners(self):  # noqa: ANN202
        return (("before_cursor_execute", self._on_execute), ("commit", self._on_commit), ("rollback", self._on_rollback))

    def __enter__(self) -> LedgerCommits:
        for name, fn in self._listeners():
            event.listen(self.engine, name, fn)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, fn in self._listeners():
            event.remove(self.engine, name, fn)


class PgDropper:
    """Terminates the backend of the first transaction that wrote to a ledger, right before its
    COMMIT (every statement of the save was sent), and every other connection of the database
    with it, as a server restart would: the pool must recover (pre-ping) for the retry."""

    def __init__(self, url: str) -> None:
        self.dsn = _pg_dsn(url)
        self.killed: list[int] = []
        self.watch: LedgerCommits | None = None

    def _terminate_all(self, conn) -> None:  # noqa: ANN001
        if self.killed:
            return
        self.killed.append(conn.connection.dbapi_connection._connection.get_server_pid())

        async def run() -> None:
            import asyncpg

            admin = await asyncpg.connect(self.dsn)
            try:
                await admin.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            finally:
                await admin.close()

        # The listener runs inside the event loop (SQLAlchemy's greenlet); the kill gets its own loop.
        t = threading.Thread(target=lambda: asyncio.run(run()))
        t.start()
        t.join()

    async def hold(self, db: Database) -> None:
        self.watch = LedgerCommits(db, before_commit=self._terminate_all).__enter__()

    async def release(self) -> None:
        assert self.watch is not None
        self.watch.__exit__()
        assert self.killed, "the save never reached its COMMIT"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fault" in metafunc.fixturenames:
        engine = metafunc.config.getoption("--db")
        metafunc.parametrize("fault", ["sqlite_lock"] if engine == "sqlite" else ["pg_lock", "pg_drop"])


@pytest.fixture
async def fast_db(database_url: str, db: Database):  # noqa: ANN201 - `db` cleans the tables afterwards
    database = Database(database_url, busy_timeout_ms=BUSY_MS)
    yield database
    await database.dispose()


@pytest.mark.parametrize("flow", list(FLOWS))
async def test_a_fault_during_the_save_says_try_again_writes_nothing_and_the_retry_saves_once(settings, fast_db, api, flow, fault):
    app = await make_app(settings, fast_db, api)
    try:
        save = await FLOWS[flow](app, api, fast_db)
        u = save.user
        before = await ledgers(fast_db)
        draft = copy.deepcopy(u.draft)
        if save.has_draft:
            assert draft is not None and draft["step"] == "CONFIRM"
        fault_ = {"sqlite_lock": SqliteWriter, "pg_lock": PgLocker, "pg_drop": PgDropper}[fault](fast_db.url)
        await fault_.hold(fast_db)
        try:
            summary = u.keyboard_message()
            out = await u.press(save.label, summary)
        finally:
            await fault_.release()
        said = "\n".join(m.get("text", "") for m in out)
        assert "The database is busy right now, so that button did nothing" in said and "press it again" in said
        assert not any("Saved" in m.get("text", "") or "Reported" in m.get("text", "") for m in out)
        assert await ledgers(fast_db) == before  # nothing of the record: no household without its visit, no issue without its photo
        assert u.draft == draft  # the form is where it was, with everything in it

        # The lock is gone / the server is back: the same button saves, once; a second tap adds nothing.
        with LedgerCommits(fast_db) as watch:
            out = await u.press(save.label, u.message(summary["message_id"]))
        assert "database is busy" not in "\n".join(m.get("text", "") for m in out)
        assert len(watch.committed) == 1, watch.committed  # the whole record in one transaction
        await save.check()
        after = await ledgers(fast_db)
        (data,) = [d for t, d in buttons(summary) if save.label in t]
        await u.press_data(data, u.message(summary["message_id"]))  # a late second tap of the same button
        assert await ledgers(fast_db) == after
        await save.check()
        if save.has_draft:
            assert u.draft is None
    finally:
        await stop_app(app)


async def test_a_session_is_one_transaction_even_when_its_first_write_is_in_a_savepoint(db):
    """The saves write inside begin_nested() (idempotency on draft_id); on SQLite that savepoint
    used to be the transaction itself, committed at its RELEASE, so a failure later in the same
    session left the first part written."""
    await seed(db)
    with pytest.raises(RuntimeError):
        async with db.session() as s:
            await s.exec(select(Household.id))  # type: ignore[call-overload]
            async with s.begin_nested():
                await s.exec(text("UPDATE household SET address = 'moved' WHERE id = 1"))  # type: ignore[call-overload]
            await s.exec(text("UPDATE grid SET name = 'renamed'"))  # type: ignore[call-overload]
            raise RuntimeError("the process fails after the nested block")
    async with db.session() as s:
        assert "moved" not in [h.address for h in (await s.exec(select(Household))).all()]
        assert (await s.exec(text("SELECT count(*) FROM grid WHERE name = 'renamed'"))).one()[0] == 0  # type: ignore[call-overload]
    # Savepoints still roll back on their own inside a transaction that goes on and commits.
    async with db.session() as s:
        with pytest.raises(RuntimeError):
            async with s.begin_nested():
                await s.exec(text("UPDATE household SET address = 'inner' WHERE id = 1"))  # type: ignore[call-overload]
                raise RuntimeError("inner")
        await s.exec(text("UPDATE household SET address = 'outer' WHERE id = 2"))  # type: ignore[call-overload]
    async with db.session() as s:
        addresses = {h.id: h.address for h in (await s.exec(select(Household))).all()}
    assert addresses[1] != "inner" and addresses[2] == "outer"


# -- the outbox: a send whose outcome cannot be written ---------------------------------------------


class WriterLock:
    """Another writer holding the write lock of `table` (SQLite: of the whole file). Synchronous, so
    that the sender's kill-point hook (right after Telegram accepted a message) can take it."""

    def __init__(self, url: str, table: str = "outbox") -> None:
        self.url, self.table = url, table
        self.sqlite = url.startswith("sqlite")
        self.release_ = threading.Event()

    def hold(self) -> None:
        if self.sqlite:
            self.conn = sqlite3.connect(make_url(self.url).database, timeout=0, isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")
            return
        locked = threading.Event()

        async def holder() -> None:
            import asyncpg

            conn = await asyncpg.connect(_pg_dsn(self.url))
            tx = conn.transaction()
            await tx.start()
            await conn.execute(f'LOCK TABLE "{self.table}" IN SHARE ROW EXCLUSIVE MODE')
            locked.set()
            while not self.release_.is_set():
                await asyncio.sleep(0.02)
            await tx.rollback()
            await conn.close()

        self.thread = threading.Thread(target=lambda: asyncio.run(holder()))
        self.thread.start()
        assert locked.wait(10)

    def release(self) -> None:
        if self.sqlite:
            self.conn.rollback()
            self.conn.close()
        else:
            self.release_.set()
            self.thread.join(10)


async def test_a_sent_message_whose_outcome_cannot_be_written_is_recorded_later_and_never_sent_again(settings, fast_db, api):
    """Telegram accepted the message, then the database refused the `sent` mark (another writer's
    lock): the sender keeps the outcome, stops the pass, and writes it first at the next pass. The
    row is not left `sending` (which a restart would send again) and not sent twice."""
    chats = [5101, 5102, 5103]
    for uid in chats:
        api.send_text(TOKEN, uid, "hi", first_name="u", language_code="en")
    async with fast_db.session() as s:
        await outbox.enqueue(s, [NewMessage("note", "p1", delivery.tg(uid), f"note for {uid}") for uid in chats])
    app = await make_app(settings, fast_db, api)
    app.scheduler.remove("outbox")  # the passes are made by the test, one at a time
    lock = WriterLock(fast_db.url)

    def hook(point: str, row: outbox.Row) -> None:
        if point == "sent" and row.recipient == delivery.tg(5102):
            lock.hold()

    delivery.kill_hook = hook
    try:
        result = await delivery.drain(app)
        async with fast_db.session() as s:  # readers are not blocked
            states = {r.recipient: r.state for r in await outbox.all_rows(s)}
    finally:
        delivery.kill_hook = None
        lock.release()
    try:
        assert result.sent == 2 and states == {"tg:5101": "sent", "tg:5102": "sending", "tg:5103": "pending"}
        assert (await delivery.drain(app)).sent == 1  # the kept outcome first, then the rest
        async with fast_db.session() as s:
            assert {r.recipient: r.state for r in await outbox.all_rows(s)} == dict.fromkeys(states, "sent")
            assert await outbox.recover_interrupted(s) == 0  # a restart now would send nothing again
        for uid in chats:
            assert [m["text"] for m in api.bot_messages(TOKEN, uid)] == [f"note for {uid}"]
    finally:
        await stop_app(app)


# -- the chat state: a write that fails after the step was answered ---------------------------------


async def persisted_step(db: Database, user_id: int) -> str | None:
    async with db.session() as s:
        data = (await state.load_kind(s, "user_data")).get(str(user_id)) or {}
    return (data.get("draft") or {}).get("step")


async def test_a_chat_state_write_refused_by_a_lock_is_kept_and_written_later(settings, fast_db, api):
    """The user answered a step (no record to save), the bot asked the next one, and the write of the
    step and draft was refused (another writer's lock): nothing is lost. The change is kept in memory
    and written at the next persistence round; a restart after that resumes at the new step."""
    await seed(fast_db)
    app = await make_app(settings, fast_db, api)
    try:
        u = Tg(app, api, WORKER_A)
        await u.send("/visit")
        await u.send("3栋1单元101")
        await u.press("3栋1单元101")
        assert await persisted_step(fast_db, WORKER_A) == "PEOPLE"
        lock = WriterLock(fast_db.url, table="persisted_state")
        lock.hold()
        try:
            out = await u.send("4")
            assert "Step 3/7" in texts(out)  # the user goes on; the failed write is the bot's business
            assert await persisted_step(fast_db, WORKER_A) == "PEOPLE"  # not written yet
        finally:
            lock.release()
        await app.engine.flush()  # the engine's own round does this every few seconds
        assert await persisted_step(fast_db, WORKER_A) == "SITUATION"
    finally:
        await stop_app(app)
    app = await make_app(settings, fast_db, api)  # a restart
    try:
        u = Tg(app, api, WORKER_A)
        await u.press("Safety hazard")
        out = await u.press("Done")
        assert "Step 4/7" in texts(out) and u.draft["data"]["people_met"] == 4
    finally:
        await stop_app(app)
