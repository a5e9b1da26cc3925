"""Registry and ledger import: validate every row first, then upsert by natural key, all or nothing.

Input is a table already read from CSV or XLSX (bot/importer.py): a header row and rows of text
cells. `validate()` maps the headers (Chinese or English) to columns, checks every row and returns
clean records or the full list of problems (row number, code, details); `write()` upserts the
records in the caller's transaction with bulk statements. Importing the same file twice changes
nothing: registries are upserted by their natural key (grid code; grid + address; household + name
for residents; grid + shop name + address; Telegram id), ledgers are keyed by a hash of their natural key (household + time +
worker for visits, shop + time for patrols, the issue number for issues) and an existing record
is left as it is.

```mermaid
flowchart LR
    file[CSV / XLSX] --> read[bot/importer.read_table] --> validate --> ok{errors?}
    ok -- yes --> report[row numbers and reasons; nothing written]
    ok -- no --> write[bulk upsert in one transaction] --> done[created / updated / unchanged]
```
"""

from __future__ import annotations

import calendar
import hashlib
import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, insert, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import clock, vocabulary
from models.checklist import DEFAULT_CHECKLIST, SHOP_CATEGORIES
from models.issues import CLOSED, REJECTED, REPORTED, RESOLVED, Issue, IssueEvent, due_at_for
from models.patrols import (
    MAX_FINDING_NOTE,
    RECTIFY_DAYS_DEFAULT,
    Disposition,
    Finding,
    FindingEvent,
    Outcome,
    Patrol,
    Rectification,
    Shop,
    local_day_start,
    replay_reinspections,
)
from models.residents import RESIDENT_TAGS, masked_id_number
from models.tables import ChannelIdentity, Grid, Household, Resident, Role, User, UserGrid, Visit
from models.text import ascii_digits, mask_id_numbers, one_line
from models.users import GRID_CODE_RE, ROLE_ALIASES, TELEGRAM
from models.visits import HOUSEHOLD_TAGS, MAX_PEOPLE_MET, SITUATIONS

REGISTRIES = ("grids", "households", "residents", "shops", "workers")
LEDGERS = ("visits", "patrols", "issues")
KINDS = REGISTRIES + LEDGERS
BATCH = 2000
IMPORT_REMIND_WINDOW = timedelta(days=7)

Progress = Callable[[int, int], Awaitable[None]]
Table = tuple[list[str], list[list[str]]]  # a sheet: its header row and its rows, as text


@dataclass(frozen=True)
class Col:
    key: str
    names: tuple[str, ...]  # accepted headers (compared without case, spaces, _ and -)
    required: bool = True


COLUMNS: dict[str, tuple[Col, ...]] = {
    "grids": (
        Col("code", ("code", "grid", "gridcode", "网格编码", "网格编号", "编码")),
        Col("name", ("name", "gridname", "网格名称", "名称")),
        Col("community", ("community", "社区"), False),
        Col("target", ("target", "targetpercent", "目标", "目标入户率", "入户率目标"), False),
    ),
    "households": (
        Col("grid", ("grid", "gridcode", "网格", "网格编码")),
        Col("address", ("address", "地址", "门牌", "住址")),
        Col("head_name", ("head", "headname", "name", "户主", "户主姓名", "姓名"), False),
        Col("head_phone", ("phone", "headphone", "电话", "联系电话"), False),
        Col("tags", ("tags", "tag", "标签", "关爱标签", "类别"), False),
        Col("active", ("active", "在册", "状态"), False),
    ),
    "residents": (
        Col("grid", ("grid", "gridcode", "网格", "网格编码")),
        Col("address", ("address", "地址", "门牌", "住址")),
        Col("name", ("name", "姓名", "居民姓名")),
        Col("relation", ("relation", "relationship", "与户主关系", "关系"), False),
        Col("phone", ("phone", "电话", "联系电话", "手机"), False),
        Col("id_number", ("idnumber", "id", "身份证号", "身份证号码", "证件号码"), False),
        Col("tags", ("tags", "tag", "标签", "关爱标签", "类别"), False),
        Col("active", ("active", "在册", "状态"), False),
    ),
    "shops": (
        Col("grid", ("grid", "gridcode", "网格", "网格编码")),
        Col("name", ("name", "shop", "shopname", "店名", "店铺名称", "名称")),
        Col("address", ("address", "地址", "经营地址")),
        Col("category", ("category", "类别", "业态")),
        Col("licence", ("licence", "license", "licenceno", "licenseno", "许可证号", "许可证"), False),
        Col("contact", ("contact", "联系人", "联系方式"), False),
        Col("active", ("active", "在册", "状态"), False),
    ),
    "workers": (
        Col("telegram_id", ("telegramid", "telegram", "tgid", "telegram帐号", "telegram账号", "电报id")),
        Col("name", ("name", "姓名")),
        Col("phone", ("phone", "电话", "手机"), False),
        Col("role", ("role", "角色"), False),
        Col("grids", ("grids", "grid", "网格", "网格编码")),
    ),
    "visits": (
        Col("visited_at", ("date", "visitedat", "time", "日期", "走访日期", "走访时间", "时间")),
        Col("grid", ("grid", "gridcode", "网格", "网格编码")),
        Col("address", ("address", "地址", "住址")),
        Col("worker", ("worker", "网格员", "走访人")),
        Col("people_met", ("peoplemet", "people", "见面人数", "人数"), False),
        Col("situation", ("situation", "情况", "走访情况"), False),
        Col("notes", ("notes", "note", "备注"), False),
    ),
    "patrols": (
        Col("patrolled_at", ("date", "patrolledat", "time", "日期", "巡查日期", "巡查时间", "时间")),
        Col("grid", ("grid", "gridcode", "网格", "网格编码")),
        Col("shop", ("shop", "shopname", "name", "店名", "店铺名称")),
        Col("address", ("address", "地址"), False),
        Col("worker", ("worker", "网格员", "巡查人")),
        # Wide layout: one row per patrol, its items in two lists (one outcome for the row's escalated items) ...
        Col("corrected", ("corrected", "correcteditems", "现场指正", "现场指正项"), False),
        Col("escalated", ("escalated", "escalateditems", "上报", "上报项"), False),
        # ... or long, as the export writes it: one row per finding; rows of one shop and time are one patrol.
        Col("item", ("item", "finding", "问题项", "问题"), False),
        Col("disposition", ("disposition", "处置", "处置方式"), False),
        Col("outcome", ("outcome", "处理结果", "结果"), False),
        Col("deadline", ("deadline", "整改期限", "期限"), False),
        Col("note", ("note", "notes", "说明", "备注"), False),
    ),
    "issues": (
        Col("number", ("number", "no", "id", "编号", "问题编号")),
        Col("reported_at", ("reportedat", "date", "上报时间", "日期", "时间")),
        Col("grid", ("grid", "gridcode", "网格", "网格编码")),
        Col("category", ("category", "类别", "问题类别")),
        Col("description", ("description", "描述", "问题描述", "内容")),
        Col("reporter", ("reporter", "上报人", "网格员")),
        Col("status", ("status", "状态"), False),
        Col("resolved_at", ("resolvedat", "解决时间", "办结时间"), False),
        Col("address", ("address", "地址"), False),
        Col("urgent", ("urgent", "紧急"), False),
        Col("assignee", ("assignee", "处理人", "承办人"), False),
        Col("due", ("due", "dueat", "期限", "办理期限"), False),
    ),
    # The second sheet of an issues export: the history, read back event by event.
    "issue_events": (
        Col("number", ("number", "no", "id", "编号", "问题编号")),
        Col("at", ("at", "time", "时间")),
        Col("actor", ("actor", "操作人")),
        Col("action", ("action", "操作")),
        Col("from_status", ("from", "fromstatus", "原状态"), False),
        Col("to_status", ("to", "tostatus", "新状态")),
        Col("assignee", ("assignee", "处理人"), False),
        Col("note", ("note", "说明", "备注"), False),
        Col("due_to", ("newdue", "新期限"), False),
    ),
}
EVENTS_SHEET = "事件 Events"  # the sheet of an issues export that holds the history

