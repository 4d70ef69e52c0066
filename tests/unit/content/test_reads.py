"""ContentReads and the join helpers of content/reads.py on a real migrated database (SQLite and
PostgreSQL): what a feature domain reads of content, by repository id and manifest digest."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, literal, select, union_all

from tests.support.databases import migrated_engine
from trustyard.content.hotreads import StoreHotReads
from trustyard.content.manifests import ManifestService
from trustyard.content.reads import REPOSITORY_NAME, ContentReads, join_manifest, join_repository
from trustyard.content.stores import ContentStore
from trustyard.db.engine import read_tx, write_tx
from trustyard.oci import mediatypes as mt
from trustyard.oci.digest import digest_bytes

CONFIG = "application/vnd.oci.image.config.v1+json"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_engine(request, tmp_path_factory, request.param) as engine:
        yield engine


def artifact(store: ContentStore, engine: Engine, repository_id: int) -> bytes:
    """An image manifest with only a config (enough for content: its blob is linked)."""
    config = json.dumps({"nonce": uuid.uuid4().hex}).encode()
    digest = str(digest_bytes(config))
    with write_tx(engine) as conn:
        store.record_blob(conn, digest, len(config))
        store.link_blob(conn, repository_id, digest)
    document = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": CONFIG, "digest": digest, "size": len(config)},
        "layers": [],
    }
    return json.dumps(document).encode()


class World:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = ContentStore()
        self.manifests = ManifestService(self.store, StoreHotReads(engine, self.store))

    def repository(self) -> tuple[str, int]:
        name = f"unit/{uuid.uuid4().hex[:10]}"
        with write_tx(self.engine) as conn:
            return name, self.store.ensure_repository(conn, name)

    def push(self, name: str, repository_id: int, *references: str) -> str:
        body = artifact(self.store, self.engine, repository_id)
        digest = str(digest_bytes(body))
        with write_tx(self.engine) as conn:
            for reference in references or (digest,):
                self.manifests.put(conn, name, reference, body, mt.OCI_MANIFEST)
        return digest


@pytest.fixture
def world(engine: Engine) -> World:
    return World(engine)


def test_a_manifest_reads_by_repository_id_and_digest_only_in_its_repository(
    world: World,
) -> None:
    name, repository_id = world.repository()
    _, other_id = world.repository()
    digest = world.push(name, repository_id, "v1")
    reads = ContentReads()
    with read_tx(world.engine) as conn:
        payload = reads.manifest_payload(conn, repository_id, digest)
        assert payload is not None
        assert str(digest_bytes(payload)) == digest
        assert reads.manifest_media_type(conn, repository_id, digest) == mt.OCI_MANIFEST
        assert reads.manifest_payload(conn, other_id, digest) is None
        assert reads.manifest_media_type(conn, other_id, digest) is None
        assert reads.manifest_payload(conn, repository_id, "sha256:" + "0" * 64) is None


def test_attach_sbom_is_the_repositorys_setting(world: World) -> None:
    _, repository_id = world.repository()
    with read_tx(world.engine) as conn:
        assert ContentReads().attach_sbom(conn, repository_id) is False
        assert ContentReads().attach_sbom(conn, -1) is False  # no such repository


def test_the_tags_of_many_manifests_come_in_name_order_each_for_its_own_repository(
    world: World,
) -> None:
    first, first_id = world.repository()
    second, second_id = world.repository()
    tagged = world.push(first, first_id, "v2", "latest", "v10")
    untagged = world.push(first, first_id)
    world.push(second, second_id, "other")
    wanted = [(first_id, tagged), (first_id, untagged), (second_id, tagged), (first_id, tagged)]
    with read_tx(world.engine) as conn:
        found = ContentReads().manifest_tags(conn, wanted)
        assert ContentReads().manifest_tags(conn, []) == {}
    assert found == {
        (first_id, tagged): ["latest", "v10", "v2"],
        (first_id, untagged): [],
        (second_id, tagged): [],  # that repository never had this manifest
    }


def test_the_joins_name_the_repository_and_drop_rows_whose_manifest_is_gone(
    world: World,
) -> None:
    name, repository_id = world.repository()
    kept = world.push(name, repository_id, "kept")
    gone = world.push(name, repository_id)
    with write_tx(world.engine) as conn:
        world.manifests.delete(conn, name, gone)
    # A feature's own rows, keyed by (repository id, manifest digest), as a literal table.
    rows = union_all(
        *(
            select(
                literal(key).label("id"),
                literal(rid).label("repository_id"),
                literal(digest).label("manifest_digest"),
            )
            for key, rid, digest in [
                (1, repository_id, kept),
                (2, repository_id, gone),
                (3, -1, kept),
            ]
        )
    ).subquery("rows")
    named = join_repository(rows, rows.c.repository_id)
    live = join_manifest(named, rows.c.repository_id, rows.c.manifest_digest)
    with read_tx(world.engine) as conn:
        everything = conn.execute(
            select(rows.c.id, REPOSITORY_NAME).select_from(named).order_by(rows.c.id)
        ).all()
        existing = conn.execute(select(rows.c.id).select_from(live).order_by(rows.c.id)).all()
    assert [tuple(row) for row in everything] == [(1, name), (2, name)]
    assert [row.id for row in existing] == [1]
