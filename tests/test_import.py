"""Imports: every error class refuses the whole file and names row and reason; upsert; GBK; XLSX; /import in chat."""

from __future__ import annotations

import io
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook
from sqlmodel import func, select

from bot.i18n import gettext_for
from bot.importer import EXAMPLES, FileProblem, read_table, report
from models import audit
from models.importer import ImportRefused, run_import
from models.tables import Grid, Household
from tests.conftest import Tg, texts
from tests.seed import seed
from tests.test_join import join_as_admin

SH = ZoneInfo("Asia/Shanghai")
CATS = {"僵尸车": 7, "其他": 7}


async def do_import(db, kind: str, data: bytes, name: str = "f.csv"):  # noqa: ANN001, ANN201
    headers, rows = read_table(data, name)
    async with db.session() as s:
        return await run_import(s, kind, headers, rows, SH, 0.2, CATS)


async def count(db, model) -> int:  # noqa: ANN001
    async with db.session() as s:
        return (await s.exec(select(func.count()).select_from(model))).one()


CASES = {
    "missing column": ("households", "网格,户主\nG01,张三\n", [(1, "missing_column")]),
    "bad date": ("visits", "date,grid,address,worker\n2021-13-01,G01,3栋1单元101,1001\n", [(2, "bad_date")]),
    "unknown grid": ("households", "grid,address\nG01,1号\nG99,2号\n", [(3, "unknown_grid")]),
    "unknown household": ("visits", "date,grid,address,worker\n2021-03-01,G01,9栋9单元999,1001\n", [(2, "unknown_household")]),
    "unknown shop": ("patrols", "date,grid,shop,worker\n2021-03-01,G01,没有这家店,1001\n", [(2, "unknown_shop")]),
    "duplicate key": ("households", "grid,address\nG01,7栋1单元1\nG01,7栋1单元1\n", [(3, "duplicate_key")]),
    "out of range": ("visits", "date,grid,address,worker,people met\n2021-03-01,G01,3栋1单元101,1001,99\n", [(2, "out_of_range")]),
    "worker of another grid": ("visits", "date,grid,address,worker\n2021-03-01,G01,3栋1单元101,1002\n", [(2, "worker_not_in_grid")]),
    "a time that does not exist": ("visits", "date,grid,address,worker\n2026-11-30 25:00,G01,3栋1单元101,1001\n", [(2, "bad_date")]),
    "no such day": ("visits", "date,grid,address,worker\n2026/11/31,G01,3栋1单元101,1001\n", [(2, "no_such_day")]),
    "several in one row": ("visits", "date,grid,address,worker,people met\n2021-13-01,G99,,1001,99\n",
                           [(2, "bad_date"), (2, "unknown_grid"), (2, "missing_value"), (2, "out_of_range")]),
    "several at once": ("households", "grid,address,tags\nG99,1号,\nG01,,\nG01,2号,外星人\n",
                        [(2, "unknown_grid"), (3, "missing_value"), (4, "bad_value")]),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_each_error_class_writes_nothing_and_names_the_rows(db, case):
    await seed(db)
    kind, text, expected = CASES[case]
    before = await count(db, Household)
    with pytest.raises(ImportRefused) as refused:
        await do_import(db, kind, text.encode())
    assert [(p.row, p.code) for p in refused.value.problems] == expected
    assert await count(db, Household) == before
    lines = report(refused.value.problems, gettext_for("en"))
    assert all(line.startswith("row ") for line in lines), lines


async def test_problems_name_columns_as_the_file_does(db):
    await seed(db)
    text = "编号,上报时间,网格,类别,描述,上报人,状态,解决时间\n2101-0001,2021-01-10 09:00,G01,僵尸车,东门僵尸车,1001,已办结,\n"
    with pytest.raises(ImportRefused) as refused:
        await do_import(db, "issues", text.encode())
    assert report(refused.value.problems, gettext_for("en")) == ["row 2: «解决时间» is empty"]
    with pytest.raises(ImportRefused) as refused:
        await do_import(db, "issues", text.replace(",1001,已办结,", ",,已上报,").encode())
    assert report(refused.value.problems, gettext_for("en")) == ["row 2: «上报人» is empty"]
    with pytest.raises(ImportRefused) as refused:
        await do_import(db, "visits", "date,grid,address,worker\n2021-03-01,G01,3栋1单元101,1002\n".encode())
    assert report(refused.value.problems, gettext_for("en")) == ["row 2: «1002» is neither a worker nor the supervisor of grid G01, nor an admin"]
    with pytest.raises(ImportRefused) as refused:
        await do_import(db, "visits", "date,grid,address,worker\n2026/11/31,G01,3栋1单元101,1001\n".encode())
    assert report(refused.value.problems, gettext_for("en")) == ["row 2: «2026/11/31»: there is no such day (2026-11 has 30 days)"]


def test_wrong_encoding_is_refused():
    with pytest.raises(FileProblem) as bad:
        read_table("grid,address\nG01,幸福里\n".encode("utf-16"), "f.csv")
    assert bad.value.problem.code == "bad_encoding"
    assert "neither UTF-8 nor GBK" in report([bad.value.problem], gettext_for("en"))[0]


async def test_gbk_xlsx_and_upsert(db):
    await seed(db)
    gbk = "网格,地址,户主\nG01,8栋1单元1,张三\nG02,8栋1单元2,李四\n".encode("gbk")
    result = await do_import(db, "households", gbk)
    assert (result.created, result.updated, result.unchanged) == (2, 0, 0)
    result = await do_import(db, "households", gbk)
    assert (result.created, result.updated, result.unchanged) == (0, 0, 2)
    wb = Workbook()
    wb.active.append(["grid", "address", "head name"])
    wb.active.append(["G01", "8栋1单元1", "张三丰"])
    buf = io.BytesIO()
    wb.save(buf)
    result = await do_import(db, "households", buf.getvalue(), "h.xlsx")
    assert (result.created, result.updated, result.unchanged) == (0, 1, 0)
    async with db.session() as s:
        h = (await s.exec(select(Household).where(Household.address == "8栋1单元1"))).one()
        assert h.head_name == "张三丰"


async def test_import_a_document_in_chat(app, api, db):
    admin = await join_as_admin(app, api)
    out = await admin.send("/import grids")
    assert "Send the grids file now" in texts(out)
    # The template comes with it: the example file, which imports as it is.
    template = out[-1]["document"]
    assert template["file_name"] == "gridbot-grids-template.csv" and "A template with example rows" in out[-1]["caption"]
    assert api.file_by_id("123456:TEST", template["file_id"]) == (EXAMPLES / "grids.csv").read_bytes()
    data = "网格编码,网格名称,目标入户率\nG01,一网格,25\nG02,二网格,\n".encode()
    out = await admin.raw(api.send_document("123456:TEST", admin.user_id, data, "grids.csv", first_name="Admin", language_code="en"))
    assert "Imported grids: 2 rows — 2 new, 0 updated, 0 unchanged" in admin.last
    async with db.session() as s:
        targets = dict((await s.exec(select(Grid.code, Grid.target_coverage))).all())
        assert targets == {"G01": 0.25, "G02": 0.2}
        (entry,) = await audit.entries(s, "import")
        assert entry.detail["kind"] == "grids" and entry.detail["created"] == 2
    # A bad file: the report, nothing written.
    await admin.send("/import households")
    await admin.raw(api.send_document("123456:TEST", admin.user_id, b"grid,address\nG09,1\n", "h.csv", first_name="Admin", language_code="en"))
    assert "Import refused: 2 problems; nothing was written." in admin.last and "row 2: «address» must be 2 to 200 characters" in admin.last
    assert "row 2: unknown grid «G09»" in admin.last
    assert await count(db, Household) == 0
    # A document without /import first.
    out = await admin.raw(api.send_document("123456:TEST", admin.user_id, data, "grids.csv", first_name="Admin", language_code="en"))
    assert "not waiting for anything" in texts(out)
    worker = Tg(app, api, 4242)
    out = await worker.send("/import grids")
    assert "not registered" in texts(out)


async def test_patrols_import_holds_the_whole_ledger(db):
    """The export's long layout: one row per finding, rows of one shop and time are one patrol; an
    item twice is two findings with their own outcomes; 要求现场整改 opens an order with its deadline
    (or the default), and a later imported patrol with the item passing closes it, at its own time."""
    from models.patrols import Finding, FindingEvent, OrderStatus, Patrol, Rectification
    from tests.seed_patrols import seed_patrols

    await seed_patrols(db)
    text = (
        "巡查时间 Patrolled at,网格 Grid,店名 Shop,地址 Address,网格员 Worker,问题项 Finding,处置 Disposition,处理结果 Outcome,整改期限 Deadline,说明 Note\n"
        "2021-03-01 10:00,G01,老王面馆,幸福路12号,1001,环境卫生,上报,处罚,,后厨油污\n"
        "2021-03-01 10:00,G01,老王面馆,幸福路12号,1001,环境卫生,上报,要求现场整改,2021-03-05,垃圾桶无盖\n"
        "2021-03-01 10:00,G01,老王面馆,幸福路12号,1001,餐饮具消毒,现场指正,,,\n"
        "2021-03-02 09:00,G01,幸福超市,幸福路20号,1001,,,,,\n"
        "2021-03-02 11:00,G01,幸福超市,幸福路20号,1001,进货查验,上报,要求现场整改,,\n"
        "2021-03-10 15:00,G01,老王面馆,幸福路12号,1001,,,,,\n"
    )
    result = await do_import(db, "patrols", text.encode())
    assert (result.rows, result.created) == (4, 4)
    async with db.session() as s:
        patrols = (await s.exec(select(Patrol).order_by(Patrol.patrolled_at))).all()
        findings = (await s.exec(select(Finding).order_by(Finding.id))).all()
        orders = (await s.exec(select(Rectification).order_by(Rectification.id))).all()
        events = (await s.exec(select(FindingEvent).order_by(FindingEvent.id))).all()
    assert [(f.item, f.disposition, f.outcome, f.note) for f in findings] == [
        ("环境卫生", "escalated", "fined", "后厨油污"), ("环境卫生", "escalated", "rectify_on_site", "垃圾桶无盖"),
        ("餐饮具消毒", "corrected", None, None), ("进货查验", "escalated", "rectify_on_site", None)]
    outcome_times = [f.outcome_at.astimezone(SH).strftime("%m-%d %H:%M") if f.outcome_at else None for f in findings]
    assert outcome_times == ["03-01 10:00", "03-01 10:00", None, "03-02 11:00"]
    failed = {p.id: sorted(i["name"] for i in p.items if not i["passed"]) for p in patrols}
    assert failed[patrols[0].id] == ["环境卫生", "餐饮具消毒"] and failed[patrols[3].id] == []
    # The explicit deadline and the default one (3 days after the patrol).
    assert [o.deadline.astimezone(SH).strftime("%Y-%m-%d %H:%M") for o in orders] == ["2021-03-05 00:00", "2021-03-05 11:00"]
    # The 03-10 patrol of 老王面馆 passes 环境卫生: the order closes then; 幸福超市 was not patrolled again.
    assert [(o.status, o.closed_at.astimezone(SH).strftime("%m-%d %H:%M") if o.closed_at else None) for o in orders] == [
        (OrderStatus.CLOSED.value, "03-10 15:00"), (OrderStatus.OPEN.value, None)]
    assert sorted((e.kind, e.to_outcome, e.passed) for e in events) == sorted([
        ("outcome", "fined", None), ("outcome", "rectify_on_site", None), ("outcome", "rectify_on_site", None), ("reinspection", None, True)])
    # The same file again changes nothing and replays nothing.
    again = await do_import(db, "patrols", text.encode())
    assert (again.created, again.unchanged) == (0, 4)
    assert await count(db, FindingEvent) == 4 and await count(db, Rectification) == 2


@pytest.mark.parametrize(("rows", "expected"), [
    ("2021-03-01 10:00,G01,老王面馆,1001,环境卫生,现场指正,处罚,\n", "outcome_without_escalation"),
    ("2021-03-01 10:00,G01,老王面馆,1001,环境卫生,上报,处罚,2021-03-05\n", "deadline_without_order"),
    ("2021-03-01 10:00,G01,老王面馆,1001,环境卫生,上报,要求现场整改,2021-02-05\n", "bad_date"),
    ("2021-03-01 10:00,G01,老王面馆,1001,环境卫生,扔掉,,\n", "bad_value"),
    ("2021-03-01 10:00,G01,老王面馆,1001,,上报,,\n", "missing_value"),
    ("2021-03-01 10:00,G01,老王面馆,1001,环境卫生,上报,,\n2021-03-01 10:00,G01,老王面馆,2001,证照公示,上报,,\n", "patrol_conflict"),
])
async def test_patrol_rows_the_ledger_cannot_hold_are_refused(db, rows, expected):
    from models.patrols import Finding
    from tests.seed_patrols import seed_patrols

    await seed_patrols(db)
    with pytest.raises(ImportRefused) as refused:
        await do_import(db, "patrols", ("巡查时间,网格,店名,网格员,问题项,处置,处理结果,整改期限\n" + rows).encode())
    assert [p.code for p in refused.value.problems] == [expected]
    assert all(line.startswith("row ") for line in report(refused.value.problems, gettext_for("en")))
    assert await count(db, Finding) == 0


async def test_residents_import_upserts_by_household_and_name_and_refuses_bad_rows(db):
    from models.tables import Resident

    await seed(db)
    text = "网格,地址,姓名,与户主关系,电话,身份证号,关爱标签\nG01,3栋1单元101,张三,户主,13812345678,11010119450307123x,独居老人\nG01,3栋1单元101,李四,配偶,,,\n"
    assert (await do_import(db, "residents", text.encode())).created == 2
    again = await do_import(db, "residents", text.replace(",配偶,", ",妻子,").encode())
    assert (again.created, again.updated, again.unchanged) == (0, 1, 1)
    async with db.session() as s:
        people = {r.name: r for r in (await s.exec(select(Resident))).all()}
    assert people["张三"].id_number == "110101********123X" and people["张三"].tags == ["独居老人"] and people["李四"].relation == "妻子"
    bad = ("网格,地址,姓名,身份证号,关爱标签\nG01,3栋1单元101,王五,12345,\nG01,9栋9单元999,赵六,,\nG01,3栋1单元101,钱七,,外星人\n"
           "G01,3栋1单元101,,,\n")
    with pytest.raises(ImportRefused) as refused:
        await do_import(db, "residents", bad.encode())
    assert [(p.row, p.code) for p in refused.value.problems] == [(2, "bad_id_number"), (3, "unknown_household"), (4, "bad_value"), (5, "missing_value")]
    assert await count(db, Resident) == 2


async def test_grid_codes_in_any_letter_case(db):
    await seed(db)
    await do_import(db, "households", "网格,地址\ng01,8栋1单元101\n".encode())
    await do_import(db, "grids", "网格编码,网格名称\ng01,幸福里一网格\n".encode())  # updates G01, no new grid
    async with db.session() as s:
        grids = (await s.exec(select(Grid.code, Grid.name))).all()
        house = (await s.exec(select(Household).where(Household.address == "8栋1单元101"))).one()
    assert sorted(grids) == [("G01", "幸福里一网格"), ("G02", "幸福里第二网格")] and house.grid_id == 1
