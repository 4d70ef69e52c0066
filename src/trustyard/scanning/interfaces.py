"""The seams of the scanner: what a detector sees of a layer, and the limits every part obeys.

A layer is walked once, as a stream. For every regular file the walker builds a `FileEntry`
(path, size, mode and the first bytes), asks each detector's collector whether it `wants` the
file, reads the content once if any does (at most the largest size asked for), and hands the
same bytes to each of them. When the layer ends, each collector's `finish` returns the
components it found. A collector lives for one layer, so a detector that needs several files
(dpkg's status file and its `info/*.list` files) gathers them and decides in `finish`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from trustyard.scanning.model import Component, Distro

HEAD_BYTES = 64  # what `FileEntry.head` holds: enough for every magic number we look for
MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Limits:
    """What a scan accepts before it refuses a layer (a hostile or absurd one) with
    `ScanRefused`. Defaults fit real images; every value is a setting (scanning.*)."""

    max_layer_bytes: int = 32 << 30  # uncompressed size of one layer
    max_ratio: int = 1000  # uncompressed : compressed, checked beyond `ratio_floor_bytes`
    ratio_floor_bytes: int = 256 * MIB
    max_entries: int = 500_000  # tar entries in one layer
    max_path_bytes: int = 4096
    max_path_depth: int = 256  # directory levels
    max_nesting: int = 4  # archives inside archives (a jar in a war in an ear...)
    max_file_bytes: int = 512 * MIB  # the most any detector reads of one file
    max_symlink_hops: int = 40


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A regular file of a layer, before its content is read."""

    path: str  # normalised: no leading "/" or "./", no "..", Windows' "Files/" prefix removed
    size: int
    mode: int
    head: bytes  # the first HEAD_BYTES bytes (fewer for a smaller file)

    @property
    def executable(self) -> bool:
        return bool(self.mode & 0o111)

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]


@dataclass(frozen=True, slots=True)
class ScanContext:
    limits: Limits
    distro: Distro | None = None  # the image's, when known before the layer is walked


class Collector(Protocol):
    """One detector's state for one layer."""

    def wants(self, entry: FileEntry) -> int:
        """0 to skip the file, else how many bytes of it the collector needs at most; a file
        larger than that is not read for this collector (the walker notes it)."""
        ...

    def take(self, entry: FileEntry, data: bytes) -> None:
        """The whole content of a file this collector wanted."""
        ...

    def finish(self) -> Iterable[Component]:
        """The components found in the layer."""
        ...


class Detector(Protocol):
    """One kind of component: dpkg, Python, Go binaries... Stateless; `collector` starts a
    layer. `name` is stable (it is stored with each component)."""

    name: str

    def collector(self, context: ScanContext) -> Collector: ...


class OwnershipCollector(Collector, Protocol):
    """A collector of OS packages, which also knows which files its packages own."""

    def owned_paths(self) -> Iterable[str]: ...


class DistroCollector(Collector, Protocol):
    """A collector that recognises the operating system (`os-release`)."""

    def distro(self) -> Distro | None: ...
