"""Hostile and odd input at every step of every conversation (property-based, hypothesis).

Every step of registration (/start CODE), /visit, /patrol, /shop_add, /report and the issue-note
form (a reason or a resolution note) gets, at random: hostile text (4,096 characters, emoji,
right-to-left script, SQL, HTML and Markdown metacharacters, control characters, ID numbers),
a kind of message the step does not take (sticker, voice, document, video, photo, location,
someone else's contact, /skip, /done), a forwarded message, an edit of an earlier message, the
same text in a group chat, and forged buttons (random data, another user's draft, an earlier
draft, an old summary). Each must get a clear answer, never the error handler, never a refused
Bot API call (the local Bot API parses HTML strictly, so an unescaped echo of user text fails
there), and change nothing: the draft and every ledger row stay as they were, unless the step
took the text as its answer, which must then be stored cleaned (no control characters, ID
numbers masked) and shown back verbatim (so escaped) wherever it is echoed. Also: hostile input with no form
open (and a hostile CSV for /import), hostile arguments to every command, and hostile registered names and
household addresses in the lists, cards, reminders that show them.

Profiles: `gridbot-ci` (derandomised, no example database) when CI=true, `gridbot-dev` otherwise;
both without deadline and with the example counts fixed below.
"""

from __future__ import annotations

import copy
import os
import re
import unicodedata
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import text as sql

from handlers.flow import FLOW_BY_NAME
from handlers.issues import STATUS_CODE
from models import metadata
from models.errors import RuleError
from models.issues import validate_address as issue_address
from models.issues import validate_description
from models.issues import validate_note as issue_note
from models.patrols import validate_contact, validate_licence, validate_note, validate_shop_address, validate_shop_name
from models.tables import Role
from models.text import clean_text, mask_id_numbers, one_line
from models.users import create_invitation, create_user
from models.visits import MAX_NOTES
from models.visits import validate_address as visit_address
from sandbox.localapi import buttons
from tests.conftest import ADMIN_ID, NOW, TOKEN, Tg
from tests.seed import SUPERVISOR_A, WORKER_A, WORKER_B
from tests.seed_issues import put_issue
from tests.seed_patrols import seed_patrols
from tests.test_patrols import walk_to as walk_patrol
from tests.test_visit import walk_to as walk_visit

SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
# No shrinking: every example is independent and printed as it failed; shrinking a flow walk takes minutes.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate]
settings.register_profile("gridbot-ci", derandomize=True, database=None, deadline=None, max_examples=60, suppress_health_check=SUPPRESS,
                          phases=PHASES, print_blob=True)
settings.register_profile("gridbot-dev", deadline=None, max_examples=60, suppress_health_check=SUPPRESS, phases=PHASES)
PROFILE = settings.get_profile("gridbot-ci" if os.environ.get("CI", "").lower() in ("true", "1") else "gridbot-dev")

GROUP_CHAT = -1001234567
JPEG = b"\xff\xd8\xff\xe0" + b"hostile-photo" * 10

# -- strategies --------------------------------------------------------------------------------------------------------

