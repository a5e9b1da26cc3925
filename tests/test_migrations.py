"""Migrations: empty -> head -> base -> head, on the engine of this run."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from sqlalchemy import inspect

from bot.db import current_revision, downgrade, make_engine, upgrade
from models import metadata
from tests.conftest import PG_BASE, _pg_admin


@pytest.fixture
def empty_url(request, tmp_path):  # noqa: ANN001, ANN201
    if request.config.getoption("--db") == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'stairway.db'}"
        return
    name = f"gridbot_mig_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    yield PG_BASE.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def tables(url: str) -> set[str]:
    async def read() -> set[str]:
        engine = make_engine(url)
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        await engine.dispose()
        return names - {"alembic_version"}

    return asyncio.run(read())


def test_upgrade_downgrade_upgrade(empty_url):
    assert current_revision(empty_url) is None
    upgrade(empty_url)
    assert tables(empty_url) == set(metadata.tables)
    head = current_revision(empty_url)
    downgrade(empty_url, "base")
    assert current_revision(empty_url) is None and tables(empty_url) == set()
    upgrade(empty_url)
    assert current_revision(empty_url) == head and tables(empty_url) == set(metadata.tables)


def test_models_match_migrations(empty_url):
    """Autogenerate finds nothing to do: the tables are exactly what the migrations create."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    upgrade(empty_url)

    async def diff() -> list:
        engine = make_engine(empty_url)
        async with engine.connect() as conn:
            result = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
        await engine.dispose()
        return result

    assert asyncio.run(diff()) == []
