"""Bot API faults: 429 with retry_after, 5xx, dropped connections and timeouts on sendMessage,
getUpdates and getFile. Polling (real PTB polling over HTTP against bot/localapi.py) recovers with
no update lost or handled twice; a photo whose download fails is asked for again; a save whose
confirmation Telegram refuses is saved once and confirmed once, by the outbox, when it is back."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlmodel import func, select
from telegram.request import HTTPXRequest

from bot import delivery
from bot.channels.telegram import GridApplication, allowed_updates, build_application
from bot.db import Database
from bot.settings import Settings
from models import clock, outbox
from models.issues import Issue, IssueEvent
from models.patrols import Patrol, Shop
from models.tables import ProcessedUpdate, User, Visit
from sandbox.localapi import LocalBotAPI, LocalBotAPIServer, buttons
from tests.conftest import ADMIN_ID, TOKEN, Tg, record_handled
from tests.seed import SUPERVISOR_A, WORKER_A, WORKER_B, seed
from tests.seed_issues import WORKER_A2, put_issue, seed_issues
from tests.seed_patrols import seed_patrols
from tests.test_issues import AFTER, LAT, LON, report
from tests.test_patrols import walk_to as patrol_walk_to
from tests.test_reminders import drain_all
from tests.test_visit import walk_to as visit_walk_to

JPEG = b"\xff\xd8\xff\xe0" + b"fault-photo" * 10
READ_TIMEOUT = 0.5  # the bot's read timeout in these tests; a "timeout" fault answers later than that

# Each fault as the local Bot API injects it. "timeout": the request gets no answer in time and
# Telegram did not act on it (a gateway timeout, answered late). A 429 comes with retry_after.
FAULTS = {
    "429": {"status": 429, "retry_after": 1},
    "5xx": {"status": 502},
    "dropped": {"drop": True},
    "timeout": {"status": 504, "delay_ms": 2500},
}


async def count(db: Database, model, *where) -> int:  # noqa: ANN001
    async with db.session() as s:
        return int((await s.exec(select(func.count()).select_from(model).where(*where))).one())


def said(api: LocalBotAPI, user_id: int, fragment: str) -> int:
    """How many of the bot's messages in the user's chat contain `fragment` (as the user sees them, after edits)."""
    return sum(fragment in m.get("text", "") for m in api.bot_messages(TOKEN, user_id))


# -- real polling over HTTP ----------------------------------------------------------------------------


@dataclass
class Polling:
    app: GridApplication
    api: LocalBotAPI
    db: Database
    handled: list[int]  # update ids as the handlers saw them (a duplicate would show twice)
    sent: list[int]  # update ids the users sent


@pytest.fixture
async def polling(settings: Settings, db: Database, api: LocalBotAPI) -> AsyncIterator[Polling]:
    """`gridbot run` in miniature: the real Application long-polling the local Bot API over loopback HTTP."""
    server = LocalBotAPIServer(api, port=0)
    await server.start()
    s = settings.model_copy(update={"telegram_api_base_url": server.base_url, "telegram_file_base_url": server.file_base_url})
    app = build_application(s, db=db, request=HTTPXRequest(connection_pool_size=8, read_timeout=1.0),
                            updates_request=HTTPXRequest(read_timeout=1.0))
    handled = record_handled(app)
    await app.runtime.start(startup=False)
    await app.updater.start_polling(poll_interval=0, timeout=1, allowed_updates=allowed_updates())
    try:
        yield Polling(app, api, db, handled, [])
    finally:
        await app.runtime.stop()
        await server.stop()


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(3000):  # a bound so that a bug fails instead of hanging; no assertion on time
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


class PollUser:
    """A user of the polling bot: each action waits until the bot has handled it and written its state."""

    def __init__(self, p: Polling, user_id: int) -> None:
        self.p, self.user_id = p, user_id

    async def _act(self, update: dict) -> None:
        self.p.sent.append(update["update_id"])

        async def done() -> bool:
            return await count(self.p.db, ProcessedUpdate, ProcessedUpdate.update_id == update["update_id"]) == 1

        await eventually(done, f"update {update['update_id']} handled")

    async def send(self, text: str) -> None:
        await self._act(self.p.api.send_text(TOKEN, self.user_id, text, first_name="W", language_code="en"))

    async def photo(self, data: bytes = JPEG) -> None:
        await self._act(self.p.api.send_photo(TOKEN, self.user_id, data, first_name="W", language_code="en"))

    async def press(self, label: str) -> None:
        message = next(m for m in reversed(self.p.api.bot_messages(TOKEN, self.user_id)) if buttons(m))
        data = next(d for t, d in buttons(message) if label in t)
        await self._act(self.p.api.press_button(TOKEN, self.user_id, message["message_id"], data, first_name="W", language_code="en"))

    @property
    def draft(self) -> dict | None:
        return self.p.app.user_data.get(self.user_id, {}).get("draft")

    @property
    def last(self) -> str:
        return self.p.api.bot_messages(TOKEN, self.user_id)[-1].get("text", "")


POLLING_CASES = [(m, f) for m in ("getUpdates", "sendMessage", "getFile") for f in FAULTS] + [
    ("getUpdates", "late answer"), ("getFile", "late answer"),  # Telegram acted, the answer came too late
]


@pytest.mark.parametrize(("method", "fault"), POLLING_CASES)
async def test_polling_recovers_and_nothing_is_lost_or_doubled(polling: Polling, method: str, fault: str):
    """A whole visit over real polling, with one fault on `method` at the step that uses it.

    PTB's own retries outlast a single 429 (AIORateLimiter waits retry_after); any other failed
    question is apologised for and the step stays where the user last saw it, so answering again
    carries on; a failed photo download asks for the photo again. Every update is handled once.
    """
    p = polling
    await seed(p.db)
    u = PollUser(p, WORKER_A)
    spec = FAULTS.get(fault, {"delay_ms": 2500})
    await u.send("/visit")
    await u.send("3栋1单元101")
    await u.press("3栋1单元101")
    assert u.draft["step"] == "PEOPLE"

    if method != "getFile":
        p.api.inject_fault(method, **spec)
    if method == "getUpdates":
        # The poll in flight is not affected; the fault hits the next one: send while it fails or backs off.
        async def used() -> bool:
            return not p.api.pending_faults()

        await eventually(used, "the getUpdates fault used")
    await u.send("2")
    if method == "sendMessage" and fault != "429":
        # The question of the next step did not get through: the step stays, and the user is told.
        assert u.draft["step"] == "PEOPLE" and u.draft["data"]["people_met"] == 2
        assert "Sorry, something went wrong on our side" in u.last and said(p.api, WORKER_A, "Step 3/7") == 0
        await u.send("2")
    assert u.draft["step"] == "SITUATION" and said(p.api, WORKER_A, "Step 3/7") == 1

    await u.press("Normal")
    await u.press("Done")
    await u.send("/skip")
    if method == "getFile":
        p.api.inject_fault("getFile", **spec)
    await u.photo()
    if method == "getFile" and fault != "429":
        assert "could not fetch that photo from Telegram. Please send it again" in u.last
        assert u.draft["step"] == "PHOTOS" and u.draft["data"]["photos"] == []
        await u.photo()
    assert "Photo 1 received" in u.last and len(u.draft["data"]["photos"]) == 1
    await u.send("/done")
    await u.send("/skip")
    await u.press("Save")

    assert p.api.pending_faults() == []  # the fault did happen
    (visit,) = await _visits(p.db)
    assert visit.people_met == 2 and len(visit.photos) == 1
    assert said(p.api, WORKER_A, "Visit #1 saved") == 1
    assert Counter(p.handled) == Counter(p.sent) and set(Counter(p.handled).values()) == {1}  # none lost, none twice
    assert u.draft is None


async def _visits(db: Database) -> list[Visit]:
    async with db.session() as s:
        return list((await s.exec(select(Visit))).all())


# -- in-process: the photo step and the confirmation ------------------------------------------------------


@pytest.fixture
async def fapp(settings: Settings, db: Database, api: LocalBotAPI) -> AsyncIterator[GridApplication]:
    """The real Application over the in-process transport, with a short read timeout, and PTB's
    429 retries off (they wait retry_after in real time) so that a flood wait reaches gridbot."""
    transport = api.transport()
    app = build_application(settings, db=db, request=HTTPXRequest(httpx_kwargs={"transport": transport}, read_timeout=READ_TIMEOUT),
                            updates_request=HTTPXRequest(httpx_kwargs={"transport": transport}))
    await app.runtime.start(startup=False)
    app.bot.rate_limiter._max_retries = 0  # noqa: SLF001
    yield app
    await app.runtime.stop()


@pytest.mark.parametrize("fault", list(FAULTS) + ["late answer"])
async def test_a_failed_photo_download_asks_again_and_keeps_the_draft(fapp, api, db, fault):
    await seed(db)
    u = Tg(fapp, api, WORKER_A)
    await visit_walk_to(u, "PHOTOS")
    before = dict(u.draft["data"])
    api.inject_fault("getFile", **FAULTS.get(fault, {"delay_ms": 1000}))
    out = await u.photo(JPEG)
    assert [m["text"] for m in out] == ["I could not fetch that photo from Telegram. Please send it again."]
    assert u.draft["step"] == "PHOTOS" and u.draft["data"] == before  # nothing half-kept
    out = await u.photo(JPEG)
    assert "Photo 1 received" in out[-1]["text"] and len(u.draft["data"]["photos"]) == 1


# Every save path: (seed, the user, walk to just before the save, the save, the record count, the confirmation as the user reads it)
@dataclass
class SavePath:
    seed: Callable[[Database], Awaitable[object]]
    user: int
    walk: Callable[[Tg], Awaitable[None]]
    save: Callable[[Tg], Awaitable[list[dict]]]
    records: Callable[[Database], Awaitable[int]]
    confirmation: tuple[str, ...]  # what the confirmation message(s) say


async def _walk_shop(u: Tg) -> None:
    await u.send("/shop_add")
    await u.send("陈记烧烤")
    await u.send("幸福路88号")
    await u.press("Catering service")
    await u.send("/skip")
    await u.send("/skip")


async def _walk_spot(u: Tg) -> None:
    await u.send("/help")
    await report(u, category="Illegal ground locks")
    await u.press("Resolved on the spot")
    await u.send("已联系车主拆除地锁")
    await u.photo(AFTER)


async def _seed_attach(db: Database) -> None:
    s = await seed_issues(db)
    await put_issue(db, s.grid_a, s.worker_a.id, "assigned", s.worker_a.id, category="户外招牌", latitude=LAT + 0.0002, longitude=LON)


async def _walk_note(u: Tg) -> None:
    worker = Tg(u.app, u.api, WORKER_A)
    await worker.send("/help")
    await u.send("/help")
    await report(worker)
    await worker.press("Submit")
    await u.press("Reject")


async def _walk_join(u: Tg) -> None:
    await u.send("/start")
    await u.send("Admin Zhao")


async def _press(u: Tg, label: str) -> list[dict]:
    return await u.press(label)


SAVES = {
    "visit": SavePath(seed, WORKER_A, lambda u: visit_walk_to(u, "CONFIRM"), lambda u: _press(u, "Save"),
                      lambda db: count(db, Visit), ("✅ Visit #1 saved.",)),
    "patrol": SavePath(seed_patrols, WORKER_A, lambda u: patrol_walk_to(u, "CONFIRM"), lambda u: _press(u, "Save"),
                       lambda db: count(db, Patrol), ("✅ Patrol #1 saved.",)),
    "shop_add": SavePath(seed_patrols, SUPERVISOR_A, _walk_shop, lambda u: _press(u, "Save"),
                         lambda db: count(db, Shop, Shop.name == "陈记烧烤"), ("✅ Registered as shop #",)),
    "report": SavePath(seed_issues, WORKER_A, lambda u: _report_to_summary(u), lambda u: _press(u, "Submit"),
                       lambda db: count(db, Issue), ("✅ Reported as issue 2605-0001.",)),
    "report_spot": SavePath(seed_issues, WORKER_A, _walk_spot, lambda u: u.send("/done"),
                            lambda db: count(db, Issue), ("✅ Recorded as issue 2605-0001, resolved on the spot.",)),
    "report_attach": SavePath(_seed_attach, WORKER_A2, lambda u: _report_to_summary(u), lambda u: _press(u, "Add to 9901-0001"),
                              lambda db: count(db, IssueEvent, IssueEvent.action == "attach"), ("📎 Your report was added to issue 9901-0001",)),
    "issue_note": SavePath(seed_issues, SUPERVISOR_A, _walk_note, lambda u: u.send("不属于本网格管辖"),
                           lambda db: count(db, IssueEvent, IssueEvent.action == "reject"), ("Issue 2605-0001 is rejected",)),
    "join": SavePath(lambda db: asyncio.sleep(0), ADMIN_ID, _walk_join, lambda u: u.send("/skip"),
                     lambda db: count(db, User, User.display_name == "Admin Zhao"), ("Thank you, Admin Zhao. You are all set.", "Your commands:")),
}


async def _report_to_summary(u: Tg) -> None:
    await u.send("/help")
    await report(u)


def down(api: LocalBotAPI, fault: str) -> None:
    """Every Bot API method fails the same way until `api.clear_faults()`."""
    api.inject_fault("*", count=10_000, **FAULTS[fault])


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("path", list(SAVES))
async def test_a_save_whose_confirmation_fails_is_saved_once_and_confirmed_once_when_telegram_is_back(fapp, api, db, path, fault):
    case = SAVES[path]
    await case.seed(db)
    u = Tg(fapp, api, case.user, first_name="Admin" if path == "join" else "Test")
    await case.walk(u)
    assert u.draft is not None
    down(api, fault)
    out = await case.save(u)
    assert out == []  # the user saw nothing yet ...
    assert await case.records(db) == 1  # ... but the record is saved
    assert u.draft is None  # and the form is closed normally: no draft left to save twice
    queued = [r for r in await _outbox(db) if r.kind == "confirm"]
    assert len(queued) == len(case.confirmation) and all(r.state == "pending" and r.urgent for r in queued)

    # Still down: the outbox tries, fails and waits (backoff), nothing reaches the user.
    await delivery.drain(fapp)
    assert all(r.state in ("failed", "pending") for r in await _outbox(db))
    api.clear_faults()
    clock.advance(timedelta(minutes=1))
    await drain_all(fapp)  # the confirmations, and any notice to others queued in the outage (a rejection tells the reporter)
    assert [r.state for r in await _outbox(db) if r.kind == "confirm"] == ["sent"] * len(case.confirmation)
    for fragment in case.confirmation:
        assert said(api, case.user, fragment) == 1, (fragment, [m.get("text") for m in api.bot_messages(TOKEN, case.user)])
    # Nothing more to send, ever; and saving again is not possible.
    clock.advance(timedelta(hours=1))
    assert await drain_all(fapp) == 0
    assert await case.records(db) == 1


async def _outbox(db: Database) -> list[outbox.Row]:
    async with db.session() as s:
        return await outbox.all_rows(s)


async def test_the_queued_confirmation_keeps_its_button(fapp, api, db):
    """A visit that found a hazard offers "Report an issue"; queued, the confirmation keeps that button, and it works."""
    await seed(db)
    u = Tg(fapp, api, WORKER_A)
    await u.send("/visit")
    await u.send("3栋1单元101")
    await u.press("3栋1单元101")
    await u.send("1")
    await u.press("Safety hazard")
    await u.press("Done")
    await u.send("/skip")
    await u.send("/done")
    await u.send("/skip")
    down(api, "5xx")
    await u.press("Save")
    api.clear_faults()
    assert await drain_all(fapp) == 1
    message = api.bot_messages(TOKEN, WORKER_A)[-1]
    assert "✅ Visit #1 saved" in message["text"] and buttons(message) == [
        ("📝 Report an issue from this visit", "issue:visit:1"), ("✏️ Edit", "aft:visit:1:edit"), ("↩️ Undo", "aft:visit:1:undo")]
    out = await u.press("Report an issue from this visit")
    assert "Step 1/6" in out[-1]["text"] and u.draft["flow"] == "report"


async def test_only_the_confirmation_failing_still_ends_the_form_and_queues_it(fapp, api, db):
    """The summary edit went through (the user sees "Saved as visit #1"); the message after it did not: it is queued."""
    await seed(db)
    u = Tg(fapp, api, WORKER_A)
    await visit_walk_to(u, "CONFIRM")
    api.inject_fault("sendMessage", status=500)
    await u.press("Save")
    assert said(api, WORKER_A, "✅ Saved as visit #1.") == 1 and u.draft is None
    assert await drain_all(fapp) == 1
    assert said(api, WORKER_A, "✅ Visit #1 saved.") == 1 and await count(db, Visit) == 1


async def test_a_confirmation_that_timed_out_after_telegram_acted_may_arrive_twice_never_more(fapp, api, db):
    """The one documented window: Telegram delivered the message but its answer came too late. The
    bot cannot know, so the outbox sends it again: at most one duplicate; still one record."""
    await seed(db)
    u = Tg(fapp, api, WORKER_A)
    await visit_walk_to(u, "CONFIRM")
    api.inject_fault("sendMessage", delay_ms=int(READ_TIMEOUT * 1000) + 500)  # carried out, answered too late
    await u.press("Save")
    assert said(api, WORKER_A, "✅ Visit #1 saved.") == 1 and u.draft is None
    assert await drain_all(fapp) == 1
    clock.advance(timedelta(hours=2))
    assert await drain_all(fapp) == 0
    assert said(api, WORKER_A, "✅ Visit #1 saved.") == 2 and await count(db, Visit) == 1


async def test_a_save_redelivered_after_a_crash_is_confirmed_by_the_outbox_only(fapp, api, db):
    """The confirmation was queued, then the process died before the chat state was written: the
    Save press comes again (not recorded as handled), the save is idempotent, and the user is told
    once, by the outbox, not a second time directly."""
    await seed(db)
    u = Tg(fapp, api, WORKER_A)
    await visit_walk_to(u, "CONFIRM")
    draft = dict(u.draft)
    summary = u.keyboard_message()
    save = next(d for t, d in buttons(summary) if "Save" in t)
    down(api, "5xx")
    await u.press_data(save, summary)
    api.clear_faults()
    # As if the state write after that update had never happened (the process died first).
    fapp.user_data[WORKER_A]["draft"] = draft
    out = await u.press_data(save, summary)
    assert out == [] and await count(db, Visit) == 1 and u.draft is None
    assert await drain_all(fapp) == 1
    assert said(api, WORKER_A, "✅ Visit #1 saved.") == 1


async def test_a_blocked_user_is_not_queued_and_the_form_still_ends(fapp, api, db):
    await seed(db)
    u = Tg(fapp, api, WORKER_A)
    await visit_walk_to(u, "CONFIRM")
    for method in ("sendMessage", "editMessageText"):
        api.inject_fault(method, status=403, description="Forbidden: bot was blocked by the user", count=10)
    await u.press("Save")
    api.clear_faults()
    assert await count(db, Visit) == 1 and u.draft is None
    assert await _outbox(db) == []


async def test_one_flood_wait_is_outlasted_by_ptbs_own_retry(app, api, db):
    """With PTB's AIORateLimiter on (as in production), a 429 on the confirmation is retried after
    retry_after and nothing is queued. (This waits retry_after, one second, in real time.)"""
    await seed(db)
    u = Tg(app, api, WORKER_A)
    await visit_walk_to(u, "CONFIRM")
    api.inject_fault("sendMessage", status=429, retry_after=1)
    out = await u.press("Save")
    assert "✅ Visit #1 saved." in out[-1]["text"] and await _outbox(db) == []


async def test_a_form_whose_first_question_failed_can_be_continued_or_discarded(fapp, api, db):
    """/visit stores the draft, then Telegram fails on the first question: the conversation never
    started. The next /visit offers ▶️ Continue / 🗑 Discard, and both buttons work (the soak found
    Continue answered "expired", leaving the worker stuck)."""
    await seed(db)
    u = Tg(fapp, api, WORKER_A)
    await u.send("/help")
    api.inject_fault("sendMessage", count=1, **FAULTS["5xx"])
    await u.send("/visit")
    assert u.draft is not None and u.draft["step"] == "HOUSEHOLD"
    out = await u.send("/visit")
    assert "unfinished" in out[-1]["text"]
    out = await u.press("Continue")
    assert "Step 1/7" in out[-1]["text"]
    out = await u.send("3栋")
    assert "Matches for" in out[-1]["text"] or "No household" in out[-1]["text"]
    assert u.draft["step"] == "HOUSEHOLD"

    v = Tg(fapp, api, WORKER_B)
    await v.send("/help")
    api.inject_fault("sendMessage", count=1, **FAULTS["5xx"])
    await v.send("/visit")
    await v.send("/visit")
    await v.press("Discard")
    assert v.draft is None
    out = await v.send("/visit")
    assert "Step 1/7" in out[-1]["text"]


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_notification_to_a_supervisor_during_an_outage_arrives_once_with_its_buttons(fapp, api, db, fault):
    """The reporter's confirmation and the supervisor's "new issue to dispatch" both fail while
    Telegram is down: both are queued and each arrives exactly once, the supervisor's with its
    buttons, when Telegram is back."""
    await seed_issues(db)
    worker, supervisor = Tg(fapp, api, WORKER_A), Tg(fapp, api, SUPERVISOR_A)
    await supervisor.send("/help")
    await _report_to_summary(worker)
    down(api, fault)
    assert await worker.press("Submit") == []
    assert await count(db, Issue) == 1
    notices = [r for r in await _outbox(db) if r.kind == "notice"]
    assert [r.recipient for r in notices] == [delivery.tg(SUPERVISOR_A)]
    api.clear_faults()
    clock.advance(timedelta(minutes=1))
    await drain_all(fapp)
    assert said(api, SUPERVISOR_A, "New issue 2605-0001 to dispatch") == 1
    assert "👤 Assign" in [t for t, _ in buttons(supervisor.keyboard_message())]
    assert said(api, WORKER_A, "Reported as issue 2605-0001") == 1
    clock.advance(timedelta(hours=1))
    assert await drain_all(fapp) == 0
