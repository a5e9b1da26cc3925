"""The words of the ledgers: one table of the issue statuses and actions, patrol dispositions and
outcomes, in Chinese and English, used by the chat (through the catalogs, whose Chinese must match
this table — a test checks it), the XLSX exports and the imports.

The Chinese words follow government usage: 办结 is final closure, after a supervisor's check; a
worker's own fix is 已处置（待核实） until then. An import accepts the Chinese word, the English
word, the stored code and the words older versions and other systems use (已解决, 已关闭, …).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def N_(text: str) -> str:  # noqa: N802 - marks an English word for the catalogs (babel's N_ keyword)
    return text


@dataclass(frozen=True)
class Word:
    code: str  # what the database stores
    zh: str
    en: str  # the catalog msgid
    aliases: tuple[str, ...] = ()  # also accepted by imports


def _table(*words: Word) -> dict[str, Word]:
    return {w.code: w for w in words}


STATUS = _table(
    Word("reported", "待派单", N_("reported"), ("已上报", "待处理", "待处置", "上报")),
    Word("assigned", "已派单", N_("assigned"), ("派单",)),
    Word("in_progress", "处置中", N_("in progress"), ("处理中", "办理中", "in_progress")),
    Word("resolved", "已处置（待核实）", N_("resolved"), ("已处置", "待核实", "已解决")),
    Word("closed", "已办结", N_("closed"), ("办结", "已关闭", "已完成")),
    Word("rejected", "不予受理", N_("rejected"), ("已驳回", "驳回")),
    Word("reopened", "重新办理", N_("reopened"), ("已重新打开", "重新打开")),
)

ACTION = _table(
    Word("submit", "上报", N_("submit")),
    Word("resolve_on_spot", "现场处置", N_("resolve on the spot")),
    Word("assign", "派单", N_("assign")),
    Word("reject", "不予受理", N_("reject")),
    Word("start", "开始处置", N_("start")),
    Word("resolve", "处置完成", N_("resolve")),
    Word("hand_back", "退回派单", N_("hand back")),
    Word("verify", "核实办结", N_("verify")),
    Word("reopen", "重新办理", N_("reopen")),
    Word("attach", "合并上报", N_("add to")),
    Word("extend", "延期", N_("extend the deadline")),
    Word("void", "作废", N_("void")),
)

DISPOSITION = _table(
    Word("corrected", "现场指正", N_("corrected on the spot"), ("指正",)),
    Word("escalated", "上报", N_("escalated"), ("已上报",)),
)

OUTCOME = _table(
    Word("pending", "待处理", N_("pending"), ("待处置", "")),
    Word("rectify_on_site", "要求现场整改", N_("ordered to rectify on site"), ("现场整改", "整改", "rectify")),
    Word("fined", "处罚", N_("fined"), ("已处罚", "罚款")),
    Word("suspended", "停业整改", N_("closed for rectification"), ("停业",)),
)


def zh(table: dict[str, Word], code: str | None) -> str:
    """The Chinese word of a code (exports); an unknown code is shown as it is."""
    if code is None:
        return ""
    word = table.get(code)
    return word.zh if word else code


def parse(table: dict[str, Word], text: str) -> str | None:
    """The code a cell means (Chinese, English, code or alias; case and spaces ignored), or None."""
    key = _norm(text)
    for w in table.values():
        if key in {_norm(v) for v in (w.code, w.zh, w.en, *w.aliases)}:
            return w.code
    return None


def _norm(text: str) -> str:
    return "".join(str(text or "").split()).lower().replace("(", "（").replace(")", "）")


# -- the words shown in the chat (translated through the catalogs) -----------------------------------

CATEGORY_LABELS = {  # the issue categories of the default configuration, by their stored Chinese name
    "市容环境": N_("City appearance"), "户外招牌": N_("Outdoor signs"), "违规地锁": N_("Illegal ground locks"),
    "僵尸车": N_("Zombie cars"), "违规种菜": N_("Illegal vegetable plots"), "油烟扰民": N_("Restaurant fumes"),
    "排水污水": N_("Drainage and sewage"), "垃圾分类": N_("Waste sorting"), "安全隐患": N_("Safety hazard"),
    "矛盾纠纷": N_("Dispute"), "其他": N_("Other"),
}
STATUS_LABELS = {code: w.en for code, w in STATUS.items()} | {"new": N_("new")}


def category_label(t: Callable[[str], str], category: str) -> str:
    """A category in the reader's language (a category the office added is shown as it is)."""
    return t(CATEGORY_LABELS[category]) if category in CATEGORY_LABELS else category


def status_label(t: Callable[[str], str], status: str) -> str:
    return t(STATUS_LABELS.get(status, status))
