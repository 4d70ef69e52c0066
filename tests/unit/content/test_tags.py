"""TagService on a real migrated database (SQLite and PostgreSQL) and a filesystem driver: each
tag with its manifest, what a pull of it may download, its platforms (from an index's
descriptors or an image's config blob) and its last push, a page at a time."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.support.databases import migrated_engine
from trustyard.content.hotreads import StoreHotReads
from trustyard.content.manifests import ManifestService
from trustyard.content.stores import ContentStore
from trustyard.content.tags import TagDetail, TagService
from trustyard.db.engine import read_tx, write_tx
from trustyard.oci import mediatypes as mt
from trustyard.oci.digest import digest_bytes
from trustyard.storage.filesystem import FilesystemDriver

CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_engine(request, tmp_path_factory, request.param) as engine:
        yield engine


class Repository:
    """A repository of its own per test: blobs in the database and the driver, manifests
    pushed through ManifestService."""

    def __init__(self, engine: Engine, root: Path) -> None:
        self.engine = engine
        self.store = ContentStore()
        self.driver = FilesystemDriver(root)
        self.manifests = ManifestService(self.store, StoreHotReads(engine, self.store))
        self.name = f"unit/{uuid.uuid4().hex[:10]}"
        with write_tx(engine) as conn:
            self.id = self.store.ensure_repository(conn, self.name)

    def blob(self, data: bytes, media_type: str, *, stored: bool = True) -> dict[str, Any]:
        digest = digest_bytes(data)
        with write_tx(self.engine) as conn:
            self.store.record_blob(conn, str(digest), len(data))
            self.store.link_blob(conn, self.id, str(digest))
        if stored:
            upload_id = uuid.uuid4().hex
            writer = self.driver.open_upload(upload_id, 0)
            try:
                writer.write(data)
            finally:
                writer.close()
            self.driver.commit_upload(upload_id, len(data), digest)
        return {"mediaType": media_type, "digest": str(digest), "size": len(data)}

    def image(
        self, platform: dict[str, str] | None, layers: int = 2, *, config_stored: bool = True
    ) -> bytes:
        config_doc: dict[str, Any] = {"rootfs": {"type": "layers"}, "nonce": uuid.uuid4().hex}
        config_doc.update(platform or {})
        config = self.blob(json.dumps(config_doc).encode(), CONFIG, stored=config_stored)
        document = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": config,
            "layers": [self.blob(uuid.uuid4().bytes * (i + 1), LAYER) for i in range(layers)],
        }
        return json.dumps(document).encode()

    def push(self, reference: str, body: bytes, media_type: str = mt.OCI_MANIFEST) -> str:
        with write_tx(self.engine) as conn:
            self.manifests.put(conn, self.name, reference, body, media_type)
        return str(digest_bytes(body))

    def page(self, limit: int = 100, after: str | None = None) -> list[TagDetail]:
        with read_tx(self.engine) as conn:
            return TagService(self.store, self.driver).page(conn, self.id, limit, after)


@pytest.fixture
def repository(engine: Engine, tmp_path: Path) -> Repository:
    return Repository(engine, tmp_path)


def pull_size(body: bytes) -> int:
    document = json.loads(body)
    return len(body) + document["config"]["size"] + sum(la["size"] for la in document["layers"])


def test_an_image_tag_counts_its_manifest_config_and_layers_and_names_its_platform(
    repository: Repository,
) -> None:
    body = repository.image({"os": "linux", "architecture": "arm64", "variant": "v8"})
    digest = repository.push("v1", body)
    [detail] = repository.page()
    assert (detail.name, detail.digest, detail.media_type) == ("v1", digest, mt.OCI_MANIFEST)
    assert detail.size == pull_size(body)
    assert detail.platforms == ("linux/arm64/v8",)
    assert detail.pushed_at.tzinfo is not None


def test_an_index_counts_each_child_present_once_and_lists_its_platforms(
    repository: Repository,
) -> None:
    amd = repository.image({"os": "linux", "architecture": "amd64"})
    arm = repository.image({"os": "linux", "architecture": "arm64"})
    for child in (amd, arm):
        repository.push(str(digest_bytes(child)), child)

    def entry(child: bytes, platform: dict[str, str]) -> dict[str, Any]:
        return {
            "mediaType": mt.OCI_MANIFEST,
            "digest": str(digest_bytes(child)),
            "size": len(child),
            "platform": platform,
        }

    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [
                entry(arm, {"os": "linux", "architecture": "arm64"}),
                entry(amd, {"os": "linux", "architecture": "amd64"}),
                entry(amd, {"os": "linux", "architecture": "amd64"}),  # listed twice
                entry(amd, {"os": "unknown", "architecture": "unknown"}),  # an attestation's
            ],
        }
    ).encode()
    repository.push("multi", index, mt.OCI_INDEX)
    [detail] = repository.page()
    assert detail.size == len(index) + pull_size(amd) + pull_size(arm)
    assert detail.platforms == ("linux/amd64", "linux/arm64")


def test_a_config_missing_from_storage_or_an_artifact_has_no_platform(
    repository: Repository,
) -> None:
    repository.push(
        "lost", repository.image({"os": "linux", "architecture": "amd64"}, config_stored=False)
    )
    sbom = json.loads(repository.image(None))
    sbom["config"]["mediaType"] = "application/vnd.oci.empty.v1+json"
    repository.push("sbom", json.dumps(sbom).encode())
    assert [(d.name, d.platforms) for d in repository.page()] == [("lost", ()), ("sbom", ())]


def test_tags_come_a_page_at_a_time_in_byte_order(repository: Repository) -> None:
    body = repository.image({"os": "linux", "architecture": "amd64"}, layers=0)
    names = ["b", "A", "a", "B", "a-1"]
    for name in names:
        repository.push(name, body)
    ordered = sorted(names, key=str.encode)
    assert [d.name for d in repository.page(2)] == ordered[:2]
    assert [d.name for d in repository.page(2, ordered[1])] == ordered[2:4]
    assert [d.name for d in repository.page(10, ordered[-1])] == []
    assert {d.size for d in repository.page()} == {pull_size(body)}


@pytest.mark.parametrize(
    "config",
    [b"[" * 100_000, b'{"os": "linux", "architecture": ' + b"[" * 100_000, b"\xff\xfe", b"[1]"],
    ids=["nested-too-deep", "object-nested-too-deep", "not-utf8", "not-an-object"],
)
def test_a_config_that_is_no_json_object_has_no_platform(
    repository: Repository, config: bytes
) -> None:
    # A client pushes any bytes as a config blob; the listing shows the tag without a platform
    # (a config nested past the JSON decoder's depth raised RecursionError: a 500).
    document = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": repository.blob(config, CONFIG),
        "layers": [],
    }
    body = json.dumps(document).encode()
    repository.push("odd", body)
    [detail] = repository.page()
    assert (detail.name, detail.platforms, detail.size) == ("odd", (), len(body) + len(config))


@pytest.mark.parametrize(
    "fields",
    [{}, {"os": "linux"}, {"architecture": "arm64"}, {"os": "linux", "architecture": 64}],
    ids=["none", "no-architecture", "no-os", "architecture-not-a-string"],
)
def test_a_config_naming_no_whole_platform_shows_none(
    repository: Repository, fields: dict[str, Any]
) -> None:
    # The listing's choice (a scan calls the same image unknown/unknown, or linux/unknown).
    repository.push("partial", repository.image(fields or None, layers=0))
    assert [(d.name, d.platforms) for d in repository.page()] == [("partial", ())]
