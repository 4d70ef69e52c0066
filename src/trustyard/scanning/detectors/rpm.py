"""RPM packages: the sqlite rpmdb of rpm >= 4.16 (`var/lib/rpm/rpmdb.sqlite`, or
`usr/lib/sysimage/rpm/rpmdb.sqlite` on recent Fedora / openSUSE).

The database is opened in memory (`sqlite3.deserialize`), never written to disk. Its
`Packages` table holds one rpm header per package, a blob parsed here:

    int32 il, int32 dl                            (big-endian)
    il index entries of 16 bytes: tag, type, offset, count
    dl bytes of data; an entry's value starts at `offset` in that data

The older Berkeley DB and ndb formats are not read.
"""

from __future__ import annotations

import sqlite3
import stat
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from trustyard.scanning.detectors.os_release import (
    MAX_OS_RELEASE_BYTES,
    OS_RELEASE_PATHS,
    OsReleaseReader,
    os_purl,
    purl_distro,
)
from trustyard.scanning.interfaces import (
    FileEntry,
    OwnershipCollector,
    ScanContext,
    metadata_want,
)
from trustyard.scanning.licenses import spdx_expression
from trustyard.scanning.model import RPM, Component

DETECTOR_NAME = "rpm"
RPMDB_PATHS = frozenset({"var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite"})
SQLITE_MAGIC = b"SQLite format 3\x00"
HEADER_MAGIC = b"\x8e\xad\xe8\x01"

# Header tags and types.
NAME, VERSION, RELEASE, EPOCH = 1000, 1001, 1002, 1003
LICENSE, ARCH, SOURCERPM = 1014, 1022, 1044
OLDFILENAMES, FILEMODES = 1027, 1030
DIRINDEXES, BASENAMES, DIRNAMES = 1116, 1117, 1118
INT16, INT32, STRING, STRING_ARRAY, I18NSTRING = 3, 4, 6, 8, 9
MAX_INDEX_ENTRIES = 1 << 16
_INDEX = struct.Struct(">iIii")  # tag, type, offset, count
_WANTED = frozenset(
    {NAME, VERSION, RELEASE, EPOCH, LICENSE, ARCH, SOURCERPM}
    | {OLDFILENAMES, FILEMODES, DIRINDEXES, BASENAMES, DIRNAMES}
)

Value = str | list[str] | list[int]


def parse_header(blob: bytes) -> dict[int, Value]:
    """The tags of one rpm header blob this detector uses; an entry that points outside the
    blob or has an unexpected type is left out (never an exception)."""
    if blob[:4] == HEADER_MAGIC:
        blob = blob[8:]
    if len(blob) < 8:
        return {}
    index_count, data_length = struct.unpack_from(">II", blob, 0)
    data_start = 8 + 16 * index_count
    data_end = data_start + data_length
    if index_count > MAX_INDEX_ENTRIES or data_end > len(blob):
        return {}
    tags: dict[int, Value] = {}
    for position in range(8, data_start, 16):
        tag, kind, offset, count = _INDEX.unpack_from(blob, position)
        if tag not in _WANTED or offset < 0 or count < 0 or offset >= data_length:
            continue
        value = _value(blob, data_start + offset, data_end, kind, count)
        if value is not None:
            tags[tag] = value
    return tags


def _value(blob: bytes, start: int, end: int, kind: int, count: int) -> Value | None:
    if kind == STRING:
        stop = blob.find(b"\x00", start, end)
        return None if stop < 0 else blob[start:stop].decode("utf-8", "replace")
    if kind in (STRING_ARRAY, I18NSTRING):
        if count > end - start:
            return None
        strings: list[str] = []
        for _ in range(count):
            stop = blob.find(b"\x00", start, end)
            if stop < 0:
                return None
            strings.append(blob[start:stop].decode("utf-8", "replace"))
            start = stop + 1
        return strings
    if kind in (INT16, INT32):
        size = 2 if kind == INT16 else 4
        if start + size * count > end:
            return None
        return list(struct.unpack_from(f">{count}{'H' if kind == INT16 else 'I'}", blob, start))
    return None


def read_rpmdb(data: bytes) -> Iterator[bytes]:
    """The header blobs of an in-memory sqlite rpmdb; nothing for what is not one."""
    if not data.startswith(SQLITE_MAGIC) or len(data) < 100:
        return
    if data[18:20] == b"\x02\x02":
        # WAL mode needs a -shm file; a deserialized database is read in rollback mode.
        data = data[:18] + b"\x01\x01" + data[20:]
    connection = sqlite3.connect(":memory:")
    try:
        connection.deserialize(data)
        rows = connection.execute("SELECT blob FROM Packages ORDER BY hnum")
        for (blob,) in rows:
            if isinstance(blob, bytes):
                yield blob
    except (sqlite3.Error, OverflowError, ValueError, MemoryError):
        return
    finally:
        connection.close()


