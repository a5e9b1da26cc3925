"""Duplicate updates: the same update delivered twice (a webhook retry, polling after a crash) is
handled once, at a text step, a photo step and the save of every flow; a double-tapped save button
(two different updates) writes one record and the second tap is told what the first one did; the
update id is written in the chat state's transaction, kept 48 hours, and checked across restarts."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlmodel import func, select
from telegram import Update

from bot.channels.telegram import GridApplication
from bot.db import Database
from models import clock, state
from models.tables import ProcessedUpdate
from sandbox.localapi import buttons
from tests.conftest import ADMIN_ID, TOKEN, Tg, make_app, record_handled, stop_app
from tests.seed import SUPERVISOR_A, WORKER_A, seed
from tests.seed_issues import seed_issues
from tests.seed_patrols import seed_patrols
from tests.test_api_faults import SAVES, _report_to_summary
from tests.test_issues import JPEG as ISSUE_JPEG
from tests.test_issues import LAT, LON
from tests.test_patrols import walk_to as patrol_walk_to
from tests.test_visit import JPEG, walk_to

WHO = {"first_name": "Test", "language_code": "en"}


def recorder(app: GridApplication) -> list[int]:
    return record_handled(app)


async def processed_rows(db: Database) -> int:
    async with db.session() as s:
        return int((await s.exec(select(func.count()).select_from(ProcessedUpdate))).one())


# -- the same update twice, at every kind of step of every flow -----------------------------------------


@dataclass
class Case:
    seed: Callable[[Database], Awaitable[object]]
    user: int
    walk: Callable[[Tg], Awaitable[None]]
    update: Callable[[Tg], dict]  # the update to deliver twice, made once


def text(value: str) -> Callable[[Tg], dict]:
    return lambda u: u.api.send_text(TOKEN, u.user_id, value, **WHO)


def photo(data: bytes) -> Callable[[Tg], dict]:
    return lambda u: u.api.send_photo(TOKEN, u.user_id, data, **WHO)


def press(label: str) -> Callable[[Tg], dict]:
    def make(u: Tg) -> dict:
        message = u.keyboard_message()
        data = next(d for t, d in buttons(message) if label in t)
        return u.api.press_button(TOKEN, u.user_id, message["message_id"], data, **WHO)

    return make


async def _walk_report_photos(u: Tg) -> None:
    await u.send("/report")
    await u.press("Outdoor signs")
    await u.send("招牌松动")
    await u.location(LAT, LON)
    await u.send("/done")


async def _walk_report_description(u: Tg) -> None:
    await u.send("/report")
    await u.press("Outdoor signs")


async def _walk_spot_before_photo(u: Tg) -> None:
    await u.send("/help")
    await _report_to_summary(u)
    await u.press("Resolved on the spot")
    await u.send("已联系车主拆除地锁")


async def _nothing(db: Database) -> None:
    return None


def _save_case(path: str, update: Callable[[Tg], dict]) -> Case:
    s = SAVES[path]
    return Case(s.seed, s.user, s.walk, update)


CASES: dict[tuple[str, str], Case] = {
    ("visit", "text"): Case(seed, WORKER_A, lambda u: walk_to(u, "PEOPLE"), text("2")),
    ("visit", "photo"): Case(seed, WORKER_A, lambda u: walk_to(u, "PHOTOS"), photo(JPEG)),
    ("visit", "save"): _save_case("visit", press("Save")),
    ("patrol", "text"): Case(seed_patrols, WORKER_A, lambda u: patrol_walk_to(u, "NOTE"), text("Swept the kitchen floor")),
    ("patrol", "photo"): Case(seed_patrols, WORKER_A, lambda u: patrol_walk_to(u, "PHOTOS"), photo(JPEG)),
    ("patrol", "save"): _save_case("patrol", press("Save")),
    ("shop_add", "text"): Case(seed_patrols, SUPERVISOR_A, lambda u: u.send("/shop_add"), text("陈记烧烤")),
    ("shop_add", "save"): _save_case("shop_add", press("Save")),
    ("report", "text"): Case(seed_issues, WORKER_A, _walk_report_description, text("招牌松动，有坠落风险")),
    ("report", "photo"): Case(seed_issues, WORKER_A, _walk_report_photos, photo(ISSUE_JPEG)),
    ("report", "save"): _save_case("report", press("Submit")),
    ("report_spot", "photo"): Case(seed_issues, WORKER_A, _walk_spot_before_photo, photo(ISSUE_JPEG)),
    ("report_spot", "save"): _save_case("report_spot", text("/done")),
    ("report_attach", "save"): _save_case("report_attach", press("Add to 9901-0001")),
    ("issue_note", "save"): _save_case("issue_note", text("不属于本网格管辖")),
    ("join", "text"): Case(_nothing, ADMIN_ID, lambda u: u.send("/start"), text("Admin Zhao")),
    ("join", "save"): _save_case("join", text("/skip")),
}


@pytest.mark.parametrize(("path", "kind"), list(CASES))
async def test_the_same_update_delivered_twice_is_handled_once(app, api, db, path, kind):
    case = CASES[(path, kind)]
    await case.seed(db)
    handled = recorder(app)
    u = Tg(app, api, case.user)
    await case.walk(u)
    update = case.update(u)
    before = copy.deepcopy(u.bot_messages())
    await u.raw(update)
    after_first = copy.deepcopy(u.bot_messages())
    draft, answers = copy.deepcopy(u.draft), len(api.callback_answers)
    records = await SAVES[path].records(db)
    assert after_first != before  # the first delivery was answered (a new message or an edit)

    await u.raw(update)  # delivered again
    assert u.bot_messages() == after_first and len(api.callback_answers) == answers  # not a word more
    assert u.draft == draft  # the draft as after one delivery (one photo, not two)
    assert handled.count(update["update_id"]) == 1
    assert await SAVES[path].records(db) == records == (1 if kind == "save" else 0)
    if kind == "photo":
        photos = draft["data"].get("after_photos") or draft["data"]["photos"]
        assert len(photos) == 1
    if kind == "save":
        assert draft is None


# -- a double-tapped save: two different updates ---------------------------------------------------------

DOUBLE_TAP = {"visit": "Save", "patrol": "Save", "shop_add": "Save", "report": "Submit", "report_attach": "Add to 9901-0001"}
OUTCOME = {"visit": "✅ Visit #1 saved.", "patrol": "✅ Patrol #1 saved.", "shop_add": "✅ Registered as shop #",
           "report": "✅ Reported as issue 2605-0001.", "report_attach": "📎 Your report was added to issue 9901-0001"}


@pytest.mark.parametrize("path", list(DOUBLE_TAP))
async def test_a_double_tapped_save_writes_one_record_and_the_second_tap_says_so(app, api, db, path):
    case = SAVES[path]
    await case.seed(db)
    u = Tg(app, api, case.user)
    await case.walk(u)
    summary = u.keyboard_message()
    data = next(d for t, d in buttons(summary) if DOUBLE_TAP[path] in t)
    await u.press_data(data, summary)
    first_answer = u.answers()[-1] if api.callback_answers else None
    out = await u.press_data(data, summary)  # the second tap: another update
    assert out == [] and await case.records(db) == 1
    second = u.answers()[-1] or ""
    assert second != first_answer
    assert "already saved" in second and OUTCOME[path] in second, second
    # And a tap on the summary's other buttons changes nothing either.
    for t, d in buttons(summary):
        if d != data:
            await u.press_data(d, summary)
            assert "already saved" in (u.answers()[-1] or "")
    assert await case.records(db) == 1 and u.draft is None


# -- how the record of handled updates works ------------------------------------------------------------------


async def test_a_redelivery_after_a_restart_is_recognised_from_the_database(settings, db, api):
    await seed(db)
    app = await make_app(settings, db, api)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "PHOTOS")
    update = api.send_photo(TOKEN, WORKER_A, JPEG, **WHO)
    await u.raw(update)
    assert len(u.draft["data"]["photos"]) == 1
    await stop_app(app)

    app = await make_app(settings, db, api)  # a new process: nothing in memory
    handled = recorder(app)
    u = Tg(app, api, WORKER_A)
    before = copy.deepcopy(u.bot_messages())
    await u.raw(update)  # polling hands it over again (the offset had not been confirmed)
    assert handled == [] and u.bot_messages() == before and len(u.draft["data"]["photos"]) == 1
    out = await u.send("/done")  # and the form goes on
    assert "Step 6/7" in out[-1]["text"]
    await stop_app(app)


async def test_the_update_id_is_written_with_the_chat_state_or_not_at_all(settings, db, api, monkeypatch):
    """The write after an update fails (the database is down): neither the new chat state nor the
    update id is saved. After a crash the update comes again and is handled again, from the state
    before it: the photo is kept once."""
    await seed(db)
    app = await make_app(settings, db, api)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "PHOTOS")
    rows = await processed_rows(db)
    real_put = state.put_many

    async def down(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise ConnectionError("database down")

    monkeypatch.setattr(state, "put_many", down)
    update = api.send_photo(TOKEN, WORKER_A, JPEG, **WHO)
    await u.raw(update)
    assert len(u.draft["data"]["photos"]) == 1  # in memory only
    assert await processed_rows(db) == rows  # the id was not written without the state
    # The process dies here: what it still held in memory is gone.
    app.engine._pending.clear()  # noqa: SLF001
    app.engine._processed.clear()  # noqa: SLF001
    monkeypatch.setattr(state, "put_many", real_put)
    await stop_app(app)

    app = await make_app(settings, db, api)
    handled = recorder(app)
    u = Tg(app, api, WORKER_A)
    assert u.draft["step"] == "PHOTOS" and u.draft["data"]["photos"] == []
    out = await u.raw(update)
    assert handled == [update["update_id"]] and "Photo 1 received" in out[-1]["text"]
    assert len(u.draft["data"]["photos"]) == 1
    assert await processed_rows(db) == rows + 1
    await stop_app(app)


async def test_the_same_update_at_once_twice_is_handled_once(app, api, db):
    """Two deliveries in flight together (a webhook retry while the first is still being handled)."""
    await seed(db)
    handled = recorder(app)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "PHOTOS")
    update = Update.de_json(api.send_photo(TOKEN, WORKER_A, JPEG, **WHO), app.bot)
    await asyncio.gather(app.process_update(update), app.process_update(update))
    assert handled.count(update.update_id) == 1 and len(u.draft["data"]["photos"]) == 1


async def test_an_update_id_seen_again_with_other_content_is_a_new_update(app, api, db):
    """A local Bot API that restarted numbers its updates afresh; Telegram redelivers an update unchanged."""
    await seed(db)
    handled = recorder(app)
    u = Tg(app, api, WORKER_A)
    first = api.send_text(TOKEN, WORKER_A, "/help", **WHO)
    await u.raw(first)
    other = copy.deepcopy(first)
    other["message"]["text"] = "/my"
    other["message"]["entities"][0]["length"] = 3
    other["message"]["message_id"] += 100
    out = await u.raw(other)
    assert handled == [first["update_id"], first["update_id"]] and "Your visits" in out[-1]["text"]
    out = await u.raw(other)  # and that one, again, is a duplicate
    assert out == [] and len(handled) == 2


async def test_handled_ids_are_kept_48_hours_then_pruned(app, api, db):
    await seed(db)
    u = Tg(app, api, WORKER_A)
    old = api.send_text(TOKEN, WORKER_A, "/help", **WHO)
    await u.raw(old)
    assert await processed_rows(db) == 1
    clock.advance(timedelta(hours=47))
    assert await u.raw(old) == []  # still remembered
    app.engine._recent.clear()  # noqa: SLF001 - as after a restart: the database must answer
    app.engine._high_water.clear()  # noqa: SLF001
    assert await u.raw(old) == []
    clock.advance(timedelta(hours=2))  # 49 hours: no longer kept (Telegram keeps an update 24 hours)
    await u.send("/help")  # the next write prunes
    async with db.session() as s:
        ids = (await s.exec(select(ProcessedUpdate.update_id))).all()
    assert old["update_id"] not in ids and len(ids) == 1


async def test_with_the_database_unreachable_for_the_check_the_update_is_still_handled(app, api, db, monkeypatch):
    """Failing open: the record cannot be read, so the update is handled (saves are idempotent anyway)."""
    await seed(db)
    handled = recorder(app)
    u = Tg(app, api, WORKER_A)
    await u.send("/help")
    app.engine._high_water.clear()  # noqa: SLF001

    async def down(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise ConnectionError("database down")

    monkeypatch.setattr(state, "highest_processed", down)
    out = await u.send("/help")
    assert "Your commands" in out[-1]["text"] and len(handled) == 2


# -- the chat states of many people, written together -----------------------------------------------------


async def test_people_answering_at_once_share_a_transaction_and_each_reply_waits_for_its_own_state(app, api, db, monkeypatch):
    """Group commit: while one chat-state transaction is being written, the states of the people who
    answered meanwhile wait and go in the next one, together; still, nobody's update is finished
    before a transaction holding their state has committed (a crash after it loses no step)."""
    from models.users import Role, create_user

    s = await seed(db)
    people = [WORKER_A, *range(7100, 7112)]
    async with db.session() as session:
        for uid in people[1:]:
            await create_user(session, uid, Role.WORKER, [s.grid_a], f"worker {uid}", "en")
    engine = app.engine
    real_put_many = state.put_many
    batches: list[list[str]] = []

    async def put_many(session, rows):  # noqa: ANN001, ANN202
        if not batches:  # the first transaction is held until everybody's state is staged
            while engine._staged < first_ticket + len(people):  # noqa: SLF001
                await asyncio.sleep(0.01)
        batches.append(sorted(key for _kind, key, _data in rows))
        await real_put_many(session, rows)

    monkeypatch.setattr(state, "put_many", put_many)
    first_ticket = engine._staged  # noqa: SLF001

    async def visit(uid: int) -> None:
        await app.process_update(Update.de_json(api.send_text(TOKEN, uid, "/visit", **WHO), app.bot))
        async with db.session() as session:  # finished: the state it produced is in the database
            stored = await state.load_kind(session, "user_data")
        assert stored[str(uid)]["draft"]["flow"] == "visit"

    await asyncio.gather(*(visit(uid) for uid in people))
    assert len(batches) == 2
    assert len(batches[0]) == 1 and sorted(batches[0] + batches[1]) == sorted(str(uid) for uid in people)
