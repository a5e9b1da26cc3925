"""`gridbot console`: the terminal sandbox, driven as a process by a script on stdin.

One session plays the demo users: worker1 logs a home visit; worker1 patrols a shop and escalates a
failed item, the supervisor is told (announced in worker1's terminal, shown on `/as supervisor`)
and orders a rectification; worker1 reports an issue, the supervisor assigns it to worker1, who
starts and resolves it, and the supervisor closes it; `/time +2d` makes the daily re-inspection
reminder fire. The transcript is checked on stdout and the records in the sandbox database.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.db import Database
from models.tables import ChannelIdentity, Household, Visit
from sandbox.console import parse_jump, render_message
from sandbox.demo import DEMO_USERS
from tests.conftest import users_by_telegram

GRIDBOT = str(Path(sys.executable).parent / "gridbot")
ROOT = Path(__file__).resolve().parent.parent
JPEG = b"\xff\xd8\xff\xe0" + b"sandbox-evidence" * 20

SCRIPT = """\
/visit
1栋1单元
1
2
/press Normal
/press Done
老人身体好，家中整洁
/photo {photo}
/done
/loc 28.17 112.98
/press Save
/patrol
张姐
1
/press Environmental hygiene
/press Done
/press Escalate
地面油污严重
/done
/press Save
/as supervisor
/press Rectify on site
/press 1 day
/as worker1
/report
/press City appearance
幸福路12号门口堆放杂物
幸福路12号
/done
/photo {photo}
/done
/press Normal
/press Submit
/as supervisor
/press Assign
/press 王芳
/as worker1
/press Start
/press Resolved
已联系物业清运完毕
/photo {photo}
/done
/as supervisor
/press Verify
/time +2d
/as worker1
/file {notes}
/as nobody
/quit
"""


def sandbox_env() -> dict[str, str]:
    """The caller's environment without any bot, database or admin configuration."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_", "ADMIN_", "DEFAULT_LANGUAGE"))}


def run_console(tmp_path: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([GRIDBOT, "console", *args], input=script, capture_output=True, text=True, encoding="utf-8",
                          timeout=240, cwd=tmp_path, env=sandbox_env())


def after(transcript: str, prompt_line: str, since: int = 0) -> str:
    """What the terminal showed after the input line `prompt_line` (its first one from `since`), up to the next prompt."""
    start = transcript.index(prompt_line + "\n", since) + len(prompt_line) + 1
    nxt = re.search(r"^(worker1|worker2|supervisor|admin)> ", transcript[start:], re.MULTILINE)
    return transcript[start: start + nxt.start()] if nxt else transcript[start:]


def test_scripted_session_visit_patrol_escalation_issue(tmp_path):
    photo, notes = tmp_path / "photo.jpg", tmp_path / "notes.txt"
    photo.write_bytes(JPEG)
    notes.write_text("随手记\n")
    db_file = tmp_path / "demo.db"
    result = run_console(tmp_path, SCRIPT.format(photo=photo, notes=notes), "--db", str(db_file), "--lang", "en")
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]

    # The banner: a sandbox with demo data, who you are, the sandbox's commands.
    assert "gridbot sandbox" in out and "Demo data only" in out
    for command in ("/as worker1|worker2|supervisor|admin", "/photo PATH", "/file PATH", "/loc LAT LON", "/time +1d", "/quit"):
        assert command in out
    assert "👤 You are worker1 · 王芳" in out
    assert "Welcome back, 王芳!" in out  # the demo users are registered: no invitation needed

    # The visit: a number presses a button of the latest message; otherwise it is sent as text.
    assert "↳ pressed [1] «幸福里1栋1单元" in after(out, "worker1> 1")
    assert "Step 3/7" in after(out, "worker1> 2")  # "2" went as the number of people met
    assert "(edited)" in after(out, "worker1> /press Normal") and "✅ Normal" in after(out, "worker1> /press Normal")
    assert "Photo 1 received" in out
    assert "✅ Saved as visit #" in after(out, "worker1> /press Save")

    # The patrol: the supervisor's new messages are announced in worker1's terminal, shown on /as.
    saved_patrol = out.index("✅ Saved as patrol #")
    announced = out.index("📨 new message for supervisor", saved_patrol)
    assert announced < out.index("supervisor> ", saved_patrol)
    switched = after(out, "worker1> /as supervisor")
    assert "👤 You are now supervisor · 张伟" in switched
    assert "📣 Escalation from patrol #" in switched and "Environmental hygiene" in switched and "地面油污严重" in switched
    assert "Recorded:" in after(out, "supervisor> /press 1 day")  # the callback answer, shown as 💬

    # The issue: dispatched by the supervisor, started and resolved by worker1, closed.
    assert "Reported as issue" in after(out, "worker1> /press Submit")
    assert "📨 new message for worker1" in after(out, "supervisor> /press 王芳")
    assert "A new task for you" in after(out, "supervisor> /as worker1", out.index("supervisor> /press 王芳"))
    resolved = out[out.index("worker1> 已联系物业清运完毕"): out.index("worker1> /as supervisor", out.index("worker1> 已联系物业清运完毕"))]
    assert "is resolved" in resolved and "📨 new message for supervisor" in resolved
    assert "Verify" in after(out, "worker1> /as supervisor", out.index("worker1> 已联系物业清运完毕"))

    # /time: the sandbox clock jumps; the daily re-inspection reminder fires for the order made above.
    jumped = after(out, "supervisor> /time +2d")
    assert "🕒 Sandbox time is now" in jumped and "reinspection-reminders" in jumped
    assert "📨 new message for worker1" in jumped
    reminders = after(out, "supervisor> /as worker1", out.index("supervisor> /time +2d"))
    assert "Re-inspections due" in reminders and "张姐早餐店" in reminders
    assert "This step expects" in after(out, "worker1> /file " + str(notes)) or "not waiting" in after(out, "worker1> /file " + str(notes))
    assert "Usage: /as worker1|worker2|supervisor|admin" in after(out, "worker1> /as nobody")
    assert out.rstrip().endswith(f"The sandbox database stays at {db_file}.")
    assert not db_file.with_suffix(".log").exists()  # nothing beside the database (a repository, often) but its media
    log = (Path(tempfile.gettempdir()) / f"gridbot-sandbox-{db_file.stem}.log").read_text(encoding="utf-8")
    assert "Traceback" not in log and "SANDBOX" not in log  # no crash, and the token never reaches the log

    asyncio.run(check_records(db_file))