@dataclass(frozen=True, slots=True)
class RpmPackage:
    name: str
    version: str  # [epoch:]version-release
    epoch: int | None
    version_release: str
    arch: str
    license: str
    source_rpm: str
    files: tuple[str, ...]  # regular files and links, no directories
    paths: tuple[str, ...]  # everything the header lists


def _text(tags: dict[int, Value], tag: int) -> str:
    value = tags.get(tag)
    if isinstance(value, list):
        value = value[0] if value and isinstance(value[0], str) else ""
    return value.strip() if isinstance(value, str) else ""


def _paths(tags: dict[int, Value]) -> tuple[list[str], list[str]]:
    basenames = tags.get(BASENAMES)
    dirnames = tags.get(DIRNAMES)
    indexes = tags.get(DIRINDEXES)
    paths: list[str] = []
    if isinstance(basenames, list) and isinstance(dirnames, list) and isinstance(indexes, list):
        for basename, index in zip(basenames, indexes, strict=False):
            if isinstance(index, int) and index < len(dirnames):
                paths.append(f"{dirnames[index]}{basename}".lstrip("/"))
    else:
        old = tags.get(OLDFILENAMES)
        if isinstance(old, list):
            paths = [str(path).lstrip("/") for path in old]
    modes = tags.get(FILEMODES)
    if isinstance(modes, list) and len(modes) == len(paths):
        files = [
            path
            for path, mode in zip(paths, modes, strict=True)
            if not (isinstance(mode, int) and stat.S_ISDIR(mode))
        ]
    else:
        files = list(paths)
    return [p for p in paths if p], [f for f in files if f]


def package_from_header(tags: dict[int, Value]) -> RpmPackage | None:
    """The package a parsed header describes; None without a name, version or release, and
    for the `gpg-pubkey` pseudo-packages (imported signing keys)."""
    name, version, release = _text(tags, NAME), _text(tags, VERSION), _text(tags, RELEASE)
    if not name or not version or not release or name == "gpg-pubkey":
        return None
    epochs = tags.get(EPOCH)
    epoch = epochs[0] if isinstance(epochs, list) and epochs else None
    epoch = epoch if isinstance(epoch, int) else None
    version_release = f"{version}-{release}"
    full = f"{epoch}:{version_release}" if epoch is not None else version_release
    paths, files = _paths(tags)
    return RpmPackage(
        name=name,
        version=full,
        epoch=epoch,
        version_release=version_release,
        arch=_text(tags, ARCH),
        license=_text(tags, LICENSE),
        source_rpm=_text(tags, SOURCERPM),
        files=tuple(files),
        paths=tuple(paths),
    )


def read_packages(data: bytes) -> list[RpmPackage]:
    packages: list[RpmPackage] = []
    for blob in read_rpmdb(data):
        try:
            package = package_from_header(parse_header(blob))
        except (struct.error, ValueError, OverflowError, MemoryError):
            continue
        if package is not None:
            packages.append(package)
    return packages


class RpmCollector:
    def __init__(self, context: ScanContext) -> None:
        self._context = context
        self._databases: list[tuple[str, list[RpmPackage]]] = []
        self._os = OsReleaseReader()

    def wants(self, entry: FileEntry) -> int:
        path = entry.path
        if path in RPMDB_PATHS:
            limit = self._context.limits.max_rpmdb_bytes
            return metadata_want(entry, limit, "max_rpmdb_bytes")
        if path in OS_RELEASE_PATHS:
            return MAX_OS_RELEASE_BYTES
        return 0

    def take(self, entry: FileEntry, data: bytes) -> None:
        if entry.path in RPMDB_PATHS:
            self._databases.append((entry.path, read_packages(data)))
        else:
            self._os.take(entry.path, data)

    def finish(self) -> Iterable[Component]:
        namespace, distro_qualifiers = purl_distro(self._os.distro(), self._context, "redhat")
        components: list[Component] = []
        for evidence, packages in self._databases:
            for package in packages:
                component = self._component(evidence, package, namespace, distro_qualifiers)
                if component is not None:
                    components.append(component)
        return components

    @staticmethod
    def _component(
        evidence: str, package: RpmPackage, namespace: str, distro_qualifiers: dict[str, str]
    ) -> Component | None:
        epoch = {"epoch": str(package.epoch)} if package.epoch is not None else {}
        purl = os_purl(
            "rpm",
            namespace,
            package.name,
            package.version_release,
            package.arch,
            distro_qualifiers,
            **epoch,
        )
        if purl is None:
            return None
        properties = (("source", package.source_rpm),) if package.source_rpm else ()
        return Component(
            ecosystem=RPM,
            name=package.name,
            version=package.version,
            purl=purl,
            locations=(evidence, *package.files),
            detector=DETECTOR_NAME,
            licenses=spdx_expression(package.license),
            properties=properties,
        )

    def owned_paths(self) -> Iterable[str]:
        for _, packages in self._databases:
            for package in packages:
                yield from package.paths


class RpmDetector:
    name = DETECTOR_NAME

    def collector(self, context: ScanContext) -> OwnershipCollector:
        return RpmCollector(context)


DETECTOR = RpmDetector()
