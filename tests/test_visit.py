"""The /visit conversation, driven through the real Application with real Updates."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import func, select

from models import clock
from models.tables import Household, PersistedState, Visit
from sandbox.localapi import buttons
from tests.conftest import TOKEN, Tg, make_app, stop_app, texts
from tests.seed import WORKER_A, WORKER_B, seed

JPEG = b"\xff\xd8\xff\xe0" + b"visit-photo" * 10


async def rows(db, model) -> list:
    async with db.session() as s:
        return list((await s.exec(select(model))).all())


async def db_snapshot(db) -> tuple:
    """What the ledgers hold: visits and households (persisted chat state is not a ledger)."""
    visits = [(v.id, v.household_id, v.people_met) for v in await rows(db, Visit)]
    households = [(h.id, h.address, h.active) for h in await rows(db, Household)]
    return visits, households


async def walk_to(u: Tg, step: str) -> None:
    """Fill the form up to `step` with valid answers."""
    await u.send("/visit")
    if step == "HOUSEHOLD":
        return
    await u.send("3栋1单元101")
    await u.press("3栋1单元101")
    if step == "PEOPLE":
        return
    await u.send("2")
    if step == "SITUATION":
        return
    await u.press("Normal")
    await u.press("Done")
    if step == "NOTES":
        return
    await u.send("Talked with the family")
    if step == "PHOTOS":
        return
    await u.photo(JPEG)
    await u.send("/done")
    if step == "LOCATION":
        return
    await u.location(28.17, 112.98)
    assert step == "CONFIRM"


async def test_complete_visit_writes_one_row_with_everything(app, api, db, settings):
    s = await seed(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "CONFIRM")
    summary = u.last
    assert "3栋1单元101" in summary and "People met: 2" in summary and "Photos: 1" in summary
    assert "Location: 28.17000, 112.98000" in summary and "Talked with the family" in summary
    out = await u.press("Save")
    assert "saved" in texts(out)

    (visit,) = await rows(db, Visit)
    assert visit.household_id == s.households_a[0]
    assert visit.worker_id == s.worker_a.id
    assert visit.people_met == 2 and visit.situations == ["正常"]
    assert visit.notes == "Talked with the family"
    assert (visit.latitude, visit.longitude) == (28.17, 112.98)
    assert visit.visited_at == clock.now() and visit.visited_at.tzinfo is not None
    (photo,) = visit.photos
    stored = settings.media_dir / photo["sha256"][:2] / f"{photo['sha256']}.jpg"
    assert stored.read_bytes() == JPEG and photo["file_id"]
    assert u.draft is None
    # The summary keeps its content and loses its buttons.
    assert buttons(u.bot_messages()[-2]) == [] and "Saved as visit #" in u.bot_messages()[-2]["text"]


async def test_household_search_pages_and_scope(app, api, db):
    s = await seed(db, households_a=14)
    u = Tg(app, api, WORKER_A)
    await u.send("/visit")
    out = await u.send("3栋")
    assert "Matches for «3栋»: 14 (page 1/3)" in texts(out)
    labels = [t for t, _ in buttons(out[0])]
    assert sum("3栋" in t for t in labels) == 6 and "Next ▶️" in labels and "3栋1单元201 · G02" not in labels
    await u.press("Next ▶️")
    page2 = u.message(out[0]["message_id"])
    assert "page 2/3" in page2["text"] and "◀️ Previous" in [t for t, _ in buttons(page2)]
    # Two words narrow the search (both must appear); another grid's households never show.
    out = await u.send("4单元 102")
    assert "Matches for «4单元 102»: 1 " in texts(out)
    out = await u.send("201")
    assert "No household of your grids matches «201»" in texts(out)
    # A forged button for a household of grid B is refused and changes nothing.
    draft_key = u.draft["id"][:8]
    await u.press_data(f"visit:{draft_key}:pick:{s.households_b[0]}")
    assert "not in your grids" in (u.answers()[-1] or "")
    assert u.draft["step"] == "HOUSEHOLD"


async def test_new_household_on_the_spot(app, api, db):
    await seed(db)
    u = Tg(app, api, WORKER_A)
    await u.send("/visit")
    await u.press("New household")
    out = await u.send("  9栋 1单元 1201 ")
    assert "Tags for this household" in texts(out)  # one grid: no grid question
    await u.press("Elderly living alone")
    await u.press("Done")
    await u.send("1")
    await u.press("Needs help")
    await u.press("Done")
    await u.send("/skip")
    await u.send("/done")
    await u.send("/skip")
    assert "(new household)" in u.last and "独居老人" in u.last
    await u.press("Save")
    households = {h.address: h for h in await rows(db, Household)}
    assert households["9栋 1单元 1201"].tags == ["独居老人"]
    (visit,) = await rows(db, Visit)
    assert visit.household_id == households["9栋 1单元 1201"].id
    assert visit.notes is None and visit.photos == [] and visit.latitude is None


async def test_new_household_at_a_registered_address_offers_that_household(app, api, db):
    s = await seed(db)
    u = Tg(app, api, WORKER_A)
    await u.send("/visit")
    await u.press("New household")
    out = await u.send("3栋1单元 101")  # registered as 3栋1单元101
    assert "«3栋1单元 101» is already registered" in texts(out)
    assert [t for t, _ in buttons(out[-1])] == ["🏠 3栋1单元101 · G01"]  # one grid: no "new household in another grid"
    out = await u.press("3栋1单元101 · G01")
    assert "Household: 3栋1单元101" in texts(u.bot_messages()) and "Step 2/7" in texts(out) and u.draft["step"] == "PEOPLE"
    await u.send("1")
    await u.press("Normal")
    await u.press("Done")
    await u.send("/skip")
    await u.send("/done")
    await u.send("/skip")
    assert "(new household)" not in u.last
    await u.press("Save")
    (visit,) = await rows(db, Visit)
    assert visit.household_id == s.households_a[0] and len(await rows(db, Household)) == 10


async def test_search_by_head_name_and_tag(app, api, db):
    s = await seed(db)
    async with db.session() as session:
        house = await session.get(Household, s.households_a[2])
        house.head_name = "刘建国"
        await session.commit()
    u = Tg(app, api, WORKER_A)
    await u.send("/visit")
    out = await u.send("建国")
    assert "Matches for «建国»: 1 " in texts(out) and "3栋1单元103" in str(buttons(out[-1]))
    out = await u.send("独居")
    assert "Matches for «独居»: 1 " in texts(out) and "3栋1单元101" in str(buttons(out[-1]))
    out = await u.send("独居 102")  # every word must match, each in any field
    assert "No household of your grids matches" in texts(out)


async def test_a_photo_sent_as_a_file_is_taken_and_skip_moves_on(app, api, db):
    """How people send 原图: a JPEG as a document. A file that is not a photo is refused and changes nothing."""
    await seed(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "PHOTOS")
    out = await u.raw(api.send_document(TOKEN, WORKER_A, JPEG, "IMG_0001.JPG", first_name="Test", language_code="en"))
    assert "Photo 1 received" in texts(out)
    out = await u.raw(api.send_document(TOKEN, WORKER_A, b"not really a jpeg", "fake.jpg", first_name="Test", language_code="en"))
    assert "not a JPEG or PNG photo" in texts(out) and len(u.draft["data"]["photos"]) == 1
    out = await u.raw(api.send_document(TOKEN, WORKER_A, b"%PDF-1.4", "report.pdf", first_name="Test", language_code="en"))
    assert texts(out).startswith("This step expects") and len(u.draft["data"]["photos"]) == 1
    out = await u.send("/skip")
    assert "Step 6/7" in texts(out) and u.draft["step"] == "LOCATION"
    await u.send("/skip")
    await u.press("Save")
    (visit,) = await rows(db, Visit)
    assert len(visit.photos) == 1 and app.media.path_for(visit.photos[0]["sha256"]).read_bytes() == JPEG


WRONG_INPUTS = ["sticker", "photo", "text", "location", "stale_button", "skip", "done"]
# The kinds each step takes; everything else must be refused.
ACCEPTS = {
    "HOUSEHOLD": {"text"}, "PEOPLE": {"text"}, "SITUATION": set(), "NOTES": {"text", "skip"},
    "PHOTOS": {"photo", "done", "skip"}, "LOCATION": {"location", "skip"}, "CONFIRM": set(),
}


@pytest.mark.parametrize("step", list(ACCEPTS))
async def test_every_step_refuses_every_wrong_kind_of_input(app, api, db, step):
    await seed(db)
    u = Tg(app, api, WORKER_A)
    # An earlier draft leaves a button behind that must stay harmless.
    await u.send("/visit")
    await u.send("/cancel")
    old_button = u.bot_messages()[-2]
    await walk_to(u, step)
    before_draft, before_db = u.draft, await db_snapshot(db)
    for kind in WRONG_INPUTS:
        if kind in ACCEPTS[step]:
            continue
        if kind == "sticker":
            out = await u.sticker()
        elif kind == "photo":
            out = await u.photo()
        elif kind == "text":
            out = await u.send("hello")
        elif kind == "location":
            out = await u.location(1.0, 2.0)
        elif kind == "skip":
            out = await u.send("/skip")
        elif kind == "done":
            out = await u.send("/done")
        else:
            out = await u.press_data(buttons(old_button)[0][1], old_button)
            assert "earlier form" in (u.answers()[-1] or ""), kind
            assert out == []
        if kind != "stale_button":
            assert len(out) == 1 and out[0]["text"].startswith("This step expects:"), (kind, texts(out))
        assert u.draft == before_draft, kind
        assert await db_snapshot(db) == before_db, kind


@pytest.mark.parametrize("value", ["21", "-1", "abc", "2.5", "99999999999"])
async def test_people_met_out_of_range_stays(app, api, db, value):
    await seed(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "PEOPLE")
    out = await u.send(value)
    assert "Please send a number from 0 to 20" in texts(out)
    assert u.draft["step"] == "PEOPLE"
    out = await u.send("３人")  # full-width digit with a unit is fine
    assert u.draft["step"] == "SITUATION" and u.draft["data"]["people_met"] == 3


@pytest.mark.parametrize(("text", "count"), [("两个", 2), ("三人", 3), ("十二位", 12), ("二十", 20), ("零", 0), ("２", 2), ("见了4人", 4),
                                             ("俩", 2), ("二十一", None), ("两三个", None), ("一两个", None), ("一百", None)])
async def test_people_met_as_people_say_it(app, api, db, text, count):
    await seed(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "PEOPLE")
    out = await u.send(text)
    if count is None:
        assert "Please send a number from 0 to 20" in texts(out) and u.draft["step"] == "PEOPLE"
    else:
        assert u.draft["step"] == "SITUATION" and u.draft["data"]["people_met"] == count


async def test_situation_needs_one_and_notes_are_masked(app, api, db):
    await seed(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "SITUATION")
    await u.press("Done")
    assert u.answers()[-1] == "Choose at least one situation." and u.draft["step"] == "SITUATION"
    await u.press("Dispute")
    await u.press("Other")
    await u.press("Other")  # toggled off again
    await u.press("Done")
    assert u.draft["data"]["situations"] == ["矛盾纠纷"]
    await u.send("户主身份证 11010519491231002X 已核对 <b>ok</b>")
    await u.send("/done")
    await u.send("/skip")
    assert "&lt;b&gt;ok&lt;/b&gt;" not in u.last  # the local API renders HTML: the user sees the raw text
    assert "<b>ok</b>" in u.last and "110105********002X" in u.last
    await u.press("Save")
    (visit,) = await rows(db, Visit)
    assert visit.notes == "户主身份证 110105********002X 已核对 <b>ok</b>"


async def test_save_is_idempotent_double_tap_and_redelivery(app, api, db):
    await seed(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "CONFIRM")
    summary = u.keyboard_message()
    save = next(d for t, d in buttons(summary) if "Save" in t)
    update = api.press_button(TOKEN, WORKER_A, summary["message_id"], save)
    await u.raw(update)
    await u.raw(update)  # the same update delivered again
    await u.press_data(save, summary)  # and a second tap
    assert len(await rows(db, Visit)) == 1
    assert "expired" in (u.answers()[-1] or "")


async def test_redelivered_confirm_after_crash_saves_once(app, api, db, settings):
    """The visit was committed but the chat state was not (a crash between the two)."""
    await seed(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "CONFIRM")
    draft = dict(u.draft)
    summary = u.keyboard_message()
    save = next(d for t, d in buttons(summary) if "Save" in t)
    await u.press_data(save, summary)
    # Put the conversation back where it was before the save, as a crash would have left it.
    app.user_data[WORKER_A]["draft"] = draft
    out = await u.press_data(save, summary)
    assert len(await rows(db, Visit)) == 1
    assert "saved" in texts(out)


async def test_cancel_discards_and_says_so(app, api, db):
    await seed(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "NOTES")
    out = await u.send("/cancel")
    assert "Cancelled. The home visit draft was discarded" in texts(out)
    assert u.draft is None and await rows(db, Visit) == []
    out = await u.send("/cancel")
    assert "nothing to cancel" in texts(out)


async def test_visit_during_visit_offers_continue_or_discard(app, api, db):
    await seed(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "PEOPLE")
    out = await u.send("/visit")
    assert "You have an unfinished home visit" in texts(out)
    await u.press("Continue")
    assert "How many people" in u.last and u.draft["step"] == "PEOPLE"
    await u.send("/visit")
    await u.press("Discard")
    assert u.draft is None and "discarded" in u.last
    out = await u.send("/visit")
    assert "Step 1/7" in texts(out)


async def test_edit_a_field_from_the_summary(app, api, db):
    await seed(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "CONFIRM")
    old_summary = u.keyboard_message()
    await u.press("Edit")
    await u.press("People met")
    out = await u.send("5")
    assert "People met: 5" in texts(out) and "Check and save" in texts(out)
    # The old summary's Save no longer works; the new one does.
    await u.press("Save", old_summary)
    assert "out of date" in (u.answers()[-1] or "") and await rows(db, Visit) == []
    await u.press("Save")
    (visit,) = await rows(db, Visit)
    assert visit.people_met == 5 and visit.notes == "Talked with the family"


async def test_timeout_closes_the_form(app, api, db):
    await seed(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "PEOPLE")
    clock.advance(timedelta(minutes=16))
    out = await u.send("2")
    assert "No reply for 15 minutes" in texts(out)
    assert u.draft is None
    out = await u.send("/visit")
    assert "Step 1/7" in texts(out)


async def test_restart_resumes_at_the_same_step_with_the_draft(settings, db, api):
    await seed(db)
    app1 = await make_app(settings, db, api)
    u = Tg(app1, api, WORKER_A)
    await walk_to(u, "NOTES")
    draft = u.draft
    await stop_app(app1)  # nothing else is flushed on the way down: state was written per update

    app2 = await make_app(settings, db, api)
    u2 = Tg(app2, api, WORKER_A)
    assert u2.draft == draft
    out = await u2.send("resumed notes")
    assert "Step 5/7" in texts(out)
    await u2.send("/done")
    await u2.send("/skip")
    await u2.press("Save")
    (visit,) = await rows(db, Visit)
    assert visit.notes == "resumed notes" and visit.people_met == 2
    await stop_app(app2)


async def test_state_is_in_the_database_after_each_update(app, api, db):
    await seed(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "PEOPLE")
    async with db.session() as s:
        rows = (await s.exec(select(PersistedState))).all()
    # The draft's step is the one record of where the worker is (no second, per-conversation state).
    assert [(r.kind, r.data["draft"]["step"]) for r in rows] == [("user_data", "PEOPLE")]


async def test_other_grid_worker_sees_only_their_households(app, api, db):
    await seed(db)
    u = Tg(app, api, WORKER_B)
    await u.send("/visit")
    out = await u.send("3栋")
    assert "Matches for «3栋»: 2 " in texts(out)
    async with db.session() as s:
        assert (await s.exec(select(func.count()).select_from(Visit))).one() == 0


async def restart_past_the_timeout(settings, db, api):  # noqa: ANN001, ANN201
    """A form left at PEOPLE, the bot stopped, 20 minutes gone, the bot started again: returns the
    new app and the worker once start-up's timeout job has run."""
    import asyncio

    from handlers import on_startup

    await seed(db)
    app1 = await make_app(settings, db, api)
    await walk_to(Tg(app1, api, WORKER_A), "PEOPLE")
    await stop_app(app1)
    clock.advance(timedelta(minutes=20))
    app2 = await make_app(settings, db, api)
    u = Tg(app2, api, WORKER_A)
    await on_startup(app2)
    for _ in range(100):  # the job runs about a second after start-up
        if "No reply for 15 minutes" in u.last:
            break
        await asyncio.sleep(0.05)
    return app2, u


