"""/my and the stats behind it: periods in Asia/Shanghai, coverage, pace (DESIGN.md §2)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from models import periods, stats
from models.tables import Household, Visit
from tests.conftest import NOW, Tg, texts
from tests.seed import WORKER_A, seed

SH = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH).astimezone(UTC)


async def add_visits(db, worker_id: int, items: list[tuple[int, datetime]]) -> None:
    async with db.session() as s:
        for household_id, at in items:
            s.add(Visit(draft_id=uuid.uuid4().hex, household_id=household_id, worker_id=worker_id, visited_at=at,
                        people_met=1, situations=["正常"]))


async def test_my_counts_periods_in_local_time_and_shows_pace(app, api, db):
    s = await seed(db)
    h = s.households_a
    await add_visits(db, s.worker_a.id, [
        (h[0], local(2026, 5, 19, 9, 0)),     # this week
        (h[1], local(2026, 5, 11, 15, 0)),    # this month, last week
        (h[2], local(2026, 3, 3, 10, 0)),     # this half-year
        (h[0], local(2026, 1, 1, 0, 10)),     # 2025-12-31 16:10 UTC, but H1 in Shanghai
        (h[3], local(2025, 12, 31, 23, 30)),  # previous half-year
    ])
    await add_visits(db, s.worker_b.id, [(s.households_b[0], local(2026, 5, 19, 9, 0))])
    out = await Tg(app, api, WORKER_A).send("/my")
    text = texts(out)
    assert "This week: 1" in text and "This month: 2" in text and "This half-year (2026H1): 4" in text
    assert "Coverage: 3/8 households = 37.5% (target 20.0% = 2 households)" in text
    assert "Pace: by now 15.4% is due (77.0% of the half-year gone)." in text
    assert "On pace" in text


async def test_my_says_behind_with_the_gap(app, api, db):
    s = await seed(db, households_a=20)
    await add_visits(db, s.worker_a.id, [(s.households_a[0], local(2026, 5, 19, 9, 0))])
    async with db.session() as sess:  # inactive households do not count as registered
        await sess.exec(update(Household).where(Household.id.in_(s.households_a[10:])).values(active=False))
    text = texts(await Tg(app, api, WORKER_A).send("/my"))
    # 10 active households, expected 0.2 x 0.770 = 15.4 % -> 2 households by now; 1 visited.
    assert "Coverage: 1/10 households = 10.0%" in text
    assert "Behind pace: households still to visit to catch up: 1." in text


@pytest.mark.parametrize(("label", "start", "end"), [
    ("2021-W23", local(2021, 6, 7), local(2021, 6, 14)),
    ("2021-06", local(2021, 6, 1), local(2021, 7, 1)),
    ("2021Q2", local(2021, 4, 1), local(2021, 7, 1)),
    ("2021H1", local(2021, 1, 1), local(2021, 7, 1)),
    ("2021h2", local(2021, 7, 1), local(2022, 1, 1)),
    ("2021", local(2021, 1, 1), local(2022, 1, 1)),
])
def test_period_labels(label, start, end):
    p = periods.parse(label, SH)
    assert (p.start, p.end) == (start, end)


@pytest.mark.parametrize("label", ["2021-W54", "2021-13", "2021Q5", "2021H3", "21", "soon"])
def test_bad_period_labels(label):
    with pytest.raises(ValueError, match="not a period"):
        periods.parse(label, SH)


async def test_grid_coverage_counts_distinct_households(db):
    s = await seed(db)
    h = s.households_a
    await add_visits(db, s.worker_a.id, [(h[0], local(2026, 2, 1, 9)), (h[0], local(2026, 4, 1, 9)), (h[1], local(2026, 4, 2, 9))])
    half = periods.current("half", NOW, SH)
    async with db.session() as sess:
        (a, b) = await stats.grid_coverage(sess, [s.grid_a, s.grid_b], half, NOW)
    assert (a.grid_code, a.households, a.households_visited, a.visits) == ("G01", 8, 2, 3)
    assert (b.grid_code, b.households, b.households_visited, b.visits) == ("G02", 2, 0, 0)
    assert b.behind and b.gap_households == 1


async def test_my_shows_the_issues_i_reported_and_where_each_stands(app, api, db):
    from tests.seed_issues import put_issue, seed_issues

    s = await seed_issues(db)
    await put_issue(db, s.grid_a, s.worker_a.id, "reported")
    await put_issue(db, s.grid_a, s.worker_a.id, "in_progress", s.worker_a2.id)
    await put_issue(db, s.grid_a, s.worker_a2.id, "reported")  # someone else's report
    out = await Tg(app, api, WORKER_A).send("/my")
    text = texts(out)
    assert "Your reports, 2026H1: 2" in text
    assert "9901-0002 · City appearance · in progress" in text and "9901-0001 · City appearance · reported" in text
    assert "9901-0003" not in text and text.index("9901-0002") < text.index("9901-0001")  # newest first
