"""The transition table of DESIGN.md §2, every (status x action x role), through models.issues.transition.

The table is restated here, independently of models/issues.TRANSITIONS: allowed combinations change
the status and write exactly one event; every other one is refused and changes nothing.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import func, select

from models import clock
from models.errors import RuleError
from models.issues import DEFAULT_CATEGORIES, Issue, IssueDraft, IssueEvent, IssuePhoto, create_issue, transition
from tests.seed_issues import put_issue, seed_issues

STATUSES = ["reported", "assigned", "in_progress", "resolved", "closed", "rejected", "reopened"]
ACTIONS = ["submit", "resolve_on_spot", "assign", "reject", "start", "resolve", "hand_back", "verify", "reopen"]
ROLES = ["assignee", "grid_worker", "other_grid_worker", "grid_supervisor", "other_grid_supervisor", "admin"]
SUPERVISORS = {"grid_supervisor", "admin"}
# DESIGN.md §2: action -> (from, to, who). submit and resolve on the spot start from (new) only.
TABLE = {
    "assign": ({"reported", "reopened"}, "assigned", SUPERVISORS),
    "reject": ({"reported", "reopened"}, "rejected", SUPERVISORS),
    "start": ({"assigned"}, "in_progress", {"assignee"}),
    "resolve": ({"assigned", "in_progress"}, "resolved", {"assignee"}),
    "hand_back": ({"assigned", "in_progress"}, "reported", {"assignee"}),
    "verify": ({"resolved"}, "closed", SUPERVISORS),
    "reopen": ({"resolved", "closed", "rejected"}, "reopened", SUPERVISORS),
}
WITH_ASSIGNEE = {"assigned", "in_progress", "resolved", "closed"}


def actor_for(s, role: str):  # noqa: ANN001, ANN201
    return {"assignee": s.worker_a, "grid_worker": s.worker_a2, "other_grid_worker": s.worker_b, "grid_supervisor": s.supervisor_a,
            "other_grid_supervisor": s.supervisor_b, "admin": s.admin}[role]


async def state(db, issue_id: int) -> tuple:
    async with db.session() as session:
        issue = (await session.exec(select(Issue).where(Issue.id == issue_id))).one()
        events = (await session.exec(select(IssueEvent).where(IssueEvent.issue_id == issue_id).order_by(IssueEvent.id))).all()
        return (issue.status, issue.assignee_id, issue.updated_at), [(e.id, e.action, e.from_status, e.to_status) for e in events]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("status", STATUSES)
async def test_every_status_action_role(db, status, action, role):
    s = await seed_issues(db)
    assignee = s.worker_a.id if status in WITH_ASSIGNEE else None
    issue_id = await put_issue(db, s.grid_a, s.worker_a2.id, status, assignee)
    actor = actor_for(s, role)
    sources, target, who = TABLE.get(action, (set(), None, set()))
    allowed = status in sources and role in who and (role != "assignee" or assignee == actor.id)
    before = await state(db, issue_id)
    clock.advance(timedelta(minutes=5))
    try:
        async with db.session() as session:
            result = await transition(session, issue_id, action, actor, status, "because", assignee_id=s.worker_a2.id)
    except RuleError as err:
        assert not allowed, f"refused but the table allows it: {err.code}"
        assert await state(db, issue_id) == before
        return
    assert allowed, "the table does not allow this, but it was done"
    (st, assignee_after, updated), events = await state(db, issue_id)
    if action == "reopen" and status == "resolved":
        # Back with whoever resolved it (the seed's resolved event is the reporter's), in a second event.
        assert (st, assignee_after, result.to_status, result.from_status) == ("assigned", s.worker_a2.id, "assigned", status)
        assert [e[1:] for e in events[-2:]] == [("reopen", status, "reopened"), ("assign", "reopened", "assigned")]
        return
    assert st == target == result.to_status and result.from_status == status
    assert updated == clock.now()
    assert len(events) == len(before[1]) + 1
    new = events[-1]
    assert new[1:] == (action, status, target)
    if action == "assign":
        assert assignee_after == s.worker_a2.id
    elif action in ("hand_back", "reopen"):
        assert assignee_after is None


@pytest.mark.parametrize("action", ["submit", "resolve_on_spot"])
@pytest.mark.parametrize("role", ROLES)
async def test_new_rows_only_a_worker_of_the_grid_reports(db, settings, role, action):
    s = await seed_issues(db)
    actor = actor_for(s, role)
    photo = {"file_id": "f1", "file_unique_id": "u1", "sha256": "a" * 64}
    draft = IssueDraft(draft_id="d" * 32, grid_id=s.grid_a, category="户外招牌", description="招牌松动", address="幸福路1号",
                       photos=[photo], resolution_note="已加固" if action == "resolve_on_spot" else None,
                       after_photos=[{**photo, "sha256": "b" * 64}] if action == "resolve_on_spot" else [])
    allowed = role in ("assignee", "grid_worker")
    try:
        async with db.session() as session:
            result = await create_issue(session, draft, actor, DEFAULT_CATEGORIES, settings.tz)
    except RuleError as err:
        assert not allowed, err.code
        async with db.session() as session:
            assert (await session.exec(select(func.count()).select_from(Issue))).one() == 0
            assert (await session.exec(select(func.count()).select_from(IssueEvent))).one() == 0
        return
    assert allowed
    expected = "reported" if action == "submit" else "resolved"
    assert result.issue.status == result.to_status == expected and result.from_status is None
    async with db.session() as session:
        (event,) = (await session.exec(select(IssueEvent))).all()
        kinds = sorted(p.kind for p in (await session.exec(select(IssuePhoto))).all())
    assert (event.action, event.from_status, event.to_status, event.actor_id) == (action, None, expected, actor.id)
    assert kinds == (["after", "before"] if action == "resolve_on_spot" else ["before"])


async def test_refusals_say_why(db):
    s = await seed_issues(db)
    rejected = await put_issue(db, s.grid_a, s.worker_a.id, "rejected")
    assigned = await put_issue(db, s.grid_a, s.worker_a.id, "assigned", s.worker_a.id)
    reported = await put_issue(db, s.grid_a, s.worker_a.id, "reported")
    cases = [
        (rejected, "verify", s.supervisor_a, "rejected", "x", {}, "not_allowed"),  # closing a rejected issue
        (assigned, "resolve", s.worker_a2, "assigned", "done", {}, "not_assignee"),  # a worker resolving another's issue
        (assigned, "resolve", s.worker_b, "assigned", "done", {}, "wrong_grid"),  # another grid's issue
        (reported, "assign", s.supervisor_b, "reported", None, {"assignee_id": s.worker_b.id}, "wrong_grid"),
        (reported, "reject", s.supervisor_a, "reported", "  ", {}, "reason_required"),
        (reported, "assign", s.supervisor_a, "assigned", None, {"assignee_id": s.worker_a.id}, "stale_status"),
        (reported, "assign", s.supervisor_a, "reported", None, {"assignee_id": s.worker_b.id}, "bad_assignee"),
        (reported, "assign", s.supervisor_a, "reported", None, {"assignee_id": s.supervisor_b.id}, "bad_assignee"),
        (reported, "assign", s.worker_a, "reported", None, {"assignee_id": s.worker_a.id}, "not_your_role"),
    ]
    for issue_id, action, actor, expected, note, kw, code in cases:
        before = await state(db, issue_id)
        with pytest.raises(RuleError) as err:
            async with db.session() as session:
                await transition(session, issue_id, action, actor, expected, note, **kw)
        assert err.value.code == code, (action, code)
        assert await state(db, issue_id) == before


async def test_a_double_tap_acts_once_and_self_assignment(db):
    s = await seed_issues(db)
    issue_id = await put_issue(db, s.grid_a, s.worker_a.id, "reported")
    async with db.session() as session:
        await transition(session, issue_id, "assign", s.supervisor_a, "reported", assignee_id=s.supervisor_a.id)
    with pytest.raises(RuleError) as err:
        async with db.session() as session:
            await transition(session, issue_id, "assign", s.supervisor_a, "reported", assignee_id=s.worker_a.id)
    assert err.value.code == "stale_status"
    (status, assignee, _), events = await state(db, issue_id)
    assert (status, assignee, len(events)) == ("assigned", s.supervisor_a.id, 2)
    # The supervisor is now the assignee and works it like a worker would.
    async with db.session() as session:
        await transition(session, issue_id, "resolve", s.supervisor_a, "assigned", "fixed it myself")
    assert (await state(db, issue_id))[0][0] == "resolved"


async def test_concurrent_taps_write_one_event(db):
    s = await seed_issues(db)
    issue_id = await put_issue(db, s.grid_a, s.worker_a.id, "resolved", s.worker_a.id)

    async def verify() -> str:
        try:
            async with db.session() as session:
                await transition(session, issue_id, "verify", s.supervisor_a, "resolved")
            return "ok"
        except RuleError as err:
            return err.code
        except Exception as exc:  # noqa: BLE001 - SQLite may report the second writer as busy
            return type(exc).__name__

    results = await asyncio.gather(verify(), verify(), verify())
    assert results.count("ok") == 1
    (status, _, _), events = await state(db, issue_id)
    assert status == "closed" and [e[1] for e in events] == ["seed", "verify"]
