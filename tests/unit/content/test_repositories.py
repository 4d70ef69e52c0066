"""Repositories as managed objects on a real database (SQLite and PostgreSQL): RepositoryService
(validation, settings, deletion) and the ContentStore rows under it (byte-ordered listings by
namespace, the record and its settings, a deletion cascading to content and grants)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, insert, select

from tests.support.databases import migrated_engine
from trustyard.auth.stores import AccessStore
from trustyard.content.repositories import RepositoryService
from trustyard.content.stores import ContentStore
from trustyard.db.tables import (
    blobs,
    manifest_references,
    manifests,
    repository_blobs,
    tags,
    team_repository_grants,
)
from trustyard.errors import Conflict, Invalid, NotFound


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_engine(request, tmp_path_factory, request.param) as engine:
        yield engine


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    """A transaction rolled back after the test."""
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()


@pytest.fixture
def store() -> ContentStore:
    return ContentStore()


@pytest.fixture
def service(store: ContentStore) -> RepositoryService:
    return RepositoryService(store)


def test_create_validates_and_refuses_duplicates(
    service: RepositoryService, conn: Connection
) -> None:
    created = service.create(conn, "acme/app", "public", "the app")
    assert (created.name, created.visibility, created.description) == (
        "acme/app",
        "public",
        "the app",
    )
    assert service.get(conn, "acme/app") == created
    assert service.create(conn, "acme/tools/cli").visibility == "private"
    with pytest.raises(Conflict):
        service.create(conn, "acme/app")
    for name in ("Acme/app", "acme//app", "acme/app/", "", "a/" + "b" * 254, "acme/\x00"):
        with pytest.raises(Invalid, match="invalid repository name"):
            service.create(conn, name)
    with pytest.raises(Invalid, match="unknown visibility"):
        service.create(conn, "acme/other", "internal")
    for name in ("acme/none", "Acme/App", "acme/\x00"):
        with pytest.raises(NotFound):
            service.get(conn, name)


def test_update_changes_given_settings_only(service: RepositoryService, conn: Connection) -> None:
    service.create(conn, "acme/app", description="first")
    changed = service.update(conn, "acme/app", visibility="public", immutable_tags=True)
    assert (changed.visibility, changed.description, changed.immutable_tags) == (
        "public",
        "first",
        True,
    )
    changed = service.update(conn, "acme/app", description="", scan_on_push=False)
    assert (changed.visibility, changed.description, changed.scan_on_push) == ("public", "", False)
    assert service.update(conn, "acme/app") == changed
    with pytest.raises(Invalid):
        service.update(conn, "acme/app", visibility="internal")
    with pytest.raises(NotFound):
        service.update(conn, "acme/none", description="x")


def test_delete_returns_what_it_deleted(service: RepositoryService, conn: Connection) -> None:
    service.create(conn, "acme/app", "public", "old")
    changed = service.update(conn, "acme/app", immutable_tags=True)
    assert service.delete(conn, "acme/app") == changed
    with pytest.raises(NotFound):
        service.get(conn, "acme/app")
    with pytest.raises(NotFound):
        service.delete(conn, "acme/app")
    again = service.create(conn, "acme/app")  # the name is free; nothing of the old one stays
    assert (again.visibility, again.description, again.immutable_tags) == ("private", "", False)


def test_repositories_are_listed_in_byte_order_by_namespace(
    store: ContentStore, conn: Connection
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


def test_a_repository_record_and_its_settings(store: ContentStore, conn: Connection) -> None:
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
    assert store.repository_visibility(conn, "acme/app") == (created.id, "public")
    assert store.repository_record(conn, "acme/none") is None
    assert store.repository_visibility(conn, "nowhere/app") is None


def test_deleting_a_repository_cascades_to_its_content_and_grants(
    store: ContentStore, conn: Connection
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
    access = AccessStore()
    user = access.create_user(conn, "alice")
    org = access.create_organization(conn, "acme", "")
    access.add_owner(conn, org.id, user.id)
    team = access.create_team(conn, org, "devs", "")
    access.set_repository_grant(conn, team.id, doomed.id, "read-only")
    access.set_repository_grant(conn, team.id, kept.id, "admin")

    store.delete_repository(conn, doomed.id)

    assert store.repository_record(conn, "acme/doomed") is None
    for table in (tags, manifests, repository_blobs):
        assert [row.repository_id for row in conn.execute(select(table))] == [kept.id]
    assert len(conn.execute(select(manifest_references)).all()) == 1
    grants = conn.execute(select(team_repository_grants)).all()
    assert [(g.repository_id, g.role) for g in grants] == [(kept.id, "admin")]
    assert conn.execute(select(blobs.c.digest)).scalars().all() == [digest]