NASTY = [
    "<b>bold</b> & <i>", "</b>", "<a href='x'>", "'; DROP TABLE visit; --", "\" OR 1=1 --", "%_\\%", "*_[]()~`>#+-=|{}.!",
    "**bold** __it__ `code` [link](http://x)", "مرحبا بالعالم", "שלום עולם", "\u202eevil\u200f", "😀" * 50, "👨\u200d👩\u200d👧 family",
    "3栋<script>alert(1)</script>", "&amp;&lt;&gt;", "&", "<", "\u0000\u0007 bell", "١٢", "２", "2 人", "NaN", "1e3", "-1", "99999999999999999999",
    "110101199003071234 身份证", "身份证号11010119900307123X", "13812345678", "\t\ttabs\n\nlines\n", "Z\u0351\u0300\u0301algo", "\ufeffbom",
    "x /nonexistent <b>", "x /skip@other_bot", "@gridbot_test_bot", "#hashtag", "a" * 4096, "<" * 4096, "😀" * 2048, "中" * 4096,
]
ODD_ALPHABET = list("<>&\"'`*_[]()~#+-=|{}.!\\%;/ \n") + ["中", "😀", "ا", "ש", "\u202e", "\u200f", "\u200d", "\u0000", "１", "\u0301"]
TEXTS = st.one_of(
    st.sampled_from(NASTY),
    st.text(min_size=1, max_size=120),
    st.text(alphabet=st.sampled_from(ODD_ALPHABET), min_size=1, max_size=400),
    st.lists(st.sampled_from(NASTY[:32]), min_size=2, max_size=4).map(" ".join),
    st.tuples(st.sampled_from(["<", "&", "😀", "中", "ש", "x", "<b>", "110101199003071234 "]), st.integers(1000, 4096)).map(
        lambda p: (p[0] * p[1])[: p[1] if p[0] != "😀" else p[1] // 2]),
).map(lambda s: s.strip()).filter(lambda s: s and not s.startswith("/"))  # clients trim and never send blank messages; commands: see KINDS

KINDS = ["text", "text", "text", "forwarded", "edited", "group", "sticker", "voice", "document", "video", "photo", "location", "contact",
         "skip", "done", "unknown_command", "forged_random", "forged_structured", "forged_other_user", "forged_old_draft", "forged_old_summary"]

# -- every step of every flow ---------------------------------------------------------------------------------------

# (flow, step) -> who fills it: a fresh account of that kind per example (a long chat history would slow every
# step of the test harness), "guest" being a new Telegram user with an invitation.
STEPS: dict[tuple[str, str], str] = {
    **{("visit", s): "worker" for s in ("HOUSEHOLD", "NEW_ADDRESS", "NEW_TAGS", "PEOPLE", "SITUATION", "NOTES", "PHOTOS", "LOCATION", "CONFIRM")},
    ("visit", "NEW_GRID"): "admin",
    **{("patrol", s): "worker" for s in ("SHOP", "NEW_NAME", "NEW_ADDRESS", "NEW_CATEGORY", "CHECKLIST", "DISPOSITION", "NOTE", "PHOTOS",
                                         "CONFIRM")},
    ("patrol", "NEW_GRID"): "admin",
    **{("shop_add", s): "supervisor" for s in ("NAME", "ADDRESS", "CATEGORY", "LICENCE", "CONTACT", "CONFIRM")},
    ("shop_add", "GRID"): "admin",
    **{("report", s): "worker" for s in ("CATEGORY", "DESCRIPTION", "WHERE", "PHOTOS", "URGENCY", "CONFIRM", "SPOT_NOTE", "SPOT_PHOTO")},
    ("report", "GRID"): "worker_ab",
    ("issue_note", "NOTE"): "supervisor",
    ("issue_note", "AFTER_PHOTO"): "worker",
    ("join", "NAME"): "guest",
    ("join", "PHONE"): "guest",
}
# Steps where a search text is kept in the draft and echoed as «query»: how the query is derived from the text.
SEARCH_STEPS = {("visit", "HOUSEHOLD"): lambda t: mask_id_numbers(clean_text(t))[:100], ("patrol", "SHOP"): lambda t: mask_id_numbers(one_line(t))[:100]}


REFUSED = object()


def _rule(fn, empty_refused: bool = False):  # noqa: ANN001, ANN202
    """A validator as `text -> the cleaned value stored, or REFUSED`."""
    def run(value: str) -> object:
        try:
            out = fn(value)
        except RuleError:
            return REFUSED
        return REFUSED if empty_refused and not out else out
    return run


def _visit_notes(value: str) -> object:
    notes = clean_text(value)
    return REFUSED if len(notes) > MAX_NOTES else (mask_id_numbers(notes) or None)


def _join_name(value: str) -> object:
    name = one_line(value)
    return name if 1 <= len(name) <= 32 else REFUSED


# Free-text fields: (flow, step) -> (draft data path, how the stored value follows from the text, None = refused).
FIELDS = {
    ("visit", "NOTES"): (("notes",), _visit_notes),
    ("visit", "NEW_ADDRESS"): (("address",), _rule(visit_address)),
    ("patrol", "NEW_NAME"): (("new_shop", "name"), _rule(validate_shop_name)),
    ("patrol", "NEW_ADDRESS"): (("new_shop", "address"), _rule(validate_shop_address)),
    ("patrol", "NOTE"): (("findings", 0, "note"), _rule(validate_note)),
    ("shop_add", "NAME"): (("new_shop", "name"), _rule(validate_shop_name)),
    ("shop_add", "ADDRESS"): (("new_shop", "address"), _rule(validate_shop_address)),
    ("shop_add", "LICENCE"): (("new_shop", "licence_no"), _rule(validate_licence)),
    ("shop_add", "CONTACT"): (("new_shop", "contact"), _rule(validate_contact)),
    ("report", "DESCRIPTION"): (("description",), _rule(validate_description)),
    ("report", "WHERE"): (("address",), _rule(issue_address)),
    ("report", "SPOT_NOTE"): (("resolution_note",), _rule(issue_note, empty_refused=True)),
    ("issue_note", "NOTE"): (("note",), _rule(issue_note, empty_refused=True)),
    ("join", "NAME"): (("name",), _join_name),
}
# Fields editable from a summary, and the label of their Edit button.
SUMMARY_FIELDS = {
    ("visit", "NOTES"): "Notes", ("patrol", "NOTE"): None, ("shop_add", "NAME"): "Name", ("shop_add", "ADDRESS"): "Address",
    ("shop_add", "LICENCE"): "Licence number", ("shop_add", "CONTACT"): "Contact", ("report", "DESCRIPTION"): "Description",
    ("report", "WHERE"): "Where",
}
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[0-9Xx](?![0-9A-Za-z])")


def dig(data: dict, path: tuple) -> object:
    for key in path:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def stored_strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in stored_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in stored_strings(v)]
    return []


def clean_and_masked(value: object) -> bool:
    """No control character but newline and tab, no unmasked 18-digit ID number in any stored string."""
    for s in stored_strings(value):
        if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in s) or _ID_NUMBER.search(s):
            return False
    return True


