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
from sqlalchemy import Engine, insert, inspect, select, text

from tests.support.postgres import PostgresCluster
from trustyard.db import migrate
from trustyard.db.engine import make_engine, read_tx, write_tx
from trustyard.db.tables import access_tokens, blobs, metadata

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


def test_0008_binds_old_refresh_tokens_to_their_client_and_ends_those_of_inactive_users(
    engine: Engine,
) -> None:
    """Refresh tokens made before 0008 carry their client_id in their name; those of users who
    are deactivated when it runs are revoked (a reactivation must not revive them)."""
    migrate.upgrade(engine, "0007")
    now = datetime.now(UTC)
    with write_tx(engine) as conn:
        for name, active in (("olga", True), ("gone", False)):
            conn.execute(
                text(
                    "INSERT INTO users (username, password_hash, is_admin, is_active, source, "
                    "created_at) VALUES (:name, 'x', false, :active, 'local', :now)"
                ),
                {"name": name, "active": active, "now": now},
            )
        tokens = [
            ("aaaa", "olga", "refresh token (docker)", "rft"),
            ("bbbb", "olga", "refresh token (unnamed client)", "rft"),
            ("cccc", "gone", "refresh token (containers/image)", "rft"),
            ("dddd", "gone", "laptop", "pat"),
        ]
        for public_id, owner, name, kind in tokens:
            conn.execute(
                text(
                    "INSERT INTO access_tokens (public_id, secret_hash, kind, name, user_id, "
                    "scopes, created_at) VALUES (:public_id, 'h', :kind, :name, "
                    "(SELECT id FROM users WHERE username = :owner), '[]', :now)"
                ),
                {"public_id": public_id, "kind": kind, "name": name, "owner": owner, "now": now},
            )
    migrate.upgrade(engine)
    with read_tx(engine) as conn:
        rows = conn.execute(
            select(
                access_tokens.c.public_id,
                access_tokens.c.client_id,
                access_tokens.c.revoked_at.is_not(None),
            ).order_by(access_tokens.c.public_id)
        ).all()
    assert [tuple(row) for row in rows] == [
        ("aaaa", "docker", False),
        ("bbbb", None, False),
        ("cccc", "containers/image", True),
        ("dddd", None, False),  # access tokens come back with their owner, as before
    ]
