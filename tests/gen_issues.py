"""A generated issue ledger: issues and their events walked through the transition table with a
seeded random.Random, written straight to the database. The records are also returned as plain
objects so a test can count every figure again in Python, independently of models/stats.py."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.db import Database
from models.issues import DEFAULT_CATEGORIES, TRANSITIONS, Issue, IssueEvent, due_at_for

START = datetime(2025, 11, 20, tzinfo=UTC)
END = datetime(2026, 6, 10, tzinfo=UTC)  # later than the tests' "now": some issues lie after the cut-off


@dataclass
class GenEvent:
    at: datetime
    action: str
    from_status: str | None
    to_status: str
    actor_id: int


@dataclass
class GenIssue:
    grid_id: int
    category: str
    urgent: bool
    reported_at: datetime
    due_at: datetime
    events: list[GenEvent] = field(default_factory=list)
    id: int | None = None


def walk(rng: random.Random, grid_id: int, reporter: int, supervisor: int, assignees: list[int]) -> GenIssue:
    category = rng.choice(list(DEFAULT_CATEGORIES))
    urgent = rng.random() < 0.2
    reported_at = START + timedelta(seconds=rng.randrange(int((END - START).total_seconds())))
    issue = GenIssue(grid_id, category, urgent, reported_at, due_at_for(reported_at, DEFAULT_CATEGORIES[category], urgent))
    first = "resolve_on_spot" if rng.random() < 0.1 else "submit"
    status, at, assignee = TRANSITIONS[first].target, reported_at, None
    issue.events.append(GenEvent(at, first, None, status, reporter))
    while rng.random() < 0.8:
        choices = [a for a, rule in TRANSITIONS.items() if status in rule.sources]
        if not choices:
            break
        action = rng.choice(choices)
        at += timedelta(minutes=rng.randrange(10, 60 * 24 * 8))
        rule = TRANSITIONS[action]
        if action == "assign":
            assignee = rng.choice(assignees)
        actor = assignee if rule.who == "assignee" else supervisor
        issue.events.append(GenEvent(at, action, status, rule.target, actor))
        status = rule.target
    return issue


async def generate(db: Database, seed: int, n: int, grids: dict[int, tuple[int, int, list[int]]]) -> list[GenIssue]:
    """`grids`: grid id -> (reporter id, supervisor id, assignee ids). Writes and returns `n` issues."""
    rng = random.Random(seed)
    issues = []
    for _ in range(n):
        grid_id = rng.choice(sorted(grids))
        reporter, supervisor, assignees = grids[grid_id]
        issues.append(walk(rng, grid_id, reporter, supervisor, assignees))
    async with db.session() as session:
        for k, g in enumerate(issues):
            last = g.events[-1]
            row = Issue(human_id=f"GEN-{k:05d}", draft_id=f"gen{seed}-{k}", grid_id=g.grid_id, category=g.category, description="generated",
                        urgent=g.urgent, status=last.to_status, reporter_id=g.events[0].actor_id, reported_at=g.reported_at, due_at=g.due_at,
                        updated_at=last.at)
            session.add(row)
            await session.flush()
            g.id = row.id
            session.add_all([IssueEvent(issue_id=row.id, at=e.at, actor_id=e.actor_id, action=e.action, from_status=e.from_status,
                                        to_status=e.to_status) for e in g.events])
        await session.flush()
    return issues
