"""Both catalogs are complete and every translation keeps the placeholders and tags of its msgid."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from bot.i18n import LOCALE_DIR, resolve_language

ROOT = Path(__file__).resolve().parent.parent


def catalog(lang: str):  # noqa: ANN201
    with (LOCALE_DIR / lang / "LC_MESSAGES" / "gridbot.po").open("rb") as fp:
        return read_po(fp, locale=lang)


def code_msgids(tmp_path: Path) -> set[str]:
    pot = tmp_path / "fresh.pot"
    subprocess.run([str(Path(sys.executable).parent / "pybabel"), "extract", "-F", "babel.cfg", "-k", "N_", "-k", "t", "-k", "n_:1,2", "-o", str(pot), "."],
                   cwd=ROOT, check=True, capture_output=True)
    with pot.open("rb") as fp:
        return {m.id for m in read_po(fp) if m.id}


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_catalog_is_complete_for_the_code(lang, tmp_path):
    translated = {m.id: m.string for m in catalog(lang) if m.id}
    missing = sorted(i for i in code_msgids(tmp_path) if not translated.get(i))
    assert missing == [], f"{lang}: {len(missing)} strings without a translation (run `make extract`): {missing[:5]}"


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_translations_keep_placeholders_and_tags(lang):
    pattern = re.compile(r"\{\w*\}|</?\w+>")
    for message in catalog(lang):
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in (s for s in strings if s and ids[0]):
            assert sorted(pattern.findall(ids[-1])) == sorted(pattern.findall(text)), message.id


@pytest.mark.parametrize(("chosen", "telegram", "expected"), [
    (None, "zh-hans", "zh_CN"), (None, "zh-TW", "zh_CN"), (None, "en-GB", "en"), (None, "fr", "zh_CN"),
    (None, None, "zh_CN"), ("en", "zh-hans", "en"), ("xx", "en", "en"),
])
def test_language_resolution(chosen, telegram, expected):
    assert resolve_language(chosen, telegram, "zh_CN") == expected


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_catalog_compiles_without_errors(lang):
    """What `pybabel compile` checks (e.g. python-format placeholders) must pass, or `make` fails."""
    errors = [(message.id, errs) for message, errs in catalog(lang).check()]
    assert errors == []
