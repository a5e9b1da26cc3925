"""Every figure gridbot shows (DESIGN.md §2), computed in SQL from the records. No counters."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, literal, or_, text, union_all
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import periods
from models.periods import Period
from models.tables import Grid, Household, Resident, Visit

# Voided records (models/corrections.py) stay in the database and are left out of every figure.
NOT_VOIDED_VISIT = col(Visit.voided_at).is_(None)


def not_voided_at(model, at: datetime):  # noqa: ANN001, ANN201
    """Not voided as at the cut-off `at`: a record voided later still counted in the report of that day."""
    return or_(col(model.voided_at).is_(None), col(model.voided_at) > at)


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
    residents: int = 0  # active people of the active households in the resident register (now: the register has no history)

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
    query = select(func.count()).select_from(Visit).where(Visit.visited_at >= period.start, Visit.visited_at < period.end, NOT_VOIDED_VISIT)
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
            select(*columns).where(Visit.worker_id == worker_id, Visit.visited_at >= earliest, Visit.visited_at < latest, NOT_VOIDED_VISIT)
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
            Visit.visited_at <= at,
            not_voided_at(Visit, at),
        )
        .group_by(Household.grid_id)
        .subquery()
    )
    residents = (
        select(Household.grid_id, func.count().label("n"))
        .select_from(Resident).join(Household, col(Household.id) == Resident.household_id)
        .where(col(Household.grid_id).in_(grid_ids), col(Household.active).is_(True), col(Resident.active).is_(True))
        .group_by(Household.grid_id)
        .subquery()
    )
    rows = await session.exec(
        select(
            Grid.id, Grid.code, Grid.name, Grid.target_coverage,
            func.coalesce(households.c.n, 0), func.coalesce(visited.c.visited, 0), func.coalesce(visited.c.visits, 0),
            func.coalesce(residents.c.n, 0),
        )
        .outerjoin(households, households.c.grid_id == Grid.id)
        .outerjoin(visited, visited.c.grid_id == Grid.id)
        .outerjoin(residents, residents.c.grid_id == Grid.id)
        .where(col(Grid.id).in_(grid_ids))
        .order_by(Grid.code)
    )
    elapsed = period.elapsed_fraction(at)
    return [
        GridCoverage(gid, code, name, int(n), int(v), int(vs), float(target), elapsed, int(r))
        for gid, code, name, target, n, v, vs, r in rows.all()
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


# -- issues ---------------------------------------------------------------------------------------
# DESIGN.md §2, issue reports. An issue counts in a period when it was reported in it (and before
# the cut-off `at`); its status is the one its latest event at or before the cut-off gave it, so a
# reopened issue is unresolved until it is resolved again, and events after the cut-off are unseen.
#   resolved = status resolved or closed;  open = neither resolved/closed nor rejected;
#   overdue = open and due_at < cut-off;   on time = resolved/closed with latest resolution < due_at;
#   resolution_rate = resolved / (reported - rejected);  on_time_rate = on time / resolved;
#   median time to resolve = median of (latest resolution - reported_at) over resolved issues.


@dataclass(frozen=True)
class IssueFigures:
    grid_id: int | None  # None when not grouped by grid
    category: str | None  # None when not grouped by category
    reported: int
    resolved: int  # resolved or closed at the cut-off
    closed: int
    rejected: int
    open: int
    overdue: int
    on_time: int
    median_resolve_seconds: float | None

    @property
    def collected(self) -> int:
        """The problems collected (收集问题): the reports not rejected at the cut-off."""
        return self.reported - self.rejected

    @property
    def resolution_rate(self) -> float | None:
        return self.resolved / self.collected if self.collected else None

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.resolved if self.resolved else None


def _seconds_between(session: AsyncSession, later, earlier):  # noqa: ANN001, ANN202
    if session.bind.dialect.name == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


async def issue_figures(
    session: AsyncSession, period: Period, at: datetime, grid_ids: list[int] | None = None, by: tuple[str, ...] = ("grid", "category"),
    total: bool = False,
) -> list[IssueFigures]:
    """Issue figures of `period` at the cut-off `at`, one row per group of `by` (a subset of grid, category).

    Groups with no issue reported are left out. `grid_ids=None` means every grid. `total=True` adds the
    figures of all the groups together (grid and category None, first), from the same statement.
    """
    from models.issues import DONE_STATUSES, EXTEND, REJECTED, RESOLVED, Issue, IssueEvent

    conditions = [Issue.reported_at >= period.start, Issue.reported_at < period.end, Issue.reported_at <= at, not_voided_at(Issue, at)]
    if grid_ids is not None:
        conditions.append(col(Issue.grid_id).in_(grid_ids))
    if session.bind.dialect.name == "postgresql":
        # PostgreSQL costs the correlated probe below as if run for every issue, passes jit_above_cost and
        # spends ~1-2 s compiling (EXPLAIN ANALYZE: "JIT: Inlining true, Optimization true") a query that
        # runs in a fraction of that. For this transaction only.
        await session.exec(text("SET LOCAL jit = off"))  # type: ignore[call-overload]
    # Status at the cut-off: an issue not changed since `at` (updated_at moves with every status change,
    # models/issues.py) is in its stored status; only issues changed after `at` look at their events.
    # Ranking every event of the ledger was the cost of this call (bench/: 3.6x a plain grouped query).
    # For those, the latest event up to `at` (an index probe on (issue_id, at) per changed issue; a joined
    # row_number() subquery made SQLite scan it once per issue: 1-3 s a week in the digest).
    latest_event = aliased(IssueEvent)
    status_then = (
        select(latest_event.to_status)
        .where(latest_event.issue_id == Issue.id, latest_event.at <= at)
        .order_by(col(latest_event.at).desc(), col(latest_event.id).desc())
        .limit(1)
        .scalar_subquery()
    )
    in_scope = [col(IssueEvent.issue_id).in_(select(Issue.id).where(*conditions))] if grid_ids is not None else []
    latest_resolution = (
        select(IssueEvent.issue_id, func.max(IssueEvent.at).label("resolved_at"))
        .where(IssueEvent.to_status == RESOLVED, IssueEvent.at <= at, *in_scope)
        .group_by(IssueEvent.issue_id)
        .subquery()
    )
    unchanged = col(Issue.updated_at) <= at
    # The deadline at the cut-off: a deadline extended after `at` (an `extend` event, models/issues.py)
    # was the one before the first later extension, or the one the latest extension up to `at` set.
    before, after = aliased(IssueEvent), aliased(IssueEvent)
    due_set = (select(before.due_to).where(before.issue_id == Issue.id, before.action == EXTEND, before.at <= at)
               .order_by(col(before.at).desc(), col(before.id).desc()).limit(1).scalar_subquery())
    due_held = (select(after.due_from).where(after.issue_id == Issue.id, after.action == EXTEND, after.at > at)
                .order_by(col(after.at), col(after.id)).limit(1).scalar_subquery())
    due_then = case((unchanged, col(Issue.due_at)), else_=func.coalesce(due_set, due_held, col(Issue.due_at)))
    base = (
        select(
            col(Issue.id).label("id"), col(Issue.grid_id).label("grid_id"), col(Issue.category).label("category"),
            col(Issue.reported_at).label("reported_at"), due_then.label("due_at"),
            case((unchanged, col(Issue.status)), else_=status_then).label("status"), latest_resolution.c.resolved_at,
        )
        .outerjoin(latest_resolution, latest_resolution.c.issue_id == Issue.id)
        # An issue changed after `at` with no event up to `at` had no status then (left out, as before).
        .where(*conditions, or_(unchanged, status_then.is_not(None)))
        # A CTE read twice (totals, medians) in ONE statement: both engines compute it once.
        .cte("issue_base")
    )
    keys = [base.c.grid_id if "grid" in by else None, base.c.category if "category" in by else None]
    group = [k for k in keys if k is not None]
    done = base.c.status.in_(DONE_STATUSES)
    unresolved = base.c.status.not_in((*DONE_STATUSES, REJECTED))

    def count_if(condition) -> object:  # noqa: ANN001
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    figures = (
        func.count().label("n_issues"),
        count_if(done), count_if(base.c.status == "closed"), count_if(base.c.status == REJECTED), count_if(unresolved),
        count_if(and_(unresolved, base.c.due_at < at)), count_if(and_(done, base.c.resolved_at < base.c.due_at)),
    )
    # Median by window function: number the durations within each group, average the middle one or two.
    seconds = _seconds_between(session, base.c.resolved_at, base.c.reported_at)

    def medians_over(keys: list) -> object:  # noqa: ANN001
        numbered = (
            select(
                *keys, seconds.label("s"),
                func.row_number().over(partition_by=keys or None, order_by=seconds).label("rn"),
                func.count().over(partition_by=keys or None).label("n"),
            )
            .where(done, base.c.resolved_at.is_not(None))  # an imported closed issue may have no resolution event
            .subquery()
        )
        nkeys = [numbered.c[k.name] for k in keys]
        return (
            select(*nkeys, func.avg(numbered.c.s).label("median_s"))
            .where(numbered.c.rn.in_([(numbered.c.n + 1) // 2, (numbered.c.n + 2) // 2]))
            .group_by(*nkeys)
        )

    # Level 0: per group; level 1 (total=True): every group together, under keys no group has (grid -1,
    # category ''), so the two halves join on plain equality (an OR or NULL-safe join here made SQLite
    # compare every pair of groups: 3x slower at city size).
    totals_parts = [select(literal(0).label("level"), *group, *figures).group_by(*group)]
    medians_parts = [select(literal(0).label("level"), *medians_over(group).subquery().c)]
    if total and group:
        no_group = [literal(-1 if k.name == "grid_id" else "").label(k.name) for k in group]
        totals_parts.append(select(literal(1).label("level"), *no_group, *figures))
        medians_parts.append(select(literal(1).label("level"), *no_group, *medians_over([]).subquery().c))
    totals = (union_all(*totals_parts) if len(totals_parts) > 1 else totals_parts[0]).subquery()
    medians = (union_all(*medians_parts) if len(medians_parts) > 1 else medians_parts[0]).subquery()
    same_group = and_(*[totals.c[k.name] == medians.c[k.name] for k in group]) if group else literal(True)
    on = and_(same_group, totals.c.level == medians.c.level) if total and group else same_group
    rows = await session.exec(select(totals, medians.c.median_s).select_from(totals.outerjoin(medians, on)))
    out = []
    for row in rows.all():
        level, key = row[0], tuple(row[1: 1 + len(group)])
        values = [int(v) for v in row[1 + len(group):-1]]
        if not values[0]:
            continue  # no group by: the one row of an empty period
        grid_id = key[0] if "grid" in by and level == 0 else None
        category = key[-1] if "category" in by and level == 0 else None
        out.append(IssueFigures(grid_id, category, *values, float(row[-1]) if row[-1] is not None else None))
    return sorted(out, key=lambda f: (f.grid_id or 0, f.category or ""))


# -- patrols -------------------------------------------------------------------------------------
# Food-safety patrol figures (DESIGN.md §2), per grid and period, as SQL aggregates. A patrol,
# its findings and their outcomes belong to the period of the patrol's time.

from models.patrols import Disposition, Finding, FindingEvent, OrderStatus, Outcome, Patrol, Rectification, Shop, local_day_start  # noqa: E402

NOT_VOIDED_PATROL = col(Patrol.voided_at).is_(None)  # a voided patrol's findings and orders go with it


@dataclass(frozen=True)
class GridPatrolFigures:
    grid_id: int
    grid_code: str
    grid_name: str
    patrols: int  # patrol records in the period (上门巡查服务次数)
    shops_covered: int  # distinct shops patrolled in the period
    shops_registered: int  # active shops of the grid now
    corrections: int  # findings corrected on the spot (现场指正, 次)
    escalations: int  # findings escalated (上报, 起)
    rectify_on_site: int  # shops (家) with a finding of that outcome
    fined: int
    suspended: int
    pending: int  # shops with an escalated finding still without an outcome
    open_orders: int  # rectification orders from the period's findings, open at `at`
    overdue_reinspections: int  # of those, deadline day over before `at`'s local day

    @property
    def shop_coverage(self) -> float:
        return self.shops_covered / self.shops_registered if self.shops_registered else 0.0


async def patrol_figures(session: AsyncSession, grid_ids: list[int], period: Period, at: datetime, tz: ZoneInfo) -> list[GridPatrolFigures]:
    """Patrol figures of each grid over `period`; order states (open, overdue) as of `at`."""
    if not grid_ids:
        return []
    in_period = (col(Shop.grid_id).in_(grid_ids), Patrol.patrolled_at >= period.start, Patrol.patrolled_at < period.end,
                 Patrol.patrolled_at <= at, not_voided_at(Patrol, at))
    # An outcome recorded after the cut-off is not yet known at it: the outcome then is the latest
    # outcome event up to `at`, or pending (every escalated finding starts so).
    outcome_event = aliased(FindingEvent)
    outcome_then = case(
        (or_(col(Finding.outcome_at).is_(None), col(Finding.outcome_at) <= at), col(Finding.outcome)),
        else_=func.coalesce(
            select(outcome_event.to_outcome)
            .where(outcome_event.finding_id == Finding.id, outcome_event.kind == "outcome", outcome_event.at <= at)
            .order_by(col(outcome_event.at).desc(), col(outcome_event.id).desc()).limit(1).scalar_subquery(),
            Outcome.PENDING.value,
        ),
    )
    registered = (
        select(Shop.grid_id, func.count().label("n")).where(col(Shop.grid_id).in_(grid_ids), col(Shop.active).is_(True))
        .group_by(Shop.grid_id).subquery()
    )
    patrolled = (
        select(Shop.grid_id, func.count().label("patrols"), func.count(func.distinct(Patrol.shop_id)).label("covered"))
        .join(Shop, col(Shop.id) == Patrol.shop_id).where(*in_period).group_by(Shop.grid_id).subquery()
    )

    def shops_with(outcome: Outcome):  # noqa: ANN202
        return func.count(func.distinct(case((and_(Finding.disposition == Disposition.ESCALATED.value, outcome_then == outcome.value),
                                               Patrol.shop_id))))

    def findings_with(disposition: Disposition):  # noqa: ANN202
        return func.coalesce(func.sum(case((Finding.disposition == disposition.value, 1), else_=0)), 0)

    found = (
        select(
            Shop.grid_id,
            findings_with(Disposition.CORRECTED).label("corrections"), findings_with(Disposition.ESCALATED).label("escalations"),
            shops_with(Outcome.RECTIFY).label("rectify"), shops_with(Outcome.FINED).label("fined"),
            shops_with(Outcome.SUSPENDED).label("suspended"), shops_with(Outcome.PENDING).label("pending"),
        )
        .join(Patrol, col(Patrol.id) == Finding.patrol_id).join(Shop, col(Shop.id) == Patrol.shop_id)
        .where(*in_period).group_by(Shop.grid_id).subquery()
    )
    today = local_day_start(at, tz)
    orders = (
        select(
            Shop.grid_id, func.count().label("open"),
            func.coalesce(func.sum(case((Rectification.deadline < today, 1), else_=0)), 0).label("overdue"),
        )
        .join(Finding, col(Finding.id) == Rectification.finding_id).join(Patrol, col(Patrol.id) == Finding.patrol_id)
        .join(Shop, col(Shop.id) == Patrol.shop_id)
        # Open at the cut-off: ordered by then and not closed by then.
        .where(*in_period, Rectification.ordered_at <= at,
               or_(Rectification.status == OrderStatus.OPEN.value, col(Rectification.closed_at) > at))
        .group_by(Shop.grid_id).subquery()
    )
    rows = await session.exec(
        select(
            Grid.id, Grid.code, Grid.name,
            func.coalesce(patrolled.c.patrols, 0), func.coalesce(patrolled.c.covered, 0), func.coalesce(registered.c.n, 0),
            func.coalesce(found.c.corrections, 0), func.coalesce(found.c.escalations, 0),
            func.coalesce(found.c.rectify, 0), func.coalesce(found.c.fined, 0), func.coalesce(found.c.suspended, 0),
            func.coalesce(found.c.pending, 0), func.coalesce(orders.c.open, 0), func.coalesce(orders.c.overdue, 0),
        )
        .outerjoin(registered, registered.c.grid_id == Grid.id).outerjoin(patrolled, patrolled.c.grid_id == Grid.id)
        .outerjoin(found, found.c.grid_id == Grid.id).outerjoin(orders, orders.c.grid_id == Grid.id)
        .where(col(Grid.id).in_(grid_ids)).order_by(Grid.code)
    )
    return [GridPatrolFigures(gid, code, name, *(int(v) for v in values)) for gid, code, name, *values in rows.all()]


async def worker_patrol_counts(session: AsyncSession, worker_id: int, periods_: list[Period]) -> dict[str, int]:
    """Patrols by one worker in each period, one grouped query: {period label: count}."""
    if not periods_:
        return {}
    earliest, latest = min(p.start for p in periods_), max(p.end for p in periods_)
    columns = [
        func.coalesce(func.sum(case((and_(Patrol.patrolled_at >= p.start, Patrol.patrolled_at < p.end), 1), else_=0)), 0)
        for p in periods_
    ]
    row = (
        await session.exec(select(*columns).where(Patrol.worker_id == worker_id, Patrol.patrolled_at >= earliest, Patrol.patrolled_at < latest,
                                                NOT_VOIDED_PATROL))
    ).one()
    return {p.label: int(v) for p, v in zip(periods_, row, strict=True)}


@dataclass(frozen=True)
class MyPatrols:
    week: int
    month: int
    half: int
    half_label: str


async def my_patrols(session: AsyncSession, worker_id: int, at: datetime, tz: ZoneInfo) -> MyPatrols:
    """What `/my` shows of the worker's own patrols: this week, month and half-year."""
    wk, mo, hf = (periods.current(k, at, tz) for k in ("week", "month", "half"))
    counts = await worker_patrol_counts(session, worker_id, [wk, mo, hf])
    return MyPatrols(counts[wk.label], counts[mo.label], counts[hf.label], hf.label)


