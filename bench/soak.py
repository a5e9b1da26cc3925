"""Soak: `gridbot run` as a real process, many simulated workers, random Bot API faults, SIGKILLs.

    .venv/bin/python -m bench.soak [--workers 50] [--minutes 30] [--kills 2] [--seed N] [--db sqlite|postgresql]

A local Bot API server (bot/localapi.py) runs in a thread of this process; `gridbot run` long-polls
it as a subprocess. Each simulated worker (an asyncio task) logs home visits over and over: /visit,
search and pick a household (or add one), people met (sometimes a wrong input first), situations,
notes, sometimes a photo or a sticker, location or /skip, then Save — and now and then /cancel, an
edit from the summary, a double tap on Save or /my. A worker reacts to what the bot last asked, so
after a fault or a restart it carries on where the bot resumes it; when nothing comes for
`--reply-timeout` seconds it does what a person would: /visit again, then ▶️ Continue (🗑 Discard
after three such retries in a row without progress).

Faults: each call of the faulted methods misbehaves with probability `--fault-rate`: 429 with
retry_after, 500/502, a dropped connection (not carried out), a delayed answer, or a lost answer
(carried out, the connection then dropped: the bot thinks it failed). The bot process is SIGKILLed
`--kills` times at random moments and started again at once (an unexpected exit is restarted too,
and counted).

At the end faults stop, the bot drains (pending updates, outbox rows), and the visits in the
database are compared with what the workers saw:
  confirmed  visit ids the workers were shown ("Saved as visit #N" / "Visit #N saved"), at any time
  stored     visit rows written by the workers' drafts
  lost       stored rows never confirmed + confirmed ids with no row
  duplicated rows beyond the first for one draft id, plus rows of a draft the worker never pressed
             Save on (what a stale or twice-processed update would write)
Exit status 0 only if the two sets are equal, nothing is duplicated and no confirmation reached
another worker's chat. Latencies are wall-clock on a shared machine: read them as a rough guide.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import copy
import itertools
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlmodel import select

from bench.common import WORK, ScratchDB
from bot.db import Database
from models.tables import ChannelIdentity, Household, Role, Visit
from models.users import create_grid, create_user
from sandbox.localapi import _CANONICAL, DroppedConnection, LocalBotAPI, _Fault, buttons, run_in_thread

TOKEN = "515151:SOAK"
WORKER_TG = 30_000_000
GRIDBOT = str(Path(sys.executable).parent / "gridbot")
FAULTED = ("sendMessage", "getUpdates", "editMessageText", "editMessageReplyMarkup", "answerCallbackQuery", "getFile")
CONFIRM_RE = re.compile(r"Saved as visit #(\d+)|Visit #(\d+) saved")
KEY_RE = re.compile(r"^visit:([0-9a-f]{8}):")
PHOTO = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + b"soak-photo" * 40

# -- the local Bot API, with random faults ------------------------------------------------------

_PLANNED: contextvars.ContextVar[_Fault | None] = contextvars.ContextVar("soak_fault", default=None)


class FaultyAPI(LocalBotAPI):
    """LocalBotAPI whose faulted methods misbehave at random, at `rate` per call, while `on`."""

    def __init__(self, rate: float, seed: int) -> None:
        super().__init__(bot_username="gridbot_soak_bot")
        self.rate, self.on = rate, False
        self.rng = random.Random(seed)  # only the server thread draws
        self.faults: Counter[tuple[str, str]] = Counter()
        self.delivered: Counter[int] = Counter()  # update_id -> getUpdates answers that carried it
        self.faulted = {m.lower() for m in FAULTED}
        self.flood_wait = 0  # seconds of retry_after handed out

    def _draw(self, name: str) -> tuple[str, _Fault | None] | None:
        if not self.on or name.lower() not in self.faulted or self.rng.random() >= self.rate:
            return None
        r, getupdates = self.rng.random(), name == "getUpdates"
        if r < 0.15:  # PTB's AIORateLimiter holds back every request for retry_after: keep them short
            ra = self.rng.choice((1, 1, 2))
            self.flood_wait += ra
            return "429", _Fault(name.lower(), 429, 1, ra, None, 0, False)
        if r < 0.45:
            return "5xx", _Fault(name.lower(), self.rng.choice((500, 502)), 1, None, None, 0, False)
        if r < 0.70:
            return "drop", _Fault(name.lower(), None, 1, None, None, 0, True)
        if r < 0.90 or getupdates:
            return "delay", _Fault(name.lower(), None, 1, None, None, self.rng.randint(200, 3000), False)
        return "lost", None  # carried out, then the connection drops before the answer

    async def handle(self, token, method, params=None, files=None):  # noqa: ANN001, ANN201
        name = _CANONICAL.get(method.lower(), method)
        plan = self._draw(name)
        if plan is not None:
            self.faults[(name, plan[0])] += 1
        if plan is not None and plan[0] == "lost":
            status, body = await super().handle(token, method, params, files)
            if status == 200:
                raise DroppedConnection(name)
            return status, body
        reset = _PLANNED.set(plan[1] if plan else None)
        try:
            status, body = await super().handle(token, method, params, files)
        finally:
            _PLANNED.reset(reset)
        if name == "getUpdates" and status == 200:
            for u in body.get("result") or []:
                self.delivered[u["update_id"]] += 1
        return status, body

    def _take_fault(self, method: str) -> _Fault | None:
        return super()._take_fault(method) or _PLANNED.get()

    def fresh(self, user_id: int, after_seq: int, window: int = 40) -> list[dict]:
        """The bot's messages in a private chat new or edited after `after_seq`, oldest change first."""
        with self._lock:
            chat = self._bot(TOKEN).chats.get(user_id)
            if chat is None or chat.seq <= after_seq:
                return []
            out = [dict(copy.deepcopy(r.message), seq=r.seq) for r in itertools.islice(reversed(chat.records.values()), window)
                   if r.from_bot and not r.deleted and r.seq > after_seq]
        return sorted(out, key=lambda m: m["seq"])


