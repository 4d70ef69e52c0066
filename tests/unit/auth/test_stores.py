"""AccessStore pieces the services rely on: aware times, token lookups, failure rows, locks,
repositories as managed objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, insert, select

from trustyard.auth.stores import AccessStore
from trustyard.db.engine import write_tx
from trustyard.db.tables import (
    blobs,
    login_failures,
    manifest_references,
    manifests,
    repository_blobs,
    tags,
    team_repository_grants,
    users,
)
from trustyard.errors import Conflict

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


def test_active_admins_and_repository_lookup(store: AccessStore, conn: Connection) -> None:
    store.create_user(conn, "b", is_admin=True)
    store.create_user(conn, "a", is_admin=True)
    store.create_user(conn, "c", is_admin=True, is_active=False)
    store.create_user(conn, "d")
    assert store.active_admins(conn) == ["a", "b"]
    assert store.active_admins(conn, lock=True) == ["a", "b"]
    assert store.repository(conn, "nowhere/app") is None


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


def test_repositories_are_listed_in_byte_order_by_namespace(
    store: AccessStore, conn: Connection
) -> None:
    for name, visibility in (
        ("acme/b", "private"),
        ("acme/a", "public"),
        ("acme", "private"),  # a one-component name is its own namespace
        ("acme_x/a", "private"),  # '_' is no wildcard here
        ("acmeco/a", "private"),
        ("beta/z", "public"),
        ("ACME/a", "private"),  # never valid, but stored names are compared exactly
    ):
        store.create_repository(conn, name, visibility=visibility, description="")

    def names(**options: Any) -> list[str]:
        return [r.name for r in store.list_repositories(conn, 100, None, **options)]

    everything = ["ACME/a", "acme", "acme/a", "acme/b", "acme_x/a", "acmeco/a", "beta/z"]
    assert names() == everything
    assert [r.name for r in store.list_repositories(conn, 2, "acme")] == ["acme/a", "acme/b"]
    assert names(namespace="acme") == ["acme", "acme/a", "acme/b"]
    assert names(namespace="acme_") == []
    assert names(namespaces=frozenset()) == ["acme/a", "beta/z"]
    assert names(namespaces=frozenset(), public=False) == []
    assert names(namespaces=frozenset({"acmeco"})) == ["acme/a", "acmeco/a", "beta/z"]
    assert names(namespace="beta", namespaces=frozenset({"acme"})) == ["beta/z"]
    assert store.has_repositories(conn, "acme_x")
    assert not store.has_repositories(conn, "acme_")
    assert not store.has_repositories(conn, "nobody")


def test_a_repository_record_and_its_settings(store: AccessStore, conn: Connection) -> None:
    created = store.create_repository(conn, "acme/app", visibility="public", description="d")
    assert created.created_at.tzinfo is not None
    assert (created.name, created.namespace, created.visibility) == ("acme/app", "acme", "public")
    assert (created.scan_on_push, created.immutable_tags) == (True, False)
    with pytest.raises(Conflict):
        store.create_repository(conn, "acme/app", visibility="private", description="")
    store.update_repository(conn, created.id, immutable_tags=True, description="")
    found = store.repository_record(conn, "acme/app")
    assert found is not None
    assert (found.immutable_tags, found.description, found.visibility) == (True, "", "public")
    assert store.repository(conn, "acme/app") == (created.id, "public")
    assert store.repository_record(conn, "acme/none") is None


def test_deleting_a_repository_cascades_to_its_content_and_grants(
    store: AccessStore, conn: Connection
) -> None:
    """Tags, manifests, their references, blob links and team grants go; blobs stay."""
    stamp = datetime.now(UTC)
    doomed = store.create_repository(conn, "acme/doomed", visibility="private", description="")
    kept = store.create_repository(conn, "acme/kept", visibility="private", description="")
    digest = "sha256:" + "a" * 64
    conn.execute(insert(blobs).values(digest=digest, size=1, created_at=stamp))
    for repository in (doomed, kept):
        conn.execute(
            insert(repository_blobs).values(
                repository_id=repository.id, digest=digest, created_at=stamp
            )
        )
        manifest = conn.execute(
            insert(manifests).values(
                repository_id=repository.id,
                digest="sha256:" + "b" * 64,
                media_type="application/vnd.oci.image.manifest.v1+json",
                size=2,
                payload=b"{}",
                created_at=stamp,
            )
        ).inserted_primary_key
        assert manifest is not None
        conn.execute(
            insert(manifest_references).values(manifest_id=manifest[0], kind="blob", digest=digest)
        )
        conn.execute(
            insert(tags).values(
                repository_id=repository.id, name="v1", manifest_id=manifest[0], updated_at=stamp
            )
        )
    user = store.create_user(conn, "alice")
    org = store.create_organization(conn, "acme", "")
    store.add_owner(conn, org.id, user.id)
    team = store.create_team(conn, org, "devs", "")
    store.set_repository_grant(conn, team.id, doomed.id, "read-only")
    store.set_repository_grant(conn, team.id, kept.id, "admin")

    store.delete_repository(conn, doomed.id)

    assert store.repository_record(conn, "acme/doomed") is None
    for table in (tags, manifests, repository_blobs):
        assert [row.repository_id for row in conn.execute(select(table))] == [kept.id]
    assert len(conn.execute(select(manifest_references)).all()) == 1
    grants = conn.execute(select(team_repository_grants)).all()
    assert [(g.repository_id, g.role) for g in grants] == [(kept.id, "admin")]
    assert conn.execute(select(blobs.c.digest)).scalars().all() == [digest]
