"""Generated patrol data sets: random (seeded) and the real street office's half-year (DESIGN.md §1).

Rows are written straight through the models' tables; the generator also returns them as plain
objects so a test can count every figure in Python, independently of the stats SQL.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.db import Database
from models.checklist import DEFAULT_CHECKLIST, SHOP_CATEGORIES
from models.patrols import Finding, Patrol, Rectification, Shop
from models.tables import Role
from models.users import create_grid, create_user

SH = ZoneInfo("Asia/Shanghai")
OUTCOMES = ("pending", "rectify_on_site", "fined", "suspended")


@dataclass(frozen=True)
class GShop:
    id: int
    grid_id: int
    active: bool


@dataclass(frozen=True)
class GPatrol:
    id: int
    shop_id: int
    worker_id: int
    at: datetime
    voided: bool = False  # voided by a correction: left out of every figure


@dataclass(frozen=True)
class GFinding:
    id: int
    patrol_id: int
    disposition: str
    outcome: str | None


@dataclass(frozen=True)
class GOrder:
    id: int
    finding_id: int
    status: str
    deadline: datetime


@dataclass
class Generated:
    grid_ids: list[int]
    worker_ids: list[int]
    shops: list[GShop] = field(default_factory=list)
    patrols: list[GPatrol] = field(default_factory=list)
    findings: list[GFinding] = field(default_factory=list)
    orders: list[GOrder] = field(default_factory=list)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH).astimezone(UTC)


async def _people(db: Database, grids: int, workers: int, first_telegram_id: int = 50_000) -> tuple[list[int], list[int]]:
    async with db.session() as s:
        grid_ids = [(await create_grid(s, f"T{g:02d}", f"生成网格{g}", 0.2)).id for g in range(grids)]
        worker_ids = [
            (await create_user(s, first_telegram_id + w, Role.WORKER, [grid_ids[w % grids]], f"网格员{w}", "en")).id for w in range(workers)
        ]
    return grid_ids, worker_ids


async def generate(db: Database, seed: int = 20260520, shops: int = 40, patrols: int = 180, grids: int = 3, workers: int = 5,
                   start: datetime | None = None, end: datetime | None = None, voided: float = 0.0) -> Generated:
    """Shops, patrols, findings with every disposition and outcome, and rectification orders in every state."""
    start, end = start or local(2025, 9, 1), end or local(2026, 5, 20, 10, 0)
    rng = random.Random(seed)
    void_rng = random.Random(seed + 1)  # its own stream: `voided` changes no other generated value
    grid_ids, worker_ids = await _people(db, grids, workers)
    out = Generated(grid_ids, worker_ids)
    span = (end - start).total_seconds()
    # Instants on the edges of local periods, where a UTC-vs-local mistake would show.
    edges = [local(2026, 1, 1, 0, 0), local(2025, 12, 31, 23, 59, 59), local(2026, 5, 18, 0, 0), local(2026, 5, 17, 23, 59),
             local(2026, 5, 1, 0, 0), local(2026, 4, 30, 23, 59, 59), local(2026, 4, 1, 0, 0)]
    async with db.session() as s:
        shop_rows = []
        for n in range(shops):
            category = rng.choice(SHOP_CATEGORIES)
            shop_rows.append(Shop(grid_id=rng.choice(grid_ids), name=f"门店{n:03d}", address=f"生成路{n}号", category=category,
                                  active=rng.random() > 0.1))
        s.add_all(shop_rows)
        await s.flush()
        out.shops = [GShop(x.id, x.grid_id, x.active) for x in shop_rows]
        for n in range(patrols):
            shop = rng.choice(shop_rows)
            at = edges[n] if n < len(edges) else start + timedelta(seconds=rng.random() * span)
            checklist = DEFAULT_CHECKLIST[shop.category]
            items = [{"name": i.name, "weight": i.weight, "key": i.key, "passed": rng.random() > 0.2} for i in checklist]
            patrol = Patrol(draft_id=uuid.uuid4().hex, shop_id=shop.id, worker_id=rng.choice(worker_ids), patrolled_at=at, items=items)
            if voided and void_rng.random() < voided:
                patrol.voided_at, patrol.void_reason = at + timedelta(hours=1), "generated: voided"
            s.add(patrol)
            await s.flush()
            out.patrols.append(GPatrol(patrol.id, shop.id, patrol.worker_id, at, patrol.voided_at is not None))
            for item in items:
                if item["passed"]:
                    continue
                disposition = rng.choice(("corrected", "corrected", "escalated"))
                outcome = rng.choice(OUTCOMES) if disposition == "escalated" else None
                finding = Finding(patrol_id=patrol.id, item=item["name"], weight=item["weight"], key=item["key"],
                                  disposition=disposition, note=None, outcome=outcome)
                s.add(finding)
                await s.flush()
                out.findings.append(GFinding(finding.id, patrol.id, disposition, outcome))
                if outcome == "rectify_on_site" or (outcome in ("fined", "suspended") and rng.random() < 0.3):
                    status = rng.choice(("open", "closed")) if outcome == "rectify_on_site" else "void"
                    deadline = at + timedelta(days=rng.choice((1, 3, 7, 30)), hours=rng.randint(0, 23))
                    order = Rectification(finding_id=finding.id, shop_id=shop.id, ordered_at=at, deadline=deadline, status=status)
                    s.add(order)
                    await s.flush()
                    out.orders.append(GOrder(order.id, finding.id, status, deadline))
    return out


async def office_half_year(db: Database) -> Generated:
    """The street office's 2026H1 as records: 422 shops patrolled 1,200 times, 800 habits corrected on the
    spot, 22 behaviours escalated, of which 15 shops were ordered to rectify, 5 fined and 2 closed."""
    rng = random.Random(2026)
    grid_ids, worker_ids = await _people(db, grids=6, workers=12, first_telegram_id=60_000)
    out = Generated(grid_ids, worker_ids)
    start, days = local(2026, 1, 1, 8, 0), 180
    async with db.session() as s:
        shop_rows = [Shop(grid_id=grid_ids[n % 6], name=f"店{n:03d}", address=f"街道路{n}号", category="餐饮服务") for n in range(422)]
        s.add_all(shop_rows)
        await s.flush()
        out.shops = [GShop(x.id, x.grid_id, x.active) for x in shop_rows]
        visits = list(range(422)) + [rng.randrange(422) for _ in range(1200 - 422)]  # every shop at least once
        corrected = set(rng.sample(range(1200), 800))  # 800 habits corrected, one on each of 800 patrols
        # 22 escalations in 22 different shops (the first patrols of shops 0-21), outcomes 15 / 5 / 2.
        outcomes = dict(enumerate(["rectify_on_site"] * 15 + ["fined"] * 5 + ["suspended"] * 2))
        patrol_rows, planned = [], []
        for n, shop_n in enumerate(visits):
            shop = shop_rows[shop_n]
            at = start + timedelta(days=rng.randrange(days), minutes=rng.randrange(600))
            worker = worker_ids[grid_ids.index(shop.grid_id) * 2 + n % 2]
            failed = {"环境卫生": ("corrected", None)} if n in corrected else {}
            if n in outcomes:
                failed["食品留样"] = ("escalated", outcomes[n])
            items = [{"name": i.name, "weight": i.weight, "key": i.key, "passed": i.name not in failed} for i in DEFAULT_CHECKLIST["餐饮服务"]]
            patrol_rows.append(Patrol(draft_id=uuid.uuid4().hex, shop_id=shop.id, worker_id=worker, patrolled_at=at, items=items))
            planned.append(failed)
        s.add_all(patrol_rows)
        await s.flush()
        out.patrols = [GPatrol(p.id, p.shop_id, p.worker_id, p.patrolled_at) for p in patrol_rows]
        findings = [
            Finding(patrol_id=p.id, item=item, disposition=disposition, outcome=outcome)
            for p, failed in zip(patrol_rows, planned, strict=True) for item, (disposition, outcome) in failed.items()
        ]
        s.add_all(findings)
        await s.flush()
        out.findings = [GFinding(f.id, f.patrol_id, f.disposition, f.outcome) for f in findings]
    return out
