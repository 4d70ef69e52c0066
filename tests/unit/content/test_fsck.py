"""`trustyard fsck`: metadata checked against storage, and what `repair` removes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select, update

from trustyard.content.fsck import Finding, FsckReport, fsck
from trustyard.content.hotreads import StoreHotReads
from trustyard.content.manifests import ManifestService
from trustyard.content.stores import ContentStore
from trustyard.content.uploads import HashStates, UploadService
from trustyard.db.engine import make_engine, read_tx, write_tx
from trustyard.db.migrate import upgrade
from trustyard.db.tables import blobs, manifests, repository_blobs
from trustyard.oci import mediatypes as mt
from trustyard.oci.digest import Digest, digest_bytes
from trustyard.storage.filesystem import FilesystemDriver

REPO = "team/app"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass
class Image:
    manifest: Digest
    config: Digest
    layers: list[Digest]


@dataclass
class Store:
    engine: Engine
    driver: FilesystemDriver
    content: ContentStore
    uploads: UploadService
    manifests: ManifestService

    def push_blob(self, data: bytes, repository: str = REPO) -> Digest:
        digest = digest_bytes(data)
        with write_tx(self.engine) as conn:
            upload = self.uploads.start(conn, repository)
        chunk = self.uploads.open_chunk(upload, None)
        chunk.write(data)
        self.uploads.verify(chunk, digest)
        self.uploads.publish(chunk, digest)
        with write_tx(self.engine) as conn:
            self.uploads.complete(conn, upload, digest, len(data))
        return digest

    def push_manifest(
        self, doc: dict[str, object], reference: str, repository: str = REPO
    ) -> Digest:
        body = json.dumps(doc).encode()
        with write_tx(self.engine) as conn:
            pushed = self.manifests.put(conn, repository, reference, body, str(doc["mediaType"]))
        return pushed.digest

    def push_image(self, tag: str, repository: str = REPO) -> Image:
        config_bytes = json.dumps({"architecture": "amd64", "tag": tag}).encode()
        layer_bytes = [f"{tag} layer {i}".encode() * 100 for i in range(2)]
        config = self.push_blob(config_bytes, repository)
        layers = [self.push_blob(data, repository) for data in layer_bytes]
        doc = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": CONFIG, "digest": str(config), "size": len(config_bytes)},
            "layers": [
                {"mediaType": LAYER, "digest": str(d), "size": len(b)}
                for d, b in zip(layers, layer_bytes, strict=True)
            ],
        }
        return Image(self.push_manifest(doc, tag, repository), config, layers)

    def run(self, repair: bool = False) -> FsckReport:
        return fsck(self.engine, self.content, self.driver, repair=repair)

    def recorded(self, digest: Digest) -> bool:
        with read_tx(self.engine) as conn:
            return self.content.blob_size(conn, str(digest)) is not None

    def linked(self, digest: Digest, repository: str = REPO) -> bool:
        with read_tx(self.engine) as conn:
            return self.content.repository_blob_size(conn, repository, str(digest)) is not None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    engine = make_engine(f"sqlite:///{tmp_path / 'meta.db'}")
    upgrade(engine)
    content = ContentStore()
    driver = FilesystemDriver(tmp_path / "storage", fsync=False)
    try:
        yield Store(
            engine,
            driver,
            content,
            UploadService(content, driver, HashStates()),
            ManifestService(content, StoreHotReads(engine, content)),
        )
    finally:
        engine.dispose()


def kinds(report: FsckReport) -> list[tuple[str, str, bool]]:
    return sorted((f.kind, f.subject, f.repaired) for f in report.findings)


def only(report: FsckReport, kind: str) -> Finding:
    found = [f for f in report.findings if f.kind == kind]
    assert len(found) == 1, report.findings
    return found[0]


# --- a healthy store --------------------------------------------------------------------------


def test_a_fresh_store_is_clean(store: Store) -> None:
    report = store.run()
    assert report.clean
    assert report.findings == []
    assert (report.blobs_checked, report.manifests_checked) == (0, 0)


def test_a_store_with_images_and_an_index_is_clean(store: Store) -> None:
    amd = store.push_image("amd64")
    arm = store.push_image("arm64")
    index = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            {"mediaType": mt.OCI_MANIFEST, "digest": str(d), "size": 1}
            for d in (amd.manifest, arm.manifest)
        ],
    }
    store.push_manifest(index, "latest")
    with write_tx(store.engine) as conn:  # an upload in progress is not a finding
        upload = store.uploads.start(conn, REPO)
    chunk = store.uploads.open_chunk(upload, 0)
    chunk.write(b"half a layer")
    with write_tx(store.engine) as conn:
        store.uploads.record_chunk(conn, chunk)
    chunk.writer.close()

    for repair in (False, True):
        report = store.run(repair=repair)
        assert report.findings == []
        assert report.clean
        assert (report.blobs_checked, report.manifests_checked) == (6, 3)
    assert store.driver.upload_size(upload.id) == len(b"half a layer")


# --- corrupt blobs ----------------------------------------------------------------------------


def test_blob_altered_on_disk_is_reported_and_kept_without_repair(store: Store) -> None:
    image = store.push_image("v1")
    layer = image.layers[0]
    path = store.driver.blob_path(layer)
    original = path.read_bytes()
    path.write_bytes(b"X" + original[1:])  # same size, different bytes

    report = store.run()
    finding = only(report, "blob-corrupt")
    assert finding.subject == str(layer)
    assert finding.detail.startswith("content hashes to sha256:")
    assert not finding.repaired
    assert not report.clean
    assert report.problems == [finding]
    # Without --repair nothing is touched.
    assert store.recorded(layer)
    assert path.read_bytes() == b"X" + original[1:]


@pytest.mark.parametrize(
    ("damage", "detail"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-1]), "bytes stored"),
        (lambda p: p.write_bytes(p.read_bytes() + b"\n"), "bytes stored"),
        (lambda p: p.unlink(), "missing from storage"),
    ],
    ids=["truncated", "extended", "deleted"],
)
def test_blob_of_the_wrong_size_or_missing_is_corrupt(
    store: Store, damage: Callable[[Path], object], detail: str
) -> None:
    layer = store.push_image("v1").layers[1]
    damage(store.driver.blob_path(layer))
    finding = only(store.run(), "blob-corrupt")
    assert finding.subject == str(layer)
    assert detail in finding.detail


def test_repair_removes_a_corrupt_blob_from_metadata_and_storage(store: Store) -> None:
    image = store.push_image("v1")
    other = store.push_image("v2")
    layer = image.layers[0]
    store.driver.blob_path(layer).write_bytes(b"rotten" * 100)

    report = store.run(repair=True)
    corrupt = only(report, "blob-corrupt")
    assert corrupt.subject == str(layer)
    assert corrupt.repaired
    assert not store.recorded(layer)
    assert not store.linked(layer)
    assert store.driver.stat(layer) is None
    assert not store.driver.blob_path(layer).exists()
    # Intact content stays.
    for digest in (image.config, image.layers[1], other.config, *other.layers):
        assert store.recorded(digest)
        assert store.driver.stat(digest) is not None


def test_repair_still_reports_the_manifest_left_without_its_blob(store: Store) -> None:
    image = store.push_image("v1")
    layer = image.layers[0]
    store.driver.blob_path(layer).write_bytes(b"rotten")

    report = store.run(repair=True)
    # The image can no longer be pulled: repair must not call the store clean.
    missing = only(report, "manifest-blob-missing")
    assert missing.subject == f"{REPO}@{image.manifest}"
    assert str(layer) in missing.detail
    assert not missing.repaired
    assert not report.clean

    again = store.run()
    assert kinds(again) == [("manifest-blob-missing", f"{REPO}@{image.manifest}", False)]


# --- orphans ----------------------------------------------------------------------------------


def _plant_blob(driver: FilesystemDriver, data: bytes) -> Digest:
    digest = digest_bytes(data)
    path = driver.blob_path(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def test_stray_blob_file_is_an_orphan_and_repair_removes_it(store: Store) -> None:
    store.push_image("v1")
    stray = _plant_blob(store.driver, b"left behind by a crash before the database commit")

    report = store.run()
    finding = only(report, "blob-orphan")
    assert finding.subject == str(stray)
    assert not finding.repaired
    assert report.clean  # leftovers are garbage, not damage
    assert report.garbage == [finding]
    assert store.driver.stat(stray) is not None

    repaired = store.run(repair=True)
    assert only(repaired, "blob-orphan").repaired
    assert store.driver.stat(stray) is None
    assert store.run().findings == []


def test_stray_blob_file_with_wrong_content_is_a_corrupt_orphan(store: Store) -> None:
    digest = digest_bytes(b"what the name promises")
    path = store.driver.blob_path(digest)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"something else")
    finding = only(store.run(), "blob-orphan-corrupt")
    assert finding.subject == str(digest)
    store.run(repair=True)
    assert not path.exists()


def test_files_in_blobs_that_are_not_blobs_do_not_break_fsck(store: Store) -> None:
    image = store.push_image("v1")
    blobs_dir = store.driver.root / "blobs"
    (blobs_dir / "README").write_text("operator notes")
    (blobs_dir / "sha256" / "notes.txt").write_text("more notes")
    (blobs_dir / "sha256" / "zz").mkdir()
    (blobs_dir / "sha256" / "zz" / "not-a-digest").write_text("x")
    misplaced = digest_bytes(b"misplaced")  # a valid name under the wrong prefix folder
    (blobs_dir / "sha256" / "zz" / misplaced.hex).write_bytes(b"misplaced")

    report = store.run(repair=True)
    assert report.clean
    assert report.blobs_checked == 3
    assert store.driver.stat(image.layers[0]) is not None


def test_upload_file_without_a_session_is_an_orphan(store: Store) -> None:
    with write_tx(store.engine) as conn:
        live = store.uploads.start(conn, REPO)
    for upload_id, data in ((live.id, b"live"), ("ab" * 16, b"orphan")):
        writer = store.driver.open_upload(upload_id, 0)
        writer.write(data)
        writer.close()

    report = store.run()
    finding = only(report, "upload-orphan")
    assert finding.subject == "ab" * 16
    assert report.clean
    assert store.driver.upload_size("ab" * 16) == len(b"orphan")

    assert only(store.run(repair=True), "upload-orphan").repaired
    assert store.driver.upload_size("ab" * 16) is None
    assert store.driver.upload_size(live.id) == len(b"live")  # a live session is never touched


# --- manifests whose references are gone ------------------------------------------------------


def test_manifest_whose_blob_row_was_removed_is_reported(store: Store) -> None:
    image = store.push_image("v1")
    layer = str(image.layers[1])
    with write_tx(store.engine) as conn:
        conn.execute(delete(repository_blobs).where(repository_blobs.c.digest == layer))
        conn.execute(delete(blobs).where(blobs.c.digest == layer))

    report = store.run()
    missing = only(report, "manifest-blob-missing")
    assert missing.subject == f"{REPO}@{image.manifest}"
    assert layer in missing.detail
    assert only(report, "blob-orphan").subject == layer  # its bytes are now unrecorded
    assert not report.clean
    assert report.blobs_checked == 2


def test_manifest_whose_blob_was_unlinked_from_the_repository_is_reported(store: Store) -> None:
    image = store.push_image("v1")
    with write_tx(store.engine) as conn:
        store.content.unlink_blob(conn, REPO, str(image.config))
    report = store.run()
    assert kinds(report) == [("manifest-blob-missing", f"{REPO}@{image.manifest}", False)]
    assert not report.clean


def test_index_whose_child_manifest_was_removed_is_reported(store: Store) -> None:
    child = store.push_image("amd64")
    index = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": str(child.manifest), "size": 1}],
    }
    index_digest = store.push_manifest(index, "latest")
    with write_tx(store.engine) as conn:
        assert store.content.delete_manifest(conn, REPO, str(child.manifest))
    report = store.run()
    missing = only(report, "manifest-manifest-missing")
    assert missing.subject == f"{REPO}@{index_digest}"
    assert str(child.manifest) in missing.detail


def test_manifest_payload_altered_in_the_database_is_corrupt(store: Store) -> None:
    image = store.push_image("v1")
    with write_tx(store.engine) as conn:
        payload = conn.scalar(
            select(manifests.c.payload).where(manifests.c.digest == str(image.manifest))
        )
        assert payload is not None
        conn.execute(
            update(manifests)
            .where(manifests.c.digest == str(image.manifest))
            .values(payload=payload + b"\n")  # still valid JSON, other bytes
        )
    report = store.run()
    assert kinds(report) == [("manifest-corrupt", f"{REPO}@{image.manifest}", False)]
    assert not report.clean
