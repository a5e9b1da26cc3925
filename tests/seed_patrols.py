"""Small, explicit patrol test data on top of tests/seed.py: shops in grids A and B, a supervisor of B."""

from __future__ import annotations

from dataclasses import dataclass

from bot.db import Database
from models.patrols import Shop
from models.tables import Role
from models.users import create_user
from tests.seed import Seed, seed

SUPERVISOR_B = 2002


@dataclass
class PatrolSeed:
    base: Seed
    shops_a: list[int]  # 老王面馆 (餐饮服务), 幸福超市 (食品销售), then more 餐饮服务 shops named 小吃店N
    shops_b: list[int]


async def seed_patrols(db: Database, extra_shops_a: int = 0) -> PatrolSeed:
    base = await seed(db)
    async with db.session() as s:
        await create_user(s, SUPERVISOR_B, Role.SUPERVISOR, [base.grid_b], "赵敏", "en")
        a = [
            Shop(grid_id=base.grid_a, name="老王面馆", address="幸福路12号", category="餐饮服务", licence_no="JY14301050000001"),
            Shop(grid_id=base.grid_a, name="幸福超市", address="幸福路20号", category="食品销售"),
        ] + [Shop(grid_id=base.grid_a, name=f"小吃店{i + 1}", address=f"和平街{i + 1}号", category="餐饮服务") for i in range(extra_shops_a)]
        b = [Shop(grid_id=base.grid_b, name="李记面馆", address="和平路3号", category="餐饮服务")]
        s.add_all(a + b)
        await s.flush()
        return PatrolSeed(base, [x.id for x in a], [x.id for x in b])