# -- admin --------------------------------------------------------------------------------------
# Street-level figures for /stats, /summary, the per-grid summary table and /workers: every number
# comes from grid_coverage, patrol_figures and issue_figures above; totals are their sums.


@dataclass(frozen=True)
class GridFigures:
    coverage: GridCoverage
    patrols: GridPatrolFigures
    issues: IssueFigures | None  # None: no issue reported in the grid in the period

    @property
    def target_met(self) -> bool:
        return self.coverage.coverage >= self.coverage.target - 1e-12


@dataclass(frozen=True)
class StreetFigures:
    period: Period
    at: datetime
    grids: list[GridFigures]
    issues: IssueFigures  # totals over the grids

    def _sum(self, part: str, name: str) -> int:
        return sum(getattr(getattr(g, part), name) for g in self.grids)

    @property
    def households(self) -> int:
        return self._sum("coverage", "households")

    @property
    def households_visited(self) -> int:
        return self._sum("coverage", "households_visited")

    @property
    def visits(self) -> int:
        return self._sum("coverage", "visits")

    @property
    def residents(self) -> int:
        return self._sum("coverage", "residents")

    @property
    def coverage(self) -> float:
        return self.households_visited / self.households if self.households else 0.0

    @property
    def target(self) -> float:
        """The street's target coverage: the grids' targets weighted by their households (their plain mean if none)."""
        weight = sum(g.coverage.households for g in self.grids)
        if weight:
            return sum(g.coverage.target * g.coverage.households for g in self.grids) / weight
        return sum(g.coverage.target for g in self.grids) / len(self.grids) if self.grids else 0.0

    @property
    def grids_target_met(self) -> int:
        return sum(1 for g in self.grids if g.target_met)

    @property
    def grids_behind(self) -> int:
        return sum(1 for g in self.grids if g.coverage.behind)

    def patrol(self, name: str) -> int:
        """Sum of one GridPatrolFigures field over the grids (patrols, shops_covered, corrections, ...)."""
        return self._sum("patrols", name)


