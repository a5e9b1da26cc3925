"""Every figure gridbot shows (DESIGN.md §2), computed in SQL from the records. No counters."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import periods
from models.periods import Period
from models.tables import Grid, Household, Visit


@dataclass(frozen=True)
class GridCoverage:
    grid_id: int
    grid_code: str
    grid_name: str
    households: int  # active registered households
    households_visited: int  # distinct households with a visit in the period
    visits: int
    target: float  # half-year target, a fraction
    elapsed: float  # elapsed fraction of the period

    @property
    def coverage(self) -> float:
        return self.households_visited / self.households if self.households else 0.0

    @property
    def expected(self) -> float:
        """Coverage the grid should have reached by now to be on pace."""
        return self.target * self.elapsed

    @property
    def behind(self) -> bool:
        return self.coverage < self.expected

    @property
    def gap_households(self) -> int:
        """Households still to visit to be back on pace (0 when on pace)."""
        return max(0, math.ceil(self.expected * self.households - 1e-9) - self.households_visited)

    @property
    def target_households(self) -> int:
        return math.ceil(self.target * self.households - 1e-9)


async def visit_count(session: AsyncSession, period: Period, worker_id: int | None = None) -> int:
    query = select(func.count()).select_from(Visit).where(Visit.visited_at >= period.start, Visit.visited_at < period.end)
    if worker_id is not None:
        query = query.where(Visit.worker_id == worker_id)
    return (await session.exec(query)).one()


async def worker_visit_counts(session: AsyncSession, worker_id: int, periods_: list[Period]) -> dict[str, int]:
    """Visits by one worker in each period, one grouped query: {period label: count}."""
    if not periods_:
        return {}
    earliest, latest = min(p.start for p in periods_), max(p.end for p in periods_)
    columns = [
        func.coalesce(func.sum(case((and_(Visit.visited_at >= p.start, Visit.visited_at < p.end), 1), else_=0)), 0)
        for p in periods_
    ]
    row = (
        await session.exec(
            select(*columns).where(Visit.worker_id == worker_id, Visit.visited_at >= earliest, Visit.visited_at < latest)
        )
    ).one()
    return {p.label: int(v) for p, v in zip(periods_, row, strict=True)}


async def grid_coverage(session: AsyncSession, grid_ids: list[int], period: Period, at: datetime) -> list[GridCoverage]:
    """Coverage of each grid over `period` (normally the current half-year), with its pace at `at`."""
    if not grid_ids:
        return []
    households = (
        select(Household.grid_id, func.count().label("n"))
        .where(col(Household.grid_id).in_(grid_ids), col(Household.active).is_(True))
        .group_by(Household.grid_id)
        .subquery()
    )
    visited = (
        select(
            Household.grid_id,
            func.count(func.distinct(Visit.household_id)).label("visited"),
            func.count().label("visits"),
        )
        .join(Household, col(Household.id) == Visit.household_id)
        .where(
            col(Household.grid_id).in_(grid_ids),
            col(Household.active).is_(True),
            Visit.visited_at >= period.start,
            Visit.visited_at < period.end,
        )
        .group_by(Household.grid_id)
        .subquery()
    )
    rows = await session.exec(
        select(
            Grid.id, Grid.code, Grid.name, Grid.target_coverage,
            func.coalesce(households.c.n, 0), func.coalesce(visited.c.visited, 0), func.coalesce(visited.c.visits, 0),
        )
        .outerjoin(households, households.c.grid_id == Grid.id)
        .outerjoin(visited, visited.c.grid_id == Grid.id)
        .where(col(Grid.id).in_(grid_ids))
        .order_by(Grid.code)
    )
    elapsed = period.elapsed_fraction(at)
    return [
        GridCoverage(gid, code, name, int(n), int(v), int(vs), float(target), elapsed)
        for gid, code, name, target, n, v, vs in rows.all()
    ]


@dataclass(frozen=True)
class MySummary:
    week: int
    month: int
    half: int
    half_label: str
    grids: list[GridCoverage]


async def my_summary(session: AsyncSession, worker_id: int, grid_ids: list[int], at: datetime, tz: ZoneInfo) -> MySummary:
    """What `/my` shows: the worker's own visits and their grids' half-year coverage and pace."""
    wk, mo, hf = (periods.current(k, at, tz) for k in ("week", "month", "half"))
    counts = await worker_visit_counts(session, worker_id, [wk, mo, hf])
    grids = await grid_coverage(session, grid_ids, hf, at)
    return MySummary(counts[wk.label], counts[mo.label], counts[hf.label], hf.label, grids)
