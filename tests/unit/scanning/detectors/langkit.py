"""Running language-package detectors over files built in a test (the way the layer walker
feeds them), or over the layers of a shared test image (through `scanning.layers`)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from trustyard.scanning.detectors import dotnet, java, npm, php, python, ruby
from trustyard.scanning.interfaces import (
    HEAD_BYTES,
    Collector,
    Detector,
    FileEntry,
    Limits,
    ScanContext,
)
from trustyard.scanning.layers import scan_layer
from trustyard.scanning.model import Component, LayerScan
from trustyard.scanning.sources import open_path

# The detectors of language packages; the ground-truth tests run them all together.
LANGUAGE_DETECTORS: list[Detector] = [m.DETECTOR for m in (python, npm, java, ruby, php, dotnet)]


def entry(path: str, data: bytes, mode: int = 0o644) -> FileEntry:
    return FileEntry(path=path, size=len(data), mode=mode, head=data[:HEAD_BYTES])


def feed(collector: Collector, files: Mapping[str, bytes]) -> None:
    """Give each file to the collector the way the layer walker does."""
    for path, data in files.items():
        file_entry = entry(path, data)
        want = collector.wants(file_entry)
        if want and len(data) <= want:
            collector.take(file_entry, data)


def detect(
    detector: Detector, files: Mapping[str, bytes], limits: Limits | None = None
) -> list[Component]:
    """The components `detector` finds in a layer holding `files`, sorted by name."""
    collector = detector.collector(ScanContext(limits or Limits()))
    feed(collector, files)
    return sorted(collector.finish(), key=lambda c: (c.name, c.version, c.evidence))


def wanted(detector: Detector, path: str, data: bytes = b"") -> bool:
    return detector.collector(ScanContext(Limits())).wants(entry(path, data)) > 0


def zip_bytes(members: Mapping[str, bytes], *, stored: Iterable[str] = ()) -> bytes:
    """A zip archive (a jar, war, ear...) built in memory."""
    keep = set(stored)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            method = zipfile.ZIP_STORED if name in keep else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=method)
    return buffer.getvalue()


def scan_image(layout: Path, detectors: Sequence[Detector]) -> list[LayerScan]:
    """Each layer of the single image of an OCI layout, walked by `scan_layer`."""
    source = open_path(layout)
    [image] = source.images()
    scans: list[LayerScan] = []
    for layer in image.layers:
        with source.open_blob(layer.digest) as blob:
            scans.append(scan_layer(blob, layer, detectors, Limits()))
    return scans
