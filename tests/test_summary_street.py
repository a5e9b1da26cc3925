"""The generated street: import every file through the CLI, then check `gridbot summary 2021H1`
against a count in Python over the files (tests/gen_street.py). Full size (40,000 households) by
default; GRIDBOT_FULL_STREET=0 for a reduced street."""

from __future__ import annotations

import asyncio

from bot import cli
from models.periods import half
from models.summary import SummaryNumbers, paragraph_en, paragraph_zh
from tests.gen_street import generate

ORDER = ("grids", "households", "shops", "workers", "visits", "patrols", "issues")


async def test_street_summary_equals_an_independent_count(db, database_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("TIMEZONE", "Asia/Shanghai")
    street = generate(tmp_path)
    for kind in ORDER:
        assert await asyncio.to_thread(cli.main, ["import", kind, str(street.files[kind])]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"households: {street.counts['households']} rows: {street.counts['households']} created" in out

    # Importing the same files again changes nothing.
    for kind in ORDER:
        assert await asyncio.to_thread(cli.main, ["import", kind, str(street.files[kind])]) == 0
    again = capsys.readouterr().out
    assert " 0 created, 0 updated" in again and again.count(" 0 created, 0 updated") == len(ORDER)

    xlsx = tmp_path / "summary.xlsx"
    assert await asyncio.to_thread(cli.main, ["summary", "2021H1", "--xlsx", str(xlsx)]) == 0
    printed = capsys.readouterr().out
    from zoneinfo import ZoneInfo

    c = street.counts
    from bot import clock

    sh = ZoneInfo("Asia/Shanghai")
    expected = SummaryNumbers(half(2021, 1, sh), clock.now(), sh, c["reported"], c["resolved"], c["rejected"], c["visits"],
                              c["households_visited"], c["households"], c["grids"], c["grids_target_met"], c["shops_covered"],
                              c["shops_registered"], c["patrols"], c["corrections"], c["escalations"], c["rectify_on_site"], c["fined"],
                              c["suspended"], c["target"])
    assert printed.strip() == paragraph_zh(expected) + "\n\n" + paragraph_en(expected)
    # One sentence counts one set: the problems collected leave the rejected reports out, and the rate divides by them.
    collected = c["reported"] - c["rejected"]
    assert c["rejected"] > 0 and f"共收集问题{collected}个" in printed and f"collected {collected} problems" in printed
    assert f"{c['grids']}个网格中{c['grids_target_met']}个达标" in printed
    assert 0 < c["grids_target_met"] < c["grids"]
    assert "（数据截至2026年5月20日 10:00）" in printed and "(Figures as at 20 May 2026, 10:00.)" in printed
    from openpyxl import load_workbook

    sheet = load_workbook(xlsx).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert len(rows) == 1 + 20 + 1 and rows[-1][0] == "合计 Total"
    assert rows[-1][2:5] == (c["households"], c["households_visited"], c["visits"])