# -- seeding --------------------------------------------------------------------------------------


@dataclass
class Street:
    workers: list[int]  # telegram ids
    addresses: dict[int, list[str]]  # telegram id -> addresses of their grid


async def seed(url: str, workers: int, per_grid: int = 10, households: int = 40) -> Street:
    db = Database(url)
    street = Street([], {})
    try:
        async with db.session() as s:
            for g in range((workers + per_grid - 1) // per_grid):
                grid = await create_grid(s, f"S{g + 1:02d}", f"浸泡测试第{g + 1}网格", 0.2)
                addresses = [f"{1 + i // 8}栋{1 + (i // 4) % 2}单元{101 + i % 4}" for i in range(households)]
                s.add_all([Household(grid_id=grid.id, address=a) for a in addresses])
                for w in range(g * per_grid, min(workers, (g + 1) * per_grid)):
                    tg = WORKER_TG + w
                    await create_user(s, tg, Role.WORKER, [grid.id], f"网格员{w + 1}", "en")
                    street.workers.append(tg)
                    street.addresses[tg] = addresses
    finally:
        await db.dispose()
    return street


# -- the bot process ------------------------------------------------------------------------------


class BotProcess:
    def __init__(self, api: FaultyAPI, base_url: str, file_url: str, db_url: str, workdir: Path) -> None:
        self.api, self.workdir = api, workdir
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_", "ADMIN_"))},
            "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": base_url, "TELEGRAM_FILE_BASE_URL": file_url,
            "DATABASE_URL": db_url, "ADMIN_TELEGRAM_IDS": "", "MEDIA_DIR": str(workdir / "media"), "LOG_LEVEL": "INFO",
        }
        self.proc: subprocess.Popen | None = None
        self.starts, self.kills, self.unexpected_exits = 0, 0, 0
        self.logs: list[Path] = []
        self.busy = False  # a deliberate kill and restart is under way

    async def start(self) -> None:
        self.busy = True
        self.starts += 1
        log = self.workdir / f"bot-{self.starts}.log"
        self.logs.append(log)
        polls = self.api.call_counts(TOKEN).get("getUpdates", 0)
        with log.open("w") as fh:
            self.proc = subprocess.Popen([GRIDBOT, "run"], cwd=self.workdir, env=self.env, stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while self.api.call_counts(TOKEN).get("getUpdates", 0) <= polls:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gridbot did not start polling; see {log}")
            await asyncio.sleep(0.1)
        self.busy = False

    async def sigkill(self) -> None:
        assert self.proc is not None
        self.busy = True
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait, 10)
        self.kills += 1

    async def supervise(self, stop: asyncio.Event) -> None:
        """Restart the bot if it exits on its own (as systemd's Restart=on-failure would)."""
        while not stop.is_set():
            await asyncio.sleep(1)
            if self.proc is not None and self.proc.poll() is not None and not stop.is_set() and not self.busy:
                self.unexpected_exits += 1
                print(f"soak: gridbot exited by itself (code {self.proc.returncode}); restarting", file=sys.stderr)
                await asyncio.sleep(2)
                await self.start()

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.proc.wait, 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait, 10)


