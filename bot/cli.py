"""`gridbot` console command: run | console | db upgrade | db downgrade | db current."""

from __future__ import annotations

import argparse
import logging
import sys

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
    if not settings.telegram_bot_token:
        print("configuration error: TELEGRAM_BOT_TOKEN: missing; get one from @BotFather (see README)", file=sys.stderr)
        return 2
    from bot import db
    from bot.app import allowed_updates, build_application
    from bot.logs import setup_logging

    setup_logging(settings.log_level, [settings.telegram_bot_token])
    log.info("applying pending migrations")
    try:
        db.upgrade(settings.database_url)
    except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback
        print(f"database error: DATABASE_URL: cannot migrate ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})", file=sys.stderr)
        return 2
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    app = build_application(settings)
    log.info("gridbot starts polling")
    app.run_polling(allowed_updates=allowed_updates(), drop_pending_updates=False)
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    """The terminal sandbox: demo data, a local Bot API, no token (never used by `run`)."""
    from bot.console import main as console_main

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gridbot", description="网格助手 gridbot — a Telegram bot for grid workers")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="apply pending migrations, then run the bot (long polling)")
    run.set_defaults(func=cmd_run)
    console = sub.add_parser("console", help="try gridbot in the terminal: a sandbox with demo data, no Telegram token needed")
    console.add_argument("--db", metavar="PATH", help="sandbox SQLite file (created with demo data if new); default: a temporary one")
    console.add_argument("--lang", choices=SUPPORTED_LANGUAGES, help="language of the demo users' Telegram apps (default: DEFAULT_LANGUAGE)")
    console.set_defaults(func=cmd_console)
    dbp = sub.add_parser("db", help="database migrations")
    dbp.add_argument("action", choices=["upgrade", "downgrade", "current"])
    dbp.add_argument("revision", nargs="?", help="target revision (upgrade: head; downgrade: -1; 'base' for all)")
    dbp.set_defaults(func=cmd_db)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
