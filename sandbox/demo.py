"""The demo database of the sandbox (`gridbot console`): a small street office with some history.

Three grids (幸福里第一/第二网格, 和平路网格), ~40 households with care tags, one admin, one
supervisor (G01, G02) and two workers (worker1 in G01, worker2 in G02), all already registered with
fixed Telegram ids, and about four weeks of history relative to `clock.now()`: home visits, and —
when the patrol and issue modules are present — shops, patrols with findings and outcomes, and issue
reports in every state, so `/my`, `/shop`, `/tasks`, statistics and digests have something to show.

Everything goes through the migrations (`bot.db.upgrade`) and the `models/` functions, with the
clock set back to the moment each record happened, so the rows are exactly what the bot itself
would have written. Each part is its own function and transaction: a part whose module is missing
or fails is skipped (and reported), the rest of the demo still stands.

Nothing here runs outside the sandbox: `gridbot run` never creates demo data.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import col, select

from bot.db import Database, upgrade
from bot.settings import Settings
from models import clock
from models.tables import ChannelIdentity, Grid, Household, Role, User
from models.users import Member, create_grid, create_user, get_member
from models.visits import VisitDraft, save_visit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoUser:
    key: str  # what `/as` takes
    telegram_id: int
    role: Role
    grid_codes: tuple[str, ...]
    name: str  # display name, as registered
    first_name: str  # Telegram first name


# Fixed ids, so a sandbox database can be recognised and reused (`--db PATH`).
DEMO_USERS: dict[str, DemoUser] = {
    u.key: u
    for u in (
        DemoUser("worker1", 200003, Role.WORKER, ("G01",), "王芳", "芳"),
        DemoUser("worker2", 200004, Role.WORKER, ("G02",), "李强", "强"),
        DemoUser("supervisor", 200002, Role.SUPERVISOR, ("G01", "G02"), "张伟", "伟"),
        DemoUser("admin", 200001, Role.ADMIN, (), "赵主任", "赵"),
    )
}
GRIDS = (
    ("G01", "幸福里第一网格", "幸福里社区"),
    ("G02", "幸福里第二网格", "幸福里社区"),
    ("G03", "和平路网格", "和平路社区"),
)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ("秀英", "建国", "桂兰", "志强", "丽娟", "国华", "淑珍", "海燕", "玉梅", "德明", "春花", "振华")
NOTES = (
    "老人身体尚好，叮嘱注意防滑。",
    "住户反映楼道灯坏了，已记录。",
    "家中无人，留了联系卡。",
    "宣传了反诈知识和垃圾分类。",
    "子女在外地，邻居帮忙照看。",
    "询问了医保报销事宜，已解答。",
)
HISTORY_DAYS = 28


@dataclass
class DemoReport:
    """What `seed` wrote: counts per part, and the parts it skipped with the reason."""

    counts: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        parts = [f"{n} {what}" for what, n in self.counts.items()]
        return ", ".join(parts) or "nothing"


@dataclass
class _People:
    grids: dict[str, int]  # code -> id
    members: dict[str, Member]  # demo key -> member
    households: dict[str, list[int]]  # grid code -> household ids


clock_at = clock.frozen_at


def _at(day: date, hour: int, minute: int, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=tz).astimezone(UTC)


def _past_workdays(now: datetime, tz: ZoneInfo, days: int) -> list[date]:
    """Local weekdays of the last `days` days, oldest first, today included."""
    today = now.astimezone(tz).date()
    out = [today - timedelta(days=n) for n in range(days, -1, -1)]
    return [d for d in out if d.weekday() < 5]


def _when(day: date, tz: ZoneInfo, rng: random.Random, now: datetime) -> datetime | None:
    """A working-hours moment of `day`, or None if it would be in the future."""
    moment = _at(day, rng.randint(9, 16), rng.choice((0, 10, 20, 30, 40, 50)), tz)
    return moment if moment < now - timedelta(minutes=5) else None


# -- what the sandbox needs to know about a database ----------------------------------------------


async def database_kind(db: Database) -> str:
    """'empty' (no users yet), 'demo' (made by `seed`), or 'foreign' (someone's real data)."""
    async with db.session() as session:
        users = (await session.exec(select(func.count()).select_from(User))).one()
        if users == 0:
            return "empty"
        ids = set((await session.exec(select(ChannelIdentity.key).where(ChannelIdentity.channel == "telegram"))).all())
    return "demo" if {str(u.telegram_id) for u in DEMO_USERS.values()} <= ids else "foreign"


async def prepare(url: str, settings: Settings) -> tuple[str, DemoReport | None]:
    """Migrate the database at `url`; seed it when it is empty.

    Returns (kind before seeding, report or None). A 'foreign' database is left untouched: the
    caller must refuse to run a sandbox on it.
    """
    upgrade(url)
    db = Database(url)
    try:
        kind = await database_kind(db)
        report = await seed(db, settings) if kind == "empty" else None
    finally:
        await db.dispose()
    return kind, report


# -- the parts ---------------------------------------------------------------------------------------


async def seed(db: Database, settings: Settings, *, rng_seed: int = 20210601) -> DemoReport:
    """Write the whole demo; parts that cannot be written (module missing or failing) are skipped."""
    rng = random.Random(rng_seed)
    now, tz = clock.now(), settings.tz
    report = DemoReport()
    async with db.session() as session:
        people = await seed_people(session, settings, now, rng, report)
    async with db.session() as session:
        await seed_visits(session, people, now, tz, rng, report)
    for name, part in (("patrols", seed_patrols), ("issues", seed_issues)):
        try:
            async with db.session() as session:
                await part(session, people, settings, now, rng, report)
        except ImportError as exc:
            report.skipped[name] = f"module not available ({exc})"
        except Exception as exc:  # noqa: BLE001 - a half-built feature must not stop the sandbox
            log.warning("demo %s skipped", name, exc_info=True)
            report.skipped[name] = f"{type(exc).__name__}: {exc}"
    return report


async def seed_people(session, settings: Settings, now: datetime, rng: random.Random, report: DemoReport) -> _People:  # noqa: ANN001
    """Grids, the four demo users (registered, no invitation needed) and the households."""
    created = now - timedelta(days=HISTORY_DAYS + 30)
    with clock_at(created):
        grids = {}
        for code, name, community in GRIDS:
            grids[code] = (await create_grid(session, code, name, settings.visit_target, community)).id
        members = {}
        for u in DEMO_USERS.values():
            members[u.key] = await create_user(session, u.telegram_id, u.role, [grids[c] for c in u.grid_codes], u.name, None)
        households: dict[str, list[int]] = {}
        # estate, buildings, units, floors: addresses as people write them (幸福里3栋2单元301, 和平路8号院1栋…)
        plan = {"G01": ("幸福里", (1, 2, 3), 3, 2), "G02": ("幸福里", (5, 6), 3, 3), "G03": ("和平路8号院", (1,), 2, 3)}
        tag_cycle = ["独居老人", "", "", "困难家庭", "", "退役军人", "", "独居老人", "残疾人", "", "留守儿童", ""]
        n = 0
        for code, (estate, buildings, units, floors) in plan.items():
            rows = []
            for b in buildings:
                for unit in range(1, units + 1):
                    for floor in range(1, floors + 1):
                        if len(rows) >= 18:
                            break
                        tag = tag_cycle[n % len(tag_cycle)]
                        n += 1
                        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
                        phone = f"13{rng.randint(0, 9)}{rng.randint(10_000_000, 99_999_999)}" if n % 3 else None
                        rows.append(Household(grid_id=grids[code], address=f"{estate}{b}栋{unit}单元{floor}0{rng.randint(1, 2)}",
                                              head_name=name, head_phone=phone, tags=[tag] if tag else []))
            # Building, unit and floor make the address unique; the room number only looks real.
            session.add_all(rows)
            await session.flush()
            households[code] = [r.id for r in rows]
    report.counts.update(grids=len(grids), users=len(members), households=sum(len(v) for v in households.values()))
    return _People(grids, members, households)


async def seed_visits(session, people: _People, now: datetime, tz: ZoneInfo, rng: random.Random, report: DemoReport) -> None:  # noqa: ANN001
    """About four weeks of home visits: worker1 keeps pace in G01, worker2 is behind in G02."""
    pace = {"worker1": ("G01", 0.75), "worker2": ("G02", 0.3), "supervisor": ("G01", 0.1)}
    n = 0
    for day in _past_workdays(now, tz, HISTORY_DAYS):
        for key, (code, chance) in pace.items():
            if rng.random() >= chance:
                continue
            at = _when(day, tz, rng, now)
            if at is None:
                continue
            n += 1
            situations = rng.choices([["正常"], ["需帮扶"], ["正常", "需帮扶"], ["矛盾纠纷"], ["安全隐患"]], weights=(14, 3, 2, 1, 1))[0]
            with clock_at(at + timedelta(minutes=20)):
                await save_visit(session, VisitDraft(
                    draft_id=f"demo-visit-{n}", worker_id=people.members[key].id, visited_at=at,
                    people_met=rng.randint(1, 4), situations=situations, household_id=rng.choice(people.households[code]),
                    notes=rng.choice(NOTES) if rng.random() < 0.7 else None,
                ))
    report.counts["visits"] = n


async def seed_patrols(session, people: _People, settings: Settings, now: datetime, rng: random.Random, report: DemoReport) -> None:  # noqa: ANN001
    """Shops of G01/G02 and their patrols: mostly passing, some corrected on the spot, three
    escalations (one fined, one pending, one ordered to rectify with tomorrow as the deadline,
    so `/time +1d` shows the re-inspection reminder)."""
    from models.patrols import Outcome, PatrolDraft, ShopDraft, add_shop, save_patrol, set_outcome

    checklist = settings.patrol_checklist
    tz = settings.tz
    shops_plan = [
        ("G01", "老王面馆", "幸福路12号", "餐饮服务"), ("G01", "幸福便利店", "幸福路20号", "食品销售"),
        ("G01", "李记豆腐坊", "幸福里3栋底商", "小作坊"), ("G01", "张姐早餐店", "幸福路8号", "餐饮服务"),
        ("G02", "好邻居超市", "民主街5号", "食品销售"), ("G02", "川味小厨", "民主街17号", "餐饮服务"),
        ("G02", "刘师傅熟食", "民主街23号", "食品销售"),
    ]
    created = now - timedelta(days=HISTORY_DAYS + 20)
    shops: list[tuple[int, str, str]] = []  # (id, grid code, category)
    with clock_at(created):
        for code, name, address, category in shops_plan:
            shop = await add_shop(session, ShopDraft(people.grids[code], name, address, category), people.members["supervisor"].id)
            shops.append((shop.id, code, category))
    worker_of = {"G01": people.members["worker1"], "G02": people.members["worker2"]}
    supervisor = people.members["supervisor"]

    async def patrol(n: int, shop: tuple[int, str, str], at: datetime, failed: dict[str, str]) -> list[int]:
        shop_id, code, category = shop
        items = [{"name": i.name, "weight": i.weight, "key": i.key, "passed": i.name not in failed} for i in checklist[category]]
        findings = [{"item": i["name"], "disposition": failed[i["name"]], "note": None} for i in items if not i["passed"]]
        with clock_at(at + timedelta(minutes=15)):
            saved = await save_patrol(session, PatrolDraft(f"demo-patrol-{n}", worker_of[code].id, at, items, findings, shop_id=shop_id))
        return list(saved.escalated)

    days = _past_workdays(now, tz, HISTORY_DAYS)
    n = 0
    for i, day in enumerate(days[:-3]):
        if i % 2:
            continue
        at = _when(day, tz, rng, now)
        if at is None:
            continue
        shop = shops[(i // 2) % len(shops)]
        items = [it.name for it in checklist[shop[2]]]
        failed = {rng.choice(items): "corrected"} if rng.random() < 0.4 else {}
        n += 1
        await patrol(n, shop, at, failed)
    # Three escalations with their outcomes.
    fined_at, pending_at, rectify_at = (_when(days[-k], tz, rng, now) or now - timedelta(days=k) for k in (12, 4, 3))
    n += 1
    (f1,) = await patrol(n, shops[1], fined_at, {"食品贮存与过期食品": "escalated"})
    with clock_at(fined_at + timedelta(days=1)):
        await set_outcome(session, f1, "pending", Outcome.FINED, supervisor.id)
    n += 1
    await patrol(n, shops[5], pending_at, {"从业人员健康证": "escalated", "环境卫生": "corrected"})
    n += 1
    (f3,) = await patrol(n, shops[0], rectify_at, {"餐具清洗消毒": "escalated"})
    decided = rectify_at + timedelta(hours=2)
    tomorrow_noon = _at(now.astimezone(tz).date() + timedelta(days=1), 12, 0, tz)
    with clock_at(decided):
        await set_outcome(session, f3, "pending", Outcome.RECTIFY, supervisor.id, deadline=tomorrow_noon)
    report.counts.update(shops=len(shops), patrols=n)


async def seed_issues(session, people: _People, settings: Settings, now: datetime, rng: random.Random, report: DemoReport) -> None:  # noqa: ANN001
    """Issue reports over four weeks in every state: closed, resolved awaiting verification,
    in progress, assigned, waiting for dispatch, rejected, and one overdue."""
    from models.issues import IssueDraft, create_issue, transition

    tz, categories = settings.tz, settings.issue_categories
    m = people.members
    w1, w2, sup = m["worker1"], m["worker2"], m["supervisor"]
    grid = people.grids

    def cat(wanted: str) -> str:
        return wanted if wanted in categories else next(iter(categories))

    plan = [
        # (days ago, reporter, grid, category, description, address, steps [(hours later, actor, action, note, assignee)])
        (25, w1, "G01", "市容环境", "幸福路12号门口堆放建筑垃圾", "幸福路12号",
         [(3, sup, "assign", None, w1), (20, w1, "resolve", "已联系物业清运完毕", None), (26, sup, "verify", None, None)]),
        (18, w2, "G02", "违规地锁", "民主街5号楼下有人私装地锁占用消防通道", "民主街5号",
         [(2, sup, "assign", None, w2), (30, w2, "resolve", "已劝导车主拆除地锁", None), (40, sup, "verify", None, None)]),
        (12, w1, "G01", "僵尸车", "3栋楼下一辆白色轿车长期停放，轮胎已瘪", "幸福里3栋楼下",
         [(5, sup, "assign", None, w1), (6, w1, "start", None, None), (50, w1, "resolve", "已联系交警张贴告知书，车主已挪车", None)]),
        (9, w2, "G02", "户外招牌", "川味小厨招牌松动，有坠落风险", "民主街17号",
         [(1, sup, "assign", None, w2), (3, w2, "start", None, None)]),
        (6, w1, "G01", "违规种菜", "小区绿化带被开垦种菜", "幸福里2栋东侧绿化带",
         [(4, sup, "reject", "绿化带属物业管理范围，已转物业处理", None)]),
        (5, w2, "G02", "排水污水", "民主街23号门前下水道堵塞，污水外溢", "民主街23号", []),  # overdue: nobody dispatched it
        (2, w1, "G01", "油烟扰民", "张姐早餐店油烟直排，楼上住户投诉", "幸福路8号",
         [(2, sup, "assign", None, w1)]),
        (1, w2, "G02", "其他", "民主街路灯不亮，夜间行人不便", "民主街中段", []),
    ]
    n = 0
    for days_ago, reporter, code, category, description, address, steps in plan:
        reported = _when(now.astimezone(tz).date() - timedelta(days=days_ago), tz, rng, now) or now - timedelta(days=days_ago)
        n += 1
        draft = IssueDraft(draft_id=f"demo-issue-{n}", grid_id=grid[code], category=cat(category), description=description, address=address)
        with clock_at(reported):
            result = await create_issue(session, draft, reporter, categories, tz)
        status = result.to_status
        for hours, actor, action, note, assignee in steps:
            at = reported + timedelta(hours=hours)
            if at >= now:
                break
            with clock_at(at):
                done = await transition(session, result.issue.id, action, actor, status, note,
                                        assignee_id=assignee.id if assignee else None)
            status = done.to_status
    report.counts["issues"] = n


async def demo_members(db: Database) -> dict[str, Member]:
    """The demo users as registered now (key -> member)."""
    async with db.session() as session:
        out = {}
        for u in DEMO_USERS.values():
            member = await get_member(session, u.telegram_id)
            if member is not None:
                out[u.key] = member
        return out


async def grid_codes(db: Database, ids: tuple[int, ...]) -> list[str]:
    if not ids:
        return []
    async with db.session() as session:
        rows = (await session.exec(select(Grid.code).where(col(Grid.id).in_(ids)).order_by(Grid.code))).all()
    return list(rows)
