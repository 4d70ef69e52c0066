"""Reading an offline OSV bundle, bounded: a zip (osv.dev's per-ecosystem `all.zip`: one
`<id>.json` per entry), a tar (.tar.gz or plain) or a folder of `.json` files (its top level).

`read_bundle` yields the `.json` entries one at a time, never the whole bundle in memory, and
refuses (`BundleInvalid`, with the rule and the entry) what no real bundle does: more entries
than `BundleLimits.entries`, an entry over `entry_bytes`, more than `total_bytes` in all once
decompressed, a compression ratio past `ratio` (a zip bomb: judged once `ratio_floor` bytes
were read), a name with `..`, an absolute path, a backslash or a NUL, links and devices, and
archives that are truncated or corrupt (CRC errors included). Nothing is ever extracted.
Other entries (a README, folders) are skipped and counted.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from trustyard.vulnerabilities.interfaces import BundleInvalid
from trustyard.vulnerabilities.osv import DEFAULT_LIMITS

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BundleLimits:
    entries: int = 1_000_000
    entry_bytes: int = DEFAULT_LIMITS.record_bytes
    total_bytes: int = 2048 * MiB  # decompressed, every entry counted
    ratio: int = 100  # decompressed / compressed; OSV JSON packs about 5-10 times
    ratio_floor: int = 16 * MiB
    name_chars: int = 1024
    name_depth: int = 16


DEFAULT_BUNDLE_LIMITS = BundleLimits()
_DRIVE = re.compile(r"[A-Za-z]:")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    data: bytes


@dataclass(slots=True)
class Tally:
    """What reading saw: entries, skipped ones, bytes decompressed."""

    entries: int = 0
    skipped: int = 0
    total_bytes: int = 0


def kind_of(path: Path) -> str:
    """zip, tar, or folder; `BundleInvalid` for anything else."""
    if path.is_dir():
        return "folder"
    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError as e:
        raise BundleInvalid(str(path), "format", f"cannot be read: {e.strerror}") from None
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b" or head[257:262] == b"ustar":
        return "tar"
    raise BundleInvalid(str(path), "format", "not a zip, a tar(.gz) or a folder of .json files")


def read_bundle(
    path: Path, limits: BundleLimits = DEFAULT_BUNDLE_LIMITS, tally: Tally | None = None
) -> Iterator[Entry]:
    """The bundle's `.json` entries, in the bundle's order (a folder's by name)."""
    reader = _Reader(str(path), limits, tally if tally is not None else Tally())
    kind = kind_of(path)
    if kind == "folder":
        return reader.folder(path)
    if kind == "zip":
        return reader.zip(path)
    return reader.tar(path)


class _Reader:
    def __init__(self, bundle: str, limits: BundleLimits, tally: Tally) -> None:
        self.bundle = bundle
        self.limits = limits
        self.tally = tally

    def refuse(self, rule: str, message: str, entry: str | None = None) -> BundleInvalid:
        return BundleInvalid(self.bundle, rule, message, entry)

    def count_entry(self) -> None:
        self.tally.entries += 1
        if self.tally.entries > self.limits.entries:
            raise self.refuse("entries", f"more than {self.limits.entries} entries")

    def count_bytes(self, size: int, compressed: int | None, entry: str) -> None:
        tally, limits = self.tally, self.limits
        tally.total_bytes += size
        if tally.total_bytes > limits.total_bytes:
            raise self.refuse(
                "total_bytes", f"more than {limits.total_bytes} bytes once decompressed", entry
            )
        if (
            compressed is not None
            and tally.total_bytes > limits.ratio_floor
            and tally.total_bytes > limits.ratio * max(compressed, 1)
        ):
            raise self.refuse(
                "ratio",
                f"{tally.total_bytes} bytes out of {compressed} compressed, a ratio over "
                f"{limits.ratio} (a zip bomb?)",
                entry,
            )

    def check_size(self, size: int, entry: str) -> None:
        if size > self.limits.entry_bytes:
            raise self.refuse(
                "entry_bytes", f"{size} bytes, over {self.limits.entry_bytes} for one entry", entry
            )

    def name(self, raw: str) -> str:
        """The entry's name, refused if it could point outside the bundle."""
        shown = raw[:200]
        if len(raw) > self.limits.name_chars:
            raise self.refuse("name", f"a name over {self.limits.name_chars} characters", shown)
        if "\x00" in raw or "\\" in raw:
            raise self.refuse("name", "a name with a NUL or a backslash", shown)
        if raw.startswith("/") or _DRIVE.match(raw):
            raise self.refuse("name", "an absolute path", shown)
        parts = [p for p in raw.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self.refuse("name", "a path that leaves the bundle ('..')", shown)
        if len(parts) > self.limits.name_depth:
            raise self.refuse("name", f"more than {self.limits.name_depth} folders deep", shown)
        return "/".join(parts)

    # --- the three kinds ------------------------------------------------------------------

    def folder(self, path: Path) -> Iterator[Entry]:
        with os.scandir(path) as scan:
            dirents = sorted(scan, key=lambda d: d.name)
        for dirent in dirents:
            self.count_entry()
            name = self.name(dirent.name)
            if dirent.is_symlink():
                raise self.refuse("name", "a link (a bundle holds plain files)", name)
            if not dirent.is_file(follow_symlinks=False) or not name.endswith(".json"):
                self.tally.skipped += 1
                continue
            self.check_size(dirent.stat(follow_symlinks=False).st_size, name)
            with open(dirent.path, "rb") as f:
                data = f.read(self.limits.entry_bytes + 1)
            self.check_size(len(data), name)
            self.count_bytes(len(data), None, name)
            yield Entry(name, data)

    def zip(self, path: Path) -> Iterator[Entry]:
        declared = _zip_entry_count(path)
        if declared is None:
            raise self.refuse("corrupt", "a truncated or corrupt zip (no end record)")
        if declared > self.limits.entries:
            raise self.refuse("entries", f"{declared} entries, over {self.limits.entries}")
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise self.refuse("corrupt", f"a truncated or corrupt zip: {e}") from None
        compressed = 0
        with archive:
            for info in archive.infolist():
                self.count_entry()
                name = self.name(info.filename)
                if info.is_dir():
                    continue
                if not name.endswith(".json"):
                    self.tally.skipped += 1
                    compressed += info.compress_size
                    continue
                self.check_size(info.file_size, name)
                try:
                    with archive.open(info) as f:
                        data = f.read(self.limits.entry_bytes + 1)
                except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
                    raise self.refuse("corrupt", f"unreadable: {e}", name) from None
                except (NotImplementedError, RuntimeError) as e:  # a method, encryption
                    raise self.refuse("format", f"unreadable: {e}", name) from None
                self.check_size(len(data), name)
                compressed += info.compress_size
                self.count_bytes(len(data), compressed, name)
                yield Entry(name, data)

    def tar(self, path: Path) -> Iterator[Entry]:
        with path.open("rb") as raw:
            counting = _Counting(raw)
            try:
                archive = tarfile.open(fileobj=io.BufferedReader(counting), mode="r|*")  # noqa: SIM115
            except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
                raise self.refuse("corrupt", f"a truncated or corrupt tar: {e}") from None
            with archive:
                while True:
                    try:
                        member = archive.next()
                    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
                        raise self.refuse("corrupt", f"a truncated or corrupt tar: {e}") from None
                    if member is None:
                        return
                    entry = self.tar_member(archive, member, counting)
                    if entry is not None:
                        yield entry

    def tar_member(
        self, archive: tarfile.TarFile, member: tarfile.TarInfo, counting: _Counting
    ) -> Entry | None:
        self.count_entry()
        name = self.name(member.name)
        if member.isdir():
            return None
        if not member.isreg():
            raise self.refuse("name", "a link or a device (a bundle holds plain files)", name)
        if not name.endswith(".json"):
            self.tally.skipped += 1
            self.count_bytes(member.size, counting.count, name)  # read through when skipped
            return None
        self.check_size(member.size, name)
        try:
            f = archive.extractfile(member)
            data = f.read(self.limits.entry_bytes + 1) if f is not None else b""
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise self.refuse("corrupt", f"unreadable: {e}", name) from None
        if len(data) != member.size:
            raise self.refuse("corrupt", f"{len(data)} bytes of {member.size} (truncated)", name)
        self.count_bytes(len(data), counting.count, name)
        return Entry(name, data)


class _Counting(io.RawIOBase):
    """A file that counts the bytes read from it: the compressed side of a tar.gz."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.inner.read(len(view))
        view[: len(data)] = data
        self.count += len(data)
        return len(data)


_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"


def _zip_entry_count(path: Path) -> int | None:
    """The entry count the zip's end record declares, read before `zipfile` builds an object
    per entry (a hostile zip could declare millions); None without an end record."""
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        tail_size = min(size, 65_535 + 22 + 20)
        f.seek(size - tail_size)
        tail = f.read(tail_size)
        at = tail.rfind(_EOCD)
        if at < 0 or len(tail) - at < 22:
            return None
        count: int = struct.unpack_from("<H", tail, at + 10)[0]
        if count != 0xFFFF or at < 20 or tail[at - 20 : at - 16] != _ZIP64_LOCATOR:
            return count
        (offset,) = struct.unpack_from("<Q", tail, at - 20 + 8)
        f.seek(offset)
        record = f.read(56)
        if len(record) < 40 or record[:4] != _ZIP64_EOCD:
            return None
        count64: int = struct.unpack_from("<Q", record, 32)[0]
        return count64


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def expected_sha256(text: str, bundle: Path) -> str:
    """The digest a SHA-256 file (`sha256sum` output: `<hex>  <name>` lines, or one bare
    digest) gives for `bundle`; `BundleInvalid` when it names none for it."""
    found: list[tuple[str, str | None]] = []
    for line in text.splitlines():
        fields = line.strip().split(maxsplit=1)
        if not fields:
            continue
        if not _SHA256.fullmatch(fields[0]):
            raise BundleInvalid(str(bundle), "sha256", f"not a SHA-256 line: {line[:100]!r}")
        name = fields[1].lstrip("*").strip() if len(fields) > 1 else None
        found.append((fields[0].lower(), name))
    mine = [hexdigest for hexdigest, name in found if name and Path(name).name == bundle.name]
    if mine:
        return mine[0]
    if len(found) == 1:
        return found[0][0]
    raise BundleInvalid(
        str(bundle), "sha256", f"the SHA-256 file names no digest for {bundle.name}"
    )