# -- the bench: one app and database for all examples of a test ---------------------------------------------------


@dataclass
class Bench:
    app: object
    api: object
    db: object
    errors: list = field(default_factory=list)
    refused_calls: list = field(default_factory=list)
    seeded: object = None
    next_guest: int = 70000
    member: object = None
    other_button: dict = field(default_factory=dict)

    async def setup(self) -> None:
        if self.seeded is not None:
            return
        self.seeded = await seed_patrols(self.db)
        async with self.db.session() as s:
            await create_user(s, ADMIN_ID, Role.ADMIN, [], "管理员", "en")

        async def record_error(update: object, context) -> None:  # noqa: ANN001
            self.errors.append(repr(context.error))

        self.app.add_error_handler(record_error)
        handle = self.api.handle

        async def watched(token, method, params=None, files=None):  # noqa: ANN001, ANN202 - every refused Bot API call is a bug here
            status, body = await handle(token, method, params, files)
            if status >= 400 and "not modified" not in body.get("description", ""):
                self.refused_calls.append((method, body.get("description")))
            return status, body

        self.api.handle = watched
        for uid in (WORKER_A, SUPERVISOR_A, ADMIN_ID):
            await Tg(self.app, self.api, uid).send("/help")  # their chats exist, for the notifications they get

    async def ledgers(self) -> dict:
        """Every row of every table but the persisted chat state (drafts are compared on their own)."""
        out = {}
        async with self.db.engine.connect() as conn:
            for table in metadata.sorted_tables:
                if table.name in ("persisted_state", "process_lease", "processed_update"):  # chat state and redelivery bookkeeping
                    continue
                rows = (await conn.execute(sql(f'SELECT * FROM "{table.name}"'))).all()
                out[table.name] = sorted(repr(tuple(r)) for r in rows)
        return out

    async def at_step(self, flow: str, step: str) -> Tg:
        """A new user with a draft of `flow` at `step`, filled with valid answers so far."""
        self.next_guest += 1
        uid, kind = self.next_guest, STEPS[(flow, step)]
        ga, gb = self.seeded.base.grid_a, self.seeded.base.grid_b
        if kind != "guest":
            role, grids = {"worker": (Role.WORKER, [ga]), "admin": (Role.ADMIN, []), "supervisor": (Role.SUPERVISOR, [ga]),
                           "worker_ab": (Role.WORKER, [ga, gb])}[kind]
            async with self.db.session() as s:
                self.member = await create_user(s, uid, role, grids, f"测试{uid}", "en")
        u = Tg(self.app, self.api, uid)
        if kind != "guest":
            await u.send("/help")  # the chat exists
        await WALKERS[flow](self, u, step)
        assert u.draft is not None and (u.draft["flow"], u.draft["step"]) == (flow, step), (flow, step, u.draft)
        assert self.errors == [] and self.refused_calls == [], (flow, step, "the valid walk failed", self.errors, self.refused_calls)
        self.errors.clear()
        self.refused_calls.clear()
        return u


async def walk_visit_any(bench: Bench, u: Tg, step: str) -> None:
    if step in ("NEW_ADDRESS", "NEW_GRID", "NEW_TAGS"):
        await u.send("/visit")
        await u.press("New household")
        if step != "NEW_ADDRESS":
            await u.send("9栋1单元101")
        return
    await walk_visit(u, step)


async def walk_patrol_any(bench: Bench, u: Tg, step: str) -> None:
    if step == "NEW_GRID":
        await u.send("/patrol")
        await u.press("New shop")
        await u.send("张姐早餐")
        await u.send("幸福路30号")
        return
    await walk_patrol(u, step)


