"""Reading import files (CSV in UTF-8 or GBK, detected; XLSX), the problem report, a terminal progress bar."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

from bot.i18n import N_
from models.importer import COLUMNS, EVENTS_SHEET, Problem

MAX_ROWS = 200_000
NOT_ACCEPTED = N_("not accepted")
PROBLEMS = {
    "bad_encoding": N_("the file is neither UTF-8 nor GBK text (save it as CSV UTF-8 or as XLSX)"),
    "bad_file": N_("the file cannot be read as CSV or XLSX: {reason}"),
    "empty_file": N_("the file has no header row"),
    "too_many_rows": N_("the file has more than {max} rows; split it"),
    "missing_column": N_("column «{column}» ({zh}) is missing"),
    "missing_value": N_("«{column}» is empty"),
    "bad_date": N_("«{value}» is not a date (use 2021-03-15 or 2021-03-15 09:30)"),
    "no_such_day": N_("«{value}»: there is no such day ({month} has {days} days)"),
    "bad_number": N_("«{value}» is not a number"),
    "out_of_range": N_("{value} is out of range ({min}-{max})"),
    "bad_value": N_("«{value}» is not an accepted value"),
    "bad_length": N_("«{column}» must be {min} to {max} characters"),
    "unknown_grid": N_("unknown grid «{code}»"),
    "unknown_household": N_("unknown household «{address}» in that grid"),
    "unknown_shop": N_("unknown shop «{shop}» in that grid"),
    "ambiguous_shop": N_("several shops are called «{shop}» in that grid; give the address"),
    "unknown_worker": N_("unknown worker «{worker}» (use the Telegram id or the registered name)"),
    "ambiguous_worker": N_("several users are called «{worker}»; use the Telegram id"),
    "worker_not_in_grid": N_("«{worker}» is neither a worker nor the supervisor of grid {grid}, nor an admin"),
    "duplicate_key": N_("duplicate of row {first}"),
    "outcome_without_escalation": N_("an outcome is given but no item was escalated"),
    "bad_id_number": N_("not an ID number (18 digits, the last may be X; or 15 digits)"),
    "deadline_without_order": N_("a deadline is given but the outcome is not an order to rectify on site"),
    "unknown_issue": N_("issue «{number}» is not in the issues sheet"),
    "history_mismatch": N_("the events of issue «{number}» do not lead from its report to its status"),
    "status_needs_history": N_("status «{value}» can only be imported with the sheet «{sheet}» of an export (its history)"),
    "patrol_conflict": N_("same shop and time as row {first} (one patrol) but another worker"),
}


class FileProblem(Exception):
    def __init__(self, code: str, /, **details: object) -> None:
        super().__init__(code)
        self.problem = Problem(0, code, details)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") if (value.hour, value.minute, value.second) != (0, 0, 0) else value.strftime("%Y-%m-%d")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) first, then GBK (as GB18030); anything else is refused."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text or "\ufffd" in text:
            break
        return text
    raise FileProblem("bad_encoding")


def read_table(data: bytes, filename: str) -> tuple[list[str], list[list[str]]]:
    """The header row and the rows of the first sheet, every cell as text. FileProblem when unreadable."""
    return read_tables(data, filename)[0]


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def template(kind: str) -> tuple[str, bytes]:
    """(file name, CSV) of an import template: the project's example file for `kind`, or, where the
    checkout has none, its header row (each column's Chinese and English name)."""
    path = EXAMPLES / f"{kind}.csv"
    if path.is_file():
        return f"gridbot-{kind}-template.csv", path.read_bytes()
    buf = io.StringIO()
    csv.writer(buf).writerow([next((n for n in c.names if not n.isascii()), c.names[0]) for c in COLUMNS[kind]])
    return f"gridbot-{kind}-template.csv", buf.getvalue().encode("utf-8-sig")


def read_upload(kind: str, data: bytes, filename: str) -> tuple[tuple[list[str], list[list[str]]], tuple[list[str], list[list[str]]] | None]:
    """The table to import, and for issues the history sheet of an export when the workbook has one."""
    if kind != "issues":
        return read_table(data, filename), None
    table, history = read_tables(data, filename, (EVENTS_SHEET,))
    return table, history


def read_tables(data: bytes, filename: str, extra: tuple[str, ...] = ()) -> list[tuple[list[str], list[list[str]]]]:
    """The first sheet, then each sheet named in `extra` (None where the workbook has no such sheet;
    a CSV file has none). FileProblem when unreadable."""
    if data[:4] == b"PK\x03\x04" or filename.lower().endswith((".xlsx", ".xlsm")):
        try:
            from openpyxl import load_workbook

            wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            named = {ws.title: ws for ws in wb.worksheets}
            sheets = [wb.worksheets[0], *(named.get(title) for title in extra)]
            tables = [[[_cell(v) for v in row] for row in ws.iter_rows(values_only=True)] if ws is not None else None for ws in sheets]
            wb.close()
        except Exception as exc:  # noqa: BLE001 - any unreadable workbook is one message
            raise FileProblem("bad_file", reason=type(exc).__name__) from None
        return [_table(tables[0]), *(_table(rows) if rows else None for rows in tables[1:])]
    return [_table(_csv_rows(data)), *(None for _ in extra)]


def _csv_rows(data: bytes) -> list[list[str]]:
    text = decode(data)
    try:
        sample = text[:4096]
        dialect = csv.Sniffer().sniff(sample, delimiters=",\t;") if sample.strip() else csv.excel
    except csv.Error:
        dialect = csv.excel
    return [list(r) for r in csv.reader(io.StringIO(text), dialect)]


def _table(rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    while rows and not any(c.strip() for c in rows[0]):
        rows.pop(0)
    if not rows:
        raise FileProblem("empty_file")
    if len(rows) > MAX_ROWS + 1:
        raise FileProblem("too_many_rows", max=MAX_ROWS)
    return [c.strip() for c in rows[0]], rows[1:]


def describe(problem: Problem, t: Callable[[str], str]) -> str:
    """One line of the problem report: `row 7: unknown grid «G99»` (row 0: the file)."""
    text = t(PROBLEMS.get(problem.code, NOT_ACCEPTED)).format(**problem.details)
    if problem.row == 0:
        return text
    if "sheet" in problem.details and problem.code != "status_needs_history":
        return t(N_("sheet «{sheet}» row {row}: {problem}")).format(sheet=problem.details["sheet"], row=problem.row, problem=text)
    return t(N_("row {row}: {problem}")).format(row=problem.row, problem=text)


def report(problems: list[Problem], t: Callable[[str], str], limit: int = 50) -> list[str]:
    lines = [describe(p, t) for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(t(N_("… and {n} more problems")).format(n=len(problems) - limit))
    return lines


class TerminalProgress:
    """A one-line progress bar on stderr (`[#####-----]  50%  20000/40000`); only on a terminal."""

    def __init__(self, label: str, stream=None) -> None:  # noqa: ANN001
        self.label, self.stream = label, stream or sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last = -1

    async def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        share = min(1.0, done / total)
        pct = int(share * 100)
        if pct == self.last:
            return
        self.last = pct
        bar = "#" * (pct // 5) + "-" * (20 - pct // 5)
        self.stream.write(f"\r{self.label} [{bar}] {pct:3d}%")
        if pct >= 100:
            self.stream.write("\n")
        self.stream.flush()
