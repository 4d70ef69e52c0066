"""The operating system of a layer, from `os-release` (freedesktop.org format).

`etc/os-release` is usually a symlink to `../usr/lib/os-release`; the walker hands over
regular files only, so both paths are read and `etc/` wins when a layer holds both as files.
The OS package detectors reuse `parse_os_release` for their purl namespace and qualifier.
"""

from __future__ import annotations

from collections.abc import Iterable

from trustyard.scanning.interfaces import DistroCollector, FileEntry, ScanContext
from trustyard.scanning.model import Component, Distro
from trustyard.scanning.purls import purl_text

ETC_OS_RELEASE = "etc/os-release"
LIB_OS_RELEASE = "usr/lib/os-release"
OS_RELEASE_PATHS = frozenset({ETC_OS_RELEASE, LIB_OS_RELEASE})
MAX_OS_RELEASE_BYTES = 64 * 1024

_ESCAPES = {'"': '"', "\\": "\\", "$": "$", "`": "`"}


def _unquote(value: str) -> str:
    """A shell-style value: `"double quoted"` (with backslash escapes), `'single'`, or bare."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        quote, inner = value[0], value[1:-1]
        if quote == "'":
            return inner
        out: list[str] = []
        i = 0
        while i < len(inner):
            char = inner[i]
            if char == "\\" and i + 1 < len(inner) and inner[i + 1] in _ESCAPES:
                out.append(inner[i + 1])
                i += 2
                continue
            out.append(char)
            i += 1
        return "".join(out)
    return value


def parse_fields(data: bytes) -> dict[str, str]:
    """The `KEY=value` assignments of an os-release file (comments and junk skipped)."""
    fields: dict[str, str] = {}
    text = data.decode("utf-8", errors="replace")
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("_", "").isalnum() or not key.isascii():
            continue
        fields[key] = _unquote(value.strip())
    return fields


def parse_os_release(data: bytes) -> Distro | None:
    """The distribution an os-release file names; None when it names nothing (no ID)."""
    fields = parse_fields(data)
    distro_id = fields.get("ID", "").strip().lower()
    if not distro_id:
        return None
    return Distro(
        id=distro_id,
        version_id=fields.get("VERSION_ID", "").strip(),
        pretty_name=fields.get("PRETTY_NAME", "").strip(),
    )


def purl_distro(
    same_layer: Distro | None, context: ScanContext, default: str
) -> tuple[str, dict[str, str]]:
    """An OS package's purl namespace and qualifiers: the distribution's ID (this layer's
    os-release, else the image's if known, else `default`), and `distro=<id>-<version>` only
    when the layer itself holds the os-release (the BOM corrects the rest image-wide)."""
    if same_layer is not None:
        qualifiers = {}
        if same_layer.version_id:
            qualifiers["distro"] = f"{same_layer.id}-{same_layer.version_id}"
        return same_layer.id, qualifiers
    if context.distro is not None and context.distro.id:
        return context.distro.id, {}
    return default, {}


def os_purl(
    purl_type: str,
    namespace: str,
    name: str,
    version: str,
    arch: str | None,
    distro_qualifiers: dict[str, str],
    **qualifiers: str,
) -> str | None:
    """The purl of an OS package (deb, apk, rpm): arch first, then the type's own qualifiers
    (rpm's epoch), then the distro; None when the name or version cannot be a purl."""
    ordered = {"arch": arch} if arch else {}
    ordered.update(qualifiers)
    ordered.update(distro_qualifiers)
    return purl_text(
        type=purl_type, namespace=namespace, name=name, version=version, qualifiers=ordered
    )


class OsReleaseReader:
    """Keeps the os-release files of one layer; `distro()` picks the preferred one. Shared
    by the os-release collector and the OS package collectors."""

    __slots__ = ("_found",)

    def __init__(self) -> None:
        self._found: dict[str, Distro] = {}

    @staticmethod
    def wants_path(path: str) -> bool:
        return path in OS_RELEASE_PATHS

    def take(self, path: str, data: bytes) -> None:
        distro = parse_os_release(data)
        if distro is not None:
            self._found[path] = distro

    def distro(self) -> Distro | None:
        for path in (ETC_OS_RELEASE, LIB_OS_RELEASE):  # etc/ wins
            found = self._found.get(path)
            if found is not None:
                return found
        return None


class _OsReleaseCollector:
    __slots__ = ("_reader",)

    def __init__(self) -> None:
        self._reader = OsReleaseReader()

    def wants(self, entry: FileEntry) -> int:
        return MAX_OS_RELEASE_BYTES if OsReleaseReader.wants_path(entry.path) else 0

    def take(self, entry: FileEntry, data: bytes) -> None:
        self._reader.take(entry.path, data)

    def finish(self) -> Iterable[Component]:
        return ()

    def distro(self) -> Distro | None:
        return self._reader.distro()


class OsReleaseDetector:
    name = "os-release"

    def collector(self, context: ScanContext) -> DistroCollector:
        return _OsReleaseCollector()


DETECTOR = OsReleaseDetector()
