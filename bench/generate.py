"""A city-scale data generator: grids, workers, households, visits, issues with events, patrols with findings.

Full size (issue 8): 500 grids, 300,000 households, 1,000,000 visits, 200,000 issues, 100,000 patrols.
Rows go in with SQLAlchemy core `insert(...)` executemany in batches; ids are assigned by the
generator (the database is empty of these tables), so no row is read back. `random.Random(seed)`
makes every run produce the same city. With `keep=True` the generated records are also returned
as plain tuples so a test can count the figures in Python, independently of models/stats.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, text

from bot.db import Database
from models.checklist import DEFAULT_CHECKLIST, SHOP_CATEGORIES
from models.issues import DEFAULT_CATEGORIES, TRANSITIONS, Issue, IssueEvent, due_at_for
from models.patrols import Finding, Patrol, Rectification, Shop
from models.tables import ChannelIdentity, Grid, Household, User, UserGrid, Visit

# "Now" of the benchmark city: the records span the 18 months before it.
NOW = datetime(2026, 5, 20, 2, 0, tzinfo=UTC)
START = NOW - timedelta(days=540)
WORKER_TG = 10_000_000  # telegram ids of generated workers: WORKER_TG + n
SUPERVISOR_TG = 20_000_000
SITUATIONS = ("正常", "正常", "正常", "需帮扶", "矛盾纠纷", "安全隐患", "其他")
OUTCOMES = ("pending", "rectify_on_site", "fined", "suspended")
BATCH = 5_000


@dataclass(frozen=True)
class Size:
    grids: int = 500
    households: int = 300_000
    visits: int = 1_000_000
    issues: int = 200_000
    patrols: int = 100_000
    shops_per_grid: int = 40
    workers_per_grid: int = 2
    grids_per_supervisor: int = 10

    def scaled(self, factor: float) -> Size:
        return Size(max(2, round(self.grids * factor)), max(10, round(self.households * factor)), round(self.visits * factor),
                    round(self.issues * factor), round(self.patrols * factor), self.shops_per_grid, self.workers_per_grid,
                    self.grids_per_supervisor)


FULL = Size()


@dataclass
class City:
    size: Size
    grid_ids: list[int]
    worker_ids: list[int]
    supervisor_ids: list[int]
    rows: dict[str, int] = field(default_factory=dict)
    # Only with keep=True: (id, grid_id, active) / (id, household_id, worker_id, at) / ...
    households: list[tuple] = field(default_factory=list)
    visits: list[tuple] = field(default_factory=list)
    shops: list[tuple] = field(default_factory=list)
    patrols: list[tuple] = field(default_factory=list)
    findings: list[tuple] = field(default_factory=list)
    orders: list[tuple] = field(default_factory=list)
    issues: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)


class _Writer:
    """Buffers rows per table and writes them with one executemany per batch."""

    def __init__(self, conn) -> None:  # noqa: ANN001
        self.conn, self.buffers, self.counts = conn, {}, {}

    async def add(self, table, row: dict) -> None:  # noqa: ANN001
        buf = self.buffers.setdefault(table, [])
        buf.append(row)
        if len(buf) >= BATCH:
            await self.flush()  # every table, parents first (first-added order), so foreign keys hold

    async def flush(self, table=None) -> None:  # noqa: ANN001
        for t in [table] if table is not None else list(self.buffers):
            buf = self.buffers.get(t)
            if buf:
                await self.conn.execute(insert(t), buf)
                self.counts[t.name] = self.counts.get(t.name, 0) + len(buf)
                self.buffers[t] = []


def _walk_issue(rng: random.Random, reported_at: datetime) -> tuple[str, bool, list[tuple[datetime, str, str | None, str]]]:
    """A random walk through the transition table: (category, urgent, [(at, action, from, to)])."""
    category = rng.choice(list(DEFAULT_CATEGORIES))
    urgent = rng.random() < 0.2
    first = "resolve_on_spot" if rng.random() < 0.1 else "submit"
    status, at = TRANSITIONS[first].target, reported_at
    events = [(at, first, None, status)]
    while rng.random() < 0.8:
        choices = [a for a, rule in TRANSITIONS.items() if status in rule.sources]
        if not choices:
            break
        action = rng.choice(choices)
        at += timedelta(minutes=rng.randrange(10, 60 * 24 * 8))
        if at > NOW:
            break
        events.append((at, action, status, TRANSITIONS[action].target))
        status = TRANSITIONS[action].target
    return category, urgent, events


def _when(rng: random.Random) -> datetime:
    """A time in [START, NOW), skewed towards the recent months like a growing deployment."""
    span = (NOW - START).total_seconds()
    return START + timedelta(seconds=span * (1 - rng.random() ** 1.5))


async def generate(db: Database, size: Size = FULL, seed: int = 8, keep: bool = False) -> City:
    rng = random.Random(seed)
    g, hh = size.grids, size.households
    grid_ids = list(range(1, g + 1))
    n_workers = g * size.workers_per_grid
    worker_ids = list(range(1, n_workers + 1))
    n_sup = max(1, -(-g // size.grids_per_supervisor))
    supervisor_ids = list(range(n_workers + 1, n_workers + n_sup + 1))
    city = City(size, grid_ids, worker_ids, supervisor_ids)
    created = START - timedelta(days=30)
    async with db.engine.begin() as conn:
        w = _Writer(conn)
        for gid in grid_ids:
            await w.add(Grid.__table__, {"id": gid, "code": f"C{gid:04d}", "name": f"城市网格{gid}", "community": f"社区{(gid - 1) // 10}",
                                         "target_coverage": 0.2, "created_at": created})
        await w.flush()
        for n, uid in enumerate(worker_ids):
            await w.add(User.__table__, {"id": uid, "display_name": f"网格员{n}", "phone": None, "role": "worker",
                                         "language": "zh_CN", "active": True, "created_at": created})
        for n, uid in enumerate(supervisor_ids):
            await w.add(User.__table__, {"id": uid, "display_name": f"网格长{n}", "phone": None,
                                         "role": "supervisor", "language": "zh_CN", "active": True, "created_at": created})
        await w.flush()
        for tg_base, ids in ((WORKER_TG, worker_ids), (SUPERVISOR_TG, supervisor_ids)):
            for n, uid in enumerate(ids):
                await w.add(ChannelIdentity.__table__, {"user_id": uid, "channel": "telegram", "key": str(tg_base + n), "created_at": created})
        await w.flush()
        for n, uid in enumerate(worker_ids):
            await w.add(UserGrid.__table__, {"user_id": uid, "grid_id": grid_ids[n % g]})
        for n, uid in enumerate(supervisor_ids):
            for gid in grid_ids[n * size.grids_per_supervisor:(n + 1) * size.grids_per_supervisor]:
                await w.add(UserGrid.__table__, {"user_id": uid, "grid_id": gid})
        await w.flush()

        # Households: spread evenly over the grids, 5 % inactive, some with care tags.
        hh_grid = []
        for hid in range(1, hh + 1):
            gid = grid_ids[(hid - 1) % g]
            k = (hid - 1) // g
            active = rng.random() >= 0.05
            tags = ["独居老人"] if rng.random() < 0.05 else (["困难家庭"] if rng.random() < 0.03 else [])
            hh_grid.append(gid)
            await w.add(Household.__table__, {"id": hid, "grid_id": gid, "address": f"{1 + k // 40}栋{1 + k // 10 % 4}单元{101 + k % 10}",
                                              "head_name": None, "head_phone": None, "tags": tags, "active": active, "created_at": created})
            if keep:
                city.households.append((hid, gid, active))
        await w.flush()

        # Visits: a worker of the household's grid visits it.
        wpg = size.workers_per_grid
        for vid in range(1, size.visits + 1):
            hid = rng.randint(1, hh)
            gid = hh_grid[hid - 1]
            worker = worker_ids[(gid - 1) + g * rng.randrange(wpg)] if wpg else worker_ids[0]
            at = _when(rng)
            await w.add(Visit.__table__, {"id": vid, "draft_id": f"bv{vid}", "household_id": hid, "worker_id": worker, "visited_at": at,
                                          "people_met": rng.randint(0, 4), "situations": [rng.choice(SITUATIONS)], "notes": None, "photos": [],
                                          "latitude": None, "longitude": None, "created_at": at})
            if keep:
                city.visits.append((vid, hid, worker, at))
        await w.flush()

        # Shops, patrols, findings, rectification orders.
        shops = []
        for sid in range(1, g * size.shops_per_grid + 1):
            gid = grid_ids[(sid - 1) % g]
            category = SHOP_CATEGORIES[sid % len(SHOP_CATEGORIES)]
            active = rng.random() >= 0.1
            shops.append((sid, gid, category))
            await w.add(Shop.__table__, {"id": sid, "grid_id": gid, "name": f"门店{sid}", "address": f"城市路{sid}号", "category": category,
                                         "licence_no": None, "contact": None, "active": active, "created_by": None, "created_at": created})
            if keep:
                city.shops.append((sid, gid, active))
        await w.flush()
        fid = oid = 0
        for pid in range(1, size.patrols + 1):
            sid, gid, category = shops[rng.randrange(len(shops))]
            worker = worker_ids[(gid - 1) + g * rng.randrange(wpg)]
            at = _when(rng)
            items = [{"name": i.name, "weight": i.weight, "key": i.key, "passed": rng.random() > 0.12} for i in DEFAULT_CHECKLIST[category]]
            await w.add(Patrol.__table__, {"id": pid, "draft_id": f"bp{pid}", "shop_id": sid, "worker_id": worker, "patrolled_at": at,
                                           "items": items, "photos": [], "created_at": at})
            if keep:
                city.patrols.append((pid, sid, worker, at))
            for item in items:
                if item["passed"]:
                    continue
                fid += 1
                disposition = "escalated" if rng.random() < 0.15 else "corrected"
                outcome = rng.choice(OUTCOMES) if disposition == "escalated" else None
                await w.add(Finding.__table__, {"id": fid, "patrol_id": pid, "item": item["name"], "weight": item["weight"], "key": item["key"],
                                                "disposition": disposition, "note": None, "outcome": outcome, "outcome_by": None, "outcome_at": None})
                if keep:
                    city.findings.append((fid, pid, disposition, outcome))
                if outcome == "rectify_on_site":
                    oid += 1
                    deadline = at + timedelta(days=rng.choice((1, 3, 7, 30)))
                    status = "closed" if deadline < NOW and rng.random() < 0.8 else "open"
                    await w.add(Rectification.__table__, {"id": oid, "finding_id": fid, "shop_id": sid, "ordered_by": None, "ordered_at": at,
                                                          "deadline": deadline, "status": status, "reinspection_patrol_id": None,
                                                          "closed_at": None, "reminded_at": None})
                    if keep:
                        city.orders.append((oid, fid, status, deadline))
        await w.flush()

        # Issues and their events (a walk through the transition table).
        eid = 0
        for iid in range(1, size.issues + 1):
            gid = grid_ids[rng.randrange(g)]
            reporter = worker_ids[(gid - 1) + g * rng.randrange(wpg)]
            reported_at = _when(rng)
            category, urgent, events = _walk_issue(rng, reported_at)
            due = due_at_for(reported_at, DEFAULT_CATEGORIES[category], urgent)
            status = events[-1][3]
            await w.add(Issue.__table__, {"id": iid, "human_id": f"B{iid:07d}", "draft_id": f"bi{iid}", "grid_id": gid, "category": category,
                                          "description": "generated", "address": None, "latitude": None, "longitude": None, "urgent": urgent,
                                          "status": status, "reporter_id": reporter, "assignee_id": None, "source": "chat", "source_id": None,
                                          "reported_at": reported_at, "due_at": due, "updated_at": events[-1][0]})
            if keep:
                city.issues.append((iid, gid, category, reported_at, due))
            for at, action, from_status, to_status in events:
                eid += 1
                await w.add(IssueEvent.__table__, {"id": eid, "issue_id": iid, "at": at, "actor_id": reporter, "action": action,
                                                   "from_status": from_status, "to_status": to_status, "assignee_id": None, "note": None,
                                                   "draft_id": None})
                if keep:
                    city.events.append((eid, iid, at, to_status))
        await w.flush()
        city.rows = dict(w.counts)
        if not db.is_sqlite:  # ids were given explicitly: move the sequences past them
            for table in ("grid", "app_user", "household", "visit", "shop", "patrol", "finding", "rectification", "issue", "issue_event"):
                await conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"))
    async with db.engine.begin() as conn:
        if db.is_sqlite:
            await conn.execute(text("ANALYZE"))
        else:
            await conn.execute(text("ANALYZE"))
    return city
