"""A generated street as import files: grids, households, shops, workers and a half-year of ledgers.

Full size by default (DESIGN.md §1 scale: 20 grids, 40,000 households, 400 shops, 60 workers,
6,211 visits, 1,200 patrols, 1,580 issues; a few seconds per engine); `GRIDBOT_FULL_STREET=0`
runs a tenth of the households and a quarter of the ledgers. The
generator also counts every figure of the summary itself, in Python over the rows it wrote, so a
test can compare `gridbot summary` with an independent count.
"""

from __future__ import annotations

import csv
import os
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from models.checklist import DEFAULT_CHECKLIST
from models.issues import DEFAULT_CATEGORIES

FULL = os.environ.get("GRIDBOT_FULL_STREET", "1") != "0"
OUTCOMES = ("待处理", "要求现场整改", "处罚", "停业整改")
OUTCOME_KEY = {"待处理": "pending", "要求现场整改": "rectify_on_site", "处罚": "fined", "停业整改": "suspended"}


@dataclass
class Street:
    files: dict[str, Path]
    counts: dict[str, int]


def _write(path: Path, header: list[str], rows: list[list], encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as fp:
        writer = csv.writer(fp)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _in_h1(text: str) -> bool:
    return date(2021, 1, 1) <= datetime.strptime(text[:10], "%Y-%m-%d").date() < date(2021, 7, 1)


def _stamp(rng: random.Random, spill: float = 0.03) -> str:
    """A local time in 2021H1, with a few just outside it (the period bounds are tested too)."""
    if rng.random() < spill:
        return rng.choice(["2020-12-31 23:59", "2021-07-01 00:00", "2021-07-15 10:00"])
    day = date(2021, 1, 1) + timedelta(days=rng.randrange(181))
    return f"{day.isoformat()} {rng.randrange(8, 19):02d}:{rng.randrange(60):02d}"


def generate(folder: Path, seed: int = 2021, full: bool = FULL) -> Street:
    rng = random.Random(seed)
    n_grids, n_shops, n_workers = 20, 400, 60
    n_households, n_visits, n_patrols, n_issues = (40_000, 6_211, 1_200, 1_580) if full else (4_000, 1_500, 300, 400)
    grids = [f"G{i:02d}" for i in range(1, n_grids + 1)]
    targets = {g: (15 if i % 4 == 0 else 20) for i, g in enumerate(grids)}
    files: dict[str, Path] = {}
    files["grids"] = _write(folder / "grids.csv", ["网格编码", "网格名称", "社区", "目标入户率"],
                            [[g, f"第{i + 1}网格", "幸福社区", targets[g]] for i, g in enumerate(grids)])
    households = [(grids[i % n_grids], f"{i // 40 + 1}栋{i % 4 + 1}单元{100 + i % 40}室") for i in range(n_households)]
    # GBK, Chinese headers: the encoding is detected.
    files["households"] = _write(folder / "households.csv", ["网格", "地址", "户主", "电话", "标签"],
                                 [[g, a, f"户主{k}", f"138{k:08d}", "独居老人" if k % 50 == 0 else ""] for k, (g, a) in enumerate(households)],
                                 encoding="gbk")
    # The resident register: about one person a household, some of them moved out (在册 否), who are
    # not counted.
    resident_rows = []
    for k, (g, a) in enumerate(households):
        for j in range((0, 1, 1, 2)[k % 4] if k % 25 else 0):
            resident_rows.append([g, a, f"居民{k}-{j}", "户主" if j == 0 else "配偶", "" if k % 7 else f"11010119{50 + k % 40}0101{k % 1000:03d}X",
                                  "独居老人" if k % 97 == 0 else "", "否" if k % 53 == 0 and j == 1 else "是"])
    files["residents"] = _write(folder / "residents.csv", ["网格", "地址", "姓名", "与户主关系", "身份证号", "关爱标签", "在册"], resident_rows)
    shops = [(grids[i % n_grids], f"店铺{i:03d}", f"商业街{i}号", "餐饮服务" if i % 3 else "食品销售") for i in range(n_shops)]
    files["shops"] = _write(folder / "shops.csv", ["grid", "name", "address", "category", "licence", "contact"],
                            [[g, n, a, c, f"JY{i:08d}", f"店主{i}"] for i, (g, n, a, c) in enumerate(shops)])
    workers = [(900_000 + i, f"网格员{i:02d}", grids[i % n_grids]) for i in range(n_workers)]
    files["workers"] = _write(folder / "workers.csv", ["Telegram ID", "姓名", "电话", "角色", "网格"],
                              [[tid, name, f"139{tid:08d}", "网格员", g] for tid, name, g in workers])
    by_grid = {g: [w for w in workers if w[2] == g] for g in grids}

    visit_rows, seen_visits = [], set()
    while len(visit_rows) < n_visits:
        g, a = rng.choice(households)
        tid, _name, _g = rng.choice(by_grid[g])
        at = _stamp(rng)
        if (g, a, at, tid) in seen_visits:
            continue
        seen_visits.add((g, a, at, tid))
        visit_rows.append([at, g, a, tid, rng.randrange(0, 5), rng.choice(["正常", "正常", "需帮扶", "安全隐患"]), ""])
    files["visits"] = _write(folder / "visits.csv", ["走访时间", "网格", "地址", "网格员", "见面人数", "情况", "备注"], visit_rows)

    # Patrols in the export's long layout: one row per finding (a patrol without findings: one row
    # with the finding cells empty). Each escalated item has its own outcome, and some patrols find
    # the same item twice (two findings) with different outcomes.
    patrol_rows, findings, seen_patrols, n_patrols_written, repeats = [], [], set(), 0, 0
    while n_patrols_written < n_patrols:
        g, name, address, category = rng.choice(shops)
        at = _stamp(rng)
        if (name, at) in seen_patrols:
            continue
        seen_patrols.add((name, at))
        n_patrols_written += 1
        items = [i.name for i in DEFAULT_CHECKLIST[category]]
        failed = [(i, "现场指正" if rng.random() < 0.7 else "上报") for i in rng.sample(items, rng.choice([0, 0, 1, 1, 2, 3]))]
        outcomes = [rng.choice(OUTCOMES) if d == "上报" else "" for _i, d in failed]
        if failed and n_patrols_written % 40 == 0:
            # The same item twice: two findings, escalated with different outcomes.
            failed = [(failed[0][0], "上报"), *failed[1:], (failed[0][0], "上报")]
            outcomes = ["处罚", *outcomes[1:], "要求现场整改"]
            repeats += 1
        worker = rng.choice(by_grid[g])[1]
        if not failed:
            patrol_rows.append([at, g, name, address, worker, "", "", "", ""])
        for (item, disposition), outcome in zip(failed, outcomes, strict=True):
            patrol_rows.append([at, g, name, address, worker, item, disposition, outcome, ""])
            findings.append((at, g, name, disposition, outcome))
    files["patrols"] = _write(folder / "patrols.csv", ["巡查时间", "网格", "店名", "地址", "网格员", "问题项", "处置", "处理结果", "整改期限"], patrol_rows)

    issue_rows = []
    for k in range(n_issues):
        g = rng.choice(grids)
        at = _stamp(rng)
        status = rng.choice(["已解决", "已办结", "已办结", "已驳回", "已上报"])
        done = ""
        if status != "已上报":
            done = (datetime.strptime(at, "%Y-%m-%d %H:%M") + timedelta(hours=rng.randrange(1, 200))).strftime("%Y-%m-%d %H:%M")
        issue_rows.append([f"21{k:05d}", at, g, rng.choice(list(DEFAULT_CATEGORIES)), f"问题{k}", rng.choice(by_grid[g])[1], status, done])
    files["issues"] = _write(folder / "issues.csv", ["编号", "上报时间", "网格", "类别", "描述", "上报人", "状态", "解决时间"], issue_rows)

    # -- the independent count ----------------------------------------------------------------------
    hh_per_grid = {g: sum(1 for hg, _ in households if hg == g) for g in grids}
    visits_h1 = [r for r in visit_rows if _in_h1(r[0])]
    visited = {(r[1], r[2]) for r in visits_h1}
    visited_per_grid = {g: sum(1 for vg, _ in visited if vg == g) for g in grids}
    patrols_h1 = {(r[0], r[1], r[2]) for r in patrol_rows if _in_h1(r[0])}
    findings_h1 = [f for f in findings if _in_h1(f[0])]
    outcome_shops = {k: {(f[1], f[2]) for f in findings_h1 if f[3] == "上报" and OUTCOME_KEY[f[4]] == k}
                     for k in ("rectify_on_site", "fined", "suspended")}
    issues_h1 = [r for r in issue_rows if _in_h1(r[1])]
    counts = {
        "visits": len(visits_h1), "visits_in_file": len(visit_rows), "households_visited": len(visited), "households": n_households,
        "grids": n_grids, "residents": sum(1 for r in resident_rows if r[6] == "是"),
        "grids_target_met": sum(1 for g in grids if visited_per_grid[g] * 100 >= targets[g] * hh_per_grid[g]),
        "patrols": len(patrols_h1), "shops_covered": len({(p[1], p[2]) for p in patrols_h1}), "shops_registered": n_shops,
        "corrections": sum(1 for f in findings_h1 if f[3] == "现场指正"), "escalations": sum(1 for f in findings_h1 if f[3] == "上报"),
        "repeated_items": repeats,
        "rectify_on_site": len(outcome_shops["rectify_on_site"]), "fined": len(outcome_shops["fined"]), "suspended": len(outcome_shops["suspended"]),
        "reported": len(issues_h1), "resolved": sum(1 for r in issues_h1 if r[6] in ("已解决", "已办结")),
        "rejected": sum(1 for r in issues_h1 if r[6] == "已驳回"),
        # the street's target: the grids' targets weighted by their households
        "target": sum(targets[g] * hh_per_grid[g] for g in grids) / sum(hh_per_grid.values()) / 100,
    }
    return Street(files, counts)