EMPTY_ISSUES = IssueFigures(None, None, 0, 0, 0, 0, 0, 0, 0, None)


async def street_figures(session: AsyncSession, grid_ids: list[int], period: Period, at: datetime, tz: ZoneInfo) -> StreetFigures:
    """Every DESIGN.md §2 figure of `period` for each grid of `grid_ids`, and the totals."""
    coverage = await grid_coverage(session, grid_ids, period, at)
    patrol = {f.grid_id: f for f in await patrol_figures(session, grid_ids, period, at, tz)}
    rows = await issue_figures(session, period, at, grid_ids, by=("grid",), total=True) if grid_ids else []
    issues = {f.grid_id: f for f in rows if f.grid_id is not None}
    totals = [f for f in rows if f.grid_id is None]
    grids = [GridFigures(c, patrol[c.grid_id], issues.get(c.grid_id)) for c in coverage]
    return StreetFigures(period, at, grids, totals[0] if totals else EMPTY_ISSUES)


@dataclass(frozen=True)
class WorkerActivity:
    user_id: int
    name: str | None
    role: str
    active: bool
    grid_codes: tuple[str, ...]
    visits: int
    patrols: int
    reports: int
    last_activity: datetime | None  # latest visit, patrol or issue report, any time


async def worker_activity(session: AsyncSession, grid_ids: list[int], period: Period) -> list[WorkerActivity]:
    """Per user of `grid_ids` (workers and supervisors): visits, patrols and issue reports in `period`, last activity."""
    from models.issues import Issue
    from models.tables import User, UserGrid

    if not grid_ids:
        return []
    users = (
        await session.exec(
            select(User, Grid.code).join(UserGrid, col(UserGrid.user_id) == User.id).join(Grid, col(Grid.id) == UserGrid.grid_id)
            .where(col(UserGrid.grid_id).in_(grid_ids)).order_by(Grid.code, User.id)
        )
    ).all()
    by_user: dict[int, tuple] = {}
    for user, code in users:
        entry = by_user.setdefault(user.id, (user, []))
        entry[1].append(code)
    ids = list(by_user)
    if not ids:
        return []

    async def counts(model, who, when) -> dict[int, tuple[int, datetime | None]]:  # noqa: ANN001
        in_period = func.coalesce(func.sum(case((and_(when >= period.start, when < period.end), 1), else_=0)), 0)
        rows = await session.exec(select(who, in_period, func.max(when)).where(col(who).in_(ids), col(model.voided_at).is_(None)).group_by(who))
        return {uid: (int(n), last) for uid, n, last in rows.all()}

    v = await counts(Visit, Visit.worker_id, Visit.visited_at)
    p = await counts(Patrol, Patrol.worker_id, Patrol.patrolled_at)
    r = await counts(Issue, Issue.reporter_id, Issue.reported_at)
    from models.types import UTCDateTime

    def aware(value: object) -> datetime | None:
        # max() of a timestamp comes back as text on SQLite: read it through the column type.
        if value is None or isinstance(value, datetime):
            return UTCDateTime().process_result_value(value, session.bind.dialect)
        return UTCDateTime().process_result_value(datetime.fromisoformat(str(value)), session.bind.dialect)

    out = []
    for uid, (user, codes) in by_user.items():
        lasts = [aware(src.get(uid, (0, None))[1]) for src in (v, p, r)]
        lasts = [t for t in lasts if t is not None]
        out.append(WorkerActivity(uid, user.display_name, user.role, user.active, tuple(codes), v.get(uid, (0, None))[0],
                                  p.get(uid, (0, None))[0], r.get(uid, (0, None))[0], max(lasts) if lasts else None))
    return out