IMPORTABLE_STATUSES = (REPORTED, RESOLVED, CLOSED, REJECTED)  # words: models/vocabulary (待派单, 已处置（待核实）, 已办结, 不予受理, and older ones)
TRUE = {"1", "y", "yes", "true", "是", "在册", "紧急"}
FALSE = {"0", "n", "no", "false", "否", "注销", "迁出", "普通"}
SEPARATORS = re.compile(r"[、,，;；]+")  # not "/": checklist items such as 进货查验/索证索票 contain it


@dataclass(frozen=True)
class Problem:
    row: int  # row number in the file (the header is row 1); 0 for the file as a whole
    code: str  # missing_column, missing_value, bad_date, unknown_grid, ... (see bot/importer.PROBLEMS)
    details: dict = field(default_factory=dict)


class ImportRefused(Exception):
    """Validation found problems; nothing was written."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


@dataclass
class ImportResult:
    kind: str
    rows: int
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def _norm_header(text: str) -> str:
    return re.sub(r"[\s_\-（）()]+", "", str(text or "")).lower()


def _header_key(lookup: dict[str, str], header: str) -> str | None:
    """The column a header names: the whole header, else its Chinese or its English half
    (the exports write both: "巡查时间 Patrolled at")."""
    words = str(header or "").split()
    for candidate in (header, words[0] if words else "", "".join(words[1:])):
        key = lookup.get(_norm_header(candidate))
        if key is not None:
            return key
    return None


def map_headers(kind: str, headers: list[str]) -> tuple[dict[str, int], list[Problem]]:
    index: dict[str, int] = {}
    lookup = {_norm_header(n): c.key for c in COLUMNS[kind] for n in c.names}
    for i, h in enumerate(headers):
        key = _header_key(lookup, h)
        if key is not None and key not in index:
            index[key] = i
    problems = [Problem(1, "missing_column", {"column": c.names[0], "zh": next((n for n in c.names if not n.isascii()), "")})
                for c in COLUMNS[kind] if c.required and c.key not in index]
    return index, problems


# -- cell parsers: each returns a value or raises _Bad(code, details) ----------------------------


class _Bad(Exception):
    def __init__(self, code: str, /, **details: object) -> None:
        super().__init__(code)
        self.code, self.details = code, details


def _when(text: str, tz: ZoneInfo) -> datetime:
    raw = ascii_digits(text).strip().replace("/", "-").replace(".", "-").replace("年", "-").replace("月", "-").replace("日", " ").strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            parsed = datetime.strptime(raw, fmt)
        except ValueError:
            continue
        if not 2000 <= parsed.year <= 2100:
            break
        return parsed.replace(tzinfo=tz)
    shape = re.match(r"^(\d{4})-(\d{1,2})-(\d{1,2})\b", raw)
    if shape and 2000 <= int(shape[1]) <= 2100 and 1 <= int(shape[2]) <= 12 and int(shape[3]) > calendar.monthrange(int(shape[1]), int(shape[2]))[1]:
        # The form is right, the day is not (2026/11/31, 2021-02-29): say that, not "not a date".
        raise _Bad("no_such_day", value=text, month=f"{shape[1]}-{int(shape[2]):02d}", days=calendar.monthrange(int(shape[1]), int(shape[2]))[1])
    raise _Bad("bad_date", value=text)


def _int(text: str, lo: int, hi: int, default: int | None = None) -> int:
    raw = ascii_digits(text).strip()
    if raw == "" and default is not None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _Bad("bad_number", value=text) from None
    if value != int(value) or not lo <= value <= hi:
        raise _Bad("out_of_range", value=text, min=lo, max=hi)
    return int(value)


def _percent(text: str) -> float:
    raw = ascii_digits(text).strip().rstrip("%")
    try:
        value = float(raw)
    except ValueError:
        raise _Bad("bad_number", value=text) from None
    if 0 < value <= 1 and "." in raw:
        value *= 100  # 0.2 means 20 %
    if not 0 < value <= 100:
        raise _Bad("out_of_range", value=text, min=1, max=100)
    return value / 100


def _bool(text: str, default: bool) -> bool:
    raw = text.strip().lower()
    if raw == "":
        return default
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise _Bad("bad_value", value=text)


def _text(text: str, lo: int, hi: int, column: str) -> str:
    value = mask_id_numbers(one_line(text))
    if not lo <= len(value) <= hi:
        raise _Bad("missing_value" if not value else "bad_length", column=column, min=lo, max=hi)
    return value


def _opt(text: str, hi: int, column: str) -> str | None:
    value = mask_id_numbers(one_line(text))
    if len(value) > hi:
        raise _Bad("bad_length", column=column, min=0, max=hi)
    return value or None


def _list(text: str) -> list[str]:
    return [one_line(p) for p in SEPARATORS.split(text or "") if one_line(p)]


def draft_key(*parts: object) -> str:
    """A 32-character idempotency key of an imported ledger record."""
    return "imp" + hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()[:29]


# -- lookups ------------------------------------------------------------------------------------


@dataclass
class Lookups:
    grids: dict[str, int]
    households: dict[tuple[int, str], int] = field(default_factory=dict)
    shops: dict[tuple[int, str], list[tuple[int, str, str]]] = field(default_factory=dict)  # (grid, name) -> [(id, address, category)]
    workers_by_tid: dict[int, int] = field(default_factory=dict)
    workers_by_name: dict[str, list[int]] = field(default_factory=dict)
    grids_of: dict[int, set[int]] = field(default_factory=dict)  # user -> the grids they work in or supervise
    admins: set[int] = field(default_factory=set)


async def _lookups(session: AsyncSession, kind: str) -> Lookups:
    lk = Lookups({code.upper(): gid for code, gid in (await session.exec(select(Grid.code, Grid.id))).all()})  # codes in any letter case
    if kind in ("visits", "residents"):
        lk.households = {(g, a): i for i, g, a in (await session.exec(select(Household.id, Household.grid_id, Household.address))).all()}
    if kind == "patrols":
        for i, g, n, a, c in (await session.exec(select(Shop.id, Shop.grid_id, Shop.name, Shop.address, Shop.category))).all():
            lk.shops.setdefault((g, n), []).append((i, a, c))
    if kind in LEDGERS:
        for uid, key in (await session.exec(select(ChannelIdentity.user_id, ChannelIdentity.key)
                                            .where(ChannelIdentity.channel == TELEGRAM))).all():
            lk.workers_by_tid[int(key)] = uid
        for uid, name, role in (await session.exec(select(User.id, User.display_name, User.role))).all():
            if name:
                lk.workers_by_name.setdefault(name, []).append(uid)
            if role == Role.ADMIN:
                lk.admins.add(uid)
        for uid, gid in (await session.exec(select(UserGrid.user_id, UserGrid.grid_id))).all():
            lk.grids_of.setdefault(uid, set()).add(gid)
    return lk


def _grid(lk: Lookups, text: str) -> int:
    code = one_line(text)
    if not code:
        raise _Bad("missing_value", column="grid")
    if code.upper() not in lk.grids:
        raise _Bad("unknown_grid", code=code)
    return lk.grids[code.upper()]


def _worker(lk: Lookups, text: str, column: str = "worker") -> int:
    ref = one_line(text)
    if not ref:
        raise _Bad("missing_value", column=column)
    if ref.isdigit() and int(ref) in lk.workers_by_tid:
        return lk.workers_by_tid[int(ref)]
    ids = lk.workers_by_name.get(ref, [])
    if len(ids) != 1:
        raise _Bad("unknown_worker" if not ids else "ambiguous_worker", worker=ref)
    return ids[0]


def _worker_of_grid(lk: Lookups, text: str, gid: int, code: str) -> int:
    """The worker of a visit or patrol, who must be able to log it in the bot: one of the grid's
    workers, its supervisor, or an admin."""
    uid = _worker(lk, text)
    if uid not in lk.admins and gid not in lk.grids_of.get(uid, set()):
        raise _Bad("worker_not_in_grid", worker=one_line(text), grid=code)
    return uid


# -- validation ----------------------------------------------------------------------------------


def _row_findings(cell: Callable[[str], str], at: datetime, tz: ZoneInfo, rectify_days: int) -> list[dict]:
    """The findings a patrol row holds: its 问题项 with its 处置, and the items of its two lists.

    处理结果 (and 整改期限, for 要求现场整改) apply to the row's escalated items; an order without a
    deadline gets the default one (RECTIFY_DAYS_DEFAULT days after the patrol), as in the chat.
    说明 is the note of each of the row's findings. An item may appear twice in a patrol: two
    findings (two bad habits of the same kind).
    """
    found: list[tuple[str, str]] = []
    item = one_line(cell("item"))
    if item:
        disposition = vocabulary.parse(vocabulary.DISPOSITION, cell("disposition"))
        if disposition is None:
            raise _Bad("bad_value", value=cell("disposition")) if one_line(cell("disposition")) else _Bad("missing_value", column="disposition")
        found.append((item, disposition))
    elif one_line(cell("disposition")):
        raise _Bad("missing_value", column="item")
    for column, disposition in (("corrected", Disposition.CORRECTED.value), ("escalated", Disposition.ESCALATED.value)):
        found += [(n, disposition) for n in _list(cell(column))]
    for n, _d in found:
        if len(n) > 60:
            column = "item" if n == item else next(c for c in ("corrected", "escalated") if n in _list(cell(c)))
            raise _Bad("bad_length", column=column, min=1, max=60)
    code = vocabulary.parse(vocabulary.OUTCOME, cell("outcome"))
    if code is None:
        raise _Bad("bad_value", value=cell("outcome"))
    escalated = any(d == Disposition.ESCALATED for _n, d in found)
    if code != Outcome.PENDING and not escalated:
        raise _Bad("outcome_without_escalation")
    deadline = _when(cell("deadline"), tz) if one_line(cell("deadline")) else None
    if deadline is not None and code != Outcome.RECTIFY:
        raise _Bad("deadline_without_order")
    if code == Outcome.RECTIFY:
        deadline = deadline or at + timedelta(days=rectify_days)
        if deadline < local_day_start(at, tz):
            raise _Bad("bad_date", value=cell("deadline"))
    note = _opt(cell("note"), MAX_FINDING_NOTE, "note")
    return [{"item": n, "disposition": d, "note": note, "outcome": code if d == Disposition.ESCALATED else None,
             "deadline": deadline if d == Disposition.ESCALATED and code == Outcome.RECTIFY else None} for n, d in found]


def _patrol_checklist(category: str, findings: list[dict]) -> list[dict]:
    """The checklist snapshot of an imported patrol: the category's items, failed where a finding names
    them, and any other item found."""
    failed = {f["item"] for f in findings}
    checklist = [{"name": i.name, "weight": i.weight, "key": i.key, "passed": i.name not in failed} for i in DEFAULT_CHECKLIST.get(category, ())]
    known = {i["name"] for i in checklist}
    for f in findings:
        if f["item"] not in known:
            checklist.append({"name": f["item"], "weight": 1.0, "key": False, "passed": False})
            known.add(f["item"])
    return checklist


def _row_record(kind: str, cell: Callable[[str], str], lk: Lookups, tz: ZoneInfo, default_target: float, categories: dict[str, float],
                rectify_days: int) -> tuple[tuple, dict]:
    """(natural key, clean values) of one row, or _Bad."""
    if kind == "grids":
        code = one_line(cell("code"))
        if not GRID_CODE_RE.match(code):
            raise _Bad("bad_value", value=code) if code else _Bad("missing_value", column="code")
        target = _percent(cell("target")) if cell("target").strip() else None
        return (code.upper(),), {"code": code, "name": _text(cell("name"), 1, 100, "name"), "community": _opt(cell("community"), 100, "community"),
                         "target_coverage": target if target is not None else default_target, "_target_given": target is not None}
    if kind == "households":
        gid = _grid(lk, cell("grid"))
        address = _text(cell("address"), 2, 200, "address")
        tags = _list(cell("tags"))
        bad = [t for t in tags if t not in HOUSEHOLD_TAGS]
        if bad:
            raise _Bad("bad_value", value=bad[0])
        return (gid, address), {"grid_id": gid, "address": address, "head_name": _opt(cell("head_name"), 64, "head_name"),
                                "head_phone": _opt(cell("head_phone"), 32, "head_phone"), "tags": tags, "active": _bool(cell("active"), True)}
    if kind == "residents":
        gid = _grid(lk, cell("grid"))
        address = _text(cell("address"), 2, 200, "address")
        hid = lk.households.get((gid, address))
        if hid is None:
            raise _Bad("unknown_household", address=address)
        name = _text(cell("name"), 1, 64, "name")
        id_number = None
        if one_line(cell("id_number")):
            id_number = masked_id_number(cell("id_number"))
            if id_number is None:
                raise _Bad("bad_id_number")
        tags = _list(cell("tags"))
        bad = [t for t in tags if t not in RESIDENT_TAGS]
        if bad:
            raise _Bad("bad_value", value=bad[0])
        return (hid, name), {"household_id": hid, "name": name, "relation": _opt(cell("relation"), 16, "relation"),
                             "phone": _opt(cell("phone"), 32, "phone"), "id_number": id_number, "tags": tags, "active": _bool(cell("active"), True)}
    if kind == "shops":
        gid = _grid(lk, cell("grid"))
        name, address = _text(cell("name"), 1, 100, "name"), _text(cell("address"), 2, 200, "address")
        category = one_line(cell("category"))
        if category not in SHOP_CATEGORIES:
            raise _Bad("bad_value", value=category) if category else _Bad("missing_value", column="category")
        return (gid, name, address), {"grid_id": gid, "name": name, "address": address, "category": category,
                                      "licence_no": _opt(cell("licence"), 64, "licence"), "contact": _opt(cell("contact"), 64, "contact"),
                                      "active": _bool(cell("active"), True)}
    if kind == "workers":
        tid = _int(cell("telegram_id"), 1, 2**53)
        role = ROLE_ALIASES.get(one_line(cell("role")).lower() or "worker")
        if role is None:
            raise _Bad("bad_value", value=cell("role"))
        codes = _list(cell("grids"))
        _known_grids(lk, cell("grids"))
        if not codes and role != Role.ADMIN:
            raise _Bad("missing_value", column="grids")
        return (tid,), {"telegram_id": tid, "display_name": _text(cell("name"), 1, 64, "name"), "phone": _opt(cell("phone"), 32, "phone"),
                        "role": role.value, "grid_ids": sorted({lk.grids[c.upper()] for c in codes})}
    if kind == "visits":
        at = _when(cell("visited_at"), tz)
        gid = _grid(lk, cell("grid"))
        address = _text(cell("address"), 2, 200, "address")
        hid = lk.households.get((gid, address))
        if hid is None:
            raise _Bad("unknown_household", address=address)
        worker = _worker_of_grid(lk, cell("worker"), gid, one_line(cell("grid")))
        situations = _list(cell("situation")) or ["正常"]
        bad = [s for s in situations if s not in SITUATIONS]
        if bad:
            raise _Bad("bad_value", value=bad[0])
        key = (hid, at.isoformat(), worker)
        return key, {"draft_id": draft_key("visit", *key), "household_id": hid, "worker_id": worker, "visited_at": at,
                     "people_met": _int(cell("people_met"), 0, MAX_PEOPLE_MET, default=1), "situations": situations,
                     "notes": _opt(cell("notes"), 1000, "notes"), "photos": []}
    if kind == "patrols":
        at = _when(cell("patrolled_at"), tz)
        gid = _grid(lk, cell("grid"))
        name = _text(cell("shop"), 1, 100, "shop")
        address = one_line(cell("address"))
        candidates = [s for s in lk.shops.get((gid, name), []) if not address or s[1] == address]
        if len(candidates) != 1:
            raise _Bad("unknown_shop" if not candidates else "ambiguous_shop", shop=name)
        shop_id, _addr, category = candidates[0]
        findings = _row_findings(cell, at, tz, rectify_days)
        worker = _worker_of_grid(lk, cell("worker"), gid, one_line(cell("grid")))
        key = (shop_id, at.isoformat())
        return key, {"draft_id": draft_key("patrol", *key), "shop_id": shop_id, "worker_id": worker, "patrolled_at": at, "items": [],
                     "photos": [], "_category": category, "_findings": findings}
    if kind == "issues":
        number = one_line(cell("number")).upper()
        if not 1 <= len(number) <= 12:
            raise _Bad("missing_value" if not number else "bad_length", column="number", min=1, max=12)
        at = _when(cell("reported_at"), tz)
        gid = _grid(lk, cell("grid"))
        category = one_line(cell("category"))
        if category not in categories:
            raise _Bad("bad_value", value=category) if category else _Bad("missing_value", column="category")
        status = vocabulary.parse(vocabulary.STATUS, cell("status")) if one_line(cell("status")) else REPORTED
        if status is None:
            raise _Bad("bad_value", value=cell("status"))
        resolved_at = _when(cell("resolved_at"), tz) if cell("resolved_at").strip() else None
        if resolved_at is not None and resolved_at < at:
            raise _Bad("bad_date", value=cell("resolved_at"))
        urgent = _bool(cell("urgent"), False)
        due = _when(cell("due"), tz) if cell("due").strip() else due_at_for(at, categories[category], urgent)
        assignee = _worker(lk, cell("assignee"), "assignee") if one_line(cell("assignee")) else None
        # Whether the status needs the events sheet or a 解决时间 is checked once the history is known (validate).
        return (number,), {"human_id": number, "draft_id": draft_key("issue", number), "grid_id": gid, "category": category,
                           "description": _text(cell("description"), 1, 1000, "description"), "address": _opt(cell("address"), 200, "address"),
                           "urgent": urgent, "status": status, "source": "import", "reporter_id": _worker(lk, cell("reporter"), "reporter"), "reported_at": at,
                           "assignee_id": assignee, "due_at": due, "updated_at": resolved_at or at, "_resolved_at": resolved_at, "_events": []}
    raise ValueError(kind)


def _known_grids(lk: Lookups, text: str) -> None:
    unknown = [c for c in _list(text) if c.upper() not in lk.grids]
    if unknown:
        raise _Bad("unknown_grid", code=unknown[0])


def _column_problems(kind: str, cell: Callable[[str], str], lk: Lookups, tz: ZoneInfo, categories: dict[str, float]) -> list[_Bad]:
    """Every column of a refused row checked on its own, so the report names all that is wrong with
    the row at once (the row's own check stops at the first problem)."""
    def given(key: str, check: Callable[[], object]) -> Callable[[], object]:
        return check if one_line(cell(key)) else (lambda: None)

    def among(key: str, allowed: Collection[str]) -> Callable[[], object]:
        def check() -> None:
            bad = [v for v in _list(cell(key)) if v not in allowed]
            if bad:
                raise _Bad("bad_value", value=bad[0])
        return check

    grid, address = (lambda: _grid(lk, cell("grid"))), (lambda: _text(cell("address"), 2, 200, "address"))
    checks: dict[str, list[Callable[[], object]]] = {
        "grids": [lambda: _text(cell("name"), 1, 100, "name"), given("target", lambda: _percent(cell("target")))],
        "households": [grid, address, among("tags", HOUSEHOLD_TAGS), lambda: _opt(cell("head_name"), 64, "head_name"),
                       lambda: _opt(cell("head_phone"), 32, "head_phone")],
        "residents": [grid, address, lambda: _text(cell("name"), 1, 64, "name"), among("tags", RESIDENT_TAGS)],
        "shops": [grid, address, lambda: _text(cell("name"), 1, 100, "name"), among("category", SHOP_CATEGORIES)],
        "workers": [lambda: _int(cell("telegram_id"), 1, 2**53), lambda: _text(cell("name"), 1, 64, "name"), lambda: _known_grids(lk, cell("grids"))],
        "visits": [lambda: _when(cell("visited_at"), tz), grid, address, lambda: _worker(lk, cell("worker")),
                   lambda: _int(cell("people_met"), 0, MAX_PEOPLE_MET, default=1), among("situation", SITUATIONS)],
        "patrols": [lambda: _when(cell("patrolled_at"), tz), grid, lambda: _text(cell("shop"), 1, 100, "shop"), lambda: _worker(lk, cell("worker"))],
        "issues": [lambda: _when(cell("reported_at"), tz), grid, among("category", categories), lambda: _text(cell("description"), 1, 1000, "description"),
                   lambda: _worker(lk, cell("reporter"), "reporter"), given("resolved_at", lambda: _when(cell("resolved_at"), tz)),
                   given("due", lambda: _when(cell("due"), tz)), given("assignee", lambda: _worker(lk, cell("assignee"), "assignee"))],
    }
    found = []
    for check in checks.get(kind, []):
        try:
            check()
        except _Bad as bad:
            found.append(bad)
    return found


def _as_headed(kind: str, details: dict, index: dict[str, int], headers: list[str]) -> dict:
    """A problem names a column as the file's header does (解决时间, not resolved_at); a column the
    file lacks by its first Chinese name."""
    key = details.get("column")
    if key is None:
        return details
    if key in index:
        return {**details, "column": headers[index[key]]}
    spec = next((c for c in COLUMNS[kind] if c.key == key), None)
    if spec is None:
        return details
    return {**details, "column": next((n for n in spec.names if not n.isascii()), spec.names[0])}


async def validate(session: AsyncSession, kind: str, headers: list[str], rows: list[list[str]], tz: ZoneInfo, default_target: float,
                   categories: dict[str, float], progress: Progress | None = None, rectify_days: int = RECTIFY_DAYS_DEFAULT,
                   history: Table | None = None) -> list[dict]:
    """Clean records of every row, or ImportRefused with every problem found (nothing is written).
    `history`: the events sheet (headers, rows) of an issues export."""
    if kind not in KINDS:
        raise ValueError(kind)
    index, problems = map_headers(kind, headers)
    if problems:
        raise ImportRefused(problems)
    lk = await _lookups(session, kind)
    seen: dict[tuple, int] = {}
    patrol_at: dict[tuple, int] = {}  # patrol key -> index in records
    records: list[dict] = []
    for n, raw in enumerate(rows):
        line = n + 2

        def cell(key: str, raw: list[str] = raw) -> str:
            i = index.get(key)
            return "" if i is None or i >= len(raw) or raw[i] is None else str(raw[i])

        if not any(str(c or "").strip() for c in raw):
            continue  # blank line
        try:
            key, record = _row_record(kind, cell, lk, tz, default_target, categories, rectify_days)
        except _Bad as bad:
            found = [(bad.code, bad.details)]
            found += [(b.code, b.details) for b in _column_problems(kind, cell, lk, tz, categories) if (b.code, b.details) not in found]
            problems += [Problem(line, code, _as_headed(kind, details, index, headers)) for code, details in found]
            continue
        if kind == "patrols" and key in seen:
            # Another finding of the same patrol (the long layout): one shop at one time is one patrol.
            first = records[patrol_at[key]]
            if first["worker_id"] != record["worker_id"]:
                problems.append(Problem(line, "patrol_conflict", {"first": seen[key]}))
            else:
                first["_findings"] += record["_findings"]
            continue
        if key in seen:
            problems.append(Problem(line, "duplicate_key", {"first": seen[key]}))
            continue
        seen[key] = line
        record["_row"] = line
        patrol_at[key] = len(records)
        records.append(record)
        if progress is not None and n % BATCH == 0:
            await progress(n, len(rows) * 2)
    if kind == "issues":
        problems += _issue_histories(records, history, lk, tz, lambda details: _as_headed(kind, details, index, headers), categories)
    if problems:
        raise ImportRefused(problems)
    if kind == "patrols":
        for r in records:
            r["items"] = _patrol_checklist(r["_category"], r["_findings"])
    return records


def _issue_histories(records: list[dict], history: Table | None, lk: Lookups, tz: ZoneInfo, headed: Callable[[dict], dict],
                     categories: dict[str, float]) -> list[Problem]:
    """The events sheet of an export, as each issue's `_events` (its history exactly as exported);
    an issue without events gets the history its status implies (`_children`), which only the
    statuses of a finished or new issue have, and 解决时间 tells when it was settled."""
    problems: list[Problem] = []
    by_number = {r["human_id"]: r for r in records}
    if history is not None:
        headers, rows = history
        index, missing = map_headers("issue_events", headers)
        if missing:
            return [Problem(p.row, p.code, {**p.details, "sheet": EVENTS_SHEET}) for p in missing]
        for n, raw in enumerate(rows):
            def cell(key: str, raw: list[str] = raw) -> str:
                i = index.get(key)
                return "" if i is None or i >= len(raw) or raw[i] is None else str(raw[i])

            if not any(str(c or "").strip() for c in raw):
                continue
            try:
                number = one_line(cell("number")).upper()
                record = by_number.get(number)
                if record is None:
                    raise _Bad("unknown_issue", number=number)
                event = _event_record(cell, lk, tz)
            except _Bad as bad:
                problems.append(Problem(n + 2, bad.code, {**_as_headed("issue_events", bad.details, index, headers), "sheet": EVENTS_SHEET}))
                continue
            record["_events"].append({**event, "_row": n + 2})
    for r in records:
        events = r["_events"]
        if events:
            first, last = events[0], events[-1]
            broken = any(e["from_status"] != before["to_status"] for before, e in zip(events, events[1:], strict=False))
            if first["from_status"] is not None or last["to_status"] != r["status"] or broken or any(e["at"] < first["at"] for e in events):
                problems.append(Problem(r["_row"], "history_mismatch", {"number": r["human_id"]}))
                continue
            if r["status"] in ("assigned", "in_progress") and r["assignee_id"] is None:
                problems.append(Problem(r["_row"], "missing_value", headed({"column": "assignee"})))  # nobody would ever see it
                continue
            r["updated_at"] = max(e["at"] for e in events)
            # Each extension held the deadline the one before it set (the first: the category's).
            held = due_at_for(r["reported_at"], categories[r["category"]], r["urgent"])
            for e in (e for e in events if e["action"] == "extend" and e["due_to"] is not None):
                e["due_from"], held = held, e["due_to"]
        elif r["status"] not in IMPORTABLE_STATUSES:
            problems.append(Problem(r["_row"], "status_needs_history", {"value": vocabulary.zh(vocabulary.STATUS, r["status"]), "sheet": EVENTS_SHEET}))
        elif r["status"] != REPORTED and r["_resolved_at"] is None:
            problems.append(Problem(r["_row"], "missing_value", headed({"column": "resolved_at"})))
    return problems


def _event_record(cell: Callable[[str], str], lk: Lookups, tz: ZoneInfo) -> dict:
    action = vocabulary.parse(vocabulary.ACTION, cell("action"))
    if action is None:
        raise _Bad("bad_value", value=cell("action")) if one_line(cell("action")) else _Bad("missing_value", column="action")
    statuses = []
    for key in ("from_status", "to_status"):
        text = one_line(cell(key))
        status = vocabulary.parse(vocabulary.STATUS, text) if text else None
        if text and status is None:
            raise _Bad("bad_value", value=text)
        statuses.append(status)
    if statuses[1] is None:
        raise _Bad("missing_value", column="to_status")
    return {"at": _when(cell("at"), tz), "actor_id": _worker(lk, cell("actor"), "actor"), "action": action, "from_status": statuses[0],
            "to_status": statuses[1], "assignee_id": _worker(lk, cell("assignee"), "assignee") if one_line(cell("assignee")) else None,
            "note": _opt(cell("note"), 1000, "note"), "due_to": _when(cell("due_to"), tz) if action == "extend" and cell("due_to").strip() else None,
            "due_from": None}


# -- writing --------------------------------------------------------------------------------------


def _public(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith("_")}


async def _bulk_insert(session: AsyncSession, table, values: list[dict], progress: Progress | None, offset: int, total: int) -> None:  # noqa: ANN001
    conn = await session.connection()
    for i in range(0, len(values), BATCH):
        await conn.execute(insert(table), values[i:i + BATCH])
        if progress is not None:
            await progress(offset + i + len(values[i:i + BATCH]), total)


async def _bulk_update(session: AsyncSession, table, values: list[dict]) -> None:  # noqa: ANN001
    """UPDATE table SET ... WHERE id = :_id for each dict (which carries `_id`)."""
    if not values:
        return
    columns = [k for k in values[0] if k != "_id"]
    stmt = update(table).where(table.c.id == bindparam("_id")).values({c: bindparam(c) for c in columns})
    conn = await session.connection()
    for i in range(0, len(values), BATCH):
        await conn.execute(stmt, values[i:i + BATCH])


async def write(session: AsyncSession, kind: str, records: list[dict], progress: Progress | None = None) -> ImportResult:
    """Upsert the validated records in the caller's transaction."""
    result = ImportResult(kind, len(records))
    total = 2 * len(records)
    if kind == "grids":
        existing = {g.code.upper(): g for g in (await session.exec(select(Grid))).all()}  # g01 updates G01
        new, changed = [], []
        for r in records:
            g = existing.get(r["code"].upper())
            if g is None:
                new.append(_public(r))
                continue
            values = {"name": r["name"], "community": r["community"] if r["community"] is not None else g.community,
                      "target_coverage": r["target_coverage"] if r["_target_given"] else g.target_coverage}
            if (g.name, g.community, g.target_coverage) != (values["name"], values["community"], values["target_coverage"]):
                changed.append({"_id": g.id, **values})
        await _finish(session, Grid.__table__, new, changed, result, progress, total)
    elif kind in ("households", "residents", "shops"):
        model, natural = {"households": (Household, ("grid_id", "address")), "residents": (Resident, ("household_id", "name")),
                          "shops": (Shop, ("grid_id", "name", "address"))}[kind]
        fields = [k for k in _public(records[0]) if k not in natural] if records else []
        existing = {}
        for o in (await session.exec(select(model))).all():
            existing[tuple(getattr(o, k) for k in natural)] = (o.id, {f: getattr(o, f) for f in fields})
        new, changed = [], []
        for r in records:
            key = tuple(r[k] for k in natural)
            found = existing.get(key)
            if found is None:
                new.append(_public(r))
                continue
            values = {f: r[f] for f in fields}
            if kind in ("households", "residents") and not r.get("tags") and found[1].get("tags"):
                values["tags"] = found[1]["tags"]
            for f in ("head_name", "head_phone", "licence_no", "contact", "relation", "phone", "id_number"):
                if f in values and values[f] is None:
                    values[f] = found[1].get(f)  # an empty cell keeps what is known
            if values != found[1]:
                changed.append({"_id": found[0], **values})
        await _finish(session, model.__table__, new, changed, result, progress, total)
    elif kind == "workers":
        users = {int(key): u for key, u in (await session.exec(select(ChannelIdentity.key, User).join(User, col(User.id) == ChannelIdentity.user_id)
                                                                .where(ChannelIdentity.channel == TELEGRAM))).all()}
        links: dict[int, list[int]] = {}
        for uid, gid in (await session.exec(select(UserGrid.user_id, UserGrid.grid_id).order_by(UserGrid.grid_id))).all():
            links.setdefault(uid, []).append(gid)
        for r in records:
            u = users.get(r["telegram_id"])
            if u is None:
                u = User(display_name=r["display_name"], phone=r["phone"], role=r["role"])
                session.add(u)
                await session.flush()
                session.add(ChannelIdentity(user_id=u.id, channel=TELEGRAM, key=str(r["telegram_id"])))
                session.add_all([UserGrid(user_id=u.id, grid_id=g) for g in r["grid_ids"]])
                result.created += 1
                continue
            phone = r["phone"] if r["phone"] is not None else u.phone
            if (u.display_name, u.phone, u.role, links.get(u.id, [])) == (r["display_name"], phone, r["role"], r["grid_ids"]):
                result.unchanged += 1
                continue
            u.display_name, u.phone, u.role = r["display_name"], phone, r["role"]
            session.add(u)
            if links.get(u.id, []) != r["grid_ids"]:
                await (await session.connection()).execute(UserGrid.__table__.delete().where(UserGrid.__table__.c.user_id == u.id))
                session.add_all([UserGrid(user_id=u.id, grid_id=g) for g in r["grid_ids"]])
            result.updated += 1
        await session.flush()
    else:
        model = {"visits": Visit, "patrols": Patrol, "issues": Issue}[kind]
        keys = [r["draft_id"] for r in records]
        existing: set[str] = set()
        for i in range(0, len(keys), BATCH):
            existing |= set((await session.exec(select(model.draft_id).where(col(model.draft_id).in_(keys[i:i + BATCH])))).all())
        fresh = [r for r in records if r["draft_id"] not in existing]
        result.unchanged = len(records) - len(fresh)
        if kind == "issues":
            numbers = [r["human_id"] for r in fresh]
            taken: set[str] = set()
            for i in range(0, len(numbers), BATCH):
                taken |= set((await session.exec(select(Issue.human_id).where(col(Issue.human_id).in_(numbers[i:i + BATCH])))).all())
            if taken:
                rows = {r["human_id"]: r["_row"] for r in fresh}
                raise ImportRefused([Problem(rows[n], "duplicate_key", {"first": n}) for n in sorted(taken, key=lambda n: rows[n])])
        await _bulk_insert(session, model.__table__, [_public(r) for r in fresh], progress, len(records), total)
        result.created = len(fresh)
        if fresh and kind != "visits":
            await _children(session, kind, fresh)
    return result


async def _finish(session: AsyncSession, table, new: list[dict], changed: list[dict], result: ImportResult, progress: Progress | None, total: int) -> None:  # noqa: ANN001
    await _bulk_insert(session, table, new, progress, total // 2, total)
    await _bulk_update(session, table, changed)
    result.created, result.updated = len(new), len(changed)
    result.unchanged = result.rows - len(new) - len(changed)
    if progress is not None:
        await progress(total, total)


async def _children(session: AsyncSession, kind: str, fresh: list[dict]) -> None:
    """Findings of imported patrols; the events of imported issues."""
    model = Patrol if kind == "patrols" else Issue
    keys = [r["draft_id"] for r in fresh]
    ids: dict[str, int] = {}
    for i in range(0, len(keys), BATCH):
        ids.update(dict((await session.exec(select(model.draft_id, model.id).where(col(model.draft_id).in_(keys[i:i + BATCH])))).all()))
    rows: list[dict] = []
    if kind == "patrols":
        await _patrol_children(session, fresh, ids)
        return
    for r in fresh:
        iid, who, at, done = ids[r["draft_id"]], r["reporter_id"], r["reported_at"], r["_resolved_at"]
        if r["_events"]:
            rows += [{**_public(e), "issue_id": iid, "draft_id": None} for e in r["_events"]]
            continue
        # Every row of the one bulk insert has the same keys (those of an exported history too).
        base = {"issue_id": iid, "actor_id": who, "assignee_id": None, "note": "imported", "draft_id": None, "due_from": None, "due_to": None}
        rows.append({**base, "at": at, "action": "submit", "from_status": None, "to_status": REPORTED})
        if r["status"] in (RESOLVED, CLOSED):
            rows.append({**base, "at": done, "action": "resolve", "from_status": REPORTED, "to_status": RESOLVED})
        if r["status"] == CLOSED:
            rows.append({**base, "at": done, "action": "verify", "from_status": RESOLVED, "to_status": CLOSED})
        if r["status"] == REJECTED:
            rows.append({**base, "at": done, "action": "reject", "from_status": REPORTED, "to_status": REJECTED})
    await _bulk_insert(session, IssueEvent.__table__, rows, None, 0, 0)


async def _patrol_children(session: AsyncSession, fresh: list[dict], ids: dict[str, int]) -> None:
    """Findings of imported patrols, each outcome as a FindingEvent at the patrol's time, an order
    for each 要求现场整改, then the re-inspections the imported patrols make, in the order they
    happened (a later patrol of the shop with every escalated item passing closes the order)."""
    rows = [{"patrol_id": ids[r["draft_id"]], "item": f["item"], "weight": 1.0, "key": False, "disposition": f["disposition"], "note": f["note"],
             "outcome": f["outcome"], "outcome_by": None, "outcome_at": r["patrolled_at"] if f["outcome"] not in (None, Outcome.PENDING) else None}
            for r in fresh for f in r["_findings"]]
    await _bulk_insert(session, Finding.__table__, rows, None, 0, 0)
    patrol_ids = sorted(ids[r["draft_id"]] for r in fresh)
    finding_ids: dict[int, list[int]] = {}
    for i in range(0, len(patrol_ids), BATCH):
        found = await session.exec(select(Finding.patrol_id, Finding.id).where(col(Finding.patrol_id).in_(patrol_ids[i:i + BATCH])).order_by(Finding.id))
        for pid, fid in found.all():
            finding_ids.setdefault(pid, []).append(fid)
    events, orders = [], []
    now = clock.now()
    for r in fresh:
        for fid, f in zip(finding_ids.get(ids[r["draft_id"]], []), r["_findings"], strict=True):
            if f["outcome"] in (None, Outcome.PENDING):
                continue
            at = r["patrolled_at"]
            events.append({"finding_id": fid, "kind": "outcome", "actor_id": None, "at": at, "from_outcome": Outcome.PENDING.value,
                           "to_outcome": f["outcome"], "deadline": f["deadline"], "patrol_id": None, "passed": None})
            if f["outcome"] == Outcome.RECTIFY:
                # History does not nag: an order past its deadline by more than a week counts as reminded.
                stale = f["deadline"] < now - IMPORT_REMIND_WINDOW
                orders.append({"finding_id": fid, "shop_id": r["shop_id"], "ordered_by": None, "ordered_at": at, "deadline": f["deadline"],
                               "status": "open", "reinspection_patrol_id": None, "closed_at": None, "reminded_at": now if stale else None})
    await _bulk_insert(session, FindingEvent.__table__, events, None, 0, 0)
    await _bulk_insert(session, Rectification.__table__, orders, None, 0, 0)
    await replay_reinspections(session, set(patrol_ids))


async def run_import(session: AsyncSession, kind: str, headers: list[str], rows: list[list[str]], tz: ZoneInfo, default_target: float,
                     categories: dict[str, float], progress: Progress | None = None, rectify_days: int = RECTIFY_DAYS_DEFAULT,
                     history: Table | None = None) -> ImportResult:
    """Validate then write, all in the caller's transaction (ImportRefused: nothing written)."""
    records = await validate(session, kind, headers, rows, tz, default_target, categories, progress, rectify_days, history)
    return await write(session, kind, records, progress)