# -- a simulated worker -----------------------------------------------------------------------------


@dataclass
class WorkerStats:
    visits_started: int = 0  # distinct drafts seen
    save_presses: int = 0
    confirmed_live: int = 0
    cancelled: int = 0
    discarded: int = 0
    recoveries: int = 0
    wrong_inputs: int = 0
    photos: int = 0
    apologies: int = 0
    crashes: int = 0
    unknown: Counter = field(default_factory=Counter)


class Worker:
    def __init__(self, n: int, tg: int, addresses: list[str], api: FaultyAPI, args: argparse.Namespace) -> None:
        self.n, self.tg, self.addresses, self.api, self.args = n, tg, addresses, api, args
        self.rng = random.Random(args.seed * 100_003 + n)
        self.mark = 0  # chat seq after our last action: the bot's answers come after it
        self.stats = WorkerStats()
        self.key: str | None = None  # current draft key (first 8 hex of the draft id, from its buttons)
        self.markers: dict[str, str] = {}  # draft key -> marker typed into its notes
        self.saved_keys: set[str] = set()  # drafts we pressed Save on
        self.confirmed: set[int] = set()
        self.photos_wanted = 0
        self.stuck = 0  # recoveries in a row without progress
        self.acted_at: float | None = None
        self.latencies: list[float] = []  # seconds from an action to the bot's first answer

    # actions ---------------------------------------------------------------------------------

    def _act(self, fn, *a) -> None:  # noqa: ANN001
        self._note_confirmations(self.api.fresh(self.tg, self.mark))  # whatever came while we were thinking
        update = fn(TOKEN, self.tg, *a, language_code="en", first_name=f"W{self.n}")
        self.mark = max(self.mark, self.api.update_seq(TOKEN, update))
        self.acted_at = time.monotonic()

    def say(self, text_: str) -> None:
        self._act(self.api.send_text, text_)

    def press(self, message: dict, data: str | None) -> None:
        if not data:
            raise LookupError("no such button on the bot's message")
        self._act(self.api.press_button, message["message_id"], data)

    async def think(self) -> None:
        await asyncio.sleep(self.rng.uniform(self.args.think_min, self.args.think_max))

    # reading ---------------------------------------------------------------------------------

    def _note_confirmations(self, messages: list[dict]) -> None:
        for m in messages:
            for a, b in CONFIRM_RE.findall(m.get("text") or ""):
                vid = int(a or b)
                if vid not in self.confirmed:
                    self.confirmed.add(vid)
                    self.stats.confirmed_live += 1

    async def next_prompt(self, stop: asyncio.Event) -> tuple[str, dict] | None:
        """Wait for the bot's newest actionable message since our last action (None: timed out)."""
        deadline = time.monotonic() + self.args.reply_timeout
        while time.monotonic() < deadline and not stop.is_set():
            new = self.api.fresh(self.tg, self.mark)
            if new:
                await asyncio.sleep(0.3)  # an edit and the next question often come together
                new = self.api.fresh(self.tg, self.mark)
                self._note_confirmations(new)
                self.mark = max(m["seq"] for m in new)
                if self.acted_at is not None:
                    self.latencies.append(time.monotonic() - self.acted_at - 0.3)
                    self.acted_at = None
                for m in reversed(new):
                    kind = classify(m)
                    if kind == "saved" and self.key not in self.saved_keys:
                        continue  # a late confirmation (outbox) of an earlier draft: noted, nothing to do
                    if kind is not None:
                        return kind, m
                    self.stats.unknown[re.sub(r"\d+", "N", (m.get("text") or "?").splitlines()[0])[:60]] += 1
                continue
            await asyncio.sleep(0.15)
        return None

    # the loop --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.sleep(self.rng.uniform(0, 3))
        self.say("/visit")
        while not stop.is_set():
            got = await self.next_prompt(stop)
            if stop.is_set():
                return
            if got is None:
                await self.recover()
                continue
            kind, m = got
            await self.think()
            if stop.is_set():
                return
            try:
                await self.react(kind, m)
            except (ValueError, LookupError):  # the message or button went away meanwhile
                await self.recover()
            except Exception as exc:  # noqa: BLE001 - a bug of the soak itself: say so, carry on
                self.stats.crashes += 1
                print(f"soak: worker {self.n} failed on {kind!r}: {exc!r}", file=sys.stderr)
                await self.recover()

    async def recover(self) -> None:
        self.stats.recoveries += 1
        self.stuck += 1
        self.say("/visit")

    def _draft_key(self, m: dict) -> str | None:
        for _label, data in buttons(m):
            k = KEY_RE.match(data)
            if k:
                return k.group(1)
        return None

    def _enter_draft(self, m: dict) -> None:
        key = self._draft_key(m)
        if key and key != self.key:
            self.key = key
            if key not in self.markers:
                self.stats.visits_started += 1
                self.markers[key] = f"w{self.n}v{self.stats.visits_started}"

    def _button(self, m: dict, action: str) -> str | None:
        for _label, data in buttons(m):
            parts = data.split(":")
            if len(parts) >= 3 and parts[2] == action:
                return data
        return None

    async def react(self, kind: str, m: dict) -> None:  # noqa: C901, PLR0912, PLR0915 - one branch per question
        rng = self.rng
        if kind not in ("resume", "apology"):
            self.stuck = 0
        if kind in ("step1", "matches", "tags", "situation", "summary", "fields", "grid"):
            self._enter_draft(m)
        if kind in ("people", "notes", "photos", "location") and rng.random() < self.args.p_cancel / 4:
            self.stats.cancelled += 1
            self.say("/cancel")
            return
        if kind in ("saved", "cancelled", "closed", "timeout", "my"):
            if kind == "saved" and rng.random() < 0.05:
                self.say("/my")
            else:
                self.say("/visit")
        elif kind == "step1":
            if rng.random() < 0.1:
                self.press(m, self._button(m, "new") or "")
            else:
                address = rng.choice(self.addresses)
                self.say(address if rng.random() < 0.5 else address.split("单元")[0] + "单元")
        elif kind == "matches":
            picks = [d for _l, d in buttons(m) if ":pick:" in d]
            if picks:
                self.press(m, rng.choice(picks))
            else:
                self.say(rng.choice(self.addresses))
        elif kind == "new_address":
            self.say(f"{rng.randint(10, 30)}栋{rng.randint(1, 3)}单元{rng.randint(1, 6)}0{rng.randint(1, 4)}")
        elif kind == "grid":
            grid = self._button(m, "grid")
            self.press(m, grid or "")
        elif kind in ("tags", "situation"):
            chosen = [label for label, _d in buttons(m) if label.startswith("✅")]
            toggles = [d for label, d in buttons(m) if label.startswith("⬜")]
            if kind == "tags" and (chosen or rng.random() < 0.7) or kind == "situation" and chosen:
                self.press(m, self._button(m, "done") or "")
            else:
                self.press(m, toggles[0] if kind == "situation" and rng.random() < 0.6 else rng.choice(toggles))
        elif kind == "people":
            if rng.random() < self.args.p_wrong:
                self.stats.wrong_inputs += 1
                self.say(rng.choice(("abc", "很多人", "99")))
            else:
                self.say(str(rng.randint(0, 5)))
        elif kind == "notes":
            marker = self.markers.get(self.key or "", f"w{self.n}v?")
            self.say(f"soak {marker} 走访情况正常")
            self.photos_wanted = rng.choice((0, 0, 0, 1, 2)) if rng.random() < 0.9 else 0
        elif kind == "photos":
            if rng.random() < self.args.p_wrong / 2:
                self.stats.wrong_inputs += 1
                self._act(self.api.send_sticker)
            elif self.photos_wanted > 0:
                self.photos_wanted -= 1
                self.stats.photos += 1
                self._act(self.api.send_photo, PHOTO + f"{self.n}:{self.stats.photos}".encode())
            else:
                self.say("/done")
        elif kind == "location":
            if rng.random() < self.args.p_wrong / 2:
                self.stats.wrong_inputs += 1
                self.say("就在小区门口")
            elif rng.random() < 0.5:
                self._act(self.api.send_location, 28.1 + rng.random() / 10, 112.9 + rng.random() / 10)
            else:
                self.say("/skip")
        elif kind == "summary":
            r = rng.random()
            if r < self.args.p_cancel:
                self.stats.cancelled += 1
                self.press(m, self._button(m, "cancel") or "")
            elif r < self.args.p_cancel + 0.05:
                self.press(m, self._button(m, "edit") or "")
            else:
                save = self._button(m, "save") or ""
                self.stats.save_presses += 1
                if self.key:
                    self.saved_keys.add(self.key)
                self.press(m, save)
                if rng.random() < 0.05:  # a double tap
                    await asyncio.sleep(rng.uniform(0.05, 0.4))
                    self.stats.save_presses += 1
                    self.press(m, save)
        elif kind == "fields":
            fld = next((d for label, d in buttons(m) if ":field:PEOPLE" in d), None)
            self.press(m, fld or self._button(m, "back") or "")
        elif kind == "resume":
            key = self._draft_key(m)
            if key:
                self._enter_draft(m)
            if self.stuck >= 3:
                self.stats.discarded += 1
                self.press(m, self._button(m, "discard") or "")
            else:
                self.press(m, self._button(m, "resume") or "")
        elif kind == "apology":
            self.stats.apologies += 1
            await self.recover()
        elif kind == "expects":  # a step that takes typed input can be answered from the hint alone
            t = m.get("text") or ""
            for hint, step in (("photos, then /done", "photos"), ("a location", "location"),
                               ("number of people met", "people"), ("notes as text", "notes")):
                if hint in t:
                    self.photos_wanted = 0
                    return await self.react(step, m)
            await self.recover()