async def walk_shop_add(bench: Bench, u: Tg, step: str) -> None:
    await u.send("/shop_add")
    for name, answer in (("NAME", "陈记"), ("ADDRESS", "幸福路88号"), ("GRID", None), ("CATEGORY", "Catering service"), ("LICENCE", "/skip"),
                         ("CONTACT", "/skip")):
        if u.draft["step"] == step:
            return
        if name == "GRID":
            if u.draft["step"] == "GRID":
                await u.press("G01")
            continue
        await (u.press(answer) if name == "CATEGORY" else u.send(answer))


async def walk_report(bench: Bench, u: Tg, step: str) -> None:
    await u.send("/report")
    if step == "GRID":
        await u.press("Outdoor signs")
        return
    for name in ("CATEGORY", "DESCRIPTION", "WHERE", "PHOTOS", "URGENCY", "CONFIRM", "SPOT_NOTE", "SPOT_PHOTO"):
        if u.draft["step"] == step:
            return
        if name == "CATEGORY":
            await u.press("Outdoor signs")
        elif name == "DESCRIPTION":
            await u.send("招牌松动，有坠落风险")
        elif name == "WHERE":
            await u.send("幸福路12号")
            await u.send("/done")
        elif name == "PHOTOS":
            await u.photo(JPEG)
            await u.send("/done")
        elif name == "URGENCY":
            await u.press("Normal")
        elif name == "CONFIRM":
            await u.press("Resolved on the spot")
        elif name == "SPOT_NOTE":
            await u.send("清理了")


async def walk_issue_note(bench: Bench, u: Tg, step: str) -> None:
    grid_a = bench.seeded.base.grid_a
    worker_a = bench.seeded.base.worker_a.id
    if step == "NOTE":
        issue_id = await put_issue(bench.db, grid_a, worker_a, "reported")
        await u.press_data(f"issn:reject:{issue_id}:{STATUS_CODE['reported']}", u.bot_messages()[-1])
        return
    issue_id = await put_issue(bench.db, grid_a, worker_a, "assigned", assignee_id=bench.member.id)
    await u.press_data(f"issn:resolve:{issue_id}:{STATUS_CODE['assigned']}", u.bot_messages()[-1])
    await u.send("修好了")


async def walk_join(bench: Bench, u: Tg, step: str) -> None:
    async with bench.db.session() as s:
        invitation, _grids = await create_invitation(s, Role.WORKER, ["G01"], bench.seeded.base.supervisor_a.id, 7)
    await u.send(f"/start {invitation.code}")
    if step == "PHONE":
        await u.send("新同事")


WALKERS = {"visit": walk_visit_any, "patrol": walk_patrol_any, "shop_add": walk_shop_add, "report": walk_report, "issue_note": walk_issue_note,
           "join": walk_join}


def changed_texts(api, chat_id: int, seq: int) -> list[str]:  # noqa: ANN001
    """Texts of the bot's messages in the chat sent or edited since `seq`."""
    return [m.get("text") or m.get("caption") or "" for m in api.bot_messages(TOKEN, chat_id) if m["seq"] > seq]


def accepts(flow: str, step: str, kind: str) -> bool:
    s = FLOW_BY_NAME[flow].steps[step]
    return {"text": s.on_text, "photo": s.on_photo, "location": s.on_location, "skip": s.on_skip, "done": s.on_done}.get(kind) is not None


async def send_kind(bench: Bench, u: Tg, flow: str, step: str, kind: str, value: str, draft: dict) -> None:
    api, uid = bench.api, u.user_id
    if kind in ("text", "forwarded"):
        await u.raw(api.send_text(TOKEN, uid, value, forward=kind == "forwarded", language_code="en"))
    elif kind == "edited":
        mine = [m for m in api.chat_messages(TOKEN, uid) if not m["from_bot"] and "text" in m]
        await u.raw(api.edit_text(TOKEN, uid, mine[-1]["message_id"], value))
    elif kind == "group":
        await u.raw(api.send_text(TOKEN, uid, value, chat_id=GROUP_CHAT, chat_type="supergroup", language_code="en"))
        await u.raw(api.send_text(TOKEN, uid, "/visit", chat_id=GROUP_CHAT, chat_type="supergroup", language_code="en"))
    elif kind == "sticker":
        await u.sticker()
    elif kind == "voice":
        await u.raw(api.send_voice(TOKEN, uid, language_code="en"))
    elif kind == "document":
        await u.raw(api.send_document(TOKEN, uid, value.encode()[:2000], "<b>odd</b>.txt", caption=value[:1024], language_code="en"))
    elif kind == "video":
        video = {"file_id": "BAADfake", "file_unique_id": "AgADfake", "width": 320, "height": 240, "duration": 2}
        await u.raw(api._user_message(TOKEN, uid, {"video": video, "caption": value[:1024]}, language_code="en"))
    elif kind == "photo":
        await u.raw(api.send_photo(TOKEN, uid, JPEG, caption=value[:1024], language_code="en"))
    elif kind == "location":
        await u.location(39.9, 116.4)
    elif kind == "contact":
        await u.raw(api.send_contact(TOKEN, uid, "13900001111", own=False, contact_first_name=value[:64], language_code="en"))
    elif kind in ("skip", "done"):
        await u.send(f"/{kind}")
    elif kind == "unknown_command":
        await u.send("/frobnicate " + value[:200])
    else:
        await u.press_data(forged_data(bench, flow, kind, value, draft), u.bot_messages()[-1])


