"""Small, explicit test data: two grids, their workers, a supervisor, households."""

from __future__ import annotations

from dataclasses import dataclass

from bot.db import Database
from models.tables import Household, Role
from models.users import Member, create_grid, create_user

WORKER_A, WORKER_B, SUPERVISOR_A = 1001, 1002, 2001


@dataclass
class Seed:
    grid_a: int
    grid_b: int
    worker_a: Member
    worker_b: Member
    supervisor_a: Member
    households_a: list[int]
    households_b: list[int]


async def seed(db: Database, households_a: int = 8) -> Seed:
    async with db.session() as s:
        ga = await create_grid(s, "G01", "幸福里第一网格", 0.2)
        gb = await create_grid(s, "G02", "幸福里第二网格", 0.2)
        wa = await create_user(s, WORKER_A, Role.WORKER, [ga.id], "王芳", "en")
        wb = await create_user(s, WORKER_B, Role.WORKER, [gb.id], "李强", "en")
        sa = await create_user(s, SUPERVISOR_A, Role.SUPERVISOR, [ga.id], "张伟", "en")
        ha = [Household(grid_id=ga.id, address=f"3栋{1 + i // 4}单元{101 + i % 4}", tags=["独居老人"] if i == 0 else [])
              for i in range(households_a)]
        hb = [Household(grid_id=gb.id, address=f"3栋1单元{201 + i}") for i in range(2)]
        s.add_all(ha + hb)
        await s.flush()
        return Seed(ga.id, gb.id, wa, wb, sa, [h.id for h in ha], [h.id for h in hb])