async def test_draft_left_open_across_a_restart_still_times_out(settings, db, api):
    """PTB keeps no timeout jobs across restarts; start-up schedules them from the draft's last activity."""
    app2, u = await restart_past_the_timeout(settings, db, api)
    assert "No reply for 15 minutes" in u.last and u.draft is None
    out = await u.send("2")  # the conversation knows its form is gone
    assert "no longer open" in texts(out)
    out = await u.send("/visit")
    assert "Step 1/7" in texts(out)
    await stop_app(app2)


async def test_a_timed_out_form_is_announced_once_across_restarts(settings, db, api):
    """The timeout is written like any other step: the next start-up finds no draft to time out again."""
    import asyncio

    from handlers import on_startup

    app2, u = await restart_past_the_timeout(settings, db, api)
    notices = [m for m in u.bot_messages() if "No reply for 15 minutes" in m.get("text", "")]
    assert len(notices) == 1
    async with db.session() as s:
        (user,) = (await s.exec(select(PersistedState).where(PersistedState.kind == "user_data"))).all()
    assert "draft" not in user.data  # written at once, not at the next update
    await stop_app(app2)

    app3 = await make_app(settings, db, api)
    u3 = Tg(app3, api, WORKER_A)
    await on_startup(app3)
    await asyncio.sleep(1.5)  # when a second timeout would have run
    assert len([m for m in u3.bot_messages() if "No reply for 15 minutes" in m.get("text", "")]) == 1 and u3.draft is None
    await stop_app(app3)


