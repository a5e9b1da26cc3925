"""Benchmark 4: importing N households (40,000 at full size) from XLSX and from CSV through the real importer.

The files are written first (openpyxl / csv, the same columns as tests/gen_street.py: 网格, 地址, 户主, 电话, 标签)
into a database whose grids exist. Each import runs in a fresh interpreter (`python -m bench.imports --child`):
`bot.importer.read_table` (the bytes as the chat handler gets them) then `models.importer.run_import` in one
session, as /import does. Reported: rows/s over read + validate + write, the split, and peak memory as
the child's peak RSS (VmHWM) minus its RSS just before reading the file.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

HEADER = ["网格", "地址", "户主", "电话", "标签"]


def rows(n: int, grids: int) -> list[list[str]]:
    return [[f"C{(i % grids) + 1:04d}", f"{i // 40 + 1}栋{i % 4 + 1}单元{100 + i % 40}室", f"户主{i}", f"138{i:08d}",
             "独居老人" if i % 50 == 0 else ""] for i in range(n)]


def write_files(folder: Path, n: int, grids: int) -> dict[str, Path]:
    from openpyxl import Workbook

    folder.mkdir(parents=True, exist_ok=True)
    data = rows(n, grids)
    out = {"csv": folder / f"households_{n}.csv", "xlsx": folder / f"households_{n}.xlsx"}
    with out["csv"].open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(data)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet()
    ws.append(HEADER)
    for r in data:
        ws.append(r)
    wb.save(out["xlsx"])
    return out


async def seed_grids(url: str, grids: int) -> None:
    from bench.generate import Size, generate
    from bot.db import Database

    db = Database(url)
    await generate(db, Size(grids=grids, households=0, visits=0, issues=0, patrols=0, shops_per_grid=0, workers_per_grid=1))
    await db.dispose()


def _hwm() -> int:
    """Peak RSS of this process image (VmHWM; ru_maxrss would include the parent's RSS from before the exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


async def _child(url: str, path: str) -> dict:
    import gc

    from sqlmodel import func, select

    from bot.db import Database
    from bot.importer import read_table
    from models.importer import run_import
    from models.tables import Household

    db = Database(url)
    async with db.session() as s:  # connect and warm up before the baseline figure
        await s.exec(select(func.count()).select_from(Household))
    gc.collect()
    before = _rss()
    t0 = time.perf_counter()
    data = Path(path).read_bytes()
    headers, table = read_table(data, path)
    t1 = time.perf_counter()
    async with db.session() as s:
        result = await run_import(s, "households", headers, table, ZoneInfo("Asia/Shanghai"), 0.2, {})
    t2 = time.perf_counter()
    peak = _hwm()
    async with db.session() as s:
        n = (await s.exec(select(func.count()).select_from(Household))).one()
    await db.dispose()
    return {"rows": len(table), "read_s": t1 - t0, "import_s": t2 - t1, "rss_before": before, "rss_peak": peak, "in_db": n,
            "result": str(result)[:200]}


def measure(url: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.imports", "--child", url, str(path)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "0"})
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_child(*args.child))))
