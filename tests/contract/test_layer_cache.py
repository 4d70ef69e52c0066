"""The LayerCache contract (trustyard.scanning.scanner.LayerCache): one suite every layer cache
passes. A layer's scan comes back as it was stored, a later one replaces it, nothing a caller
does to a scan changes what is cached, and a scanner using the cache reads each layer once.

To run the suite against a new cache, add a factory to CACHES: it gets the migrated engines
by backend (for a cache in the database) and returns an empty-looking cache (the digests each
test uses are its own).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import BinaryIO

import pytest

from tests.support.databases import LazyEngines
from tests.unit.scanning.layerkit import OCI_GZIP, Recorder, digest_of, file, gzip_bytes, tar_bytes
from trustyard.scanning.jobs import DatabaseLayerCache
from trustyard.scanning.model import Component, Distro, LayerScan
from trustyard.scanning.scanner import LayerCache, MemoryLayerCache, Scanner
from trustyard.scanning.sources import ImageRef, LayerRef

Factory = Callable[[LazyEngines], LayerCache]
VERSION = "contract-1"


def _memory(_engines: LazyEngines) -> LayerCache:
    return MemoryLayerCache()


def _database(backend: str) -> Factory:
    def make(engines: LazyEngines) -> LayerCache:
        return DatabaseLayerCache(engines[backend], version=VERSION)

    return make


CACHES: dict[str, Factory] = {
    "memory": _memory,
    "database-sqlite": _database("sqlite"),
    "database-postgres": _database("postgres"),
}


@pytest.fixture(scope="module")
def engines(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LazyEngines]:
    with ExitStack() as stack:
        yield LazyEngines(request, tmp_path_factory, stack)


@pytest.fixture(params=sorted(CACHES))
def cache(request: pytest.FixtureRequest, engines: LazyEngines) -> LayerCache:
    return CACHES[request.param](engines)


def new_digest() -> str:
    return "sha256:" + uuid.uuid4().hex * 2


def full_scan(digest: str, version: str = "2.31.0") -> LayerScan:
    return LayerScan(
        digest,
        OCI_GZIP,
        components=[
            Component(
                "pypi",
                "requests",
                version,
                f"pkg:pypi/requests@{version}",
                ("usr/lib/python3/site-packages/requests-x.dist-info/METADATA",),
                "python",
            )
        ],
        whiteouts=["etc/gone"],
        opaque_dirs=["var/cache"],
        evidence_paths=["usr/lib/python3/site-packages/requests-x.dist-info/METADATA"],
        owned_paths=["usr/bin/python3"],
        distro=Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)"),
        files=3,
        uncompressed_bytes=1234,
        notes=["a note"],
    )


def test_an_unknown_layer_is_not_cached(cache: LayerCache) -> None:
    assert cache.get(new_digest()) is None


def test_a_scan_comes_back_as_it_was_stored(cache: LayerCache) -> None:
    stored = full_scan(new_digest())
    cache.put(stored)
    assert cache.get(stored.digest) == stored
    empty = LayerScan(new_digest(), OCI_GZIP)
    cache.put(empty)
    assert cache.get(empty.digest) == empty
    assert cache.get(new_digest()) is None


def test_a_later_scan_of_a_layer_replaces_the_earlier_one(cache: LayerCache) -> None:
    digest = new_digest()
    cache.put(full_scan(digest, "2.31.0"))
    cache.put(full_scan(digest, "2.32.3"))
    found = cache.get(digest)
    assert found is not None
    assert [c.version for c in found.components] == ["2.32.3"]


def test_changing_a_scan_stored_or_handed_out_does_not_change_the_cache(
    cache: LayerCache,
) -> None:
    stored = full_scan(new_digest())
    cache.put(stored)
    stored.notes.append("changed after put")
    stored.files = 99
    handed = cache.get(stored.digest)
    assert handed is not None
    handed.whiteouts.clear()
    handed.components.clear()
    assert cache.get(stored.digest) == full_scan(stored.digest)


class MemorySource:
    """Blobs in a dict; one image per list of layers, counting the blobs opened."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.opened: list[str] = []

    def image(self, *layers: bytes) -> ImageRef:
        refs = []
        for layer in layers:
            self.blobs[digest_of(layer)] = layer
            refs.append(LayerRef(digest_of(layer), OCI_GZIP, len(layer)))
        return ImageRef(new_digest(), "linux/amd64", "linux", tuple(refs))

    def images(self) -> list[ImageRef]:
        return []

    def has_blob(self, digest: str) -> bool:
        return digest in self.blobs

    def open_blob(self, digest: str) -> BinaryIO:
        self.opened.append(digest)
        return io.BytesIO(self.blobs[digest])


def layer(label: str) -> bytes:
    unique = uuid.uuid4().hex.encode()
    return gzip_bytes(tar_bytes([file(f"etc/{label}", unique), file("etc/os-release", b"ID=x\n")]))


def test_a_scanner_reads_each_layer_once_through_the_cache(cache: LayerCache) -> None:
    source = MemorySource()
    base, app, other = layer("base"), layer("app"), layer("other")
    first_image, second_image = source.image(base, app), source.image(base, other)
    scanner = Scanner(detectors=[Recorder(suffixes=("os-release",))], cache=cache)
    first = scanner.scan_image(source, first_image)
    assert source.opened == [digest_of(base), digest_of(app)]
    assert scanner.scan_image(source, first_image) == first
    second = scanner.scan_image(source, second_image)
    assert source.opened == [digest_of(base), digest_of(app), digest_of(other)]
    assert second[0] == first[0]
    assert [s.files for s in second] == [2, 2]
