"""`gridbot` console command: run | console | db upgrade | db downgrade | db current | import | export | summary."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import re
import socket
import sys
import uuid
from urllib.parse import urlsplit

from pydantic import ValidationError

from bot.settings import SUPPORTED_LANGUAGES, Settings, format_settings_error, load_settings

log = logging.getLogger("gridbot")


def _settings() -> Settings:
    try:
        return load_settings()
    except ValidationError as exc:
        print(format_settings_error(exc), file=sys.stderr)
        raise SystemExit(2) from None


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings()
    if bool(settings.wecom_bot_id) != bool(settings.wecom_bot_secret):
        missing = "WECOM_BOT_SECRET" if settings.wecom_bot_id else "WECOM_BOT_ID"
        print(f"configuration error: {missing} is not set; the WeCom AI bot needs both its BotID and its Secret (see README)",
              file=sys.stderr)
        return 2
    if not settings.telegram_bot_token and not settings.wecom_bot_configured:
        print("configuration error: no chat channel is configured: set TELEGRAM_BOT_TOKEN (from @BotFather), or WECOM_BOT_ID "
              "and WECOM_BOT_SECRET (the WeCom AI bot); see README", file=sys.stderr)
        return 2
    webhook = None
    if args.webhook and not settings.telegram_bot_token:
        print("configuration error: --webhook is Telegram's, and TELEGRAM_BOT_TOKEN is not set", file=sys.stderr)
        return 2
    if args.webhook:
        webhook = _webhook_config(args, settings.telegram_bot_token, settings.webhook_secret_token)
        if isinstance(webhook, str):
            print(f"configuration error: {webhook}", file=sys.stderr)
            return 2
    from bot import db
    from bot.channels.telegram import TelegramChannel
    from bot.logs import setup_logging
    from bot.runtime import Runtime, StartError

    secrets = [settings.telegram_bot_token, settings.wecom_bot_secret] + ([webhook["secret_token"]] if webhook else [])
    setup_logging(settings.log_level, [s for s in secrets if s])
    log.info("applying pending migrations")
    try:
        db.upgrade(settings.database_url)
    except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback
        print(f"database error: DATABASE_URL: cannot migrate ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})", file=sys.stderr)
        return 2
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    other = asyncio.run(_lease(settings.database_url, holder, acquire=True))
    if other is not None:
        seen = other.heartbeat_at.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M:%S")
        print(f"another gridbot process is running against this database (pid {other.pid} on {other.host}, last seen {seen}); "
              "stop it first, or wait until its lease expires", file=sys.stderr)
        return 3
    try:
        runtime = Runtime(settings)
        runtime.lease_holder = holder  # renewed by a job (handlers/reminders.py)
        if settings.telegram_bot_token:
            telegram = TelegramChannel(settings)
            telegram.webhook = webhook
            runtime.add(telegram)
            if webhook is None:
                log.info("gridbot starts: Telegram by long polling")
            else:
                log.info("gridbot starts: Telegram by webhook, server on %s:%s for %s", webhook["listen"], webhook["port"], args.webhook)
        if settings.wecom_bot_configured:
            from bot.channels.wecom_bot import WeComBotChannel

            runtime.add(WeComBotChannel(settings))
            log.info("gridbot starts: WeCom AI bot over the long connection to %s", settings.wecom_ws_url)
        try:
            asyncio.run(runtime.run())
        except StartError as exc:
            print(f"start-up error: {exc}", file=sys.stderr)
            return 1
    finally:
        asyncio.run(_lease(settings.database_url, holder, acquire=False))
    return 0


_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def _webhook_config(args: argparse.Namespace, bot_token: str, env_secret: str) -> dict | str:
    """Updater.start_webhook's arguments for `run --webhook URL`, or the one-line reason to refuse to start.

    Telegram POSTs updates to URL; a reverse proxy forwards them to LISTEN:PORT with the same path.
    That path is URL's own, or (when URL has none) one derived from the bot token and appended to URL.
    Requests without the secret token in X-Telegram-Bot-Api-Secret-Token are refused (403) by PTB.
    (PTB's start_webhook also sets the webhook with Telegram, as run_webhook did.)
    """
    url = urlsplit(args.webhook)
    if url.scheme not in ("https", "http") or not url.hostname:
        return f"--webhook: {args.webhook[:100]!r} is not a URL; use the public HTTPS address Telegram should post to"
    secret = args.secret_token or env_secret  # WEBHOOK_SECRET_TOKEN, from the environment or .env
    if not secret:
        return "--webhook needs a secret token: --secret-token TOKEN or WEBHOOK_SECRET_TOKEN (1-256 of A-Z a-z 0-9 _ -)"
    if not _SECRET_RE.match(secret):
        return "the webhook secret token must be 1-256 characters of A-Z a-z 0-9 _ - only"
    path = url.path.strip("/")
    webhook_url = args.webhook
    if not path:
        path = "gridbot-" + hashlib.sha256(bot_token.encode()).hexdigest()[:24]
        webhook_url = args.webhook.rstrip("/") + "/" + path
    return {"listen": args.listen, "port": args.port, "url_path": path, "webhook_url": webhook_url, "secret_token": secret}


def _holder_gone(host: str, pid: int) -> bool:
    """A lease holder on this host whose process no longer exists (e.g. SIGKILLed) holds nothing."""
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


async def _lease(url: str, holder: str, *, acquire: bool):  # noqa: ANN202 - models.reminders.Lease | None
    """Take (or give back) the single-process lease; the lease of the live holder when it is taken."""
    from bot.db import Database
    from handlers.reminders import LEASE_TTL
    from models import clock
    from models.reminders import acquire_lease, release_lease

    db = Database(url)
    try:
        async with db.session() as session:
            if not acquire:
                await release_lease(session, holder)
                return None
            host, pid = holder.split(":")[0], os.getpid()
            return await acquire_lease(session, holder, host, pid, clock.now(), LEASE_TTL, _holder_gone)
    finally:
        await db.dispose()


def cmd_console(args: argparse.Namespace) -> int:
    """The terminal sandbox: demo data, a local Bot API, no token (never used by `run`)."""
    from sandbox.console import main as console_main

    return console_main(db=args.db, language=args.lang)


def cmd_db(args: argparse.Namespace) -> int:
    settings = _settings()
    from bot import db

    try:
        if args.action == "upgrade":
            db.upgrade(settings.database_url, args.revision or "head")
        elif args.action == "downgrade":
            db.downgrade(settings.database_url, args.revision or "-1")
        print(f"database at revision: {db.current_revision(settings.database_url) or 'base (empty)'}")
    except Exception as exc:  # noqa: BLE001
        print(f"database error: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", file=sys.stderr)
        return 2
    return 0


# -- admin tools: import, export, summary -------------------------------------------------------


def _migrate(settings: Settings) -> bool:
    """Bring the schema up to date before a command that reads or writes it (as `run` does), saying so in one line."""
    from bot import db

    try:
        before = db.current_revision(settings.database_url)
        head = db.head_revision()
        if before != head:
            print(f"database: applying migrations ({before or 'empty database'} -> {head})", file=sys.stderr)
            db.upgrade(settings.database_url)
    except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback
        print(f"database error: DATABASE_URL: cannot migrate ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})",
              file=sys.stderr)
        return False
    return True


def _run_async(settings: Settings, work) -> int:  # noqa: ANN001
    """Run `work(db)` on a fresh Database (not inside any running event loop), the schema migrated first."""
    import asyncio

    from bot.db import Database

    if not _migrate(settings):
        return 2

    async def main_() -> int:
        database = Database(settings.database_url)
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(main_())


def _count(n: int, noun: str) -> str:
    """1 row, 2 rows (the command line speaks English)."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def cmd_import(args: argparse.Namespace) -> int:
    """`gridbot import KIND FILE`: validate every row, then write all or nothing."""
    settings = _settings()
    from pathlib import Path

    from bot.i18n import gettext_for
    from bot.importer import FileProblem, TerminalProgress, read_upload, report
    from models import audit
    from models.importer import ImportRefused, run_import

    t = gettext_for("en")
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"import error: {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        (headers, rows), history = read_upload(args.kind, data, path.name)
    except FileProblem as exc:
        print("\n".join([f"import refused: {path.name}: nothing was written", *report([exc.problem], t)]), file=sys.stderr)
        return 1

    async def work(database) -> int:  # noqa: ANN001
        try:
            async with database.session() as session:
                result = await run_import(session, args.kind, headers, rows, settings.tz, settings.visit_target, settings.issue_categories,
                                          TerminalProgress(f"{args.kind}"), settings.rectify_days_default, history)
                await audit.record(session, None, "cli", "import", kind=args.kind, file=path.name, rows=result.rows, created=result.created,
                                   updated=result.updated, unchanged=result.unchanged)
        except ImportRefused as exc:
            lines = [f"import refused: {path.name}: {_count(len(exc.problems), 'problem')}; nothing was written", *report(exc.problems, t, limit=200)]
            print("\n".join(lines), file=sys.stderr)
            return 1
        print(f"{args.kind}: {_count(result.rows, 'row')}: {result.created} created, {result.updated} updated, {result.unchanged} unchanged")
        return 0

    return _run_async(settings, work)


def _period(text: str, settings: Settings):  # noqa: ANN202
    from models import clock, periods

    try:
        return periods.parse(text, settings.tz, clock.now())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_export(args: argparse.Namespace) -> int:
    """`gridbot export KIND PERIOD [GRID] --out FILE` (unmasked unless --mask: the command line is an admin's)."""
    settings = _settings()
    from pathlib import Path

    from bot.exporter import build_export
    from models import audit, clock
    from models.summary import all_grid_ids
    from models.users import grids_by_codes

    period = _period(args.period, settings)

    async def work(database) -> int:  # noqa: ANN001
        from models.errors import RuleError

        async with database.session() as session:
            try:
                grid_ids = [g.id for g in await grids_by_codes(session, [args.grid])] if args.grid else await all_grid_ids(session)
            except RuleError:
                print(f"error: unknown grid {args.grid!r}", file=sys.stderr)
                return 2
            name, data = await build_export(session, args.kind, period, grid_ids, settings.tz, args.mask, clock.now(), args.grid or "")
            await audit.record(session, None, "cli", "export", kind=args.kind, period=period.label, grid=args.grid, masked=args.mask)
        out = Path(args.out or name)
        out.write_bytes(data)
        print(f"wrote {out} ({len(data)} bytes)")
        return 0

    return _run_async(settings, work)


def cmd_summary(args: argparse.Namespace) -> int:
    """`gridbot summary PERIOD`: the work-report paragraph in Chinese and English (and --xlsx: the per-grid table)."""
    settings = _settings()
    from pathlib import Path

    from bot.exporter import summary_workbook
    from models import clock
    from models.periods import cutoff_of_day
    from models.summary import numbers_from, paragraph_en, paragraph_zh, summary_figures

    period = _period(args.period, settings)
    try:
        at = cutoff_of_day(args.as_of, period, clock.now(), settings.tz) if args.as_of else clock.now()
    except ValueError as exc:
        print(f"error: --as-of: {exc}", file=sys.stderr)
        return 2

    async def work(database) -> int:  # noqa: ANN001
        async with database.session() as session:
            figures = await summary_figures(session, period, at, settings.tz)
        numbers = numbers_from(figures, settings.tz)
        texts = {"zh_CN": paragraph_zh(numbers), "en": paragraph_en(numbers)}
        chosen = list(texts) if args.lang == "both" else [args.lang]
        print("\n\n".join(texts[lang] for lang in chosen))
        if args.xlsx:
            Path(args.xlsx).write_bytes(summary_workbook(figures, settings.tz, [texts["zh_CN"], texts["en"]]))
            print(f"wrote {args.xlsx}", file=sys.stderr)
        return 0

    return _run_async(settings, work)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gridbot", description="网格助手 gridbot — a Telegram bot for grid workers")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="apply pending migrations, then run the bot (long polling, or a webhook with --webhook)")
    run.add_argument("--webhook", metavar="URL", help="receive updates by webhook at this public HTTPS URL instead of long polling")
    run.add_argument("--listen", default="127.0.0.1", help="webhook mode: address to listen on (default: 127.0.0.1, behind a reverse proxy)")
    run.add_argument("--port", type=int, default=8443, help="webhook mode: port to listen on (default: 8443)")
    run.add_argument("--secret-token", metavar="TOKEN",
                     help="webhook mode: the secret Telegram sends in X-Telegram-Bot-Api-Secret-Token (or env WEBHOOK_SECRET_TOKEN); required")
    run.set_defaults(func=cmd_run)
    console = sub.add_parser("console", help="try gridbot in the terminal: a sandbox with demo data, no Telegram token needed")
    console.add_argument("--db", metavar="PATH", help="sandbox SQLite file (created with demo data if new); default: a temporary one")
    console.add_argument("--lang", choices=SUPPORTED_LANGUAGES, help="language of the demo users' Telegram apps (default: DEFAULT_LANGUAGE)")
    console.set_defaults(func=cmd_console)
    dbp = sub.add_parser("db", help="database migrations")
    dbp.add_argument("action", choices=["upgrade", "downgrade", "current"])
    dbp.add_argument("revision", nargs="?", help="target revision (upgrade: head; downgrade: -1; 'base' for all)")
    dbp.set_defaults(func=cmd_db)
    from models.importer import KINDS as IMPORT_KINDS

    imp = sub.add_parser("import", help="import a registry or a historical ledger (CSV UTF-8/GBK or XLSX); all rows or none")
    imp.add_argument("kind", choices=IMPORT_KINDS)
    imp.add_argument("file", help="the CSV or XLSX file (formats: README, examples/)")
    imp.set_defaults(func=cmd_import)
    exp = sub.add_parser("export", help="export visits, patrols, issues or the per-grid summary of a period as XLSX")
    exp.add_argument("kind", choices=["visits", "patrols", "issues", "summary"])
    exp.add_argument("period", help="2021-W23, 2021-06, 2021Q2, 2021H1 or 2021")
    exp.add_argument("grid", nargs="?", help="one grid code (default: every grid)")
    exp.add_argument("--out", metavar="FILE", help="where to write the XLSX (default: gridbot-KIND-PERIOD.xlsx)")
    exp.add_argument("--mask", action="store_true", help="mask names and phone numbers as in a non-admin export")
    exp.set_defaults(func=cmd_export)
    summ = sub.add_parser("summary", help="the period work-report paragraph (Chinese and English) from the stats")
    summ.add_argument("period", help="2021H1, 2021Q2, 2021-06, 2021-W23 or 2021")
    summ.add_argument("--lang", choices=["both", *SUPPORTED_LANGUAGES], default="both")
    summ.add_argument("--xlsx", metavar="FILE", help="also write the per-grid table as XLSX")
    summ.add_argument("--as-of", metavar="DATE", help="the report as it was at the end of DATE (YYYY-MM-DD), from the event history")
    summ.set_defaults(func=cmd_summary)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
