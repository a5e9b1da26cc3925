"""Benchmark 5: RSS of a running bot holding N users' persisted conversation state.

One real worker walks /visit to the notes step; their persisted rows (user_data with the draft,
and the conversation state) are cloned for N users. A fresh process then builds and initialises
the real Application (PTB loads every persisted row into memory) and reports its RSS; the same
process on a database with no persisted state gives the baseline of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import json
import os
import subprocess
import sys
import uuid

from sqlalchemy import insert, select

from bench.common import TOKEN, WORK, settings_for


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


async def _child(url: str) -> dict:
    from telegram.request import HTTPXRequest

    from bot.channels.telegram import build_application
    from sandbox.localapi import LocalBotAPI

    api = LocalBotAPI()
    gc.collect()
    before = _rss()
    app = build_application(settings_for(url, WORK / "media"), request=HTTPXRequest(httpx_kwargs=api.httpx_kwargs()),
                            updates_request=HTTPXRequest(httpx_kwargs=api.httpx_kwargs()))
    await app.runtime.start(startup=False)
    gc.collect()
    after = _rss()
    users = len(app.runtime.engine.states)
    await app.runtime.stop()
    return {"rss_before_init": before, "rss_running": after, "users": users}


def measure(url: str) -> dict:
    """Run the child in a fresh interpreter so nothing else this process holds counts."""
    out = subprocess.run([sys.executable, "-m", "bench.memory", "--child", url], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "0"})
    return json.loads(out.stdout.strip().splitlines()[-1])


async def populate(url: str, users: int) -> int:
    """Walk one worker to the notes step through the real app, then clone their state for `users` users."""
    from telegram import Update
    from telegram.request import HTTPXRequest

    from bench.conversations import _address, _press
    from bench.generate import WORKER_TG, Size, generate
    from bot.channels.telegram import build_application
    from bot.db import Database
    from models.tables import PersistedState
    from sandbox.localapi import LocalBotAPI

    db = Database(url)
    await generate(db, Size(grids=1, households=600, visits=0, issues=0, patrols=0, shops_per_grid=0, workers_per_grid=1))
    api = LocalBotAPI()
    app = build_application(settings_for(url, WORK / "media"), db=db, request=HTTPXRequest(httpx_kwargs=api.httpx_kwargs()),
                            updates_request=HTTPXRequest(httpx_kwargs=api.httpx_kwargs()))
    await app.runtime.start(startup=False)
    uid = WORKER_TG
    for upd in (lambda: api.send_text(TOKEN, uid, "/visit"), lambda: api.send_text(TOKEN, uid, _address(7).rsplit("单元", 1)[0] + "单元"),
                lambda: _press(api, uid, "pick"), lambda: api.send_text(TOKEN, uid, "2"), lambda: _press(api, uid, "t"),
                lambda: _press(api, uid, "done")):
        await app.process_update(Update.de_json(upd(), app.bot))
    await app.runtime.stop()
    db = Database(url)
    async with db.engine.begin() as conn:
        rows = (await conn.execute(select(PersistedState.__table__))).mappings().all()
        template = [dict(r) for r in rows if str(uid) in r["key"]]
        clones = []
        for n in range(1, users):
            other = uid + n
            for r in template:
                c = copy.deepcopy(r)
                c["key"] = r["key"].replace(str(uid), str(other))
                if isinstance(c["data"], dict) and isinstance(c["data"].get("draft"), dict):
                    c["data"]["draft"]["id"] = uuid.uuid4().hex
                clones.append(c)
        for i in range(0, len(clones), 5000):
            await conn.execute(insert(PersistedState.__table__), clones[i:i + 5000])
    await db.dispose()
    return len(template)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_child(args.child))))
