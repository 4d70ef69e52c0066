"""Scanning an image: each layer once, through the layer cache (a layer shared by many
images is read once), with progress per layer."""

from __future__ import annotations

import copy
import functools
import hashlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from trustyard.scanning.interfaces import Detector, Limits
from trustyard.scanning.layers import scan_layer
from trustyard.scanning.model import Distro, LayerScan
from trustyard.scanning.sources import ImageRef, ImageSource, LayerRef

FOREIGN_NOTE = "foreign layer: not scanned"

Progress = Callable[[str, int, int], None]  # (layer digest, bytes done, bytes total)


class LayerCache(Protocol):
    """Layer scans by layer digest (a layer's scan never depends on the layers below it)."""

    def get(self, digest: str) -> LayerScan | None: ...

    def put(self, scan: LayerScan) -> None: ...


class MemoryLayerCache:
    """A `LayerCache` in memory (for one CLI run, or tests). Scans are copied in and out, so
    a caller changing one cannot change the cache."""

    def __init__(self) -> None:
        self._scans: dict[str, LayerScan] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> LayerScan | None:
        with self._lock:
            scan = self._scans.get(digest)
        return copy.deepcopy(scan) if scan is not None else None

    def put(self, scan: LayerScan) -> None:
        stored = copy.deepcopy(scan)
        with self._lock:
            self._scans[scan.digest] = stored

    def __len__(self) -> int:
        return len(self._scans)


class Scanner:
    """Scans images layer by layer with a fixed set of detectors and limits."""

    def __init__(
        self,
        detectors: Sequence[Detector] | None = None,
        limits: Limits | None = None,
        cache: LayerCache | None = None,
    ) -> None:
        if detectors is None:
            from trustyard.scanning.detectors import default_detectors

            detectors = default_detectors()
        self.detectors: tuple[Detector, ...] = tuple(detectors)
        self.limits = limits if limits is not None else Limits()
        self.cache = cache

    def scan_image(
        self, source: ImageSource, image: ImageRef, progress: Progress | None = None
    ) -> list[LayerScan]:
        """One scan per layer of `image`, bottom first. ScanRefused (from the first hostile
        layer) ends the image's scan; the layers scanned before it are in the cache."""
        # Each layer is scanned on its own (no distro from the layers below): its result is
        # cached by digest alone, so it must not depend on the image it was first seen in.
        # bom.assemble puts the image's distro into the OS packages' purls.
        windows = image.os == "windows"
        return [
            self.scan_layer(source, layer, windows=windows, progress=progress)
            for layer in image.layers
        ]

    def scan_layer(
        self,
        source: ImageSource,
        layer: LayerRef,
        *,
        distro: Distro | None = None,
        windows: bool = False,
        progress: Progress | None = None,
    ) -> LayerScan:
        """One layer: from the cache when it is there, else read from `source` (and put in
        the cache). A foreign layer whose blob is not here is reported as not scanned."""
        cached = self.cache.get(layer.digest) if self.cache is not None else None
        if cached is not None:
            if progress is not None:
                progress(layer.digest, layer.size, layer.size)
            return cached
        if layer.foreign and not source.has_blob(layer.digest):
            return LayerScan(digest=layer.digest, media_type=layer.media_type, notes=[FOREIGN_NOTE])
        on_bytes: Callable[[int], None] | None = None
        if progress is not None:
            report = progress
            digest = layer.digest
            total = layer.size

            def on_bytes(done: int) -> None:
                report(digest, done, max(total, done))

            report(digest, 0, total)
        with source.open_blob(layer.digest) as stream:
            scan = scan_layer(
                stream,
                layer,
                self.detectors,
                self.limits,
                distro=distro,
                windows=windows,
                progress=on_bytes,
            )
        if self.cache is not None:
            self.cache.put(scan)
        return scan


# What decides a layer's result: the walk, the model and every detector. Their source is the
# version stored with each cached layer result, so a change to any of them makes every layer
# be read again, without anyone remembering to bump a number.
_RESULT_SOURCES = (
    "layers.py",
    "tarstream.py",
    "decompress.py",
    "licenses.py",
    "model.py",
    "interfaces.py",
    "detectors",
    "binaries",
)


@functools.cache
def scanner_version() -> str:
    """`trustyard-scan-<12 hex>`: a digest of the source that decides a layer's result."""
    return f"trustyard-scan-{source_digest(Path(__file__).parent)[:12]}"


def source_digest(package: Path) -> str:
    digest = hashlib.sha256()
    for name in _RESULT_SOURCES:
        path = package / name
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(file.relative_to(package).as_posix().encode() + b"\0")
            digest.update(file.read_bytes())
    return digest.hexdigest()
