"""gettext catalogs (Babel): zh_CN is the default, en is complete.

Message ids are English; `bot/locales/<lang>/LC_MESSAGES/gridbot.po` hold the translations,
compiled to .mo by `make catalogs` (a missing .mo is compiled in memory from the .po).
"""

from __future__ import annotations

import gettext
import io
import logging
from functools import cache
from pathlib import Path

from bot.settings import SUPPORTED_LANGUAGES

LOCALE_DIR = Path(__file__).resolve().parent / "locales"
DOMAIN = "gridbot"
log = logging.getLogger(__name__)


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated later, where the language is known."""
    return message


@cache
def translations(language: str) -> gettext.NullTranslations:
    folder = LOCALE_DIR / language / "LC_MESSAGES"
    mo, po = folder / f"{DOMAIN}.mo", folder / f"{DOMAIN}.po"
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as fp:
            return gettext.GNUTranslations(fp)
    if po.exists():
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        log.warning("catalog %s is not compiled; compiling it in memory (run `make catalogs`)", po)
        with po.open("rb") as fp:
            catalog = read_po(fp, locale=language)
        buf = io.BytesIO()
        write_mo(buf, catalog)
        buf.seek(0)
        return gettext.GNUTranslations(buf)
    return gettext.NullTranslations()


def gettext_for(language: str):  # noqa: ANN201
    return translations(language).gettext


def ngettext_for(language: str):  # noqa: ANN201
    """(singular, plural, n) -> the form for n: "1 row" / "2 rows" (Chinese has one form)."""
    return translations(language).ngettext


def resolve_language(chosen: str | None, telegram_code: str | None, default: str) -> str:
    """The user's choice, else Telegram's language_code where we have a catalog, else the default."""
    if chosen in SUPPORTED_LANGUAGES:
        return chosen  # type: ignore[return-value]
    code = (telegram_code or "").lower()
    if code.startswith("zh"):
        return "zh_CN"
    if code.startswith("en"):
        return "en"
    return default
