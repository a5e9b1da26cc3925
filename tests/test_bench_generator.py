"""The city generator of bench/ (issue 8) at small size: its records are consistent, and the stats
module's figures over them equal an independent count in Python. No timing here."""

from __future__ import annotations

from collections import defaultdict
from zoneinfo import ZoneInfo

from sqlmodel import func, select

from bench.generate import NOW, Size, generate
from models import periods, stats
from models.issues import IssueEvent
from models.tables import Household, Visit

SH = ZoneInfo("Asia/Shanghai")
SMALL = Size(grids=4, households=200, visits=900, issues=150, patrols=120, shops_per_grid=5, workers_per_grid=2, grids_per_supervisor=2)


async def test_small_city_figures_equal_python_counts(db):
    city = await generate(db, SMALL, seed=3, keep=True)
    half = periods.current("half", NOW, SH)
    async with db.session() as s:
        assert (await s.exec(select(func.count()).select_from(Visit))).one() == SMALL.visits
        assert (await s.exec(select(func.count()).select_from(Household))).one() == SMALL.households
        assert (await s.exec(select(func.count()).select_from(IssueEvent))).one() == len(city.events)
        coverage = await stats.grid_coverage(s, city.grid_ids, half, NOW)
        patrols = await stats.patrol_figures(s, city.grid_ids, half, NOW, SH)
        issues = await stats.issue_figures(s, half, NOW, None, by=("grid",))
        one = await stats.issue_figures(s, half, NOW, [city.grid_ids[1]], by=("grid",))

    # Coverage: active households, distinct active households visited in the half-year, visits to them.
    grid_of = {h: (g, active) for h, g, active in city.households}
    expect = {g: [0, set(), 0] for g in city.grid_ids}
    for _, g, active in city.households:
        expect[g][0] += active
    for _, h, _, at in city.visits:
        g, active = grid_of[h]
        if active and half.start <= at < half.end:
            expect[g][1].add(h)
            expect[g][2] += 1
    assert {c.grid_id: (c.households, c.households_visited, c.visits) for c in coverage} == {g: (n, len(v), vs) for g, (n, v, vs) in expect.items()}
    assert sum(c.visits for c in coverage) > 0

    # Patrols: patrols and shops covered in the half-year, corrections and escalations.
    shop_grid = {sid: g for sid, g, _ in city.shops}
    in_half = {pid: sid for pid, sid, _, at in city.patrols if half.start <= at < half.end}
    p_expect = defaultdict(lambda: [0, set(), 0, 0])
    for sid in in_half.values():
        p_expect[shop_grid[sid]][0] += 1
        p_expect[shop_grid[sid]][1].add(sid)
    for _, pid, disposition, _ in city.findings:
        if pid in in_half:
            p_expect[shop_grid[in_half[pid]]][2 if disposition == "corrected" else 3] += 1
    got = {p.grid_id: (p.patrols, p.shops_covered, p.corrections, p.escalations) for p in patrols if p.patrols}
    assert got == {g: (n, len(shops), c, e) for g, (n, shops, c, e) in p_expect.items()}

    # Issues: reported in the half-year, and their status at NOW is the generator's last event.
    last = {}
    for _, iid, at, to_status in city.events:
        if at <= NOW:
            last[iid] = to_status
    i_expect = defaultdict(lambda: [0, 0, 0])
    for iid, g, _, reported_at, _ in city.issues:
        if half.start <= reported_at < half.end and reported_at <= NOW:
            i_expect[g][0] += 1
            i_expect[g][1] += last[iid] in ("resolved", "closed")
            i_expect[g][2] += last[iid] == "rejected"
    assert {f.grid_id: (f.reported, f.resolved, f.rejected) for f in issues} == {g: tuple(v) for g, v in i_expect.items()}
    assert [(f.reported, f.resolved) for f in one] == [tuple(i_expect[city.grid_ids[1]][:2])]