# -- digests --
# The weekly digest (issue 5) for every supervisor and admin at once: grouped queries over all
# grids, never one query per grid.


async def weekly_visits_by_grid(session: AsyncSession, grid_ids: list[int], weeks: list[Period]) -> dict[int, list[int]]:
    """Visits per grid in each of `weeks`, one grouped query: {grid id: [count per week]}."""
    if not grid_ids or not weeks:
        return {}
    columns = [func.coalesce(func.sum(case((and_(Visit.visited_at >= w.start, Visit.visited_at < w.end), 1), else_=0)), 0) for w in weeks]
    rows = await session.exec(
        select(Household.grid_id, *columns).join(Household, col(Household.id) == Visit.household_id)
        .where(col(Household.grid_id).in_(grid_ids), Visit.visited_at >= min(w.start for w in weeks), Visit.visited_at < max(w.end for w in weeks),
               NOT_VOIDED_VISIT)
        .group_by(Household.grid_id)
    )
    out = {gid: [0] * len(weeks) for gid in grid_ids}
    for gid, *counts in rows.all():
        out[gid] = [int(c) for c in counts]
    return out


async def weekly_issue_figures(session: AsyncSession, grid_ids: list[int], weeks: list[Period], at: datetime) -> list[dict[int, IssueFigures]]:
    """Issue figures per grid for each week (cut-off: the week's end, or `at` if earlier): one grouped query per week."""
    out = []
    for w in weeks:
        rows = await issue_figures(session, w, min(w.end, at), grid_ids, by=("grid",))
        out.append({f.grid_id: f for f in rows if f.grid_id is not None})
    return out