def classify(m: dict) -> str | None:  # noqa: PLR0911, C901 - one line per bot message the worker knows
    t = m.get("text") or m.get("caption") or ""
    datas = [d for _l, d in buttons(m)]
    if CONFIRM_RE.search(t):
        return "saved"
    if "Cancelled" in t or "draft was discarded" in t:
        return "cancelled"
    if "Step 7/7" in t:
        if any(":save:" in d for d in datas):
            return "summary"
        if any(":field:" in d for d in datas):
            return "fields"
        return None
    if "You have an unfinished" in t:
        return "resume"
    for needle, kind in (("Step 1/7", "step1"), ("Matches for", "matches"), ("No household of your grids matches", "matches"),
                         ("new household's address", "new_address"), ("Which grid is this household in", "grid"),
                         ("Tags for this household", "tags"), ("Step 2/7", "people"), ("Please send a number", "people"),
                         ("number of people met must be", "people"), ("Step 3/7", "situation"), ("Step 4/7", "notes"),
                         ("Step 5/7", "photos"), ("Photo ", "photos"), ("could not fetch that photo", "photos"),
                         ("already 10 photos", "photos"), ("Step 6/7", "location"), ("That form is no longer open", "closed"),
                         ("No reply for", "timeout"), ("Your visits", "my"), ("Sorry, something went wrong", "apology"),
                         ("database is busy", "apology"), ("This step expects", "expects")):
        if needle in t:
            if kind in ("tags", "situation", "matches", "grid") and not datas:
                return None  # the question after it was answered (its buttons are gone)
            if kind == "photos" and needle == "Photo " and "received" not in t:
                continue
            return kind
    return None


