"""AccessStore pieces the services rely on: aware times, token lookups, failure rows, locks.
Repositories as managed objects are content's (tests/unit/content/test_repositories.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, select

from trustyard.auth.stores import AccessStore
from trustyard.db.engine import write_tx
from trustyard.db.tables import login_failures, users

T0 = datetime(2030, 1, 1, 12, tzinfo=UTC)


@pytest.fixture
def store() -> AccessStore:
    return AccessStore()


def test_times_come_back_aware_in_utc(store: AccessStore, conn: Connection) -> None:
    user = store.create_user(conn, "alice", last_login_at=T0)
    assert user.created_at.tzinfo is not None
    assert user.last_login_at == T0
    store.create_token(
        conn,
        public_id="abcdefghijkl",
        secret_hash="0" * 64,
        kind="pat",
        name="t",
        user_id=user.id,
        scopes=["repository:*:pull"],
        expires_at=T0,
    )
    found = store.token(conn, "abcdefghijkl")
    assert found is not None
    assert found[0].expires_at == T0
    assert found[0].owner == "alice"
    assert store.tokens_of(conn, user_id=user.id) == [found[0]]
    with pytest.raises(ValueError, match="exactly one"):
        store.tokens_of(conn)


def test_active_admins(store: AccessStore, conn: Connection) -> None:
    store.create_user(conn, "b", is_admin=True)
    store.create_user(conn, "a", is_admin=True)
    store.create_user(conn, "c", is_admin=True, is_active=False)
    store.create_user(conn, "d")
    assert store.active_admins(conn) == ["a", "b"]
    assert store.active_admins(conn, lock=True) == ["a", "b"]


def test_login_failure_rows_are_upserted(store: AccessStore, conn: Connection) -> None:
    assert store.login_failure(conn, "user:a") is None
    store.put_login_failure(conn, "user:a", 1, T0, None)
    store.put_login_failure(conn, "user:a", 6, T0 + timedelta(seconds=1), T0)
    assert store.login_failure(conn, "user:a", lock=True) == (6, T0 + timedelta(seconds=1), T0)
    assert len(conn.execute(select(login_failures)).all()) == 1
    store.clear_login_failures(conn, "user:a")
    assert store.login_failure(conn, "user:a") is None


def test_an_inserted_user_is_visible_after_commit(store: AccessStore, db_engine: Engine) -> None:
    with write_tx(db_engine) as conn:
        store.create_user(conn, "committed")
    try:
        with write_tx(db_engine) as conn:
            assert store.user(conn, "committed") is not None
    finally:
        with write_tx(db_engine) as conn:
            conn.execute(users.delete().where(users.c.username == "committed"))