async def test_a_forged_toggle_for_an_option_that_does_not_exist_is_answered_and_changes_nothing(app, api, db):
    await seed(db)
    u = Tg(app, api, WORKER_A)
    await walk_to(u, "SITUATION")
    before = dict(u.draft["data"])
    for arg in ("99", "x", "-1"):
        await u.press_data(f"visit:{u.draft['id'][:8]}:t:{arg}", u.keyboard_message())
        assert u.answers()[-1] == "That button is no longer active at this step."
    assert u.draft["step"] == "SITUATION" and u.draft["data"] == before


async def test_the_household_card_shows_its_residents_masked_and_its_last_visit(app, api, db):
    """Picking a household shows who lives there (names masked, as household heads are for non-admins),
    their care tags and when it was last visited."""
    from zoneinfo import ZoneInfo

    from bot.importer import read_table
    from models.importer import run_import
    from models.tables import Resident

    await seed(db)
    csv = ("网格,地址,姓名,与户主关系,身份证号,关爱标签\n"
           "G01,3栋1单元101,张三丰,户主,110101194503071234,独居老人\n"
           "G01,3栋1单元101,李梅,配偶,,\n"
           "G01,3栋1单元101,搬走的人,子女,,\n")
    headers, table = read_table(csv.encode(), "residents.csv")
    async with db.session() as session:
        result = await run_import(session, "residents", headers, table, clock.now().tzinfo, 0.2, {})
    assert result.created == 3
    async with db.session() as session:
        moved = (await session.exec(select(Resident).where(Resident.name == "搬走的人"))).one()
        moved.active = False
        session.add(moved)
        stored = (await session.exec(select(Resident).where(Resident.name == "张三丰"))).one()
    assert stored.id_number == "110101********1234"

    u = Tg(app, api, WORKER_A)
    await u.send("/visit")
    await u.send("3栋1单元101")
    await u.press("3栋1单元101")
    card = u.bot_messages()[-2]["text"]
    assert "Residents (2): 张**（户主）·独居老人、李*（配偶）" in card and "Not visited before." in card
    assert "张三丰" not in card and "搬走" not in card and "1234" not in card
    await walk_to_save(u)
    await u.send("/visit")
    await u.send("3栋1单元101")
    await u.press("3栋1单元101")
    assert f"Last visit: {clock.now().astimezone(ZoneInfo('Asia/Shanghai')):%Y-%m-%d}" in u.bot_messages()[-2]["text"]


async def walk_to_save(u: Tg) -> None:
    await u.send("2")
    await u.press("Normal")
    await u.press("Done")
    await u.send("/skip")
    await u.send("/done")
    await u.send("/skip")
    out = await u.press("Save")
    assert "saved" in texts(out)