# -- the run ----------------------------------------------------------------------------------------


async def drain(api: FaultyAPI, db_url: str, workers: list[Worker], max_s: float, quiet_s: float) -> float:
    """Wait until no update is pending, no outbox row is due, and the chats have been quiet for `quiet_s`."""
    db = Database(db_url)
    t0 = time.monotonic()
    last_seq, quiet_since = None, time.monotonic()
    try:
        while time.monotonic() - t0 < max_s:
            seqs = tuple(api.chat_seq(TOKEN, w.tg) for w in workers)
            if seqs != last_seq:
                last_seq, quiet_since = seqs, time.monotonic()
            async with db.session() as s:
                open_rows = (await s.exec(text("SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending', 'failed')"))).scalar_one()
            if not api.pending_updates(TOKEN) and not open_rows and time.monotonic() - quiet_since >= quiet_s:
                break
            await asyncio.sleep(1)
    finally:
        await db.dispose()
    return time.monotonic() - t0


@dataclass
class Tally:
    confirmed: set[int]
    stored: dict[int, tuple[int, str, str | None]]  # visit id -> (worker tg, draft id, notes)
    lost_unconfirmed: list[int]
    lost_no_row: list[int]
    dup_same_draft: int
    dup_unpressed: list[int]
    misrouted: list[int]
    outbox: dict[str, int]
    per_worker: dict[int, tuple[int, int]]  # telegram id -> (stored, confirmed) where they differ


