"""XLSX files: ledger exports and the per-grid summary table (openpyxl, write-only, in memory)."""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Iterable, Sequence

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from models import stats
from models.importer import EVENTS_SHEET
from models.periods import cutoff_day
from models.summary import report_percent

KINDS = ("visits", "patrols", "issues", "summary")

VISIT_HEADERS = ("编号 ID", "走访时间 Visited at", "网格 Grid", "地址 Address", "户主 Head", "电话 Phone", "网格员 Worker", "见面人数 People met",
                 "情况 Situation", "备注 Notes")
PATROL_HEADERS = ("巡查编号 Patrol ID", "巡查时间 Patrolled at", "网格 Grid", "店名 Shop", "地址 Address", "类别 Category", "联系人 Contact",
                  "网格员 Worker", "检查项 Items", "不合格项 Failed", "问题项 Finding", "处置 Disposition", "处理结果 Outcome", "整改期限 Deadline",
                  "说明 Note")
ISSUE_HEADERS = ("编号 Number", "上报时间 Reported at", "网格 Grid", "类别 Category", "描述 Description", "地址 Address", "紧急 Urgent",
                 "状态 Status", "上报人 Reporter", "处理人 Assignee", "期限 Due", "解决时间 Resolved at")
EVENT_HEADERS = ("编号 Number", "时间 At", "操作人 Actor", "操作 Action", "原状态 From", "新状态 To", "处理人 Assignee", "说明 Note",
                 "新期限 New due")
SUMMARY_HEADERS = (
    "网格 Grid", "名称 Name", "在册户数 Households", "走访户数 Households visited", "走访户次 Visits", "入户率 Coverage", "目标 Target",
    "达标 Target met", "巡查次数 Patrols", "检查店铺 Shops checked", "登记店铺 Shops registered", "现场指正 Corrections", "上报 Escalations",
    "现场整改 Rectify on site", "处罚 Fined", "停业整改 Suspended", "待处理 Pending", "收集问题 Problems collected", "已解决 Resolved",
    "已驳回 Rejected", "解决率 Resolution rate", "按时率 On-time rate", "逾期 Overdue", "在册居民 Residents",
)


def _width(value: object) -> int:
    """Display width of a cell: a Chinese character takes two columns."""
    text = str(value) if value is not None else ""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _sheet(wb: Workbook, title: str, headers: Sequence[str], rows: Iterable[Sequence]) -> None:
    """A sheet with a bold, frozen header row and columns as wide as their content (within reason)."""
    ws = wb.create_sheet(title)
    ws.append(list(headers))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    widths = [_width(h) for h in headers]
    for n, row in enumerate(rows):
        ws.append(list(row))
        if n < WIDTH_SAMPLE:
            widths = [max(w, _width(v)) for w, v in zip(widths, row, strict=False)] + widths[len(row):]
    for i, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = min(max(w + 2, 8), 60)
    ws.freeze_panes = "A2"


WIDTH_SAMPLE = 500  # rows looked at for the column widths


def _bytes(wb: Workbook) -> bytes:
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def workbook(sheets: list[tuple[str, Sequence[str], Iterable[Sequence]]]) -> bytes:
    wb = Workbook()
    wb.remove(wb.active)
    for title, headers, rows in sheets:
        _sheet(wb, title, headers, rows)
    return _bytes(wb)


def summary_rows(figures: stats.StreetFigures) -> list[tuple]:
    rows = []
    for g in figures.grids:
        c, p, i = g.coverage, g.patrols, g.issues or stats.EMPTY_ISSUES
        rows.append((
            c.grid_code, c.grid_name, c.households, c.households_visited, c.visits, report_percent(c.households_visited, c.households) or "",
            f"{c.target * 100:g}%", "是" if g.target_met else "否", p.patrols, p.shops_covered, p.shops_registered, p.corrections, p.escalations,
            p.rectify_on_site, p.fined, p.suspended, p.pending, i.collected, i.resolved, i.rejected,
            report_percent(i.resolved, i.collected) or "", report_percent(i.on_time, i.resolved) or "", i.overdue, c.residents,
        ))
    t = figures.issues
    rows.append((
        "合计 Total", "", figures.households, figures.households_visited, figures.visits, report_percent(figures.households_visited, figures.households) or "",
        f"{figures.target * 100:.4g}%", f"{figures.grids_target_met}/{len(figures.grids)}", figures.patrol("patrols"), figures.patrol("shops_covered"),
        figures.patrol("shops_registered"), figures.patrol("corrections"), figures.patrol("escalations"), figures.patrol("rectify_on_site"),
        figures.patrol("fined"), figures.patrol("suspended"), figures.patrol("pending"), t.collected, t.resolved, t.rejected,
        report_percent(t.resolved, t.collected) or "", report_percent(t.on_time, t.resolved) or "", t.overdue, figures.residents,
    ))
    return rows


def summary_workbook(figures: stats.StreetFigures, tz, paragraphs: Sequence[str] = ()) -> bytes:  # noqa: ANN001
    """The per-grid table; its sheet is named with the period and the cut-off ("汇总 2021H1 截至2021-08-05")."""
    day, at_time = cutoff_day(figures.at, tz)
    title = f"汇总 {figures.period.label} 截至{day.isoformat()}" + (f" {at_time.replace(':', '')}" if at_time else "")
    sheets: list[tuple[str, Sequence[str], Iterable[Sequence]]] = [(title, SUMMARY_HEADERS, summary_rows(figures))]
    if paragraphs:
        sheets.append(("工作总结 Summary", ("工作总结 Work summary",), [(p,) for p in paragraphs]))
    return workbook(sheets)


async def build_export(session, kind: str, period, grid_ids: list[int], tz, mask: bool, at, label: str = "") -> tuple[str, bytes]:  # noqa: ANN001
    """(file name, XLSX bytes) of one export; `mask` hides names and phone numbers (every non-admin export)."""
    from models import admin
    from models.summary import numbers_from, paragraph_en, paragraph_zh

    suffix = f"-{label}" if label else ""
    name = f"gridbot-{kind}-{period.label}{suffix}.xlsx"
    if kind == "visits":
        return name, workbook([(f"走访 {period.label}", VISIT_HEADERS, await admin.visit_rows(session, grid_ids, period, tz, mask))])
    if kind == "patrols":
        return name, workbook([(f"巡查 {period.label}", PATROL_HEADERS, await admin.patrol_rows(session, grid_ids, period, tz, mask))])
    if kind == "issues":
        issues, events = await admin.issue_rows(session, grid_ids, period, tz, mask)
        return name, workbook([(f"问题 {period.label}", ISSUE_HEADERS, issues), (EVENTS_SHEET, EVENT_HEADERS, events)])
    if kind == "summary":
        figures = await stats.street_figures(session, grid_ids, period, at, tz)
        numbers = numbers_from(figures, tz)
        return name, summary_workbook(figures, tz, [paragraph_zh(numbers), paragraph_en(numbers)])
    raise ValueError(kind)
