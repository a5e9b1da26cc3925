"""The period work summary (工作总结): the street's report paragraph, in Chinese and in English.

Every number is taken from `models.stats.street_figures` for the same period; nothing is counted
here. The paragraph is Chinese by design (the register of a street-office half-year summary) with
an English twin; both are templates in code, chosen by language, not gettext messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from babel.dates import format_date
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import stats
from models.periods import Period, cutoff_day
from models.tables import Grid

_ZH_NUMERALS = "零一二三四"


def report_percent(numerator: int, denominator: int) -> str | None:
    """As work reports round them: a whole percent (half up), one decimal below 1 % (never 0.0 for a non-zero share);
    100 % only when the share is whole.

    None when the share is undefined (no denominator). 0 is "0%".
    """
    if not denominator:
        return None
    value = Fraction(100 * numerator, denominator)
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    if 0 < value < 1:
        tenths = exact.quantize(Decimal("0.1"), ROUND_HALF_UP)
        return f"{tenths}%" if tenths > 0 else "<0.1%"
    whole = exact.quantize(Decimal(1), ROUND_HALF_UP)
    if whole == 100 and numerator != denominator:
        whole = Decimal(99)  # "100 %" is said only when every one is done
    return f"{whole}%"


def period_zh(period: Period) -> str:
    label = period.label
    if period.kind == "half":
        return f"{label[:4]}年{'上' if label.endswith('1') else '下'}半年"
    if period.kind == "quarter":
        return f"{label[:4]}年第{_ZH_NUMERALS[int(label[-1])]}季度"
    if period.kind == "month":
        return f"{label[:4]}年{int(label[5:])}月"
    if period.kind == "week":
        return f"{label[:4]}年第{int(label[6:])}周"
    return f"{label}年"


def period_en(period: Period) -> str:
    label = period.label
    if period.kind == "half":
        return f"the {'first' if label.endswith('1') else 'second'} half of {label[:4]}"
    if period.kind == "quarter":
        return f"{('the first', 'the second', 'the third', 'the fourth')[int(label[-1]) - 1]} quarter of {label[:4]}"
    if period.kind == "month":
        names = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December")
        return f"{names[int(label[5:]) - 1]} {label[:4]}"
    if period.kind == "week":
        return f"week {int(label[6:])} of {label[:4]}"
    return label


@dataclass(frozen=True)
class SummaryNumbers:
    """The numbers of the paragraph, each straight from the stats functions."""

    period: Period
    at: datetime  # the cut-off every status-dependent figure is taken at
    tz: ZoneInfo
    reported: int  # every report of the period, rejected ones included
    resolved: int
    rejected: int
    visits: int
    households_visited: int
    households: int
    grids: int
    grids_target_met: int
    shops_covered: int
    shops_registered: int
    patrols: int
    corrections: int
    escalations: int
    rectify_on_site: int
    fined: int
    suspended: int
    target: float  # the street's target coverage: households-weighted mean of the grids' targets
    residents: int = 0  # people on file in the resident register (said only when there are any)

    @property
    def collected(self) -> int:
        """The problems collected (收集问题): the reports of the period not rejected at the cut-off."""
        return self.reported - self.rejected

    @property
    def resolution_rate(self) -> str | None:
        return report_percent(self.resolved, self.collected)

    @property
    def target_percent(self) -> str:
        return _plain_percent(self.target)

    @property
    def coverage(self) -> str:
        return report_percent(self.households_visited, self.households) or "0%"


def _plain_percent(share: float) -> str:
    """A target as set (20 %, 17.5 %): no trailing zeros."""
    value = Decimal(str(round(share * 100, 1))).normalize()
    return f"{value:f}%"


def cutoff_zh(at: datetime, tz: ZoneInfo) -> str:
    day, clock_time = cutoff_day(at, tz)
    return "截至" + format_date(day, "long", locale="zh_CN") + (f" {clock_time}" if clock_time else "")


def cutoff_en(at: datetime, tz: ZoneInfo) -> str:
    day, clock_time = cutoff_day(at, tz)
    return "as at " + format_date(day, "d MMMM y", locale="en") + (f", {clock_time}" if clock_time else "")


def numbers_from(figures: stats.StreetFigures, tz: ZoneInfo) -> SummaryNumbers:
    i = figures.issues
    return SummaryNumbers(
        figures.period, figures.at, tz, i.reported, i.resolved, i.rejected, figures.visits, figures.households_visited, figures.households,
        len(figures.grids), figures.grids_target_met, figures.patrol("shops_covered"), figures.patrol("shops_registered"),
        figures.patrol("patrols"), figures.patrol("corrections"), figures.patrol("escalations"), figures.patrol("rectify_on_site"),
        figures.patrol("fined"), figures.patrol("suspended"), figures.target, figures.residents,
    )


def paragraph_zh(n: SummaryNumbers) -> str:
    rate = f"，解决率{n.resolution_rate}" if n.resolution_rate else ""
    target = f"，目标{n.target_percent}，{n.grids}个网格中{n.grids_target_met}个达标" if n.period.kind == "half" and n.grids else ""
    return (
        f"{period_zh(n.period)}，网格化工作共收集问题{n.collected}个{rate}；"
        f"开展入户走访{n.visits}户次，走访{n.households_visited}户，入户率{n.coverage}{target}；"
        + (f"居民信息库在册居民{n.residents}人；" if n.residents else "") +
        f"检查食品经营店铺{n.shops_covered}家，上门巡查服务{n.patrols}次，现场指正不良习惯{n.corrections}次，"
        f"发现并向街道、市监所反映不良行为{n.escalations}起，其中要求现场整改{n.rectify_on_site}家、"
        f"处罚{n.fined}家、停业整改{n.suspended}家。"
        f"（数据{cutoff_zh(n.at, n.tz)}）"
    )


def _en(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def paragraph_en(n: SummaryNumbers) -> str:
    when = period_en(n.period)
    rate = f", with a resolution rate of {n.resolution_rate}" if n.resolution_rate else ""
    target = (f" against a target of {n.target_percent}; {n.grids_target_met} of {_en(n.grids, 'grid', 'grids')} met their own target"
              if n.period.kind == "half" and n.grids else "")
    return (
        f"In {when}, grid management collected {_en(n.collected, 'problem', 'problems')}{rate}. "
        f"Grid workers made {_en(n.visits, 'home visit', 'home visits')} to {_en(n.households_visited, 'household', 'households')}, "
        f"a visit coverage of {n.coverage}{target}. "
        + (f"The resident register holds {_en(n.residents, 'resident', 'residents')}. " if n.residents else "") +
        f"{_en(n.shops_covered, 'food shop was', 'food shops were')} checked in {_en(n.patrols, 'patrol visit', 'patrol visits')}; "
        f"{_en(n.corrections, 'bad habit was', 'bad habits were')} corrected on the spot and "
        f"{_en(n.escalations, 'bad behaviour was', 'bad behaviours were')} reported to the street office or the market regulator, "
        f"after which {_en(n.rectify_on_site, 'shop was', 'shops were')} ordered to rectify on site, {n.fined} fined "
        f"and {n.suspended} closed for rectification. "
        f"(Figures {cutoff_en(n.at, n.tz)}.)"
    )


def paragraph(n: SummaryNumbers, language: str) -> str:
    return paragraph_zh(n) if language.startswith("zh") else paragraph_en(n)


async def all_grid_ids(session: AsyncSession) -> list[int]:
    return list((await session.exec(select(Grid.id).order_by(col(Grid.code)))).all())


async def summary_figures(session: AsyncSession, period: Period, at: datetime, tz: ZoneInfo, grid_ids: list[int] | None = None) -> stats.StreetFigures:
    """The street figures the summary is made of (every grid unless `grid_ids`)."""
    ids = await all_grid_ids(session) if grid_ids is None else grid_ids
    return await stats.street_figures(session, ids, period, at, tz)
