from sqlmodel import select

from models.tables import Visit
from tests.conftest import Tg, texts
from tests.seed import WORKER_A, seed


async def test_visit_happy_path(app, api, db):
    s = await seed(db)
    u = Tg(app, api, WORKER_A)
    out = await u.send("/visit")
    print(texts(out))
    out = await u.send("3栋1单元")
    print(texts(out))
    out = await u.press("3栋1单元101")
    print(texts(out))
    out = await u.send("2")
    print(texts(out))
    await u.press("Normal")
    out = await u.press("Done")
    print(texts(out))
    out = await u.send("all good")
    out = await u.photo()
    print(texts(out))
    out = await u.send("/done")
    out = await u.location(28.1, 112.9)
    print(texts(out))
    out = await u.press("Save")
    print(texts(out), u.answers())
    async with db.session() as sess:
        visits = (await sess.exec(select(Visit))).all()
    assert len(visits) == 1
