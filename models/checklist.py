"""The patrol checklist: items per shop category, each with a weight and a "key item" flag.

Configuration, not code: the defaults below serve until `PATROL_CHECKLIST_FILE` names a JSON file
such as

    {"餐饮服务": [{"name": "证照公示", "weight": 1, "key": false}, ...], "食品销售": [...]}

A category the file leaves out keeps its default list. This module is plain Python (no database),
so settings can validate the file at start-up.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from models.vocabulary import N_

SHOP_CATEGORIES = ("餐饮服务", "食品销售", "小作坊", "其他")
# Display names (English msgids; the zh_CN catalog gives the Chinese back). Items of a configured
# checklist that are not listed here are shown as configured.
CATEGORY_LABELS = {"餐饮服务": N_("Catering service"), "食品销售": N_("Food retail"), "小作坊": N_("Small food workshop"), "其他": N_("Other")}
ITEM_LABELS = {
    "证照公示": N_("Licences displayed"), "从业人员健康证": N_("Staff health certificates"),
    "进货查验/索证索票": N_("Purchase checks and supplier records"), "环境卫生": N_("Environmental hygiene"),
    "餐具清洗消毒": N_("Tableware cleaning and disinfection"), "食品贮存与过期食品": N_("Food storage and expired food"),
    "食品留样": N_("Food sample retention"), "油烟排放": N_("Cooking fume emission"), "餐厨废弃物处置": N_("Kitchen waste disposal"),
}
MAX_ITEMS = 20  # one button per item in one message
ITEM_NAME_LEN = (1, 30)
MAX_WEIGHT = 100


@dataclass(frozen=True)
class ChecklistItem:
    name: str
    weight: float = 1.0
    key: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


LICENCE = ChecklistItem("证照公示", 1)
HEALTH = ChecklistItem("从业人员健康证", 2, key=True)
PURCHASE = ChecklistItem("进货查验/索证索票", 2, key=True)
HYGIENE = ChecklistItem("环境卫生", 1)
TABLEWARE = ChecklistItem("餐具清洗消毒", 2, key=True)
STORAGE = ChecklistItem("食品贮存与过期食品", 2, key=True)
SAMPLES = ChecklistItem("食品留样", 1)
FUMES = ChecklistItem("油烟排放", 1)
WASTE = ChecklistItem("餐厨废弃物处置", 1)

DEFAULT_CHECKLIST: dict[str, tuple[ChecklistItem, ...]] = {
    "餐饮服务": (LICENCE, HEALTH, PURCHASE, HYGIENE, TABLEWARE, STORAGE, SAMPLES, FUMES, WASTE),
    "食品销售": (LICENCE, HEALTH, PURCHASE, HYGIENE, STORAGE),
    "小作坊": (LICENCE, HEALTH, PURCHASE, HYGIENE, TABLEWARE, STORAGE, WASTE),
    "其他": (LICENCE, HEALTH, PURCHASE, HYGIENE, STORAGE),
}

Checklist = dict[str, tuple[ChecklistItem, ...]]


def item_label(_: Callable[[str], str], name: str) -> str:
    """An item's name in the reader's language, HTML-escaped."""
    return html.escape(_(ITEM_LABELS[name]) if name in ITEM_LABELS else name, quote=False)


def category_label(_: Callable[[str], str], category: str) -> str:
    return html.escape(_(CATEGORY_LABELS.get(category, category)), quote=False)


def parse_checklist(raw: object) -> Checklist:
    """Validate a decoded JSON checklist; ValueError with one readable reason otherwise."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError('must be a JSON object of category → list of items, e.g. {"餐饮服务": [{"name": "证照公示", "weight": 1, "key": false}]}')
    result = dict(DEFAULT_CHECKLIST)
    for category, items in raw.items():
        if category not in SHOP_CATEGORIES:
            raise ValueError(f"unknown shop category {category!r}; use {', '.join(SHOP_CATEGORIES)}")
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
            raise ValueError(f"{category}: must be a list of 1 to {MAX_ITEMS} items")
        parsed: list[ChecklistItem] = []
        for n, item in enumerate(items, 1):
            if not isinstance(item, dict) or set(item) - {"name", "weight", "key"}:
                raise ValueError(f"{category} item {n}: must be an object with name, weight and key")
            name = item.get("name")
            if not isinstance(name, str) or not ITEM_NAME_LEN[0] <= len(name.strip()) <= ITEM_NAME_LEN[1]:
                raise ValueError(f"{category} item {n}: name must be text of {ITEM_NAME_LEN[0]} to {ITEM_NAME_LEN[1]} characters")
            weight = item.get("weight", 1)
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= MAX_WEIGHT:
                raise ValueError(f"{category} item {n} ({name}): weight must be a number above 0 and at most {MAX_WEIGHT}")
            key = item.get("key", False)
            if not isinstance(key, bool):
                raise ValueError(f"{category} item {n} ({name}): key must be true or false")
            parsed.append(ChecklistItem(name.strip(), float(weight), key))
        names = [i.name for i in parsed]
        if len(set(names)) != len(names):
            raise ValueError(f"{category}: item names must be unique")
        result[category] = tuple(parsed)
    return result


def load_checklist_file(path: Path) -> Checklist:
    """Read and validate PATROL_CHECKLIST_FILE; ValueError with one readable reason otherwise."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return parse_checklist(raw)
