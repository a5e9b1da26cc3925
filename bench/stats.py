"""Benchmark 2: statistics at city scale, against hand-written single-SQL baselines, same run.

Each stat call of models/stats.py (what `/stats` shows: visit coverage, patrol figures, issue
figures of the current half-year) is timed for the whole city and for one grid; beside each
whole-city call, one hand-written SQL statement computing the same per-grid figures (the
baseline). Each timing is the median of `repeats` runs, stat and baseline alternating.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Awaitable, Callable
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, distinct, func, select

from bench.common import median
from bench.generate import NOW
from bot.db import Database
from models import periods, stats
from models.issues import Issue, IssueEvent
from models.patrols import Finding, Patrol, Shop
from models.tables import Household, Visit

TZ = ZoneInfo("Asia/Shanghai")
HALF = periods.current("half", NOW, TZ)


def _sum_if(cond) -> object:  # noqa: ANN001
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def baseline_coverage():  # noqa: ANN201
    """Visited households and visits per grid, and active households per grid: one statement."""
    active = select(Household.grid_id, func.count().label("n")).where(Household.active.is_(True)).group_by(Household.grid_id).subquery()
    visited = (
        select(Household.grid_id, func.count(distinct(Visit.household_id)).label("v"), func.count().label("vs"))
        .join(Household, Household.id == Visit.household_id)
        .where(Household.active.is_(True), Visit.visited_at >= HALF.start, Visit.visited_at < HALF.end)
        .group_by(Household.grid_id).subquery()
    )
    return select(active.c.grid_id, active.c.n, visited.c.v, visited.c.vs).outerjoin(visited, visited.c.grid_id == active.c.grid_id)


def baseline_patrols():  # noqa: ANN201
    """Patrols, shops covered, corrections, escalations and outcome shops per grid: one statement."""
    esc = Finding.disposition == "escalated"

    def shops(outcome: str):  # noqa: ANN202
        return func.count(distinct(case((and_(esc, Finding.outcome == outcome), Patrol.shop_id))))

    return (
        select(Shop.grid_id, func.count(distinct(Patrol.id)), func.count(distinct(Patrol.shop_id)),
               _sum_if(Finding.disposition == "corrected"), _sum_if(esc),
               shops("rectify_on_site"), shops("fined"), shops("suspended"), shops("pending"))
        .select_from(Patrol).join(Shop, Shop.id == Patrol.shop_id).outerjoin(Finding, Finding.patrol_id == Patrol.id)
        .where(Patrol.patrolled_at >= HALF.start, Patrol.patrolled_at < HALF.end)
        .group_by(Shop.grid_id)
    )


def baseline_issues(sqlite: bool = True):  # noqa: ANN201
    """Issue figures per grid and category, as the stat call groups them, from the stored status (current at
    NOW) and the latest resolution, with the median resolution time: one statement."""
    resolved = (
        select(IssueEvent.issue_id, func.max(IssueEvent.at).label("at")).where(IssueEvent.to_status == "resolved")
        .group_by(IssueEvent.issue_id).subquery()
    )
    base = (
        select(Issue.grid_id, Issue.category, Issue.status, Issue.due_at, Issue.reported_at, resolved.c.at.label("resolved_at"))
        .outerjoin(resolved, resolved.c.issue_id == Issue.id)
        .where(Issue.reported_at >= HALF.start, Issue.reported_at < HALF.end, Issue.reported_at <= NOW)
        .cte("b")
    )
    done = base.c.status.in_(("resolved", "closed"))
    unresolved = base.c.status.not_in(("resolved", "closed", "rejected"))
    totals = (
        select(base.c.grid_id, base.c.category, func.count(), _sum_if(done), _sum_if(base.c.status == "closed"),
               _sum_if(base.c.status == "rejected"), _sum_if(unresolved), _sum_if(and_(unresolved, base.c.due_at < NOW)),
               _sum_if(and_(done, base.c.resolved_at < base.c.due_at)))
        .group_by(base.c.grid_id, base.c.category).subquery()
    )
    secs = ((func.julianday(base.c.resolved_at) - func.julianday(base.c.reported_at)) * 86400.0 if sqlite
            else func.extract("epoch", base.c.resolved_at - base.c.reported_at))
    keys = (base.c.grid_id, base.c.category)
    numbered = (
        select(*keys, secs.label("s"), func.row_number().over(partition_by=keys, order_by=secs).label("rn"),
               func.count().over(partition_by=keys).label("n"))
        .where(done, base.c.resolved_at.is_not(None)).subquery()
    )
    medians = (
        select(numbered.c.grid_id, numbered.c.category, func.avg(numbered.c.s).label("median_s"))
        .where(numbered.c.rn.in_([(numbered.c.n + 1) // 2, (numbered.c.n + 2) // 2]))
        .group_by(numbered.c.grid_id, numbered.c.category).subquery()
    )
    return select(totals, medians.c.median_s).select_from(
        totals.outerjoin(medians, and_(totals.c.grid_id == medians.c.grid_id, totals.c.category == medians.c.category)))


async def _time(db: Database, fn: Callable[..., Awaitable[object]]) -> float:
    async with db.session() as session:
        t0 = time.perf_counter()
        await fn(session)
        return time.perf_counter() - t0


def calls(grid_ids: list[int]) -> dict[str, Callable]:
    one = grid_ids[len(grid_ids) // 2]
    return {
        "coverage": (lambda s: stats.grid_coverage(s, grid_ids, HALF, NOW), lambda s: stats.grid_coverage(s, [one], HALF, NOW)),
        "patrols": (lambda s: stats.patrol_figures(s, grid_ids, HALF, NOW, TZ), lambda s: stats.patrol_figures(s, [one], HALF, NOW, TZ)),
        "issues": (lambda s: stats.issue_figures(s, HALF, NOW, None, by=("grid", "category")),
                   lambda s: stats.issue_figures(s, HALF, NOW, [one], by=("grid", "category"))),
    }


BASELINES = {"coverage": baseline_coverage, "patrols": baseline_patrols, "issues": baseline_issues}


def baseline(db: Database, family: str):  # noqa: ANN201
    return baseline_issues(db.is_sqlite) if family == "issues" else BASELINES[family]()


async def _exec_all(session, stmt) -> None:  # noqa: ANN001
    (await session.execute(stmt)).all()


def optional_entry(module: str, names: tuple[str, ...]) -> Callable | None:
    """A callable of another engineer's module, if it has landed (digest, summary)."""
    if importlib.util.find_spec(module.rsplit(".", 1)[0]) is None:
        return None
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return None
    if spec is None:
        return None
    mod = importlib.import_module(module)
    return next((getattr(mod, n) for n in names if callable(getattr(mod, n, None))), None)


async def run(db: Database, grid_ids: list[int], repeats: int) -> dict[str, dict[str, float]]:
    """{family: {"city": s, "grid": s, "baseline": s}} medians."""
    out: dict[str, dict[str, float]] = {}
    for family, (city, grid) in calls(grid_ids).items():
        stmt = baseline(db, family)
        samples: dict[str, list[float]] = {"city": [], "grid": [], "baseline": []}
        await _time(db, city)  # warm the caches once, untimed, for both
        await _time(db, lambda s, stmt=stmt: _exec_all(s, stmt))
        for _ in range(repeats):
            samples["baseline"].append(await _time(db, lambda s, stmt=stmt: _exec_all(s, stmt)))
            samples["city"].append(await _time(db, city))
            samples["grid"].append(await _time(db, grid))
        out[family] = {k: median(v) for k, v in samples.items()}
    return out


def explain_sql(db: Database, stmt) -> str:  # noqa: ANN001
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = sqlite.dialect() if db.is_sqlite else postgresql.dialect()
    return str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
