"""Debian packages: dpkg's `status` database and the distroless `status.d/` layout.

- `var/lib/dpkg/status`: one paragraph per package; only installed ones count (a `Status`
  whose state is `installed` with the `ok` flag: `install ok installed`, `hold ok
  installed`...; `deinstall ok config-files` and half-installed ones do not).
- `var/lib/dpkg/status.d/<pkg>` (distroless images): one file per package, its control
  paragraph (a `Status` field is optional there); `<pkg>.md5sums` beside it lists the
  package's files (there are no `info/*.list` files in such images).
- `var/lib/dpkg/info/<pkg>[:<arch>].list`: the files each package owns (locations and
  `owned_paths`).
- `usr/share/doc/<pkg>/copyright`: licences, from the machine-readable (DEP-5) `License:`
  lines, else from the `/usr/share/common-licenses/NAME` files an old-style one points to.

The paragraph parser is hand-written: only single-line fields are needed, and it is several
times faster than python-debian's deb822 on a real status file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

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
    check_components,
    metadata_want,
)
from trustyard.scanning.licenses import combine, license_ref, spdx_expression
from trustyard.scanning.model import DEB, Component

DETECTOR_NAME = "dpkg"
STATUS = "var/lib/dpkg/status"
STATUS_D = "var/lib/dpkg/status.d/"
INFO = "var/lib/dpkg/info/"
DPKG_DIR = "var/lib/dpkg/"
DOC = "usr/share/doc/"
COPYRIGHT = "/copyright"
MD5SUMS = ".md5sums"
MAX_COPYRIGHT_BYTES = 4 << 20

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_FIELDS = frozenset({"Package", "Status", "Version", "Architecture", "Source"})


def parse_paragraphs(data: bytes) -> Iterator[dict[str, str]]:
    """The paragraphs of a deb822 file (dpkg status, control files) with their single-line
    fields; continuation lines (descriptions, conffiles...) are skipped."""
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    for block in _PARAGRAPH_BREAK.split(text):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line[0] in " \t#":
                continue
            key, sep, value = line.partition(":")
            if sep and key in _FIELDS:
                fields[key] = value.strip()
        if fields:
            yield fields


def is_installed(status: str | None) -> bool:
    """`<want> <flag> <state>`: the files are there when the state is `installed` and the
    flag `ok` (whatever the selection: install, hold, deinstall, purge)."""
    if status is None:
        return False
    words = status.split()
    return len(words) == 3 and words[1] == "ok" and words[2] == "installed"


# --- licences -------------------------------------------------------------------------------

_GNU = re.compile(r"^(AGPL|LGPL|GPL|GFDL)(-NIV)?-?(\d+(?:\.\d+)?)(\+?)$", re.IGNORECASE)
_GNU_VERSIONS = {
    "GPL": frozenset({"1.0", "2.0", "3.0"}),
    "LGPL": frozenset({"2.0", "2.1", "3.0"}),
    "AGPL": frozenset({"1.0", "3.0"}),
    "GFDL": frozenset({"1.1", "1.2", "1.3"}),
}
_DEBIAN_NAMES = {
    "expat": "MIT",
    "mit": "MIT",
    "mit/x11": "MIT",
    "x11": "X11",
    "apache-2": "Apache-2.0",
    "apache-2.0": "Apache-2.0",
    "artistic": "Artistic-1.0",
    "artistic-1": "Artistic-1.0",
    "artistic-2": "Artistic-2.0",
    "artistic-2.0": "Artistic-2.0",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "bsd-4-clause": "BSD-4-Clause",
    "bsd-4-clause-uc": "BSD-4-Clause-UC",
    "cc0-1.0": "CC0-1.0",
    "isc": "ISC",
    "zlib": "Zlib",
    "mpl-1.1": "MPL-1.1",
    "mpl-2.0": "MPL-2.0",
    "ms-pl": "MS-PL",
    "public-domain": "LicenseRef-public-domain",
}
_EXCEPTIONS = {
    "bison": "Bison-exception-2.2",
    "bison-2.2": "Bison-exception-2.2",
    "linux-syscall-note": "Linux-syscall-note",
    "gcc-runtime-library": "GCC-exception-3.1",
    "classpath": "Classpath-exception-2.0",
    "font": "Font-exception-2.0",
}
_WITH = re.compile(r"^(.*?)\s+with\s+(.+?)\s+exception$", re.IGNORECASE)
# ", and" / ", or" bind looser than plain "and" / "or" (DEP-5 section "License").
_COMMA_OP = re.compile(r",\s*(and|or)\s+", re.IGNORECASE)
_PLAIN_OP = re.compile(r"\s+(and/or|and|or)\s+", re.IGNORECASE)
_COMMON_LICENSE = re.compile(rb"/usr/share/common-licenses/([A-Za-z0-9][A-Za-z0-9.+_-]*)")
_LICENSE_LINE = re.compile(rb"^License:[ \t]*([^\r\n]*)", re.MULTILINE)


def _short_name(name: str) -> str | None:
    """One Debian short licence name (`GPL-2+`, `Expat`, `BSD-3-clause`) -> an SPDX id."""
    name = name.strip().rstrip(".").strip()
    if not name:
        return None
    known = _DEBIAN_NAMES.get(name.lower())
    if known:
        return known
    gnu = _GNU.match(name)
    if gnu:
        family, niv, number, plus = gnu.groups()
        family = family.upper()
        if "." not in number:
            number += ".0"
        if number in _GNU_VERSIONS[family]:
            suffix = "-or-later" if plus else "-only"
            if niv:
                return f"GFDL-{number}-no-invariants{suffix}" if family == "GFDL" else None
            return f"{family}-{number}{suffix}"
    try:
        return spdx_expression(name)
    except Exception:  # a licence we cannot read is not a scan failure
        return license_ref(name)


def _term(term: str) -> str | None:
    term = term.strip()
    with_exception = _WITH.match(term)
    if with_exception:
        base = _short_name(with_exception.group(1))
        exception = _EXCEPTIONS.get(with_exception.group(2).strip().lower())
        if base and exception and not base.startswith("LicenseRef-") and " " not in base:
            return f"{base} WITH {exception}"
        return license_ref(term)
    expression = _short_name(term)
    if expression and " " in expression:
        return f"({expression})"
    return expression


@lru_cache(maxsize=4096)
def debian_license(synopsis: str) -> str | None:
    """A DEP-5 `License:` synopsis (`GPL-2+`, `GPL-1+ or Artistic, and Expat`, `GPL-3+ with
    Bison exception`) -> an SPDX expression; names SPDX does not know become LicenseRef-."""
    groups: list[str] = []
    parts = _COMMA_OP.split(synopsis.strip())
    group_ops = [op.upper() for op in parts[1::2]]
    for group in parts[0::2]:
        tokens = _PLAIN_OP.split(group)
        terms = [_term(t) for t in tokens[0::2]]
        ops = ["OR" if op.lower() == "and/or" else op.upper() for op in tokens[1::2]]
        out: list[str] = []
        for index, term in enumerate(terms):
            if term is None:
                continue
            if out:
                out.append(ops[index - 1] if index - 1 < len(ops) else "AND")
            out.append(term)
        if out:
            groups.append(" ".join(out))
    if not groups:
        return None
    if len(groups) == 1:
        return groups[0]
    joined: list[str] = []
    for index, group in enumerate(groups):
        if joined:
            joined.append(group_ops[index - 1] if index - 1 < len(group_ops) else "AND")
        joined.append(f"({group})" if " " in group else group)
    return " ".join(joined)


def copyright_licenses(data: bytes) -> str | None:
    """The licences a `usr/share/doc/<pkg>/copyright` file declares, as one expression."""
    found: list[str] = []
    if data.lstrip()[:32].lower().startswith((b"format:", b"format-specification:")):
        synopses = dict.fromkeys(match.group(1).strip() for match in _LICENSE_LINE.finditer(data))
        for synopsis in synopses:
            if synopsis:
                expression = debian_license(synopsis.decode("utf-8", errors="replace"))
                if expression:
                    found.append(expression)
    else:
        for match in _COMMON_LICENSE.finditer(data):
            name = match.group(1).decode("ascii", errors="replace").rstrip(".")
            if name:
                expression = _short_name(name)
                if expression:
                    found.append(expression)
    return combine(found)


# --- the collector --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Package:
    name: str
    version: str
    arch: str
    source: str
    evidence: str


def _list_paths(data: bytes) -> list[str]:
    paths: list[str] = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        path = line.strip().lstrip("/")
        if path and path != ".":
            paths.append(path)
    return paths


def _md5sums_paths(data: bytes) -> list[str]:
    """The paths of an md5sums file: `<32 hex digits><two spaces><path>` lines."""
    paths: list[str] = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        digest, _, path = line.partition(" ")
        path = path.strip().lstrip("/")
        if len(digest) == 32 and path and all(c in _HEX for c in digest):
            paths.append(path)
    return paths


_HEX = frozenset("0123456789abcdefABCDEF")


def _files_only(paths: list[str]) -> list[str]:
    """Drop the directories of a `.list` (every path that is the parent of another)."""
    parents: set[str] = set()
    for path in paths:
        head, sep, _ = path.rpartition("/")
        while sep and head not in parents:
            parents.add(head)
            head, sep, _ = head.rpartition("/")
    return [path for path in paths if path not in parents]


class DpkgCollector:
    def __init__(self, context: ScanContext) -> None:
        self._context = context
        self._max = context.limits.max_metadata_bytes
        self._copyright_max = min(context.limits.max_file_bytes, MAX_COPYRIGHT_BYTES)
        self._packages: list[_Package] = []
        self._lists: dict[str, list[str]] = {}
        self._md5sums: dict[str, list[str]] = {}  # distroless status.d/<pkg>.md5sums
        self._copyrights: dict[str, str | None] = {}
        self._os = OsReleaseReader()

    def wants(self, entry: FileEntry) -> int:
        # Called for every file of every layer: the common case (not ours) first and cheap.
        path = entry.path
        if not path.startswith(DPKG_DIR):
            if path.endswith(COPYRIGHT):
                return self._copyright_max if path.startswith(DOC) else 0
            return MAX_OS_RELEASE_BYTES if path in OS_RELEASE_PATHS else 0
        if path == STATUS or path.startswith(STATUS_D):
            return metadata_want(entry, self._max)
        if path.endswith(".list") and path.startswith(INFO):
            return metadata_want(entry, self._max)
        return 0

    def take(self, entry: FileEntry, data: bytes) -> None:
        path = entry.path
        try:
            if path.startswith(STATUS_D) and path.endswith(MD5SUMS):
                key = path[len(STATUS_D) : -len(MD5SUMS)]
                if key and "/" not in key:
                    self._md5sums[key] = _md5sums_paths(data)
            elif path == STATUS or path.startswith(STATUS_D):
                self._take_status(path, data, distroless=path != STATUS)
            elif path.startswith(INFO):
                key = path[len(INFO) : -len(".list")]
                if key and "/" not in key:
                    self._lists[key] = _list_paths(data)
            elif path.startswith(DOC):
                package = path[len(DOC) : -len(COPYRIGHT)]
                if package and "/" not in package:
                    self._copyrights[package] = copyright_licenses(data)
            else:
                self._os.take(path, data)
        except (ValueError, UnicodeError, RecursionError):
            return

    def _take_status(self, path: str, data: bytes, *, distroless: bool) -> None:
        for fields in parse_paragraphs(data):
            name = fields.get("Package", "")
            version = fields.get("Version", "")
            if not name or not version or any(c.isspace() for c in name + version):
                continue
            status = fields.get("Status")
            if not is_installed(status) and not (distroless and status is None):
                continue
            source = fields.get("Source", "")
            self._packages.append(
                _Package(name, version, fields.get("Architecture", ""), source, path)
            )
            limit = self._context.limits.max_layer_components
            check_components(len(self._packages), limit, "the layer", "max_layer_components")

    def _listed(self, package: _Package) -> list[str]:
        if package.arch:
            found = self._lists.get(f"{package.name}:{package.arch}")
            if found is not None:
                return found
        found = self._lists.get(package.name)
        if found is None and package.evidence != STATUS:
            found = self._md5sums.get(package.name)
        return found or []

    def finish(self) -> Iterable[Component]:
        namespace, distro_qualifiers = purl_distro(self._os.distro(), self._context, "debian")
        seen: set[tuple[str, str, str]] = set()
        components: list[Component] = []
        # The status file first: it wins over a stray status.d entry for the same package.
        ordered = sorted(self._packages, key=lambda p: p.evidence != STATUS)
        for package in ordered:
            key = (package.name, package.version, package.arch)
            if key in seen:
                continue
            seen.add(key)
            component = self._component(package, namespace, distro_qualifiers)
            if component is not None:
                components.append(component)
        return components

    def _component(
        self, package: _Package, namespace: str, distro_qualifiers: dict[str, str]
    ) -> Component | None:
        purl = os_purl(
            "deb", namespace, package.name, package.version, package.arch, distro_qualifiers
        )
        if purl is None:
            return None
        properties: list[tuple[str, str]] = []
        if package.source:
            source, _, source_version = package.source.partition(" ")
            properties.append(("source", source))
            source_version = source_version.strip().strip("()")
            if source_version:
                properties.append(("source_version", source_version))
        locations = (package.evidence, *_files_only(self._listed(package)))
        return Component(
            ecosystem=DEB,
            name=package.name,
            version=package.version,
            purl=purl,
            locations=locations,
            detector=DETECTOR_NAME,
            licenses=self._copyrights.get(package.name),
            properties=tuple(sorted(properties)),
        )

    def owned_paths(self) -> Iterable[str]:
        for paths in self._lists.values():
            yield from paths
        for paths in self._md5sums.values():
            yield from paths


class DpkgDetector:
    name = DETECTOR_NAME

    def collector(self, context: ScanContext) -> OwnershipCollector:
        return DpkgCollector(context)


DETECTOR = DpkgDetector()
