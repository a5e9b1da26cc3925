"""Test data for issue reports: the visit seed plus a second worker of grid A, a supervisor of
grid B and an admin, and a way to put an issue straight into any status (without `transition`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import func, select

from bot.db import Database
from models import clock
from models.issues import Issue, IssueEvent
from models.tables import Role
from models.users import Member, create_user
from tests.conftest import ADMIN_ID
from tests.seed import Seed, seed

WORKER_A2, SUPERVISOR_B = 1003, 2002


@dataclass
class IssueSeed:
    base: Seed
    worker_a2: Member
    supervisor_b: Member
    admin: Member

    @property
    def grid_a(self) -> int:
        return self.base.grid_a

    @property
    def grid_b(self) -> int:
        return self.base.grid_b

    @property
    def worker_a(self) -> Member:
        return self.base.worker_a

    @property
    def worker_b(self) -> Member:
        return self.base.worker_b

    @property
    def supervisor_a(self) -> Member:
        return self.base.supervisor_a


async def seed_issues(db: Database) -> IssueSeed:
    base = await seed(db)
    async with db.session() as s:
        wa2 = await create_user(s, WORKER_A2, Role.WORKER, [base.grid_a], "赵敏", "en")
        sb = await create_user(s, SUPERVISOR_B, Role.SUPERVISOR, [base.grid_b], "陈静", "en")
        admin = await create_user(s, ADMIN_ID, Role.ADMIN, [], "管理员", "en")
    return IssueSeed(base, wa2, sb, admin)


async def put_issue(db: Database, grid_id: int, reporter_id: int, status: str, assignee_id: int | None = None, *,
                    category: str = "市容环境", at: datetime | None = None, latitude: float | None = None,
                    longitude: float | None = None) -> int:
    """An issue already in `status` (one event row), written directly."""
    at = at or clock.now()
    async with db.session() as s:
        n = (await s.exec(select(func.count()).select_from(Issue))).one() + 1
        issue = Issue(human_id=f"9901-{n:04d}", draft_id=f"seed{n:08d}", grid_id=grid_id, category=category, description="堆放杂物",
                      address="幸福路1号", latitude=latitude, longitude=longitude, status=status, reporter_id=reporter_id,
                      assignee_id=assignee_id, reported_at=at, due_at=at + timedelta(days=3), updated_at=at)
        s.add(issue)
        await s.flush()
        s.add(IssueEvent(issue_id=issue.id, at=at, actor_id=reporter_id, action="seed", from_status=None, to_status=status))
        return issue.id
