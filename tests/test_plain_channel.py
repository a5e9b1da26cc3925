"""The engine is channel-neutral: /visit, /patrol and /report run end to end on a second channel
(tests/plain_channel.py: plain text, numbered buttons, no edits, no toasts, no locations), with a
wrong input, /cancel and a restart in the middle, and no Telegram application at all."""

from __future__ import annotations

from sqlmodel import select

from models.issues import Issue, IssuePhoto
from models.patrols import Patrol
from models.tables import Visit
from tests.plain_channel import PlainUser, known_here, runtime, texts
from tests.seed import SUPERVISOR_A, WORKER_A, seed
from tests.seed_issues import seed_issues
from tests.seed_patrols import seed_patrols

JPEG = b"\xff\xd8\xff\xe0" + b"plain-photo" * 10


async def rows(db, table):  # noqa: ANN001, ANN201
    async with db.session() as s:
        return (await s.exec(select(table))).all()


async def test_a_visit_end_to_end_with_a_wrong_input_cancel_and_a_restart(settings, db):
    await seed(db)
    await known_here(db, WORKER_A, SUPERVISOR_A)
    engine, channel = runtime(settings, db)
    u = PlainUser(engine, channel, WORKER_A)
    out = await u.send("/visit")
    assert "Step 1/7" in texts(out) and "[1] ➕ New household" in texts(out)  # buttons come numbered
    await u.send("/cancel")
    assert "Cancelled" in u.last and u.draft is None
    await u.send("/visit")
    out = await u.send("3栋1单元101")
    await u.press("3栋1单元101")
    out = await u.photo(JPEG)  # the wrong kind at the people step: said, nothing changes
    assert "This step expects" in texts(out) and u.draft["step"] == "PEOPLE"
    await u.send("2")

    engine, channel2 = runtime(settings, db)  # a restart: a new engine reads the state back
    await engine.load("plain")
    channel2.said = channel.said
    channel2.files = channel.files
    u = PlainUser(engine, channel2, WORKER_A)
    assert u.draft["step"] == "SITUATION"
    await u.press("Normal")
    out = await u.press("Done")
    assert "✅ Normal" not in texts(out)  # no edits here: the toggle list came as a new message, then the next step
    await u.send("Talked with the family")
    out = await u.photo(JPEG)
    assert "Photo 1 received" in texts(out)
    out = await u.send("/done")
    # The location step takes a pin or /skip only, and this channel cannot send one: it is skipped.
    assert "Step 7/7" in texts(out) and "Step 6/7" not in texts(out)
    summary = u.keyboard_message()
    out = await u.press("Save")
    assert "Visit #1 saved" in texts(out)
    (visit,) = await rows(db, Visit)
    assert visit.people_met == 2 and visit.notes == "Talked with the family" and len(visit.photos) == 1 and visit.latitude is None
    assert u.draft is None
    out = await u.press("Save", summary)  # the old summary's button again: answered in a message (no toasts), nothing doubled
    assert "already saved" in texts(out) and len(await rows(db, Visit)) == 1


async def test_a_patrol_end_to_end_escalation_reaches_the_supervisor_on_the_same_channel(settings, db):
    await seed_patrols(db)
    await known_here(db, WORKER_A, SUPERVISOR_A)
    engine, channel = runtime(settings, db)
    u = PlainUser(engine, channel, WORKER_A)
    await u.send("/patrol")
    await u.send("面馆")
    await u.press("老王面馆")
    await u.press("Environmental hygiene")
    await u.press("Food sample retention")
    await u.press("Done")
    await u.press("Corrected on the spot")
    await u.send("Swept the kitchen floor with the owner")
    await u.press("Escalate")
    await u.send("No samples kept since Monday")
    out = await u.send("hello")  # text where photos are due
    assert "This step expects" in texts(out)
    await u.photo(JPEG)
    await u.send("/done")
    out = await u.press("Save")
    assert "saved" in texts(out)
    (patrol,) = await rows(db, Patrol)
    assert patrol.shop_id is not None
    told = texts(channel.said.get(str(SUPERVISOR_A), []))
    assert "老王面馆" in told and "[photo]" in told  # the escalation, with its photo, to the grid's supervisor


async def test_a_report_end_to_end_without_location_sharing(settings, db):
    s = await seed_issues(db)
    await known_here(db, WORKER_A, SUPERVISOR_A)
    engine, channel = runtime(settings, db)
    u = PlainUser(engine, channel, WORKER_A)
    await u.send("/report")
    await u.press("Outdoor signs")
    out = await u.send("招牌松动，有坠落风险")
    assert "Type the address" in texts(out) and "Location" not in texts(out)  # no pin to ask for here
    await u.send("幸福路12号")  # the address is the place: on to the photos
    assert u.draft["step"] == "PHOTOS"
    await u.photo(JPEG)
    await u.send("/done")
    out = await u.press("Normal")
    assert "Check and submit" in texts(out) and "Address: 幸福路12号" in texts(out)
    out = await u.press("Submit")
    assert "Reported as issue 2605-0001" in texts(out)
    (issue,) = await rows(db, Issue)
    assert (issue.status, issue.reporter_id, issue.address, issue.latitude) == ("reported", s.worker_a.id, "幸福路12号", None)
    assert len(await rows(db, IssuePhoto)) == 1
    assert "2605-0001" in texts(channel.said.get(str(SUPERVISOR_A), []))  # the dispatcher is told on this channel