async def idle_workers(session: AsyncSession, grid_ids: list[int], period: Period) -> dict[int, list[str]]:
    """Per grid, the active workers who logged nothing in `period` (no visit, patrol or issue report)."""
    from models.issues import Issue
    from models.tables import Role, User, UserGrid

    if not grid_ids:
        return {}
    visited = select(Visit.worker_id.label("uid")).where(Visit.visited_at >= period.start, Visit.visited_at < period.end, NOT_VOIDED_VISIT)
    patrolled = select(Patrol.worker_id.label("uid")).where(Patrol.patrolled_at >= period.start, Patrol.patrolled_at < period.end, NOT_VOIDED_PATROL)
    reported = select(Issue.reporter_id.label("uid")).where(Issue.reported_at >= period.start, Issue.reported_at < period.end,
                                                   col(Issue.voided_at).is_(None))
    active = visited.union(patrolled, reported).subquery()
    rows = await session.exec(
        select(UserGrid.grid_id, User.display_name, User.id).join(User, col(User.id) == UserGrid.user_id)
        .outerjoin(active, active.c.uid == User.id)
        .where(col(UserGrid.grid_id).in_(grid_ids), User.role == Role.WORKER.value, col(User.active).is_(True), active.c.uid.is_(None))
        .order_by(UserGrid.grid_id, User.id)
    )
    out: dict[int, list[str]] = {}
    for gid, name, uid in rows.all():
        out.setdefault(gid, []).append(name or f"#{uid}")
    return out
