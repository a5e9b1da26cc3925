"""An exported ledger imports again unchanged: export → import into an empty database (the same
registries) → export again gives the same cells, sheet by sheet, for visits, patrols and issues —
including an issue history with assignment, reopening and hand-over (the events sheet)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from bot.exporter import build_export
from bot.importer import read_upload
from models import clock, periods
from models.importer import ImportRefused, run_import
from models.issues import Issue, extend_due, transition
from models.tables import Grid
from models.users import get_member
from tests.conftest import empty
from tests.test_summary import EXAMPLES, SH, import_examples

CATEGORIES = {"僵尸车": 7, "违规地锁": 3, "油烟扰民": 3, "排水污水": 3}
REGISTRIES = ("grids", "households", "residents", "shops", "workers")
LEDGERS = ("visits", "patrols", "issues")
PERIOD = periods.parse("2021H1", SH)


async def _export(db, kind: str) -> bytes:  # noqa: ANN001
    async with db.session() as s:
        grid_ids = list((await s.exec(select(Grid.id))).all())
        _name, data = await build_export(s, kind, PERIOD, grid_ids, SH, False, clock.now())
    return data


def _cells(data: bytes) -> list[tuple[str, list[tuple]]]:
    from io import BytesIO

    from openpyxl import load_workbook

    wb = load_workbook(BytesIO(data), read_only=True)
    return [(ws.title, list(ws.iter_rows(values_only=True))) for ws in wb.worksheets]


async def _import(db, kind: str, data: bytes, name: str) -> None:  # noqa: ANN001
    (headers, rows), history = read_upload(kind, data, name)
    async with db.session() as s:
        await run_import(s, kind, headers, rows, SH, 0.2, CATEGORIES, history=history)


async def registries_only(db) -> None:  # noqa: ANN001
    """An empty database with the example registries imported, as the export came from."""
    await empty(db)
    for kind in REGISTRIES:
        path = EXAMPLES / f"{kind}.csv"
        await _import(db, kind, path.read_bytes(), path.name)


async def _history(db) -> None:  # noqa: ANN001
    """A lifecycle the chat makes: dispatch, start, resolve, reopen (back to the resolver), resolve
    again, verify; a resolved issue reopened (back with its resolver: 已派单) and a rejected one
    reopened (重新办理): statuses only the events sheet can carry."""
    async with db.session() as s:
        supervisor, worker = await get_member(s, 900003), await get_member(s, 900002)
        issues = {i.human_id: i.id for i in (await s.exec(select(Issue))).all()}
    steps = [("2106-0001", "assign", supervisor, "reported", None, worker.id), ("2106-0001", "start", worker, "assigned", None, None),
             ("2106-0001", "resolve", worker, "in_progress", "疏通完毕", None), ("2106-0001", "reopen", supervisor, "resolved", "仍有积水", None),
             ("2106-0001", "resolve", worker, "assigned", "二次疏通", None), ("2106-0001", "verify", supervisor, "resolved", None, None),
             ("2102-0001", "reopen", supervisor, "resolved", "地锁未拆", None), ("2103-0001", "reopen", supervisor, "rejected", "并非重复", None)]
    for n, (number, action, actor, expected, note, assignee) in enumerate(steps):
        clock.freeze(clock.now() + timedelta(minutes=30 + n))
        async with db.session() as s:
            await transition(s, issues[number], action, actor, expected, note, assignee_id=assignee)
    clock.freeze(clock.now() + timedelta(hours=1))
    async with db.session() as s:  # more time for the reopened lock (延期): a deadline the history carries
        await extend_due(s, issues["2102-0001"], supervisor, "assigned", 5, "等待业主回复")


async def test_export_import_export_gives_the_same_ledgers(db):
    await import_examples(db)
    await _history(db)
    first = {kind: await _export(db, kind) for kind in LEDGERS}
    issues_sheet, events_sheet = _cells(first["issues"])
    assert {("2102-0001", "已派单", "王芳"), ("2103-0001", "重新办理", None)} <= {(r[0], r[7], r[9]) for r in issues_sheet[1]}
    assert [r[3] for r in events_sheet[1] if r[0] == "2106-0001"] == [
        "上报", "派单", "开始处置", "处置完成", "重新办理", "派单", "处置完成", "核实办结"]
    assert ("派单", "待派单", "已派单", "李强") in [r[3:7] for r in events_sheet[1]]
    (extension,) = [r for r in events_sheet[1] if r[3] == "延期"]
    assert extension[0] == "2102-0001" and extension[7] == "等待业主回复" and extension[8]

    await registries_only(db)
    for kind in LEDGERS:
        await _import(db, kind, first[kind], f"{kind}.xlsx")
    second = {kind: await _export(db, kind) for kind in LEDGERS}
    for kind in LEDGERS:
        assert _cells(second[kind]) == _cells(first[kind]), kind
    async with db.session() as s:
        statuses = dict((await s.exec(select(Issue.human_id, Issue.status))).all())
    assert statuses == {"2101-0001": "closed", "2102-0001": "assigned", "2103-0001": "reopened", "2106-0001": "closed"}


async def test_issue_history_that_does_not_fit_is_refused(db):
    await import_examples(db)
    await _history(db)
    data = await _export(db, "issues")
    await registries_only(db)
    (headers, rows), (event_headers, events) = read_upload("issues", data, "issues.xlsx")
    # The last event of 2103-0001 dropped: its history ends 不予受理, the sheet says 重新办理.
    trimmed = [e for e in events if not (e[0] == "2103-0001" and e[3] == "重新办理")]
    forged = [*trimmed, ["2109-0009", "2021-06-01 10:00", "张伟", "派单", "待派单", "已派单", "李强", ""]]
    with pytest.raises(ImportRefused) as refused:
        async with db.session() as s:
            await run_import(s, "issues", headers, rows, SH, 0.2, CATEGORIES, history=(event_headers, forged))
    assert {(p.code, p.details.get("number")) for p in refused.value.problems} == {("history_mismatch", "2103-0001"), ("unknown_issue", "2109-0009")}
    # A chain with a gap (an event that does not start where the one before ended) does not fit either.
    gap = [[*e[:4], "已处置（待核实）" if (e[0], e[3]) == ("2106-0001", "开始处置") else e[4], *e[5:]] for e in events]
    with pytest.raises(ImportRefused) as refused:
        async with db.session() as s:
            await run_import(s, "issues", headers, rows, SH, 0.2, CATEGORIES, history=(event_headers, gap))
    assert [(p.code, p.details.get("number")) for p in refused.value.problems] == [("history_mismatch", "2106-0001")]
    # Without the events sheet, a status that needs its history is refused by name.
    with pytest.raises(ImportRefused) as refused:
        async with db.session() as s:
            await run_import(s, "issues", headers, rows, SH, 0.2, CATEGORIES)
    assert [(p.code, p.details.get("value")) for p in refused.value.problems] == [("status_needs_history", "已派单"), ("status_needs_history", "重新办理")]
    async with db.session() as s:
        assert (await s.exec(select(Issue))).all() == []


async def test_an_events_sheet_for_some_issues_only_imports_with_the_others_implied(db):
    """One bulk insert holds the exported histories and the implied ones: neither loses a column."""
    await import_examples(db)
    await _history(db)
    data = await _export(db, "issues")
    await registries_only(db)
    (headers, rows), (event_headers, events) = read_upload("issues", data, "issues.xlsx")
    # 2101-0001 (closed) has no events in the sheet: its history comes from 状态 and 解决时间.
    ordered = sorted([e for e in events if e[0] != "2101-0001"], key=lambda e: e[0] != "2102-0001")  # an extension first
    async with db.session() as s:
        await run_import(s, "issues", headers, rows, SH, 0.2, CATEGORIES, history=(event_headers, ordered))
    async with db.session() as s:
        from models.issues import IssueEvent

        extension = (await s.exec(select(IssueEvent).where(IssueEvent.action == "extend"))).one()
        implied = (await s.exec(select(IssueEvent.action).join(Issue, Issue.id == IssueEvent.issue_id).where(Issue.human_id == "2101-0001")
                                .order_by(IssueEvent.id))).all()
    assert extension.due_to is not None and extension.due_from is not None and extension.due_from < extension.due_to
    assert implied == ["submit", "resolve", "verify"]
