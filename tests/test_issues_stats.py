"""Issue figures (DESIGN.md §2) from models/stats.py equal an independent count in Python over a generated ledger."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

import pytest

from models import periods
from models.stats import issue_figures
from tests.conftest import NOW
from tests.gen_issues import generate
from tests.seed_issues import seed_issues

DONE = ("resolved", "closed")


def count(issues, period, at, by, grid_ids=None) -> dict:  # noqa: ANN001
    """Every figure, by hand: status = the latest event at or before the cut-off."""
    groups: dict[tuple, dict] = {}
    for i in issues:
        if not (period.start <= i.reported_at < period.end and i.reported_at <= at):
            continue
        if grid_ids is not None and i.grid_id not in grid_ids:
            continue
        seen = [e for e in i.events if e.at <= at]
        status = seen[-1].to_status
        resolutions = [e.at for e in seen if e.to_status == "resolved"]
        key = tuple(v for name, v in (("grid", i.grid_id), ("category", i.category)) if name in by)
        g = groups.setdefault(key, {"reported": 0, "resolved": 0, "closed": 0, "rejected": 0, "open": 0, "overdue": 0, "on_time": 0,
                                    "durations": []})
        g["reported"] += 1
        if status in DONE:
            g["resolved"] += 1
            g["durations"].append((max(resolutions) - i.reported_at).total_seconds())
            if max(resolutions) < i.due_at:
                g["on_time"] += 1
        if status == "closed":
            g["closed"] += 1
        if status == "rejected":
            g["rejected"] += 1
        if status not in (*DONE, "rejected"):
            g["open"] += 1
            if i.due_at < at:
                g["overdue"] += 1
    for g in groups.values():
        durations = g.pop("durations")
        g["median"] = statistics.median(durations) if durations else None
        base = g["reported"] - g["rejected"]
        g["resolution_rate"] = g["resolved"] / base if base else None
        g["on_time_rate"] = g["on_time"] / g["resolved"] if g["resolved"] else None
    return groups


def from_sql(rows, by) -> dict:  # noqa: ANN001
    out = {}
    for f in rows:
        key = tuple(v for name, v in (("grid", f.grid_id), ("category", f.category)) if name in by)
        out[key] = {"reported": f.reported, "resolved": f.resolved, "closed": f.closed, "rejected": f.rejected, "open": f.open,
                    "overdue": f.overdue, "on_time": f.on_time, "median": f.median_resolve_seconds,
                    "resolution_rate": f.resolution_rate, "on_time_rate": f.on_time_rate}
    return out


PERIODS = ["2026-05", "2026-04", "2025-12", "2026-W20", "2026Q1", "2026H1", "2026"]
CUTOFFS = [NOW, datetime(2026, 4, 10, 3, 30, tzinfo=UTC)]
BY = [(), ("grid",), ("category",), ("grid", "category")]


async def test_issue_figures_equal_an_independent_count(db, settings):
    s = await seed_issues(db)
    issues = await generate(db, seed=20260520, n=400, grids={
        s.grid_a: (s.worker_a.id, s.supervisor_a.id, [s.worker_a.id, s.worker_a2.id, s.supervisor_a.id]),
        s.grid_b: (s.worker_b.id, s.supervisor_b.id, [s.worker_b.id]),
    })
    assert len({e.to_status for i in issues for e in i.events}) == 7  # the walk reaches every status
    checked = 0
    for label in PERIODS:
        period = periods.parse(label, settings.tz)
        for at in CUTOFFS:
            for by in BY:
                for grid_ids in (None, [s.grid_a]):
                    async with db.session() as session:
                        rows = await issue_figures(session, period, at, grid_ids, by)
                    got, want = from_sql(rows, by), count(issues, period, at, by, grid_ids)
                    assert got.keys() == want.keys(), (label, at, by)
                    for key in want:
                        g, w = got[key], want[key]
                        for name in ("reported", "resolved", "closed", "rejected", "open", "overdue", "on_time", "resolution_rate", "on_time_rate"):
                            assert g[name] == w[name], (label, at, by, key, name)
                        if w["median"] is None:
                            assert g["median"] is None
                        else:
                            assert g["median"] == pytest.approx(w["median"], abs=1.0), (label, at, by, key)
                        checked += 1
    assert checked > 200
    # The half-year total is not trivial: some issues of every kind.
    (h1,) = from_sql(await _total(db, settings), ()).values()
    assert h1["reported"] > 100 and h1["rejected"] > 0 and h1["overdue"] > 0 and h1["open"] > 0 and 0 < h1["resolution_rate"] < 1


async def _total(db, settings):  # noqa: ANN001, ANN202
    async with db.session() as session:
        return await issue_figures(session, periods.parse("2026H1", settings.tz), NOW, None, ())
