"""Imports: every error class refuses the whole file and names row and reason; upsert; GBK; XLSX; /import in chat."""

from __future__ import annotations

import io
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook
from sqlmodel import func, select

from bot.i18n import gettext_for
from bot.importer import FileProblem, read_table, report
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
    assert "Import refused: 1 problem(s); nothing was written." in admin.last
    assert "row 2: unknown grid «G09»" in admin.last
    assert await count(db, Household) == 0
    # A document without /import first.
    out = await admin.raw(api.send_document("123456:TEST", admin.user_id, data, "grids.csv", first_name="Admin", language_code="en"))
    assert "not waiting for anything" in texts(out)
    worker = Tg(app, api, 4242)
    out = await worker.send("/import grids")
    assert "not registered" in texts(out)