def forged_data(bench: Bench, flow: str, kind: str, value: str, draft: dict) -> str:
    key = draft["id"][:8]
    if kind == "forged_random":
        return value.encode()[:64].decode(errors="ignore") or "x"
    if kind == "forged_structured":  # the draft's own key with an action or argument no step takes
        arg = "".join(ch for ch in value if ch.isascii() and ch.isprintable() and ch != ":")[:20] or "zz"
        return f"{flow}:{key}:zz{arg}:{arg}"[:64]
    if kind == "forged_other_user":
        return bench.other_button.get(flow) or f"{flow}:0badc0de:save:1"
    if kind == "forged_old_draft":
        return f"{flow}:{'f' * 8}:save:{draft['rev']}"
    return f"{flow}:{key}:{'submit' if flow == 'report' else 'save'}:{draft['rev'] - 1}"  # an older summary of this very draft


CLEAR_ANSWERS = ("earlier form", "no longer active", "expired", "out of date", "not in your grids", "no longer open")


async def check_one(bench: Bench, u: Tg, flow: str, step: str, kind: str, value: str) -> None:
    if kind == "forged_old_summary" and step != "CONFIRM":
        kind = "forged_old_draft"
    if kind in ("photo", "location", "skip", "done") and accepts(flow, step, kind):
        kind = "voice"  # what the step takes is not hostile
    api = bench.api
    bench.errors.clear()
    bench.refused_calls.clear()
    before_draft, before_ledgers = copy.deepcopy(u.draft), await bench.ledgers()
    seq, group_seq, answers = api.chat_seq(TOKEN, u.user_id), api.chat_seq(TOKEN, GROUP_CHAT), len(api.callback_answers)

    await send_kind(bench, u, flow, step, kind, value, before_draft)

    where = (flow, step, kind, value[:80])
    assert bench.errors == [], (where, bench.errors)
    assert bench.refused_calls == [], (where, bench.refused_calls)
    replies = changed_texts(api, u.user_id, seq)
    seen = "\n".join(replies)
    assert "something went wrong" not in seen and "database is busy" not in seen, (where, seen)
    if kind == "group":
        assert api.bot_messages(TOKEN, GROUP_CHAT) == [] and replies == [], (where, replies)
    elif kind.startswith("forged"):
        assert replies == [], (where, replies)  # a forged button gets an answer on the button, no message
        new_answers = [a.get("text") for a in api.callback_answers[answers:]]
        assert len(new_answers) == 1, (where, new_answers)
        if kind != "forged_structured":
            assert any(w in (new_answers[0] or "") for w in CLEAR_ANSWERS), (where, new_answers)
    elif kind == "edited":
        assert replies == ["Editing a sent message changes nothing here. Please send a new message instead."], (where, replies)
    elif kind == "unknown_command":
        assert len(replies) == 1 and replies[0] == "Unknown command. Send /help to see yours.", (where, replies)
    elif kind == "contact" and FLOW_BY_NAME[flow].steps[step].on_contact is not None:
        assert replies == ["Please share your own number with the button, type it, or /skip."], (where, replies)
    elif kind == "text" and accepts(flow, step, "text"):
        await check_text_taken(bench, u, flow, step, value, before_draft, before_ledgers, replies)
        return
    else:
        assert not accepts(flow, step, kind), where  # the walk never sends what the step takes
        expects = FLOW_BY_NAME[flow].steps[step].expects
        assert replies == [f"This step expects: {expects}"], (where, replies)

    assert u.draft == before_draft, (where, u.draft, before_draft)
    assert await bench.ledgers() == before_ledgers, where


