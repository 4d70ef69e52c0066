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

from trustyard.scanning.model import Component, Distro, ScanRefused

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
    # What one scan may make (a hostile layer is small and lists a great deal). Real images
    # stay far below: debian-minbase has 88 packages and a 77 KB dpkg status file, large
    # images a few thousand components and status files or lock files of a few MB.
    max_metadata_bytes: int = 16 * MIB  # one package list or manifest a detector parses
    max_rpmdb_bytes: int = 128 * MIB  # rpm's database (headers hold every file): ~2,000 pkgs
    max_layer_components: int = 50_000
    max_image_components: int = 50_000  # in one platform's BOM
    max_bom_bytes: int = 64 * MIB  # a scan's BOMs as stored (JSON), every platform together


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


def metadata_want(entry: FileEntry, limit: int, setting: str = "max_metadata_bytes") -> int:
    """What a collector `wants` of a metadata file it parses whole (a package database, a lock
    file, a manifest): the file, or `ScanRefused` when it is larger than `limit` (a package
    list cannot be read in part, and skipping it would hide what the image holds)."""
    if entry.size > limit:
        raise ScanRefused(
            f"{entry.path[:200]} is {entry.size} bytes, more than {limit} (the {setting} limit)"
        )
    return limit


def check_components(count: int, limit: int, where: str, setting: str) -> None:
    """`ScanRefused` once `where` holds more than `limit` components."""
    if count > limit:
        raise ScanRefused(f"{where} has more than {limit} components (the {setting} limit)")


@dataclass(frozen=True, slots=True)
class ScanContext:
    limits: Limits
    distro: Distro | None = None  # the image's, when known before the layer is walked


class Collector(Protocol):
    """One detector's state for one layer."""

    def wants(self, entry: FileEntry) -> int:
        """0 to skip the file, else how many bytes of it the collector needs at most; a file
        larger than that is not read for this collector (the walker notes it). A metadata
        file past its limit refuses the layer instead (`metadata_want`)."""
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
