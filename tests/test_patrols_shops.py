"""Shops (`/shop_add`, `/shop`), the risk-level rule, the checklist configuration and the daily job's schedule."""

from __future__ import annotations

import json
from datetime import time

import pytest
from sqlmodel import select

from bot.settings import Settings
from models.checklist import parse_checklist
from models.patrols import Risk, Shop, risk_level
from models.tables import Role
from models.users import create_grid, create_user
from sandbox.localapi import buttons
from tests.conftest import ADMIN_ID, Tg, make_app, stop_app, texts
from tests.seed import SUPERVISOR_A, WORKER_A, WORKER_B
from tests.seed_patrols import seed_patrols
from tests.test_patrols import HEALTH, HYGIENE, SAMPLES, patrol, tap
from tests.test_settings import BASE, run


def items(*spec: tuple[float, bool, bool]) -> list[dict]:
    """(weight, key, passed) per item."""
    return [{"name": f"i{n}", "weight": w, "key": k, "passed": p} for n, (w, k, p) in enumerate(spec)]


@pytest.mark.parametrize(("spec", "level"), [
    ([], None),
    ([(1, False, True)] * 9, Risk.LOW),
    ([(1, False, False)] + [(1, False, True)] * 10, Risk.LOW),  # 1/11 = 9.1 %
    ([(1, False, False)] + [(1, False, True)] * 9, Risk.MEDIUM),  # exactly 10 %
    ([(1, True, False)] + [(1, False, True)] * 9, Risk.MEDIUM),  # one key item is no more than its weight
    ([(3, False, False)] + [(1, False, True)] * 7, Risk.HIGH),  # weight 3 of 10 = exactly 30 %
    ([(1, False, False)] * 2 + [(1, False, True)] * 5, Risk.MEDIUM),  # 2/7 = 28.6 %
    ([(1, True, False)] * 2 + [(1, False, True)] * 18, Risk.HIGH),  # two key items = 高, though only 10 %
    ([(1, False, False)] * 9, Risk.HIGH),
])
def test_risk_level_rule(spec, level):
    assert risk_level(items(*spec)) == level


async def test_shop_add_by_a_supervisor(app, api, db):
    s = await seed_patrols(db)
    out = await Tg(app, api, WORKER_A).send("/shop_add")
    assert "not available for your role" in texts(out)
    u = Tg(app, api, SUPERVISOR_A)
    await u.send("/shop_add")
    await u.send("  陈记  烧烤 ")
    await u.send("幸福路 88号")
    out = await u.press("Catering service")
    await u.send("/skip")
    await u.send("陈老板 13812345678")
    summary = u.last
    assert "Name: 陈记 烧烤" in summary and "Address: 幸福路 88号" in summary and "Licence number: —" in summary
    assert "Contact: 陈老板 13812345678" in summary and "Grid:" not in summary
    await u.press("Save")
    assert "Registered as shop #" in u.bot_messages()[-1]["text"]
    async with db.session() as sess:
        shop = (await sess.exec(select(Shop).where(Shop.name == "陈记 烧烤"))).one()
    assert (shop.grid_id, shop.category, shop.licence_no, shop.contact, shop.created_by) == (
        s.base.grid_a, "餐饮服务", None, "陈老板 13812345678", s.base.supervisor_a.id)
    # The same shop again is refused at the summary, which stays.
    await u.send("/shop_add")
    await u.send("陈记 烧烤")
    await u.send("幸福路 88号")
    await u.press("Catering service")
    await u.send("/skip")
    await u.send("/skip")
    out = await u.press("Save")
    assert "already registered in that grid" in texts(out) and u.draft["step"] == "CONFIRM"
    await u.press("Edit")
    await u.press("Address")
    out = await u.send("幸福路 90号")
    assert "Address: 幸福路 90号" in texts(out)
    await u.press("Save")
    async with db.session() as sess:
        assert len((await sess.exec(select(Shop).where(Shop.name == "陈记 烧烤"))).all()) == 2