async def check_text_taken(bench: Bench, u: Tg, flow: str, step: str, value: str, before_draft: dict, before_ledgers: dict,
                           replies: list[str]) -> None:
    """A step that takes text: a clear refusal that changes nothing, or the value stored cleaned and echoed verbatim."""
    where = (flow, step, value[:80])
    assert replies, where
    draft = u.draft
    assert clean_and_masked(draft), (where, draft)
    if (flow, step) in SEARCH_STEPS:
        query = SEARCH_STEPS[(flow, step)](value)
        if not query:  # nothing left once cleaned: refused, nothing changes
            assert "at least one character" in replies[-1] and draft == before_draft, (where, replies)
            assert await bench.ledgers() == before_ledgers, where
            return
        assert draft["step"] == step and draft["data"]["query"] == query, where
        assert f"«{query}»" in replies[-1], (where, replies)  # echoed escaped: the strict HTML parse gives back exactly the text
        assert {k: v for k, v in draft["data"].items() if k not in ("query", "page")} == \
               {k: v for k, v in before_draft["data"].items() if k not in ("query", "page")}, where
        assert await bench.ledgers() == before_ledgers, where
        return
    if (flow, step) in FIELDS:
        path, expected_of = FIELDS[(flow, step)]
        expected = expected_of(value)
        if expected is not REFUSED and draft is not None and draft["step"] == step and dig(before_draft["data"], path) == expected:
            assert await bench.ledgers() == before_ledgers, where  # the same value sent again: nothing to change
            return
        taken = draft is None or draft["step"] != step or dig(draft["data"], path) != dig(before_draft["data"], path)
        if taken:
            assert expected is not REFUSED, (where, "taken but the validator refuses it")
            if draft is not None:
                assert dig(draft["data"], path) == expected, (where, dig(draft["data"], path), expected)
            if flow == "issue_note" and draft is None:
                async with bench.db.engine.connect() as conn:
                    notes = (await conn.execute(sql("SELECT note FROM issue_event WHERE note IS NOT NULL ORDER BY id DESC"))).scalars().first()
                assert notes == expected, (where, notes, expected)
            else:
                assert await bench.ledgers() == before_ledgers, where
            return
        assert expected is REFUSED, (where, "refused but valid", expected)
        assert len(replies) == 1, (where, replies)
        assert draft == before_draft, where
        assert await bench.ledgers() == before_ledgers, where
        return
    # Text steps that parse (people met, phone): refused with one message and nothing changed, or taken.
    if draft is not None and draft["step"] == step:
        assert len(replies) == 1 and draft == before_draft, (where, replies)
        assert await bench.ledgers() == before_ledgers, where
    elif (flow, step) == ("join", "PHONE"):
        async with bench.db.engine.connect() as conn:
            phone = (await conn.execute(sql("SELECT u.phone FROM app_user u JOIN channel_identity i ON i.user_id = u.id "
                                             "WHERE i.channel = 'telegram' AND i.key = :t"), {"t": str(u.user_id)})).scalar_one()
        assert phone == one_line(value), (where, phone)


async def bench_for(app, api, db) -> Bench:  # noqa: ANN001
    bench = app.__dict__.get("_hostile_bench")
    if bench is None:
        bench = Bench(app, api, db)
        await bench.setup()
        bench.other_button = await other_users_buttons(bench)
        app.__dict__["_hostile_bench"] = bench
    return bench


async def other_users_buttons(bench: Bench) -> dict[str, str]:
    """A live button of another user's open draft, per flow (worker B keeps these drafts open)."""
    out = {}
    b = Tg(bench.app, bench.api, WORKER_B)
    for flow, command in (("visit", "/visit"), ("patrol", "/patrol"), ("report", "/report")):
        await b.send(command)
        out[flow] = buttons(b.keyboard_message())[0][1]
        await b.send("/cancel")
    return out


# -- the properties ---------------------------------------------------------------------------------------------------------

ALL_STEPS = sorted(STEPS)


@settings(PROFILE, max_examples=100)
@given(where=st.sampled_from(ALL_STEPS), inputs=st.lists(st.tuples(st.sampled_from(KINDS), TEXTS), min_size=1, max_size=4))
async def test_hostile_input_at_every_step_of_every_flow(app, api, db, where, inputs):
    """Up to four hostile inputs in a row at one step: each answered and harmless, until one is taken as the answer."""
    bench = await bench_for(app, api, db)
    flow, step = where
    u = await bench.at_step(flow, step)
    for kind, value in inputs:
        await check_one(bench, u, flow, step, kind, value)
        if u.draft is None or u.draft["step"] != step:
            break  # taken: the form moved on


