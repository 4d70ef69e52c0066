"""Alpine packages: apk's database `lib/apk/db/installed`.

One paragraph per installed package, one `X:value` line per field: `P` name, `V` version,
`A` architecture, `L` licence, `o` origin (the source package), `F` a directory and the `R`
files in it (the files the package owns).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

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
from trustyard.scanning.model import APK, Component

DETECTOR_NAME = "apk"
INSTALLED = "lib/apk/db/installed"


@dataclass(slots=True)
class ApkPackage:
    name: str = ""
    version: str = ""
    arch: str = ""
    license: str = ""
    origin: str = ""
    files: list[str] = field(default_factory=list)


def parse_installed(data: bytes) -> Iterator[ApkPackage]:
    """The packages of an apk `installed` database; a paragraph without a name or a
    version is skipped."""
    text = data.decode("utf-8", errors="replace")
    package = ApkPackage()
    directory = ""
    for line in text.splitlines():
        if not line.strip():
            if package.name and package.version:
                yield package
            package = ApkPackage()
            directory = ""
            continue
        if len(line) < 2 or line[1] != ":":
            continue
        key, value = line[0], line[2:].strip()
        if key == "P":
            package.name = value
        elif key == "V":
            package.version = value
        elif key == "A":
            package.arch = value
        elif key == "L":
            package.license = value
        elif key == "o":
            package.origin = value
        elif key == "F":
            directory = value.strip("/")
        elif key == "R" and value:
            package.files.append(f"{directory}/{value}" if directory else value)
    if package.name and package.version:
        yield package


class ApkCollector:
    def __init__(self, context: ScanContext) -> None:
        self._context = context
        self._packages: list[ApkPackage] = []
        self._os = OsReleaseReader()

    def wants(self, entry: FileEntry) -> int:
        path = entry.path
        if path == INSTALLED:
            return metadata_want(entry, self._context.limits.max_metadata_bytes)
        if path in OS_RELEASE_PATHS:
            return MAX_OS_RELEASE_BYTES
        return 0

    def take(self, entry: FileEntry, data: bytes) -> None:
        if entry.path == INSTALLED:
            self._packages = [
                package
                for package in parse_installed(data)
                if not any(c.isspace() for c in package.name + package.version)
            ]
        else:
            self._os.take(entry.path, data)

    def finish(self) -> Iterable[Component]:
        namespace, distro_qualifiers = purl_distro(self._os.distro(), self._context, "alpine")
        components: list[Component] = []
        for package in self._packages:
            purl = os_purl(
                "apk", namespace, package.name, package.version, package.arch, distro_qualifiers
            )
            if purl is None:
                continue
            properties = (("source", package.origin),) if package.origin else ()
            components.append(
                Component(
                    ecosystem=APK,
                    name=package.name,
                    version=package.version,
                    purl=purl,
                    locations=(INSTALLED, *package.files),
                    detector=DETECTOR_NAME,
                    licenses=spdx_expression(package.license),
                    properties=properties,
                )
            )
        return components

    def owned_paths(self) -> Iterable[str]:
        for package in self._packages:
            yield from package.files


class ApkDetector:
    name = DETECTOR_NAME

    def collector(self, context: ScanContext) -> OwnershipCollector:
        return ApkCollector(context)


DETECTOR = ApkDetector()
