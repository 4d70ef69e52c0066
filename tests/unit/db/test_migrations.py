"""Migrations: up, down and up again on SQLite and PostgreSQL, and the same schema as tables.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, insert, inspect, select

from tests.support.postgres import PostgresCluster
from trustyard.db import migrate
from trustyard.db.engine import make_engine, read_tx, write_tx
from trustyard.db.tables import blobs, metadata

VERSION_TABLE = "alembic_version"


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'meta.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database(f"m_{uuid.uuid4().hex[:12]}")
    created = make_engine(url)
    try:
        yield created
    finally:
        created.dispose()


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def schema_differences(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def test_upgrade_creates_every_table_at_head(engine: Engine) -> None:
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert tables(engine) == set(metadata.tables) | {VERSION_TABLE}


def test_upgraded_schema_matches_the_table_definitions(engine: Engine) -> None:
    migrate.upgrade(engine)
    assert schema_differences(engine) == []


def test_upgrade_twice_is_harmless_and_keeps_data(engine: Engine) -> None:
    migrate.upgrade(engine)
    with write_tx(engine) as conn:
        conn.execute(
            insert(blobs).values(digest="sha256:" + "a" * 64, size=3, created_at=datetime.now(UTC))
        )
    migrate.upgrade(engine)
    with read_tx(engine) as conn:
        assert conn.scalars(select(blobs.c.size)).all() == [3]


def test_downgrade_to_base_removes_everything_and_upgrade_rebuilds_it(engine: Engine) -> None:
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    assert tables(engine) <= {VERSION_TABLE}

    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert tables(engine) == set(metadata.tables) | {VERSION_TABLE}
    assert schema_differences(engine) == []


def test_every_revision_steps_down_and_up_one_at_a_time(engine: Engine) -> None:
    migrate.upgrade(engine)
    head = migrate.current_revision(engine)
    steps = 0
    while migrate.current_revision(engine) is not None:
        migrate.downgrade(engine, "-1")
        steps += 1
    assert steps >= 1
    while migrate.current_revision(engine) != head:
        migrate.upgrade(engine, "+1")
        steps -= 1
    assert steps == 0
    assert schema_differences(engine) == []
