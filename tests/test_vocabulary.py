"""One vocabulary of statuses, actions, dispositions and outcomes: the chat's words are the table's."""

from __future__ import annotations

import pytest

from bot.i18n import gettext_for
from models import vocabulary

TABLES = {"status": vocabulary.STATUS, "action": vocabulary.ACTION, "disposition": vocabulary.DISPOSITION, "outcome": vocabulary.OUTCOME}


@pytest.mark.parametrize("name", list(TABLES))
def test_the_catalogs_say_the_tables_words(name):
    zh, en = gettext_for("zh_CN"), gettext_for("en")
    for word in TABLES[name].values():
        assert zh(word.en) == word.zh, (name, word.code)
        assert en(word.en) == word.en


@pytest.mark.parametrize("name", list(TABLES))
def test_every_word_parses_back_to_its_code(name):
    for word in TABLES[name].values():
        for text in (word.code, word.zh, word.en, *word.aliases):
            assert vocabulary.parse(TABLES[name], f" {text} ") == word.code
    assert vocabulary.parse(TABLES[name], "不是一个词") is None


def test_government_usage():
    assert vocabulary.STATUS["closed"].zh == "已办结" and vocabulary.STATUS["resolved"].zh == "已处置（待核实）"
    assert vocabulary.parse(vocabulary.STATUS, "已解决") == "resolved" and vocabulary.parse(vocabulary.STATUS, "已关闭") == "closed"
