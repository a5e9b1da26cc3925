"""The generated street (tests/gen_street.py), imported through the CLI in the README's order as a new
user would: `gridbot summary 2021H1 --as-of 2021-08-05`, `/stats … as-of 2021-08-05` and the summary
XLSX are checked against a count in Python over the files, not the stats SQL again. The street makes
each point of the work report matter: rejected reports, a change after the cut-off, residents (some
moved out), one item found twice in a patrol with two outcomes, a worker row outside its grid, and a
target met street-wide but not in every grid. Full size (40,000 households) by default;
GRIDBOT_FULL_STREET=0 for a reduced street."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from sqlmodel import func, select

from bot import cli
from models.issues import Issue, member_by_id, transition
from models.patrols import Finding, Rectification
from models.periods import half
from models.summary import SummaryNumbers, paragraph_en, paragraph_zh
from tests.conftest import ADMIN_ID, by_telegram, texts
from tests.gen_street import generate
from tests.test_join import join_as_admin

ORDER = ("grids", "households", "residents", "shops", "workers", "visits", "patrols", "issues")  # the README's order
SH = ZoneInfo("Asia/Shanghai")


async def test_street_summary_equals_an_independent_count(app, api, db, database_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("TIMEZONE", "Asia/Shanghai")
    street = generate(tmp_path)
    c = street.counts

    # A visit by a worker of another grid is refused with its row number; nothing of the file is written.
    bad = tmp_path / "visits-bad.csv"
    lines = street.files["visits"].read_text(encoding="utf-8").splitlines()
    first = lines[1].split(",")
    outsider = next(line.split(",")[3] for line in lines[1:] if line.split(",")[1] != first[1])
    bad.write_text("\n".join([*lines[:3], ",".join([*first[:3], outsider, *first[4:]])]) + "\n", encoding="utf-8")

    out = ""
    for kind in ORDER:
        if kind == "visits":
            assert await asyncio.to_thread(cli.main, ["import", "visits", str(bad)]) == 1
            captured = capsys.readouterr()
            out += captured.out
            assert "row 4:" in captured.err and "is neither a worker nor the supervisor of grid" in captured.err
            assert "nothing was written" in captured.err
        assert await asyncio.to_thread(cli.main, ["import", kind, str(street.files[kind])]) == 0, capsys.readouterr().err
    out += capsys.readouterr().out
    assert f"visits: {c['visits_in_file']} rows: {c['visits_in_file']} created" in out  # none from the refused file
    assert f"households: {c['households']} rows: {c['households']} created" in out

    # Importing the same files again changes nothing.
    for kind in ORDER:
        assert await asyncio.to_thread(cli.main, ["import", kind, str(street.files[kind])]) == 0
    again = capsys.readouterr().out
    assert again.count(" 0 created, 0 updated") == len(ORDER), again

    async with db.session() as s:
        repeated = (await s.exec(select(func.count()).select_from(
            select(Finding.patrol_id, Finding.item).group_by(Finding.patrol_id, Finding.item).having(func.count() > 1).subquery()))).one()
        orders = (await s.exec(select(func.count()).select_from(Rectification))).one()
    assert repeated == c["repeated_items"] > 0 and orders > 0

    cutoff = datetime(2021, 8, 6, tzinfo=SH)  # the end of the as-of day
    expected = SummaryNumbers(half(2021, 1, SH), cutoff, SH, c["reported"], c["resolved"], c["rejected"], c["visits"],
                              c["households_visited"], c["households"], c["grids"], c["grids_target_met"], c["shops_covered"],
                              c["shops_registered"], c["patrols"], c["corrections"], c["escalations"], c["rectify_on_site"], c["fined"],
                              c["suspended"], c["target"], c["residents"])
    xlsx = tmp_path / "summary.xlsx"
    assert await asyncio.to_thread(cli.main, ["summary", "2021H1", "--as-of", "2021-08-05", "--xlsx", str(xlsx)]) == 0
    printed = capsys.readouterr().out
    assert printed.strip() == paragraph_zh(expected) + "\n\n" + paragraph_en(expected)
    collected = c["reported"] - c["rejected"]
    assert c["rejected"] > 0 and f"共收集问题{collected}个" in printed and f"collected {collected} problems" in printed
    assert f"居民信息库在册居民{c['residents']}人" in printed and f"The resident register holds {c['residents']} residents" in printed
    assert f"{c['grids']}个网格中{c['grids_target_met']}个达标" in printed and 0 < c["grids_target_met"] < c["grids"]
    assert "（数据截至2021年8月5日）" in printed and "(Figures as at 5 August 2021.)" in printed

    rows = list(load_workbook(xlsx).worksheets[0].iter_rows(values_only=True))
    header, total = rows[0], dict(zip(rows[0], rows[-1], strict=True))
    assert len(rows) == 1 + c["grids"] + 1 and rows[-1][0] == "合计 Total"
    assert [total[h] for h in ("在册户数 Households", "走访户数 Households visited", "走访户次 Visits", "巡查次数 Patrols", "检查店铺 Shops checked",
                               "登记店铺 Shops registered", "现场指正 Corrections", "上报 Escalations", "现场整改 Rectify on site", "处罚 Fined",
                               "停业整改 Suspended", "收集问题 Problems collected", "已解决 Resolved", "已驳回 Rejected", "在册居民 Residents")] == [
        c["households"], c["households_visited"], c["visits"], c["patrols"], c["shops_covered"], c["shops_registered"], c["corrections"],
        c["escalations"], c["rectify_on_site"], c["fined"], c["suspended"], collected, c["resolved"], c["rejected"], c["residents"]]
    assert total["达标 Target met"] == f"{c['grids_target_met']}/{c['grids']}" and "入户率 Coverage" in header

    admin = await join_as_admin(app, api)
    stats = texts(await admin.send("/stats 2021H1 as-of 2021-08-05"))
    for line in (f"Visits: {c['visits']}", f"Households visited: {c['households_visited']} of {c['households']}",
                 f"Grids at their target: {c['grids_target_met']} of {c['grids']}", f"Residents on file: {c['residents']}",
                 f"Patrols: {c['patrols']}; shops checked: {c['shops_covered']} of {c['shops_registered']} registered",
                 f"Corrected on the spot: {c['corrections']}; escalated: {c['escalations']}",
                 f"Shops ordered to rectify on site: {c['rectify_on_site']}; fined: {c['fined']}; closed for rectification: {c['suspended']}",
                 f"Problems collected: {collected} (besides them, rejected: {c['rejected']}); resolved or closed: {c['resolved']}"):
        assert line in stats, (line, stats)

    # Today, after the cut-off, a resolved issue of the period is reopened: the report as at the
    # cut-off does not move; today's does.
    async with db.session() as s:
        issue = (await s.exec(select(Issue).where(Issue.status == "closed", Issue.reported_at >= half(2021, 1, SH).start,
                                                  Issue.reported_at < half(2021, 1, SH).end).limit(1))).one()
        admin_user = (await s.exec(by_telegram(ADMIN_ID))).one()
        await transition(s, issue.id, "reopen", await member_by_id(s, admin_user.id), issue.status, "not fixed after all")
        await s.commit()
    assert await asyncio.to_thread(cli.main, ["summary", "2021H1", "--as-of", "2021-08-05"]) == 0
    assert capsys.readouterr().out == printed
    assert texts(await admin.send("/stats 2021H1 as-of 2021-08-05")) == stats
    assert f"resolved or closed: {c['resolved'] - 1}" in texts(await admin.send("/stats 2021H1"))