async def test_shop_add_by_an_admin_asks_the_grid(app, api, db):
    s = await seed_patrols(db)
    async with db.session() as sess:
        await create_user(sess, ADMIN_ID, Role.ADMIN, [], "Admin", "en")
    u = Tg(app, api, ADMIN_ID)
    await u.send("/shop_add")
    await u.send("二号店")
    out = await u.send("和平路5号")
    assert "Which grid is this shop in?" in texts(out)
    await u.press("G02")
    await u.press("Small food workshop")
    await u.send("JY123")
    await u.send("/skip")
    assert "Grid: G02" in u.last and "Category: Small food workshop" in u.last and "Licence number: JY123" in u.last
    await u.press("Save")
    async with db.session() as sess:
        shop = (await sess.exec(select(Shop).where(Shop.name == "二号店"))).one()
    assert (shop.grid_id, shop.category, shop.licence_no) == (s.base.grid_b, "小作坊", "JY123")


SHOP_ADD_ACCEPTS = {"NAME": {"text"}, "ADDRESS": {"text"}, "CATEGORY": set(), "LICENCE": {"text", "skip"},
                    "CONTACT": {"text", "skip"}, "CONFIRM": set()}


@pytest.mark.parametrize("step", list(SHOP_ADD_ACCEPTS))
async def test_shop_add_refuses_every_wrong_kind_of_input(app, api, db, step):
    await seed_patrols(db)
    u = Tg(app, api, SUPERVISOR_A)
    answers = {"NAME": "陈记", "ADDRESS": "幸福路88号", "CATEGORY": None, "LICENCE": "/skip", "CONTACT": "/skip"}
    await u.send("/shop_add")
    for name, answer in answers.items():
        if name == step:
            break
        await (u.press("Catering service") if answer is None else u.send(answer))
    assert u.draft["step"] == step
    before, shops = u.draft, [x.id for x in (await _shops(db))]
    for kind in ("sticker", "photo", "text", "location", "skip", "done"):
        if kind in SHOP_ADD_ACCEPTS[step]:
            continue
        if kind == "sticker":
            out = await u.sticker()
        elif kind == "photo":
            out = await u.photo()
        elif kind == "location":
            out = await u.location(1.0, 2.0)
        else:
            out = await u.send({"text": "hello", "skip": "/skip", "done": "/done"}[kind])
        assert len(out) == 1 and out[0]["text"].startswith("This step expects:"), (kind, texts(out))
        assert u.draft == before and [x.id for x in await _shops(db)] == shops


async def _shops(db) -> list[Shop]:
    async with db.session() as sess:
        return list((await sess.exec(select(Shop).order_by(Shop.id))).all())


async def test_shop_card_with_risk_level_and_last_patrols(app, api, db):
    await seed_patrols(db, extra_shops_a=9)
    sup = Tg(app, api, SUPERVISOR_A)
    await sup.send("/help")
    u = Tg(app, api, WORKER_A)
    out = await u.send("/shop")
    assert "Usage: /shop NAME" in texts(out)
    out = await u.send("/shop 老王")
    assert "老王面馆" in texts(out) and "Risk level: not patrolled yet" in texts(out) and "No patrols yet." in texts(out)
    assert "Licence number: JY14301050000001" in texts(out)
    await patrol(u, "老王面馆", {HYGIENE: "c"})
    await patrol(u, "老王面馆", {HEALTH: "e", SAMPLES: "e"})
    card = next(m for m in sup.bot_messages() if "Escalated finding" in m.get("text", ""))
    await tap(sup, "Rectify on site", card)
    await tap(sup, "3 days", card)
    out = await u.send("/shop 老王")
    text = texts(out)
    assert "Risk level: Medium (an internal aid from the latest patrol, not the regulator's official grade)" in text
    assert "Open rectification order: Staff health certificates, deadline 2026-05-23" in text
    assert "#2 2026-05-20 10:00 · 王芳 · 7/9 passed" in text and "#1 2026-05-20 10:00 · 王芳 · 8/9 passed" in text
    assert "Staff health certificates (escalated → ordered to rectify on site)、Food sample retention (escalated → pending)" in text
    assert "Environmental hygiene (corrected on the spot)" in text
    # Several matches: a list of buttons (the first 8), each opening the card.
    out = await u.send("/shop 小吃店")
    assert "Shops matching «小吃店»: 9" in texts(out) and "the first 8" in texts(out)
    assert len(buttons(out[0])) == 8
    out = await u.press("小吃店1 ·", out[0])
    assert "<b>" not in texts(out) and "小吃店1" in texts(out) and "Risk level: not patrolled yet" in texts(out)
    # Another grid's worker sees none of grid A's shops, by name or by a forged button.
    w = Tg(app, api, WORKER_B)
    out = await w.send("/shop 老王")
    assert "No shop of your grids matches «老王»" in texts(out)
    out = await w.press_data("shop:1", w.bot_messages()[-1])
    assert out == [] and "not in your grids" in (w.answers()[-1] or "")


