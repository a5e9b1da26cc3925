"""The work-report paragraph: golden texts for the small example street (examples/), rounding, periods."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.importer import read_table
from models import clock, periods
from models.importer import run_import
from models.summary import numbers_from, paragraph_en, paragraph_zh, period_en, period_zh, report_percent, summary_figures
from tests.conftest import by_telegram

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SH = ZoneInfo("Asia/Shanghai")
KINDS = ("grids", "households", "residents", "shops", "workers", "visits", "patrols", "issues")

GOLDEN_ZH = (
    "2021年上半年，网格化工作共收集问题3个，解决率67%；开展入户走访4户次，走访3户，入户率30%，目标20%，2个网格中2个达标；居民信息库在册居民7人；"
    "检查食品经营店铺3家，上门巡查服务4次，现场指正不良习惯3次，发现并向街道、市监所反映不良行为2起，其中要求现场整改1家、处罚1家、停业整改0家。"
    "（数据截至2026年5月20日 10:00）"
)
GOLDEN_EN = (
    "In the first half of 2021, grid management collected 3 problems, with a resolution rate of 67%. "
    "Grid workers made 4 home visits to 3 households, a visit coverage of 30% against a target of 20%; 2 of 2 grids met their own target. "
    "The resident register holds 7 residents. "
    "3 food shops were checked in 4 patrol visits; 3 bad habits were corrected on the spot and 2 bad behaviours were reported to the street office "
    "or the market regulator, after which 1 shop was ordered to rectify on site, 1 fined and 0 closed for rectification. "
    "(Figures as at 20 May 2026, 10:00.)"
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
    numbers = numbers_from(figures, SH)
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


async def test_a_report_as_of_a_day_does_not_move_when_an_issue_changes_later(app, api, db, database_url, monkeypatch, capsys):
    """The cut-off: `/stats … as-of DAY` and `gridbot summary … --as-of DAY` come from the event history up to that day."""
    import asyncio

    from sqlmodel import select

    from bot import cli
    from models.issues import Issue, member_by_id, transition
    from tests.conftest import ADMIN_ID, texts
    from tests.test_join import join_as_admin

    await import_examples(db)
    admin = await join_as_admin(app, api)
    before = texts(await admin.send("/stats 2021H1 as-of 2021-08-05"))
    assert "as at 2021-08-05" in before and "Problems collected: 3 (besides them, rejected: 1); resolved or closed: 2" in before
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert await asyncio.to_thread(cli.main, ["summary", "2021H1", "--as-of", "2021-08-05", "--lang", "zh_CN"]) == 0
    paragraph_before = capsys.readouterr().out
    assert "共收集问题3个，解决率67%" in paragraph_before and "（数据截至2021年8月5日）" in paragraph_before

    # Today (after the cut-off) the supervisor reopens the closed issue.
    async with db.session() as s:
        issue = (await s.exec(select(Issue).where(Issue.human_id == "2101-0001"))).one()
        user = (await s.exec(by_telegram(ADMIN_ID))).one()
        await transition(s, issue.id, "reopen", await member_by_id(s, user.id), issue.status, "not fixed after all")
        await s.commit()

    assert texts(await admin.send("/stats 2021H1 as-of 2021-08-05")) == before
    assert await asyncio.to_thread(cli.main, ["summary", "2021H1", "--as-of", "2021-08-05", "--lang", "zh_CN"]) == 0
    assert capsys.readouterr().out == paragraph_before
    now = texts(await admin.send("/stats 2021H1"))
    assert "Problems collected: 3 (besides them, rejected: 1); resolved or closed: 1" in now
    # A day that does not exist, or is still to come, is refused in one line.
    assert "is not a cut-off day" in texts(await admin.send("/stats 2021H1 as-of 2021-02-30"))
    assert await asyncio.to_thread(cli.main, ["summary", "2021H1", "--as-of", "2031-01-01"]) == 2
    assert "has not come yet" in capsys.readouterr().err
