"""The scanner: every layer of every shared test image, each layer read once through the
layer cache, progress per layer, foreign layers, the distro handed up the layers."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pytest

from tests.support.images import image_info, image_layout
from tests.unit.scanning.layerkit import (
    OCI_GZIP,
    Recorder,
    digest_of,
    file,
    gzip_bytes,
    symlink,
    tar_bytes,
)
from trustyard.scanning import scanner as scanner_module
from trustyard.scanning.interfaces import Collector, FileEntry, Limits, ScanContext
from trustyard.scanning.model import Component, Distro, LayerScan, ScanRefused
from trustyard.scanning.scanner import (
    FOREIGN_NOTE,
    MemoryLayerCache,
    Scanner,
    scanner_version,
    source_digest,
)
from trustyard.scanning.sources import ImageRef, ImageSource, LayerRef, open_path

SHARED = ("debian-minbase", "python-app", "node-app", "go-binary", "multi-arch", "big-layer")
FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


class CountingSource:
    """An image source that counts the blobs opened."""

    def __init__(self, inner: ImageSource) -> None:
        self.inner = inner
        self.opened: list[str] = []

    def images(self) -> list[ImageRef]:
        return self.inner.images()

    def has_blob(self, digest: str) -> bool:
        return self.inner.has_blob(digest)

    def open_blob(self, digest: str) -> BinaryIO:
        self.opened.append(digest)
        return self.inner.open_blob(digest)


class MemorySource:
    """Blobs in a dict, one image made of them."""

    def __init__(self, layers: list[bytes | LayerRef], os_name: str = "linux") -> None:
        self.blobs: dict[str, bytes] = {}
        refs = []
        for layer in layers:
            if isinstance(layer, LayerRef):
                refs.append(layer)
                continue
            digest = digest_of(layer)
            self.blobs[digest] = layer
            refs.append(LayerRef(digest, OCI_GZIP, len(layer)))
        self.image = ImageRef("sha256:" + "a" * 64, f"{os_name}/amd64", os_name, tuple(refs))
        self.opened: list[str] = []

    def images(self) -> list[ImageRef]:
        return [self.image]

    def has_blob(self, digest: str) -> bool:
        return digest in self.blobs

    def open_blob(self, digest: str) -> BinaryIO:
        if digest not in self.blobs:
            raise ScanRefused(f"blob {digest} is missing")
        self.opened.append(digest)
        return io.BytesIO(self.blobs[digest])


# --- the shared test images ------------------------------------------------------------------


@pytest.mark.parametrize("name", SHARED)
def test_every_layer_of_every_shared_image_is_walked_whole(name: str) -> None:
    source = open_path(image_layout(name))
    scanner = Scanner(limits=Limits())
    for image, truth in zip(source.images(), image_info(name)["images"], strict=True):
        scans = scanner.scan_image(source, image)
        assert [s.digest for s in scans] == [la["digest"] for la in truth["layers"]]
        assert [s.uncompressed_bytes for s in scans] == [
            la["uncompressed_size"] for la in truth["layers"]
        ]
        assert all(s.files > 0 for s in scans)
        assert [s.media_type for s in scans] == [la["mediaType"] for la in truth["layers"]]


def test_a_layer_shared_by_two_images_is_read_once() -> None:
    cache = MemoryLayerCache()
    scanner = Scanner(detectors=[Recorder(suffixes=("os-release",))], cache=cache)
    python_app = CountingSource(open_path(image_layout("python-app")))
    node_app = CountingSource(open_path(image_layout("node-app")))
    [python_image] = python_app.images()
    [node_image] = node_app.images()
    shared = python_image.layers[0].digest
    assert node_image.layers[0].digest == shared
    first = scanner.scan_image(python_app, python_image)
    second = scanner.scan_image(node_app, node_image)
    assert python_app.opened == [la.digest for la in python_image.layers]
    assert node_app.opened == [node_image.layers[1].digest]
    assert second[0] == first[0]
    assert len(cache) == 3


def test_the_cache_is_consulted_before_the_blob_is_opened() -> None:
    layer = gzip_bytes(tar_bytes([file("etc/hostname", b"box")]))
    source = MemorySource([layer])
    cache = MemoryLayerCache()
    remembered = LayerScan(digest=digest_of(layer), media_type=OCI_GZIP, files=42)
    cache.put(remembered)
    [scan] = Scanner(detectors=[], cache=cache).scan_image(source, source.image)
    assert scan == remembered
    assert source.opened == []


def test_the_memory_cache_hands_out_copies() -> None:
    cache = MemoryLayerCache()
    scan = LayerScan(digest="sha256:" + "1" * 64, media_type=OCI_GZIP, notes=["kept"])
    cache.put(scan)
    scan.notes.append("changed after put")
    got = cache.get(scan.digest)
    assert got is not None
    assert got.notes == ["kept"]
    got.notes.append("changed after get")
    again = cache.get(scan.digest)
    assert again is not None
    assert again.notes == ["kept"]
    assert cache.get("sha256:" + "2" * 64) is None


def test_progress_reaches_each_layers_size_cached_or_not() -> None:
    cache = MemoryLayerCache()
    scanner = Scanner(detectors=[], cache=cache)
    source = open_path(image_layout("python-app"))
    [image] = source.images()
    reports: list[tuple[str, int, int]] = []

    def report(digest: str, done: int, total: int) -> None:
        reports.append((digest, done, total))

    for _ in range(2):  # read, then from the cache
        reports.clear()
        scanner.scan_image(source, image, progress=report)
        for layer in image.layers:
            mine = [(done, total) for d, done, total in reports if d == layer.digest]
            assert mine[-1] == (layer.size, layer.size)
            assert [done for done, _ in mine] == sorted(done for done, _ in mine)
            assert all(total == layer.size for _, total in mine)


# --- foreign layers, hostile layers ------------------------------------------------------------


def test_a_foreign_layer_without_its_blob_is_reported_as_not_scanned() -> None:
    foreign = LayerRef("sha256:" + "f" * 64, FOREIGN, 5000, None, foreign=True)
    app = gzip_bytes(tar_bytes([file("Files/app.exe", b"MZ")]))
    source = MemorySource([foreign, app], os_name="windows")
    cache = MemoryLayerCache()
    recorder = Recorder()
    scans = Scanner(detectors=[recorder], cache=cache).scan_image(source, source.image)
    assert scans[0] == LayerScan(digest=foreign.digest, media_type=FOREIGN, notes=[FOREIGN_NOTE])
    assert scans[1].evidence_paths == ["app.exe"]  # a Windows image: Files/ is the root
    assert cache.get(foreign.digest) is None  # its blob may be pushed later


def test_a_foreign_layer_whose_blob_is_here_is_scanned() -> None:
    base = gzip_bytes(tar_bytes([file("Files/Windows/system.dll", b"MZ")]))
    ref = LayerRef(digest_of(base), FOREIGN, len(base), None, foreign=True)
    source = MemorySource([ref], os_name="windows")
    source.blobs[ref.digest] = base
    [scan] = Scanner(detectors=[Recorder()]).scan_image(source, source.image)
    assert scan.evidence_paths == ["Windows/system.dll"]
    assert scan.notes == []


def test_a_hostile_layer_ends_the_image_scan_and_keeps_the_layers_before_it() -> None:
    good = gzip_bytes(tar_bytes([file("etc/hostname", b"box")]))
    loop = gzip_bytes(tar_bytes([symlink("a", "b"), symlink("b", "a")]))
    source = MemorySource([good, loop])
    cache = MemoryLayerCache()
    with pytest.raises(ScanRefused, match="symlink loop: a -> b -> a"):
        Scanner(detectors=[], cache=cache).scan_image(source, source.image)
    assert cache.get(digest_of(good)) is not None
    assert cache.get(digest_of(loop)) is None


# --- the distro, found low, handed up ----------------------------------------------------------


@dataclass
class ContextSpy:
    """Remembers the context each layer's collector was made with."""

    name: str = "spy"
    contexts: list[ScanContext] = field(default_factory=list)

    def collector(self, context: ScanContext) -> Collector:
        self.contexts.append(context)
        return _SpyCollector()