async def tally(db_url: str, workers: list[Worker], api: FaultyAPI) -> Tally:
    db = Database(db_url)
    try:
        async with db.session() as s:
            rows = [(i, d, n, int(k)) for i, d, n, k in (await s.exec(
                select(Visit.id, Visit.draft_id, Visit.notes, ChannelIdentity.key)
                .join(ChannelIdentity, (ChannelIdentity.user_id == Visit.worker_id) & (ChannelIdentity.channel == "telegram")))).all()]
            outbox = {state: n for state, n in (await s.exec(text("SELECT state, count(*) FROM outbox GROUP BY state"))).all()}
    finally:
        await db.dispose()
    by_tg = {w.tg: w for w in workers}
    confirmed_where: dict[int, int] = {}
    for w in workers:  # everything shown in the chat, late outbox deliveries included
        for m in api.bot_messages(TOKEN, w.tg):
            for a, b in CONFIRM_RE.findall(m.get("text") or ""):
                confirmed_where[int(a or b)] = w.tg
        for vid in w.confirmed:
            confirmed_where.setdefault(vid, w.tg)
    stored = {vid: (tg, draft, notes) for vid, draft, notes, tg in rows}
    per_draft = Counter(draft for _tg, draft, _n in stored.values())
    unpressed = [vid for vid, (tg, draft, _n) in stored.items() if tg not in by_tg or draft[:8] not in by_tg[tg].saved_keys]
    return Tally(
        confirmed=set(confirmed_where),
        stored=stored,
        lost_unconfirmed=sorted(set(stored) - set(confirmed_where)),
        lost_no_row=sorted(set(confirmed_where) - set(stored)),
        dup_same_draft=sum(n - 1 for n in per_draft.values() if n > 1),
        dup_unpressed=sorted(unpressed),
        misrouted=sorted(vid for vid, tg in confirmed_where.items() if vid in stored and stored[vid][0] != tg),
        outbox=outbox,
        per_worker={w.tg: (s, c) for w in workers
                    if (s := sum(1 for tg, _d, _n in stored.values() if tg == w.tg)) != (c := sum(1 for tg in confirmed_where.values() if tg == w.tg))},
    )