@settings(PROFILE, max_examples=16)
@given(where=st.sampled_from(sorted(SUMMARY_FIELDS)), value=TEXTS)
async def test_hostile_text_edited_into_a_summary_is_shown_verbatim(app, api, db, where, value):
    """Edit a free-text field from the summary: taken text comes back in the new summary exactly as stored."""
    bench = await bench_for(app, api, db)
    flow, step = where
    u = await bench.at_step(flow, "CONFIRM")
    before = copy.deepcopy(u.draft)
    path, expected_of = FIELDS[(flow, step)]
    expected = expected_of(value)
    if SUMMARY_FIELDS[where] is None:  # the patrol note is edited through the checklist: fill it afresh instead
        await u.send("/cancel")
        await walk_patrol(u, "NOTE")
    else:
        await u.press("Edit")
        await u.press(SUMMARY_FIELDS[where])
    assert u.draft["step"] == step, (where, u.draft["step"])
    seq = api.chat_seq(TOKEN, u.user_id)
    await u.send(value)
    assert bench.errors == [] and bench.refused_calls == [], (where, bench.errors, bench.refused_calls)
    if expected is REFUSED:
        assert u.draft["step"] == step, where
        return
    if step == "WHERE" and u.draft["step"] == "WHERE":
        await u.send("/done")  # an address without a location waits for /done
    if SUMMARY_FIELDS[where] is None:
        await u.press("Escalate")
        await u.send("/skip")
        await u.send("/done")
    assert u.draft["step"] == "CONFIRM", (where, u.draft["step"])
    stored = dig(u.draft["data"], path)
    assert stored == expected, (where, stored, expected)
    summary = changed_texts(api, u.user_id, seq)[-1]
    if stored:
        for line in stored.split("\n"):
            assert line.strip() in summary, (where, line, summary)


IDLE_KINDS = ["text", "forwarded", "edited", "group", "sticker", "voice", "document", "video", "photo", "location", "contact", "skip", "done",
              "unknown_command", "forged_random", "import_file"]


@settings(PROFILE, max_examples=40)
@given(kind=st.sampled_from(IDLE_KINDS), value=TEXTS)
async def test_hostile_input_with_no_form_open(app, api, db, kind, value):
    """Outside any form: one clear answer, nothing written. An admin's /import gets a hostile CSV: refused, every value
    it quotes escaped, and the problem list short enough for one message."""
    bench = await bench_for(app, api, db)
    bench.next_guest += 1
    uid = bench.next_guest
    async with db.session() as s:
        await create_user(s, uid, Role.ADMIN, [], f"测试{uid}", "en")
    u = Tg(app, api, uid)
    await u.send("/help")
    if kind == "import_file":
        await u.send("/import households")
    before_ledgers = await bench.ledgers()
    bench.errors.clear()
    bench.refused_calls.clear()
    seq, answers = api.chat_seq(TOKEN, uid), len(api.callback_answers)
    if kind == "import_file":
        rows = ["网格,地址,户主,电话", f"\"{value[:3000].replace(chr(34), chr(34) * 2)}\",\"{value[:200].replace(chr(34), '')}\",x,y"] * 1
        await u.raw(api.send_document(TOKEN, uid, "\n".join(rows).encode(), "<b>odd</b>.csv", language_code="en"))
    else:
        await send_kind(bench, u, "visit", "IDLE", kind, value, {"id": "0" * 32, "rev": 1})
    where = (kind, value[:80])
    assert bench.errors == [] and bench.refused_calls == [], (where, bench.errors, bench.refused_calls)
    replies = changed_texts(api, uid, seq)
    if kind == "group":
        assert replies == [] and api.bot_messages(TOKEN, GROUP_CHAT) == [], where
    elif kind == "forged_random":
        assert replies == [] and len(api.callback_answers) == answers + 1, where
    elif kind == "edited":
        assert replies == ["Editing a sent message changes nothing here. Please send a new message instead."], (where, replies)
    elif kind == "import_file":
        assert len(replies) == 1 and replies[0].startswith("❌ Import refused"), (where, replies)
    elif kind in ("unknown_command", "skip", "done"):
        assert replies == ["Unknown command. Send /help to see yours."], (where, replies)
    else:
        assert replies == ["I am not waiting for anything right now. Send /help to see what you can do."], (where, replies)
    assert await bench.ledgers() == before_ledgers, where


def all_commands(app) -> list[str]:  # noqa: ANN001
    from handlers import commands

    return sorted((commands() | {"cancel"}) - {"start"})  # /start CODE is the registration flow, walked above


