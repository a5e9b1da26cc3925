"""The work-report paragraph: golden texts for the small example street (examples/), rounding, periods."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot import clock
from bot.importer import read_table
from models import periods
from models.importer import run_import
from models.summary import numbers_from, paragraph_en, paragraph_zh, period_en, period_zh, report_percent, summary_figures

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SH = ZoneInfo("Asia/Shanghai")
KINDS = ("grids", "households", "shops", "workers", "visits", "patrols", "issues")

GOLDEN_ZH = (
    "2021年上半年，网格化工作共收集问题4个，解决率67%；开展入户走访4户次，走访3户，入户率30%，2个网格中2个完成半年入户目标；"
    "检查食品经营店铺3家，上门巡查服务4次，现场指正不良习惯3次，发现并向街道、市监所反映不良行为2起，其中要求现场整改1家、处罚1家、停业整改0家。"
)
GOLDEN_EN = (
    "In the first half of 2021, grid management collected 4 problems, with a resolution rate of 67%. "
    "Grid workers made 4 home visits to 3 households, a visit coverage of 30%, and 2 of 2 grids met the half-year target. "
    "3 food shops were checked in 4 patrol visits; 3 bad habits were corrected on the spot and 2 bad behaviours were reported to the street office "
    "or the market regulator, after which 1 shop was ordered to rectify on site, 1 fined and 0 closed for rectification."
)


async def import_examples(db) -> None:  # noqa: ANN001
    for kind in KINDS:
        path = EXAMPLES / f"{kind}.csv"
        headers, rows = read_table(path.read_bytes(), path.name)
        async with db.session() as s:
            await run_import(s, kind, headers, rows, SH, 0.2, {"僵尸车": 7, "违规地锁": 3, "油烟扰民": 3, "排水污水": 3})


async def test_golden_paragraphs_of_the_example_street(db):
    await import_examples(db)
    async with db.session() as s:
        figures = await summary_figures(s, periods.parse("2021H1", SH), clock.now(), SH)
    numbers = numbers_from(figures)
    assert paragraph_zh(numbers) == GOLDEN_ZH
    assert paragraph_en(numbers) == GOLDEN_EN


@pytest.mark.parametrize(("num", "den", "text"), [
    (1580, 1580, "100%"), (6211, 29576, "21%"), (199, 200, "99%"), (1, 3, "33%"), (2, 3, "67%"), (1, 200, "0.5%"), (1, 3000, "<0.1%"),
    (0, 7, "0%"), (5, 0, None), (1, 8, "13%"),
])
def test_report_rounding(num, den, text):
    assert report_percent(num, den) == text


def test_period_names():
    names = {label: (period_zh(periods.parse(label, SH)), period_en(periods.parse(label, SH)))
             for label in ("2021H1", "2021H2", "2021Q2", "2021-06", "2021-W23", "2021")}
    assert names == {
        "2021H1": ("2021年上半年", "the first half of 2021"), "2021H2": ("2021年下半年", "the second half of 2021"),
        "2021Q2": ("2021年第二季度", "the second quarter of 2021"), "2021-06": ("2021年6月", "June 2021"),
        "2021-W23": ("2021年第23周", "week 23 of 2021"), "2021": ("2021年", "2021"),
    }
