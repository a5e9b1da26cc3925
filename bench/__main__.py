"""`python -m bench [--quick] [--engines sqlite,postgresql] [--out BENCHMARKS.md]`: run every benchmark,
print the table, write BENCHMARKS.md. Every comparison is a ratio of figures measured in this run."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import platform
import sqlite3
import sys
import time
from pathlib import Path

from bench import conversations, fanout, imports, memory
from bench import stats as stats_bench
from bench.common import WORK, Row, ScratchDB, median, settings_for
from bench.generate import FULL, Size, generate
from bot.db import Database
from models import periods

ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict[str, str]:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"CPU": cpu, "cores": f"{psutil.cpu_count(logical=False)} physical / {psutil.cpu_count()} logical",
            "RAM": f"{psutil.virtual_memory().total / 2**30:.1f} GiB", "OS": platform.platform(), "Python": sys.version.split()[0],
            "SQLite": sqlite3.sqlite_version}


async def pg_version() -> str:
    import asyncpg

    from bench.common import PG_BASE

    conn = await asyncpg.connect(PG_BASE.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        return (await conn.fetchval("SHOW server_version")).split()[0]
    finally:
        await conn.close()


class Report:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.profiles: list[tuple[str, str]] = []

    def add(self, *args, **kw) -> Row:  # noqa: ANN002, ANN003
        row = Row(*args, **kw)
        self.rows.append(row)
        print(f"  {row.section:<14} {row.name:<58} {row.figure:<40} {row.ratio:<10} {row.goal:<12} {row.mark}", flush=True)
        return row


def ms(s: float) -> str:
    return f"{s * 1000:.1f} ms"


# gridbot / writer with updates straight into process_update, before the conversation engine
# (BENCHMARKS.md of 2026-11-27, commit 7457497): "no ratio worse than today's" (issue 15).
BEFORE_ENGINE = {("sqlite", 10): 0.25, ("sqlite", 100): 0.29, ("postgresql", 10): 0.35, ("postgresql", 100): 0.21}
# As deployed: each Bot API call takes a network round trip. 10 ms is about the fastest a server
# gets to a platform's API (a cloud server near api.telegram.org or qyapi.weixin.qq.com); farther
# away it is 30-150 ms, which only widens the gap, since the plain bot waits out every call in turn.
ROUND_TRIP_MS = 10


def _figure(r: conversations.Result) -> str:
    text = f"{r.rate:.0f} upd/s, p50 {ms(r.p50)}, p95 {ms(r.p95)}"
    if r.retries:
        text += f"; {r.retries} saves pressed again (database busy)"
    if r.failed:
        text += f"; {len(r.failed)} visits failed"
    return text


async def bench_conversations(rep: Report, engine: str, url: str, label: str, workers: tuple[int, ...], visits: dict[int, int],
                              hpg: int, writer: dict[int, conversations.Result] | None) -> dict[int, conversations.Result]:
    """Updates straight into process_update (Feed, queued=False): the work per update, nobody queued."""
    out = {}
    for n in workers:
        r = await conversations.run_gridbot(url, n, visits[n], hpg, f"gridbot {label}")
        out[n] = r
        if r.failed:
            rep.notes.append(f"{engine}, {label}, {n} workers: {len(r.failed)} visits failed; first: `{r.failed[0]}`")
        name = f"{engine}: gridbot, {label}, work per update (no queue, no network), {n} workers ({r.updates} updates)"
        if writer is not None:
            ratio, before = r.rate / writer[n].rate, BEFORE_ENGINE[engine, n]
            rep.add("conversations", name, _figure(r), f"{ratio:.2f}x", f">= {before:.2f}x writer (before the engine)", ok=ratio >= before)
        else:
            rep.add("conversations", name, _figure(r))
    return out


async def bench_deployed(rep: Report, engine: str, url: str, workers: tuple[int, ...], visits: dict[int, int]) -> None:
    """Both bots as deployed (Feed, queued=True): PTB's update queue, a network round trip per Bot API call.
    The plain bot handles one update at a time (PTB's default), so its users queue behind each other."""
    how = f"as deployed (update queue, Bot API round trip {ROUND_TRIP_MS} ms)"
    for n in workers:
        w = await conversations.run_baseline(url, n, visits[n], "writer deployed", queued=True, round_trip_ms=ROUND_TRIP_MS)
        rep.add("conversations", f"{engine}: plain PTB writing bot, {how}, {n} workers ({w.updates} updates)", _figure(w))
        g = await conversations.run_gridbot(url, n, visits[n], 600, "gridbot deployed", queued=True, round_trip_ms=ROUND_TRIP_MS)
        ratio = g.rate / w.rate
        name = f"{engine}: gridbot, {how}, {n} workers ({g.updates} updates)"
        figure = _figure(g) + f" (writer p95 {ms(w.p95)})"
        if engine == "postgresql" and n == max(workers):  # the issue's goal
            rep.add("conversations", name, figure, f"{ratio:.2f}x", ">= 1.0x writer, p95 <= writer's",
                    ok=ratio >= 1.0 and g.p95 <= w.p95 and not g.failed)
        else:
            rep.add("conversations", name, figure, f"{ratio:.2f}x writer")


async def profile_conversation(url: str) -> str:
    from pyinstrument import Profiler

    profiler = Profiler(async_mode="enabled", interval=0.0005)
    profiler.start()
    await conversations.run_gridbot(url, 10, 2, 600, "profile")
    profiler.stop()
    return profiler.output_text(unicode=True, color=False, show_all=False)[:6000]


async def explain_stat(db: Database, fn) -> str:  # noqa: ANN001
    """Capture the SQL a stat call sends, then EXPLAIN (QUERY PLAN on SQLite, ANALYZE on PostgreSQL) each statement."""
    from sqlalchemy import event

    captured: list[tuple[str, object]] = []

    def grab(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        captured.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", grab)
    try:
        async with db.session() as s:
            await fn(s)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", grab)
    out = []
    async with db.engine.connect() as conn:
        for statement, params in captured:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                await conn.exec_driver_sql(statement, params)  # e.g. SET LOCAL: applies to what follows, as in the call
                out.append(f"{statement.strip()[:80]} (not a query: executed, not explained)")
                continue
            t0 = time.perf_counter()  # each statement's own time, so the plan that costs is the one to read
            await conn.exec_driver_sql(statement, params)
            took = time.perf_counter() - t0
            prefix = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF) "
            rows = (await conn.exec_driver_sql(prefix + statement, params)).all()
            plan = "\n".join(str(r[-1]) for r in rows)
            out.append(f"[{took * 1000:.0f} ms] {statement.split()[0]} ... ({len(statement)} chars)\n{plan}")
    return "\n---\n".join(out)


async def bench_stats(rep: Report, engine: str, db: Database, grid_ids: list[int], repeats: int) -> None:
    figures = await stats_bench.run(db, grid_ids, repeats)
    for family, f in figures.items():
        ratio = f["city"] / f["baseline"]
        rep.add("stats", f"{engine}: {family}, whole city ({len(grid_ids)} grids)", ms(f["city"]), f"{ratio:.2f}x", "<= 2x baseline",
                ok=ratio <= 2)
        rep.add("stats", f"{engine}: {family}, one grid", ms(f["grid"]), f"{f['grid'] / f['baseline']:.2f}x", "<= 2x baseline",
                ok=f["grid"] <= 2 * f["baseline"])
        rep.add("stats", f"{engine}: {family}, hand-written single-SQL baseline (city)", ms(f["baseline"]))
        if ratio > 2:
            fn = stats_bench.calls(grid_ids)[family][0]
            plan = await explain_stat(db, fn)
            base_sql = stats_bench.explain_sql(db, stats_bench.baseline(db, family))
            rep.profiles.append((f"{engine}: {family}, whole city — {ratio:.2f}x the baseline",
                                 f"EXPLAIN of the stat call's statements:\n{plan[:5000]}\n\nbaseline SQL:\n{base_sql}"))
    # The weekly digest (jobs/digest.compute: every grid, 8 weeks) and `gridbot summary` (models/summary.summary_figures,
    # a half-year), against the sum of the three whole-city baselines, if those modules have landed.
    city_base = sum(f["baseline"] for f in figures.values())
    extras = [
        ("weekly digest, all supervisors (every grid)", "jobs.digest", ("compute",), 3,
         lambda fn: (lambda s: fn(s, settings_for(db.url, WORK / "media"), periods.current("week", stats_bench.NOW, stats_bench.TZ),
                                  stats_bench.NOW))),
        ("gridbot summary, half-year", "models.summary", ("summary_figures",), 2,
         lambda fn: (lambda s: fn(s, stats_bench.HALF, stats_bench.NOW, stats_bench.TZ))),
    ]
    for name, module, names, limit, bind in extras:
        fn = stats_bench.optional_entry(module, names)
        goal = f"<= {limit}x city baselines"
        if fn is None:
            rep.add("stats", f"{engine}: {name}", "not yet available", "", goal)
            continue
        call = bind(fn)
        await stats_bench._time(db, call)
        t = median([await stats_bench._time(db, call) for _ in range(max(1, repeats // 2))])
        ratio = t / city_base
        rep.add("stats", f"{engine}: {name}", ms(t), f"{ratio:.2f}x", goal, ok=ratio <= limit)
        if ratio > limit:
            rep.profiles.append((f"{engine}: {name} — {ratio:.2f}x the city baselines", await explain_stat(db, call)))


async def bench_fanout(rep: Report, engine: str, workers: int, window: float) -> None:
    scratch = await ScratchDB(engine, "fanout").create()
    try:
        r = await fanout.run(scratch.url, workers, window)
    finally:
        await scratch.drop()
    rep.add("fan-out", f"{engine}: build the visit-pace outbox, {workers:,} workers behind pace ({r.rows:,} rows)",
            f"{r.build_s:.2f} s, {r.rows / r.build_s:,.0f} rows/s")
    ratio = r.window_rate / r.configured_rate
    rep.add("fan-out", f"{engine}: delivered rate at OUTBOX_RATE {r.configured_rate:g}/s, {r.window_s:.0f} s window, as deployed",
            f"{r.window_rate:.1f} msg/s ({r.window_sent:,} sent)", f"{ratio:.2f}x configured", ">= 0.9x", ok=ratio >= 0.9)
    rep.add("fan-out", f"{engine}: window: lost / duplicates among the {r.window_sent:,} rows it covered", f"{r.window_lost} / {r.window_dup}",
            "", "0 / 0", ok=r.window_lost == 0 and r.window_dup == 0)
    rep.add("fan-out", f"{engine}: sender ceiling, both limiters lifted (the other {r.capacity_sent:,} rows)",
            f"{r.capacity_rate:,.0f} msg/s ({r.capacity_s:.1f} s)", f"{r.capacity_rate / r.configured_rate:.1f}x configured")
    rep.add("fan-out", f"{engine}: all {workers:,} workers: lost / duplicates / rows not sent", f"{r.lost} / {r.duplicates} / {r.not_sent_rows}",
            "", "0 / 0 / 0", ok=r.lost == 0 and r.duplicates == 0 and r.not_sent_rows == 0)
    idle = fanout.p95(r.idle)
    rep.add("fan-out", f"{engine}: a supervisor's /help reply p95, idle ({len(r.idle)} replies)", ms(idle))
    for label, times in (("during the delivery window", r.during_window), ("during the outbox build", r.during_build)):
        p = fanout.p95(times)
        rep.add("fan-out", f"{engine}: /help reply p95 {label} ({len(times)} replies)", ms(p), f"{p / idle:.2f}x idle", "<= 2x idle",
                ok=p <= 2 * idle)
        if label == "during the outbox build" and p > 2 * idle:
            rep.profiles.append((f"{engine}: the outbox build the /help replies waited for (pyinstrument)", r.build_profile))


async def bench_imports(rep: Report, engine: str, n: int) -> None:
    files = imports.write_files(WORK / "import", n, 20)
    for fmt, path in files.items():
        scratch = await ScratchDB(engine, "import").create()
        try:
            await imports.seed_grids(scratch.url, 20)
            m = await asyncio.to_thread(imports.measure, scratch.url, path)
        finally:
            await scratch.drop()
        total = m["read_s"] + m["import_s"]
        assert m["in_db"] == n, m
        rep.add("import", f"{engine}: {n:,} households from {fmt.upper()} ({path.stat().st_size / 2**20:.1f} MiB)",
                f"{m['rows'] / total:,.0f} rows/s ({total:.1f} s: read {m['read_s']:.1f} s, validate+write {m['import_s']:.1f} s)",
                f"peak RSS +{(m['rss_peak'] - m['rss_before']) / 2**20:.0f} MiB")


class _Skip(Exception):
    pass


CACHE = WORK / "cache"


def _city_key(size: Size) -> str:
    """Generator version (its source) + size: a cached city is reused only if both are the same."""
    import hashlib

    src = (ROOT / "bench" / "generate.py").read_bytes()
    return hashlib.sha1(src + repr(size).encode()).hexdigest()[:12]


async def city_copy(engine: str, size: Size) -> tuple[ScratchDB, dict]:
    """A scratch copy of the generated city (SQLite: a file copy; PostgreSQL: CREATE DATABASE ... TEMPLATE),
    generated once per generator version and size and cached between sub-benchmarks and runs. Migrations
    newer than the cache are applied to the copy (`upgrade` in ScratchDB.create)."""
    import json
    import shutil

    from bench.common import _pg_admin

    key = _city_key(size)
    CACHE.mkdir(parents=True, exist_ok=True)
    meta_path = CACHE / f"city-{key}-{engine}.json"
    cached_name = f"gridbot_bench_city_{key}"
    if not meta_path.exists():
        build = ScratchDB(engine, "citybuild")
        await build.create()
        t0 = time.perf_counter()
        db = Database(build.url)
        city = await generate(db, size)
        await db.dispose()
        meta = {"seconds": time.perf_counter() - t0, "rows": city.rows, "grid_ids": city.grid_ids}
        if engine == "sqlite":
            conn = sqlite3.connect(build.path)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            shutil.move(str(build.path), str(CACHE / f"{cached_name}.db"))
            await build.drop()
        else:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{cached_name}" WITH (FORCE)')
            await _pg_admin(f'ALTER DATABASE "{build.name}" RENAME TO "{cached_name}"')
        meta_path.write_text(json.dumps(meta))  # written last: a cache without it is rebuilt
        meta["cached"] = False
    else:
        meta = json.loads(meta_path.read_text())
        meta["cached"] = True
    copy = ScratchDB(engine, "city")
    if engine == "sqlite":
        shutil.copyfile(CACHE / f"{cached_name}.db", copy.path)
    else:
        await _pg_admin(f'CREATE DATABASE "{copy.name}" TEMPLATE "{cached_name}"')
    from bot.db import upgrade

    upgrade(copy.url)
    return copy, meta


async def main_async(args: argparse.Namespace) -> Report:
    rep = Report()
    quick = args.quick
    size = FULL.scaled(args.scale) if args.scale else (FULL.scaled(0.1) if quick else FULL)
    workers = (10, 100)
    # 500 and 1,000 updates at full size: enough for a p95, and the whole run fits in 30 minutes on 2 cores.
    visits = {10: 3, 100: 1} if quick else {10: 5, 100: 1}
    repeats = 3
    rep.size = size
    rep.visits = visits
    engines = args.engines.split(",")
    t_start = time.perf_counter()
    print(f"gridbot benchmarks — size {size}, engines {engines}", flush=True)

    echo = {}
    for n in (workers if args.only == "all" else ()):
        r = await conversations.run_baseline(None, n, visits[n], "echo")
        echo[n] = r
        rep.add("conversations", f"plain PTB echo bot, {n} workers ({r.updates} updates)", f"{r.rate:.0f} upd/s, p50 {ms(r.p50)}, p95 {ms(r.p95)}")

    conv_profile_done = False
    for engine in (engines if args.only == "all" else []):
        empty = await ScratchDB(engine, "empty").create()
        try:
            t0 = time.perf_counter()
            db = Database(empty.url)
            await generate(db, Size(grids=max(workers), households=600 * max(workers), visits=0, issues=0, patrols=0, shops_per_grid=0,
                                    workers_per_grid=1))
            await db.dispose()
            writer = {}
            for n in workers:
                r = await conversations.run_baseline(empty.url, n, visits[n], "writer")
                writer[n] = r
                rep.add("conversations", f"{engine}: plain PTB writing bot, work per update (no queue, no network), {n} workers ({r.updates} updates)",
                        f"{r.rate:.0f} upd/s, p50 {ms(r.p50)}, p95 {ms(r.p95)}", f"{r.rate / echo[n].rate:.2f}x echo")
            empty_runs = await bench_conversations(rep, engine, empty.url, "empty db", workers, visits, 600, writer)
            await bench_deployed(rep, engine, empty.url, workers, visits)
            if engine == engines[0]:  # as deployed: PTB's AIORateLimiter holds every bot at Telegram's 30 messages/s
                r = await conversations.run_gridbot(empty.url, 10, min(visits[10], 4), 600, "limited", rate_limited=True)
                rep.add("conversations", f"{engine}: gridbot as deployed (AIORateLimiter 30 msg/s), empty db, 10 workers ({r.updates} updates)",
                        f"{r.rate:.0f} upd/s, p50 {ms(r.p50)}, p95 {ms(r.p95)}", f"{r.rate / writer[10].rate:.2f}x writer")
            # What the work per update is made of: the same run with one piece taken out, and a profile.
            missed = [n for n in workers if empty_runs[n].rate < writer[n].rate]
            if missed:
                for diag, what in conversations.DIAGNOSTICS.items():
                    r = await conversations.run_gridbot(empty.url, 10, min(visits[10], 4), 600, diag, diagnostic=diag)
                    rep.add("conversations", f"{engine}: diagnostic, not a fix — gridbot with {what}, empty db, 10 workers",
                            f"{r.rate:.0f} upd/s, p50 {ms(r.p50)}, p95 {ms(r.p95)}",
                            f"{r.rate / writer[10].rate:.2f}x writer ({r.rate / empty_runs[10].rate:.2f}x gridbot)")
            if missed and not conv_profile_done:
                rep.profiles.append((f"{engine}: gridbot conversation, 10 workers (pyinstrument)", await profile_conversation(empty.url)))
                conv_profile_done = True
            print(f"  [{engine} empty-db conversations: {time.perf_counter() - t0:.0f} s]", flush=True)
        finally:
            await empty.drop()

        t0 = time.perf_counter()
        city_db, meta = await city_copy(engine, size)
        try:
            total, gen_s = sum(meta["rows"].values()), meta["seconds"]
            when = f"cached; copied in {time.perf_counter() - t0:.0f} s" if meta["cached"] else "generated in this run"
            rep.add("generate", f"{engine}: city generator ({total:,} rows)", f"{gen_s:.0f} s, {total / gen_s:,.0f} rows/s ({when})")
            db = Database(city_db.url)
            await bench_stats(rep, engine, db, meta["grid_ids"], repeats)
            await db.dispose()
            full_runs = await bench_conversations(rep, engine, city_db.url, f"{size.visits:,} visits", workers, visits,
                                                  size.households // size.grids, None)
            for n in workers:
                ratio = full_runs[n].p95 / empty_runs[n].p95
                rep.add("conversations", f"{engine}: p95 with {size.visits:,} visits / p95 empty, {n} workers", "", f"{ratio:.2f}x",
                        "<= 1.5x", ok=ratio <= 1.5)
            print(f"  [{engine} city: {time.perf_counter() - t0:.0f} s]", flush=True)
        finally:
            await city_db.drop()

    # Memory
    mem_users = 1000 if quick else 10_000
    blank = await ScratchDB("sqlite", "mem0").create()
    full = await ScratchDB("sqlite", "mem").create()
    try:
        if args.only != "all":
            raise _Skip
        await memory.populate(full.url, mem_users)
        m0, m1 = memory.measure(blank.url), memory.measure(full.url)
        delta = m1["rss_running"] - m0["rss_running"]
        rep.add("memory", "running bot, no persisted state", f"RSS {m0['rss_running'] / 2**20:.0f} MiB")
        rep.add("memory", f"running bot, {m1['users']:,} users' persisted conversation state", f"RSS {m1['rss_running'] / 2**20:.0f} MiB",
                f"+{delta / 2**20:.1f} MiB", f"{delta / max(1, m1['users']) / 1024:.1f} KiB/user")
    except _Skip:
        pass
    finally:
        await blank.drop()
        await full.drop()

    # Reminder fan-out (outbox) and import
    fan_workers, window = (1000, 10.0) if quick else (10_000, 30.0)
    imp_rows = 4_000 if quick else 40_000
    rep.fanout = (fan_workers, window)
    rep.import_rows = imp_rows
    for engine in engines:
        t0 = time.perf_counter()
        await bench_fanout(rep, engine, fan_workers, window)
        await bench_imports(rep, engine, imp_rows)
        print(f"  [{engine} fan-out and import: {time.perf_counter() - t0:.0f} s]", flush=True)
    rep.elapsed = time.perf_counter() - t_start
    for label, jump in conversations.CLOCK_JUMPS:
        rep.notes.append(f"Warning: the wall clock moved {jump:+.0f} s against the monotonic clock during the conversation run '{label}'.")
    return rep


def write_markdown(rep: Report, path: Path, info: dict[str, str], args: argparse.Namespace) -> None:
    size = rep.size
    lines = ["# gridbot benchmarks", "",
             f"Generated by `{'make bench-quick' if args.quick else 'make bench'}` (`python -m bench{' --quick' if args.quick else ''}`) "
             f"on {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}, in {rep.elapsed / 60:.1f} min. "
             "Every comparison is a ratio of two figures measured in the same run, so a busy machine shifts both sides.", "",
             "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += ["", "## Sizes", "",
              f"- city: {size.grids:,} grids, {size.households:,} households, {size.visits:,} visits, {size.issues:,} issues (with their events), "
              f"{size.patrols:,} patrols (with findings), {size.grids * size.shops_per_grid:,} shops, {size.grids * size.workers_per_grid:,} workers",
              f"- conversations: 10 workers x {rep.visits[10]} visits and 100 workers x {rep.visits[100]} visits, 10 updates per /visit; "
              "'empty db' = only the workers' grids and households (no visits, issues, patrols); 'work per update' = updates handed "
              "straight to process_update as fast as the workers send them, the Bot API answering at once (what one update costs); "
              "'as deployed' = through PTB's update queue, each app dispatching as it runs in production (the plain bot one update "
              f"at a time, PTB's default), each Bot API call taking a {ROUND_TRIP_MS} ms network round trip",
              f"- fan-out: {rep.fanout[0]:,} workers (20 per grid, 5 households per grid, no visits: every grid behind pace); delivery measured "
              f"over a bounded window of {rep.fanout[1]:.0f} s at the configured OUTBOX_RATE (default 20/s: all of them would take "
              f"{rep.fanout[0] / 20:.0f} s), the rest drained with the limiters lifted; lost/duplicates counted over all of them",
              f"- import: {rep.import_rows:,} households into 20 grids, XLSX and CSV, each import in a fresh process",
              "", "## Results", "", "| section | benchmark | figure | ratio | goal | |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rep.rows:
        lines.append(f"| {r.section} | {r.name} | {r.figure} | {r.ratio} | {r.goal} | {r.mark} |")
    missed = [r for r in rep.rows if r.ok is False]
    lines += ["", "## Goals missed", ""]
    lines += [f"- {r.name}: {r.ratio} (goal {r.goal})" for r in missed] or ["None."]
    for title, body in rep.profiles:
        lines += ["", f"### Profile: {title}", "", "```", body.rstrip(), "```"]
    for note in rep.notes:
        lines += ["", note]
    notes_file = ROOT / "bench" / "NOTES.md"
    if notes_file.exists():
        lines += ["", notes_file.read_text().rstrip()]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="a tenth of the city, fewer visits: for development")
    parser.add_argument("--scale", type=float, default=None, help="city size as a fraction of the full size")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--only", choices=("all", "fanout-import"), default="all",
                        help="fanout-import: only benchmarks 3 and 4 (the others are skipped)")
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("telegram").setLevel(logging.ERROR)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    WORK.mkdir(parents=True, exist_ok=True)
    info = machine()
    if "postgresql" in args.engines:
        info["PostgreSQL"] = asyncio.run(pg_version())
    rep = asyncio.run(main_async(args))
    write_markdown(rep, Path(args.out), info, args)
    print(f"\nwrote {args.out} ({rep.elapsed / 60:.1f} min)")


if __name__ == "__main__":
    main()