def log_findings(logs: list[Path]) -> Counter:
    """ERROR/exception lines of the bot's logs, grouped by their message (numbers dropped)."""
    found: Counter = Counter()
    for path in logs:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if " ERROR " in line or "Traceback" in line or line.startswith(("telegram.error", "sqlalchemy.exc")):
                found[re.sub(r"\d+", "N", line.split(" - ", 1)[-1])[:140]] += 1
    return found


async def soak(args: argparse.Namespace) -> int:  # noqa: PLR0915
    api = FaultyAPI(args.fault_rate, args.seed)
    server, stop_server = run_in_thread(api)
    scratch = await ScratchDB(args.db, "soak").create()
    workdir = WORK / scratch.name
    workdir.mkdir(parents=True, exist_ok=True)
    bot = BotProcess(api, server.base_url, server.file_base_url, scratch.url, workdir)
    rng = random.Random(args.seed)
    stop_workers, stop_all = asyncio.Event(), asyncio.Event()
    code = 1
    try:
        street = await seed(scratch.url, args.workers)
        await bot.start()
        workers = [Worker(i + 1, tg, street.addresses[tg], api, args) for i, tg in enumerate(street.workers)]
        api.on = args.fault_rate > 0
        duration = args.minutes * 60
        kill_at = sorted(rng.uniform(0.1, 0.85) * duration for _ in range(args.kills))
        t0 = time.monotonic()
        tasks = [asyncio.create_task(w.run(stop_workers)) for w in workers]
        supervisor = asyncio.create_task(bot.supervise(stop_all))

        async def killer() -> None:
            for at in kill_at:
                await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
                await bot.sigkill()
                print(f"soak: t={time.monotonic() - t0:.0f}s SIGKILL #{bot.kills}; restarting", file=sys.stderr)
                await asyncio.sleep(rng.uniform(0, 3))
                await bot.start()

        kill_task = asyncio.create_task(killer())
        next_report = t0 + 60
        while time.monotonic() - t0 < duration:
            await asyncio.sleep(1)
            if time.monotonic() >= next_report:
                next_report += 60
                print(f"soak: t={time.monotonic() - t0:.0f}s confirmed={sum(w.stats.confirmed_live for w in workers)} "
                      f"faults={sum(api.faults.values())} kills={bot.kills}", file=sys.stderr)
        stop_workers.set()
        await asyncio.gather(*tasks)
        await kill_task
        api.on = False
        drained = await drain(api, scratch.url, workers, args.drain_max, args.quiet)
        stop_all.set()
        await supervisor
        await bot.stop()
        t = await tally(scratch.url, workers, api)

        faults = sum(api.faults.values())
        lost = len(t.lost_unconfirmed) + len(t.lost_no_row)
        duplicated = t.dup_same_draft + len(t.dup_unpressed)
        print(f"soak: workers={args.workers} minutes={args.minutes:g} kills={bot.kills} faults={faults} "
              f"confirmed={len(t.confirmed)} stored={len(t.stored)} duplicated={duplicated} lost={lost}")
        st = [w.stats for w in workers]
        by_kind = Counter()
        for (_m, kind), n in api.faults.items():
            by_kind[kind] += n
        by_method = Counter()
        for (m, _k), n in api.faults.items():
            by_method[m] += n
        print(f"  db={args.db} seed={args.seed} fault-rate={args.fault_rate} drain={drained:.0f}s "
              f"bot starts={bot.starts} unexpected exits={bot.unexpected_exits}")
        print(f"  faults by kind: {dict(by_kind)} (429s asked for {api.flood_wait}s of waiting in all); by method: {dict(by_method)}")
        print(f"  workers: drafts={sum(s.visits_started for s in st)} save presses={sum(s.save_presses for s in st)} "
              f"confirmed live={sum(s.confirmed_live for s in st)} cancelled={sum(s.cancelled for s in st)} "
              f"discarded={sum(s.discarded for s in st)} recoveries={sum(s.recoveries for s in st)} "
              f"apologies seen={sum(s.apologies for s in st)} wrong inputs={sum(s.wrong_inputs for s in st)} "
              f"photos={sum(s.photos for s in st)} soak bugs={sum(s.crashes for s in st)}")
        unknown = sum((s.unknown for s in st), Counter())
        if unknown:
            print(f"  bot messages the workers did not act on: {dict(unknown.most_common(6))}")
        lat = sorted(x for w in workers for x in w.latencies)
        if lat:
            print(f"  first answer after an action: p50 {lat[len(lat) // 2]:.2f}s p95 {lat[int(len(lat) * 0.95)]:.2f}s "
                  f"max {lat[-1]:.1f}s over {len(lat)} actions")
        redelivered = sum(1 for n in api.delivered.values() if n > 1)
        print(f"  updates: {len(api.delivered)} delivered, {redelivered} delivered more than once; outbox states {t.outbox}")
        print(f"  per worker: {len(workers) - len(t.per_worker)} of {len(workers)} with stored = confirmed"
              + (f"; differing (stored, confirmed): {dict(list(t.per_worker.items())[:10])}" if t.per_worker else ""))
        print(f"  lost: stored but never confirmed {t.lost_unconfirmed[:20]}; confirmed without a row {t.lost_no_row[:20]}")
        print(f"  duplicated: same draft {t.dup_same_draft}; rows of drafts never saved by their worker {t.dup_unpressed[:20]}; "
              f"confirmations shown to another worker {t.misrouted[:20]}")
        marks = Counter()
        for path in bot.logs:
            body = path.read_text(errors="replace") if path.exists() else ""
            for label, needle in (("redelivered updates skipped", "was delivered again"),
                                  ("confirmations queued to the outbox", "goes to the outbox"),
                                  ("chat-state writes failed", "could not write the chat state")):
                marks[label] += body.count(needle)
        print(f"  bot log: {dict(marks)}")
        for line, n in log_findings(bot.logs).most_common(8):
            print(f"  bot log x{n}: {line}")
        if args.keep:  # each worker's chat as the user saw it, for reading beside the bot's log
            for w in workers:
                lines = [f"#{m['message_id']} {'bot ' if m['from_bot'] else 'user'}: "
                         + (m.get("text") or m.get("caption") or "<" + next((k for k in ("photo", "location", "sticker") if k in m), "?") + ">")
                         + (f"  {[label for label, _d in buttons(m)]}" if buttons(m) else "")
                         for m in api.chat_messages(TOKEN, w.tg)]
                (workdir / f"chat-{w.n:03d}.txt").write_text("\n".join(lines) + "\n")
        print(f"  logs: {workdir}" + (" (and chat-NNN.txt per worker)" if args.keep else ""))
        ok = t.confirmed == set(t.stored) and duplicated == 0 and not t.misrouted
        code = 0 if ok else 1
    finally:
        stop_workers.set()
        stop_all.set()
        await bot.stop()
        stop_server()
        if not args.keep:
            await scratch.drop()
    return code


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=50)
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--kills", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--fault-rate", type=float, default=0.05, help="chance that one call of a faulted method misbehaves")
    p.add_argument("--think-min", type=float, default=1.0, help="seconds a worker takes before each answer, at least")
    p.add_argument("--think-max", type=float, default=5.0)
    p.add_argument("--reply-timeout", type=float, default=20.0, help="seconds without an answer before a worker tries /visit again")
    p.add_argument("--p-wrong", type=float, default=0.1, help="chance of a wrong input at a step that takes text")
    p.add_argument("--p-cancel", type=float, default=0.03, help="chance of /cancel at a step, and of ❌ Cancel on the summary")
    p.add_argument("--drain-max", type=float, default=300, help="seconds to wait for the bot to drain at the end, at most")
    p.add_argument("--quiet", type=float, default=15, help="seconds without a new bot message that count as drained")
    p.add_argument("--keep", action="store_true", help="keep the database and logs")
    args = p.parse_args(argv)
    return asyncio.run(soak(args))


if __name__ == "__main__":
    sys.exit(main())