async def test_help_lists_the_patrol_commands_per_role(app, api, db):
    await seed_patrols(db)
    worker = texts(await Tg(app, api, WORKER_A).send("/help"))
    supervisor = texts(await Tg(app, api, SUPERVISOR_A).send("/help"))
    assert "/patrol" in worker and "/shop — " in worker and "/shop_add" not in worker
    assert "/patrol" in supervisor and "/shop_add" in supervisor


async def test_configured_checklist_is_used(settings, db, api, tmp_path):
    await seed_patrols(db)
    path = tmp_path / "checklist.json"
    path.write_text(json.dumps({"食品销售": [{"name": "冷链温度", "weight": 2, "key": True}, {"name": "价签", "weight": 1, "key": False}]},
                               ensure_ascii=False), encoding="utf-8")
    app = await make_app(Settings(**{**settings.model_dump(), "patrol_checklist_file": path, "_env_file": None}), db, api)
    try:
        u = Tg(app, api, WORKER_A)
        await u.send("/patrol")
        await u.send("超市")
        await u.press("幸福超市")
        assert [t for t, _ in buttons(u.keyboard_message())] == ["✅ 冷链温度 ★", "✅ 价签", "Done ✔️"]
        await u.press("冷链温度")
        await u.press("Done")
        await u.press("Escalate")
        await u.send("/skip")
        await u.send("/done")
        assert "1/2 passed · failed: 冷链温度" in u.last and "Risk level (internal aid): High" in u.last  # 2 of 3 by weight
        # Categories the file leaves out keep the default list.
        assert len(app.settings.patrol_checklist["餐饮服务"]) == 9
    finally:
        await stop_app(app)


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read"),
    ("{not json", "is not valid JSON"),
    ('{"饭店": [{"name": "x"}]}', "unknown shop category '饭店'"),
    ('{"其他": []}', "must be a list of 1 to 20 items"),
    ('{"其他": [{"name": "x", "weight": 0}]}', "weight must be a number above 0"),
    ('{"其他": [{"name": "x", "key": "yes"}]}', "key must be true or false"),
    ('{"其他": [{"name": "x"}, {"name": "x"}]}', "item names must be unique"),
])
def test_bad_checklist_file_is_one_clear_line(tmp_path, content, message):
    path = tmp_path / "checklist.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = run({**BASE, "PATROL_CHECKLIST_FILE": str(path)}, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: PATROL_CHECKLIST_FILE: ") and message in lines[0], result.stderr


@pytest.mark.parametrize(("name", "value", "message"), [
    ("REINSPECTION_REMINDER_TIME", "25:00", "HH:MM"),
    ("REINSPECTION_REMINDER_TIME", "8am", "HH:MM"),
    ("RECTIFY_DAYS_DEFAULT", "0", "greater than or equal to 1"),
])
def test_bad_patrol_settings_are_one_clear_line(tmp_path, name, value, message):
    result = run({**BASE, name: value}, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"configuration error: {name}: ") and message in lines[0], result.stderr


def test_checklist_defaults_and_parse():
    parsed = parse_checklist({"其他": [{"name": " 价签 "}]})
    assert [(i.name, i.weight, i.key) for i in parsed["其他"]] == [("价签", 1.0, False)]
    assert [i.name for i in parsed["餐饮服务"]] == ["证照公示", "从业人员健康证", "进货查验/索证索票", "环境卫生", "餐具清洗消毒",
                                                "食品贮存与过期食品", "食品留样", "油烟排放", "餐厨废弃物处置"]


async def test_daily_reminder_job_is_scheduled_at_the_configured_local_time(app, db):
    from handlers.patrols import on_startup

    async with db.session() as sess:
        await create_grid(sess, "G09", "x", 0.2)
    await on_startup(app.runtime)
    (job,) = [j for j in app.scheduler.jobs() if j.name == "reinspection-reminders"]
    assert app.settings.reinspection_time == time(8, 17, tzinfo=app.settings.tz)
    nxt = job.next_run.astimezone(app.settings.tz)
    assert (nxt.hour, nxt.minute) == (8, 17)
    for j in app.scheduler.jobs():
        if j.name and j.name.startswith("reinspection-"):
            app.scheduler.remove(j.name)
