"""/export through the Application: an XLSX document, masked for non-admins, recorded in the audit log."""

from __future__ import annotations

import io

from openpyxl import load_workbook

from models import audit
from tests.conftest import TOKEN, Tg, texts
from tests.test_join import join_as_admin
from tests.test_summary import import_examples


def sent_workbook(api, chat_id: int):  # noqa: ANN001, ANN201
    doc = next(m for m in reversed(api.bot_messages(TOKEN, chat_id)) if m.get("document"))
    data = api.file_by_id(TOKEN, doc["document"]["file_id"])
    return doc["document"]["file_name"], load_workbook(io.BytesIO(data))


async def test_export_masks_for_supervisors_not_for_admins(app, api, db):
    await import_examples(db)
    admin = await join_as_admin(app, api)
    await admin.send("/export visits 2021H1")
    name, wb = sent_workbook(api, admin.user_id)
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    assert name == "gridbot-visits-2021H1.xlsx" and len(rows) == 1 + 4
    assert ("张三", "13812345678", "王芳") in [r[4:7] for r in rows]

    supervisor = Tg(app, api, 900003)  # 张伟, imported as supervisor of G01 and G02
    await supervisor.send("/export visits 2021H1 G01")
    name, wb = sent_workbook(api, supervisor.user_id)
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    assert name == "gridbot-visits-2021H1-G01.xlsx" and len(rows) == 1 + 3
    assert ("张*", "138****5678", "王*") in [r[4:7] for r in rows]
    assert not any("13812345678" in str(c) for r in rows for c in r)

    await supervisor.send("/export patrols 2021H1")
    _name, wb = sent_workbook(api, supervisor.user_id)
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    assert {r[11] for r in rows[1:]} >= {"现场指正", "上报"} and "处罚" in {r[12] for r in rows[1:]}
    await supervisor.send("/export issues 2021H1")
    _name, wb = sent_workbook(api, supervisor.user_id)
    assert [ws.title for ws in wb.worksheets] == ["问题 2021H1", "事件 Events"]
    assert len(list(wb.worksheets[1].iter_rows(values_only=True))) == 1 + 8  # submit (4) + resolve (2) + verify (1) + reject (1)
    await supervisor.send("/export summary 2021H1")
    _name, wb = sent_workbook(api, supervisor.user_id)
    assert list(wb.worksheets[0].iter_rows(values_only=True))[-1][0] == "合计 Total"

    out = await Tg(app, api, 900001).send("/export visits 2021H1")
    assert "not available for your role" in texts(out)
    async with db.session() as s:
        entries = await audit.entries(s, "export")
    assert [(e.detail["kind"], e.detail["masked"]) for e in entries] == [
        ("visits", False), ("visits", True), ("patrols", True), ("issues", True), ("summary", True)]


async def test_summary_command_sends_paragraph_and_table(app, api, db):
    await import_examples(db)
    supervisor = Tg(app, api, 900003)
    out = await supervisor.send("/summary 2021H1")
    assert "In the first half of 2021, grid management collected 3 problems" in texts(out)
    name, wb = sent_workbook(api, supervisor.user_id)
    assert name == "gridbot-summary-2021H1.xlsx" and len(list(wb.worksheets[0].iter_rows())) == 1 + 2 + 1
    zh = Tg(app, api, 900003, language_code="zh-hans")
    await zh.send("/lang")
    await zh.press("中文")
    out = await zh.send("/summary 2021H1")
    assert "2021年上半年，网格化工作共收集问题3个，解决率67%" in texts(out)



async def test_exports_have_a_frozen_header_and_readable_column_widths(app, api, db):
    await import_examples(db)
    admin = await join_as_admin(app, api)
    await admin.send("/export patrols 2021H1")
    _name, wb = sent_workbook(api, admin.user_id)
    ws = wb.worksheets[0]
    assert ws.freeze_panes == "A2"
    from openpyxl.utils import get_column_letter

    from bot.exporter import _width

    rows = list(ws.iter_rows(values_only=True))
    for i in range(len(rows[0])):
        width = ws.column_dimensions[get_column_letter(i + 1)].width
        assert min(max(_width(r[i]) for r in rows) + 2, 60) <= width <= 60  # the widest cell (header included) fits