class _SpyCollector:
    def wants(self, entry: FileEntry) -> int:
        return 0

    def take(self, entry: FileEntry, data: bytes) -> None:
        return None

    def finish(self) -> Iterable[Component]:
        return ()


def test_each_layer_is_scanned_on_its_own_whatever_distro_the_layers_below_name() -> None:
    # A layer's result is cached by its digest alone: nothing from other layers may enter it.
    debian = Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)")
    base = gzip_bytes(tar_bytes([file("etc/os-release", b"ID=debian\n")]))
    app = gzip_bytes(tar_bytes([file("app/main.py", b"print()")]))
    source = MemorySource([base, app])
    spy = ContextSpy()
    os_like = Recorder(name="os", suffixes=("os-release",), found_distro=debian)
    scans = Scanner(detectors=[os_like, spy], limits=Limits()).scan_image(source, source.image)
    assert [s.distro for s in scans] == [debian, None]
    assert [c.distro for c in spy.contexts] == [None, None]
    assert all(c.limits == Limits() for c in spy.contexts)


def test_cached_layer_results_are_keyed_by_the_source_of_the_walk_and_the_detectors(
    tmp_path: Path,
) -> None:
    # A changed detector must make every cached layer be read again; a change elsewhere
    # (the job, the API) must not throw the cache away.
    package = tmp_path / "scanning"
    shutil.copytree(Path(scanner_module.__file__).parent, package)
    before = source_digest(package)
    (package / "jobs.py").write_text("# the job changed\n")
    assert source_digest(package) == before
    dpkg = package / "detectors" / "dpkg.py"
    dpkg.write_text(dpkg.read_text() + "\n# a detector changed\n")
    assert source_digest(package) != before
    assert scanner_version().startswith("trustyard-scan-")