async def check_records(db_file: Path) -> None:
    from models.issues import Issue, IssueEvent
    from models.patrols import Finding, Patrol, Rectification

    db = Database(f"sqlite+aiosqlite:///{db_file}")
    try:
        async with db.session() as s:
            users = {tid: u.id for tid, u in (await users_by_telegram(s)).items()}
            worker1, supervisor = users[DEMO_USERS["worker1"].telegram_id], users[DEMO_USERS["supervisor"].telegram_id]

            visit, address = (await s.exec(select(Visit, Household.address).join(Household, col(Household.id) == Visit.household_id)
                                            .where(col(Visit.draft_id).not_like("demo-%")))).one()
            assert (visit.worker_id, visit.people_met, visit.situations, visit.notes) == (worker1, 2, ["正常"], "老人身体好，家中整洁")
            assert len(visit.photos) == 1 and (visit.latitude, visit.longitude) == (28.17, 112.98) and address.startswith("幸福里1栋1单元")

            patrol = (await s.exec(select(Patrol).where(col(Patrol.draft_id).not_like("demo-%")))).one()
            finding = (await s.exec(select(Finding).where(Finding.patrol_id == patrol.id))).one()
            assert (patrol.worker_id, finding.item, finding.disposition, finding.note) == (worker1, "环境卫生", "escalated", "地面油污严重")
            assert (finding.outcome, finding.outcome_by) == ("rectify_on_site", supervisor)
            order = (await s.exec(select(Rectification).where(Rectification.finding_id == finding.id))).one()
            assert order.status == "open" and order.reminded_at is not None  # the /time jump reminded it

            issue = (await s.exec(select(Issue).where(col(Issue.draft_id).not_like("demo-%")))).one()
            assert (issue.description, issue.reporter_id, issue.assignee_id, issue.status) == ("幸福路12号门口堆放杂物", worker1, worker1, "closed")
            events = (await s.exec(select(IssueEvent).where(IssueEvent.issue_id == issue.id).order_by(IssueEvent.id))).all()
            assert [(e.action, e.actor_id) for e in events] == [
                ("submit", worker1), ("assign", supervisor), ("start", worker1), ("resolve", worker1), ("verify", supervisor)]
            assert events[3].note == "已联系物业清运完毕"
    finally:
        await db.dispose()