ARGS = st.one_of(TEXTS, st.lists(st.sampled_from(["G01", "G02", "2026H1", "2026-05", "王芳", "#1", "worker", "half", "20", "visits", "\u0000",
                                                  "<b>", "2605-0001", "--", "x\u0000y"]), min_size=1, max_size=4).map(" ".join))


@settings(PROFILE, max_examples=60)
@given(data=st.data(), role=st.sampled_from([Role.ADMIN, Role.SUPERVISOR, Role.WORKER]), args=ARGS)
async def test_hostile_command_arguments(app, api, db, data, role, args):
    """Every command with hostile arguments (control characters, markup, 4,096 characters): one clear answer, no error,
    no refused Bot API call (so whatever it quotes back is escaped)."""
    bench = await bench_for(app, api, db)
    command = data.draw(st.sampled_from(all_commands(app)), label="command")
    bench.next_guest += 1
    uid = bench.next_guest
    async with db.session() as s:
        await create_user(s, uid, role, [] if role == Role.ADMIN else [bench.seeded.base.grid_a], f"测试{uid}", "en")
    u = Tg(app, api, uid)
    await u.send("/help")
    bench.errors.clear()
    bench.refused_calls.clear()
    seq = api.chat_seq(TOKEN, uid)
    text = f"/{command} {args}"[:4096]
    await u.send(text)
    where = (role, text[:120])
    assert bench.errors == [] and bench.refused_calls == [], (where, bench.errors, bench.refused_calls)
    replies = changed_texts(api, uid, seq)
    assert replies and not any("something went wrong" in r or "database is busy" in r for r in replies), (where, replies)
    if u.draft is not None:
        await u.send("/cancel")


@settings(PROFILE, max_examples=10)
@given(name=TEXTS.map(lambda t: one_line(t)[:32]).filter(bool), address=TEXTS.map(lambda t: one_line(t)[:200]).filter(lambda t: len(t) >= 2))
async def test_hostile_names_and_addresses_are_escaped_in_every_view(app, api, db, name, address):
    """A registered name and a household address full of markup come back verbatim (so escaped) in the lists,
    cards, reminders and digests that show them."""
    from jobs.reminders import run_job
    from models.tables import Household
    from tests.test_reminders import drain_all

    bench = await bench_for(app, api, db)
    bench.next_guest += 2
    worker_id, sup_id = bench.next_guest - 1, bench.next_guest
    address = f"{address[:190]} {sup_id}"  # unique in the grid
    ga = bench.seeded.base.grid_a
    async with db.session() as s:
        worker = await create_user(s, worker_id, Role.WORKER, [ga], name, "en")
        await create_user(s, sup_id, Role.SUPERVISOR, [ga], f"组长{sup_id}", "en")
        household = Household(grid_id=ga, address=address, tags=["独居老人"])
        s.add(household)
        await s.flush()
        household_id = household.id
    issue_id = await put_issue(db, ga, worker.id, "assigned", assignee_id=worker.id)
    w, sup = Tg(app, api, worker_id), Tg(app, api, sup_id)
    await w.send("/help")
    await sup.send("/help")
    bench.errors.clear()
    bench.refused_calls.clear()
    async with db.engine.connect() as conn:
        human_id = (await conn.execute(sql("SELECT human_id FROM issue WHERE id = :i"), {"i": issue_id})).scalar_one()
    seen_sup = "\n".join([texts_of(await sup.send(cmd)) for cmd in ("/users", "/workers", f"/issue {human_id}", "/tasks")])
    seen_w = "\n".join([texts_of(await w.send(cmd)) for cmd in ("/due", f"/issue {human_id}", "/tasks", "/start")])
    assert bench.errors == [] and bench.refused_calls == [], (name, address, bench.errors, bench.refused_calls)
    assert seen_sup.count(name) >= 4, (name, seen_sup)  # /users, /workers, the card (reporter) and the task list
    assert address in seen_w and name in seen_w, (name, address)
    from models import clock
    from tests.test_reminders import local

    clock.freeze(local(2026, 5, 18, 9, 7))
    try:
        await run_job(app, "visit_pace")
        await drain_all(app)
    finally:
        clock.freeze(NOW)
        async with db.engine.begin() as conn:  # the next example runs its jobs afresh, its household the only new one
            await conn.execute(sql("DELETE FROM job_run"))
            await conn.execute(sql("UPDATE household SET active = false WHERE id = :i"), {"i": household_id})
    assert bench.errors == [] and bench.refused_calls == [], (name, address, bench.errors, bench.refused_calls)
    assert address in w.last, (address, w.last)


def texts_of(messages: list[dict]) -> str:
    return "\n".join(m.get("text") or m.get("caption") or "" for m in messages)
