"""Daily: tell each shop's grid workers about the re-inspections due (DESIGN.md §2).

A rectification order (要求现场整改) makes a re-inspection due on its deadline day (local date in
`TIMEZONE`). At `REINSPECTION_REMINDER_TIME` the job sends every worker of the shop's grid (and
whoever did the patrol, if they still work there) one message listing their due shops; an order
whose day passed while the bot was down is included, marked overdue. Each order is reminded once
(a compare-and-set on `reminded_at`, in the transaction that writes the letters to the outbox).
Computes through models/, sends through the outbox (bot/delivery.py).
"""

from __future__ import annotations

import hashlib
import html
import logging
from dataclasses import dataclass, field

from bot.delivery import drain
from bot.i18n import gettext_for, resolve_language
from models import clock, outbox
from models.checklist import item_label
from models.outbox import NewMessage
from models.patrols import DueReinspection, Recipient, claim_reminder, deadline_day, due_reinspections, grid_supervisors, reminder_recipients

log = logging.getLogger(__name__)


def esc(text: str) -> str:
    return html.escape(text, quote=False)


@dataclass
class _Letter:
    recipient: Recipient
    due: list[DueReinspection] = field(default_factory=list)


async def send_due_reminders(app) -> int:  # noqa: ANN001 - GridApplication (or anything with .bot, .db, .settings)
    """Remind the workers of every re-inspection due today (or overdue and not yet reminded).

    The orders are claimed and the letters written to the outbox in one transaction (a crash loses
    no reminder and doubles none), then the outbox is drained. Returns the number of these letters
    delivered by that drain.
    """
    now, tz = clock.now(), app.settings.tz
    letters: dict[int, _Letter] = {}
    today = now.astimezone(tz).date()
    quiet = app.settings.quiet
    release = quiet.release_at(now, tz) if quiet else None
    async with app.db.session() as session:
        due = await due_reinspections(session, now, tz)
        for d in due:
            recipients = await reminder_recipients(session, d.shop.grid_id, d.patroller_id) or await grid_supervisors(session, d.shop.grid_id)
            if not await claim_reminder(session, d.order_id, now):
                continue  # another run reminded it meanwhile
            for r in recipients:
                if r.recipient is not None:
                    letters.setdefault(r.recipient, _Letter(r)).due.append(d)
        messages = []
        for letter in letters.values():
            _ = gettext_for(resolve_language(letter.recipient.language, None, app.settings.default_language))
            lines = [_("🔁 <b>Re-inspections due</b>")]
            for d in letter.due:
                day = deadline_day(d.deadline, tz)
                line = _("• {shop} · {address} ({grid}): rectification of «{item}», deadline {date}").format(
                    shop=esc(d.shop.name), address=esc(d.shop.address), grid=esc(d.shop.grid_code), item=item_label(_, d.item),
                    date=day.isoformat())
                if day < today:
                    line += " " + _("(overdue)")
                lines.append(line)
            lines.append(_("Send /patrol, pick the shop and check it again: the order closes when every escalated item passes."))
            orders = ",".join(str(d.order_id) for d in letter.due)
            key = f"{today.isoformat()}:{hashlib.sha1(orders.encode()).hexdigest()[:12]}"  # noqa: S324 - a key, not a secret
            messages.append(NewMessage("reinspection", key, letter.recipient.recipient, "\n".join(lines), not_before=release))
        await outbox.enqueue(session, messages)
    await drain(app)
    async with app.db.session() as session:
        sent = await outbox.count_in_state(session, "reinspection", sorted({m.period_key for m in messages}))
    log.info("re-inspection reminders: %d orders due, %d letters, %d delivered now", len(due), len(messages), sent)
    return sent


async def daily_job(runtime) -> None:  # noqa: ANN001 - bot.runtime.Runtime
    await send_due_reminders(runtime)