def test_reused_sandbox_database_keeps_its_data_and_a_foreign_database_is_refused(tmp_path):
    db_file = tmp_path / "demo.db"
    first = run_console(tmp_path, "/my\n/quit\n", "--db", str(db_file), "--lang", "en")
    assert first.returncode == 0, first.stderr
    assert "Demo data: 3 grids, 4 users" in first.stdout and "📊 Your visits" in after(first.stdout, "worker1> /my")
    again = run_console(tmp_path, "/quit\n", "--db", str(db_file), "--lang", "en")
    assert again.returncode == 0 and "Demo data:" not in again.stdout  # reused as it is, not seeded twice

    foreign = tmp_path / "real.db"
    shutil.copy(db_file, foreign)

    async def make_foreign() -> None:
        db = Database(f"sqlite+aiosqlite:///{foreign}")
        async with db.session() as s:
            for identity in (await s.exec(select(ChannelIdentity).where(ChannelIdentity.key == str(DEMO_USERS["admin"].telegram_id)))).all():
                identity.key = "424242"
        await db.dispose()

    asyncio.run(make_foreign())
    refused = run_console(tmp_path, "/quit\n", "--db", str(foreign))
    assert refused.returncode == 2 and "refusing to use it" in refused.stderr and "gridbot sandbox" not in refused.stdout


def test_temporary_sandbox_is_chinese_by_default_and_deleted_on_quit(tmp_path):
    result = run_console(tmp_path, "/help\n/time +30m\n/quit\n")
    assert result.returncode == 0, result.stderr
    where = re.search(r"a temporary database \((.+?demo\.db)\)", result.stdout)
    assert where and not Path(where.group(1)).parent.exists()
    assert "网格员" in result.stdout and "/visit" in after(result.stdout, "worker1> /help")
    assert "🕒 Sandbox time is now" in after(result.stdout, "worker1> /time +30m")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_without_a_token_starts_the_sandbox(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    venv = str(Path(sys.executable).parent.parent)
    make = ["make", "-s", "-o", "install", "run", f"VENV={venv}"]  # -o install: the venv is already installed
    (tmp_path / ".env").write_text("TELEGRAM_BOT_TOKEN=\nTIMEZONE=Asia/Shanghai\n")  # as copied from .env.example
    result = subprocess.run(make, input="/quit\n", capture_output=True, text=True, timeout=240, cwd=tmp_path, env=sandbox_env())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "No TELEGRAM_BOT_TOKEN set: starting the terminal sandbox (gridbot console)."
    assert "gridbot sandbox" in lines[1] and "worker1> /quit" in result.stdout

    # With a token in .env it is `gridbot run` (here stopped by a bad DATABASE_URL before it polls).
    (tmp_path / ".env").write_text("TELEGRAM_BOT_TOKEN=123456:ABCdef\n")
    env = {**sandbox_env(), "DATABASE_URL": "nonsense"}
    result = subprocess.run(make, input="", capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert result.returncode != 0 and "configuration error: DATABASE_URL" in result.stderr and "sandbox" not in result.stdout


@pytest.mark.parametrize(("text", "expected"), [
    ("+1d", {"days": 1}), ("+3h", {"hours": 3}), ("+30m", {"minutes": 30}), ("1d12h", {"days": 1, "hours": 12}),
    ("+0d", None), ("-1d", None), ("+1w", None), ("+400d", None), ("", None), ("+1d x", None),
])
def test_parse_jump(text, expected):
    from datetime import timedelta

    assert parse_jump(text) == (timedelta(**expected) if expected else None)


def test_render_message_numbers_buttons_row_by_row():
    message = {
        "message_id": 7, "text": "🧾 Summary\nline two",
        "reply_markup": {"inline_keyboard": [[{"text": "✅ Save", "callback_data": "a"}, {"text": "✏️ Edit", "callback_data": "b"}],
                                             [{"text": "Docs", "url": "https://example.org"}]]},
    }
    assert render_message(message, edited=True) == [
        "🤖 #7 (edited) 🧾 Summary", "    line two", "    [1] ✅ Save   [2] ✏️ Edit", "    [3] Docs → https://example.org"]
    photo = {"message_id": 8, "photo": [{"width": 90, "height": 60}, {"width": 900, "height": 600}], "caption": "2605-0001"}
    assert render_message(photo) == ["🤖 #8 🖼 photo 900×600", "    2605-0001"]
