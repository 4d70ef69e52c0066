"""The ImageSource contract (trustyard.scanning.sources.ImageSource): one suite every source of
images passes. The same shared test image read through an OCI layout directory, an
oci-archive, a docker-archive and the registry's own storage gives the same platforms, the
same image configs, the same layers (by diff_id and uncompressed content) and the same scans;
a blob that is not there is refused, never guessed.

What may differ is said by each implementation's entry in SOURCES: a docker-archive holds one
platform, no manifest (its image is named by its config digest) and uncompressed layers
(named by their diff_id).

To run the suite against a new source, add it to SOURCES with a factory that gets the image's
name (a shared test image) and the test's fixtures and returns the source.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.support.archives import image_archive
from tests.support.databases import migrated_engine
from tests.support.images import image_info, image_layout
from trustyard.content.interfaces import ManifestRecord
from trustyard.content.stores import ContentStore
from trustyard.db.engine import write_tx
from trustyard.oci import mediatypes as mt
from trustyard.oci.digest import parse_digest
from trustyard.scanning.decompress import open_chunks
from trustyard.scanning.model import LayerScan, ScanRefused
from trustyard.scanning.registry_source import RegistrySource
from trustyard.scanning.scanner import Scanner
from trustyard.scanning.sources import ImageSource, open_path
from trustyard.storage.filesystem import FilesystemDriver

# The shared test images and their number of platforms.
IMAGES = {"go-binary": 1, "python-app": 1, "multi-arch": 2}
MANIFEST_TYPES = mt.IMAGE_MANIFESTS | mt.INDEXES


@dataclass(frozen=True)
class Kind:
    factory: Callable[[str, pytest.FixtureRequest], ImageSource]
    platforms: str  # "all" or "one"
    manifests: bool  # images are named by their manifest digest (else by their config's)
    compressed_layers: bool  # layers are named by their blob digest (else by their diff_id)


def _layout(name: str, _request: pytest.FixtureRequest) -> ImageSource:
    return open_path(image_layout(name))


def _oci_archive(name: str, _request: pytest.FixtureRequest) -> ImageSource:
    return open_path(image_archive(name, "oci-archive"))


def _docker_archive(name: str, _request: pytest.FixtureRequest) -> ImageSource:
    return open_path(image_archive(name, "docker-archive"))


def _registry(name: str, request: pytest.FixtureRequest) -> ImageSource:
    storage: RegistryStorage = request.getfixturevalue("registry_storage")
    return storage.source(name)


SOURCES: dict[str, Kind] = {
    "oci-layout": Kind(_layout, "all", manifests=True, compressed_layers=True),
    "oci-archive": Kind(_oci_archive, "all", manifests=True, compressed_layers=True),
    "docker-archive": Kind(_docker_archive, "one", manifests=False, compressed_layers=False),
    "registry": Kind(_registry, "all", manifests=True, compressed_layers=True),
}


class RegistryStorage:
    """The registry's storage and database with the shared images pushed (blobs in a
    filesystem driver, manifests in the content tables), one repository per image."""

    def __init__(self, engine: Engine, root: Path) -> None:
        self.engine = engine
        self.driver = FilesystemDriver(root)
        self.store = ContentStore()

    def source(self, name: str) -> RegistrySource:
        layout = image_layout(name)
        [top] = json.loads((layout / "index.json").read_bytes())["manifests"]
        repository = f"contract/{name}-{uuid.uuid4().hex[:8]}"
        with write_tx(self.engine) as conn:
            repository_id = self.store.ensure_repository(conn, repository)
            for path in sorted((layout / "blobs" / "sha256").iterdir()):
                data = path.read_bytes()
                digest = f"sha256:{path.name}"
                self._put_blob(digest, data)
                media_type = _media_type(data)
                if media_type in MANIFEST_TYPES:
                    record = ManifestRecord(digest, media_type, data)
                    self.store.insert_manifest(conn, repository_id, record, None, None, [])
        payload = (layout / "blobs" / "sha256" / top["digest"].split(":", 1)[1]).read_bytes()
        return RegistrySource(self.engine, self.driver, repository_id, top["digest"], payload)

    def _put_blob(self, digest: str, data: bytes) -> None:
        parsed = parse_digest(digest)
        if self.driver.stat(parsed) is not None:
            return
        upload_id = uuid.uuid4().hex
        writer = self.driver.open_upload(upload_id, 0)
        try:
            writer.write(data)
            writer.sync()
        finally:
            writer.close()
        self.driver.commit_upload(upload_id, len(data), parsed)


def _media_type(data: bytes) -> str | None:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        return None
    return document.get("mediaType") if isinstance(document, dict) else None


@pytest.fixture(scope="module")
def registry_storage(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryStorage]:
    with migrated_engine(request, tmp_path_factory, "sqlite") as engine:
        yield RegistryStorage(engine, tmp_path_factory.mktemp("registry-blobs"))


Case = tuple[str, Kind, ImageSource]


CASES = [
    (source, image)
    for source in sorted(SOURCES)
    for image, platforms in IMAGES.items()
    if platforms == 1 or SOURCES[source].platforms == "all"
]


@pytest.fixture(params=CASES, ids="-".join)
def case(request: pytest.FixtureRequest) -> Case:
    source_name, image = request.param
    kind = SOURCES[source_name]
    return image, kind, kind.factory(image, request)


def platform_of(truth: dict[str, Any]) -> str:
    platform = truth["platform"]
    text = f"{platform['os']}/{platform['architecture']}"
    return text + (f"/{platform['variant']}" if platform.get("variant") else "")


def read(source: ImageSource, digest: str) -> bytes:
    with source.open_blob(digest) as stream:
        return stream.read()


def uncompressed(blob: bytes) -> bytes:
    _, chunks, prefetch = open_chunks(io.BytesIO(blob), threaded=False)
    assert prefetch is None
    parts = []
    while chunk := chunks.next():
        parts.append(chunk)
    return b"".join(parts)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- the same images ---------------------------------------------------------------------------


def test_the_same_platforms_configs_and_layers(case: Case) -> None:
    name, kind, source = case
    truths = image_info(name)["images"]
    layout = open_path(image_layout(name))
    images = source.images()
    assert len(images) == IMAGES[name]
    assert [(i.platform, i.os) for i in images] == [
        (platform_of(t), t["platform"]["os"]) for t in truths
    ]
    for image, truth in zip(images, truths, strict=True):
        named = truth["manifest"] if kind.manifests else truth["config"]
        assert image.manifest_digest == named
        assert image.config == json.loads(read(layout, truth["config"]))
        assert [la.diff_id for la in image.layers] == [la["diff_id"] for la in truth["layers"]]
        assert not any(la.foreign for la in image.layers)
        if kind.compressed_layers:
            assert [(la.digest, la.media_type, la.size) for la in image.layers] == [
                (la["digest"], la["mediaType"], la["size"]) for la in truth["layers"]
            ]
        else:
            assert [(la.digest, la.size) for la in image.layers] == [
                (la["diff_id"], la["uncompressed_size"]) for la in truth["layers"]
            ]


def test_every_layer_is_there_with_the_content_its_diff_id_names(case: Case) -> None:
    _, _, source = case
    for image in source.images():
        for layer in image.layers:
            assert source.has_blob(layer.digest)
            blob = read(source, layer.digest)
            assert sha256(blob) == layer.digest
            assert len(blob) == layer.size
            assert sha256(uncompressed(blob)) == layer.diff_id


def test_a_blob_that_is_not_there_is_refused(case: Case) -> None:
    _, _, source = case
    missing = "sha256:" + "0" * 64
    assert not source.has_blob(missing)
    with pytest.raises(ScanRefused):
        source.open_blob(missing)


# --- the same scans ----------------------------------------------------------------------------


def content_of(scan: LayerScan) -> dict[str, Any]:
    data = scan.to_json()
    del data["digest"], data["media_type"]
    return data


@pytest.fixture(scope="module")
def layout_scans() -> dict[str, list[list[dict[str, Any]]]]:
    """What each image scans to from its layout directory, made once."""
    scanner = Scanner()
    made = {}
    for name in IMAGES:
        layout = open_path(image_layout(name))
        made[name] = [
            [content_of(scan) for scan in scanner.scan_image(layout, image)]
            for image in layout.images()
        ]
    return made


def test_every_source_scans_to_the_same_result(
    case: Case, layout_scans: dict[str, list[list[dict[str, Any]]]]
) -> None:
    name, _, source = case
    scanner = Scanner()
    scans = [
        [content_of(scan) for scan in scanner.scan_image(source, image)]
        for image in source.images()
    ]
    assert scans == layout_scans[name]
