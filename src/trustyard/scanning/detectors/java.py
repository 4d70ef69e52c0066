"""Java archives: jar, war, ear and Jenkins plugins (jpi, hpi), nested archives included.

Each `META-INF/maven/<group>/<artifact>/pom.properties` of an archive is one component (a
shaded jar holds several); an archive without any is named by its `META-INF/MANIFEST.MF`
(or its file name). Archives inside archives (`WEB-INF/lib/*.jar` in a war, wars and jars
in an ear, `BOOT-INF/lib/*.jar` in a Spring Boot jar) are read from memory, up to
`Limits.max_nesting` levels, within a budget of decompressed bytes per archive of the layer
(zip bombs: a member too large, or compressed too well, is skipped and noted). A nested
component's location names the path inside its archives: `app.ear!/web.war!/WEB-INF/lib/x.jar`.
Maven components are named `group:artifact`, the way vulnerability databases name them.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field

from trustyard.scanning.interfaces import Collector, Detector, FileEntry, Limits, ScanContext
from trustyard.scanning.licenses import spdx_expression
from trustyard.scanning.model import MAVEN, Component
from trustyard.scanning.purls import purl_text

ARCHIVE_SUFFIXES = (".jar", ".war", ".ear", ".jpi", ".hpi", ".JAR", ".WAR", ".EAR")
# A zip's first local header; an executable Spring Boot jar starts with its launch script.
_HEADS = (b"PK\x03\x04", b"#!")
METADATA_MAX_BYTES = 1 << 20  # a pom.properties or MANIFEST.MF larger than this is not one
RATIO_FLOOR_BYTES = 1 << 20  # members smaller than this are never refused for their ratio
_MANIFEST = "META-INF/MANIFEST.MF"
_POM_PREFIX = "META-INF/maven/"


def parse_properties(data: bytes) -> dict[str, str]:
    """A Java .properties file (`key=value`, `key: value`, `#` and `!` comments)."""
    fields: dict[str, str] = {}
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        cuts = [i for i in (line.find("="), line.find(":")) if i >= 0]
        if not cuts:
            continue
        cut = min(cuts)
        fields[line[:cut].strip()] = line[cut + 1 :].strip()
    return fields


def parse_manifest(data: bytes) -> dict[str, str]:
    """The main section of a MANIFEST.MF (continuation lines start with one space)."""
    fields: dict[str, str] = {}
    last: str | None = None
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] == " ":
            if last is not None:
                fields[last] += line[1:]
            continue
        key, sep, value = line.partition(":")
        if not sep:
            last = None
            continue
        last = key.strip()
        fields[last] = value.strip()
    return {k: v.strip() for k, v in fields.items()}


def split_file_name(file_name: str) -> tuple[str, str]:
    """`commons-lang3-3.12.0.jar` -> (`commons-lang3`, `3.12.0`): the version starts at the
    last `-` followed by a digit; ("name", "") when there is none."""
    stem = file_name.rpartition("/")[2]
    dot = stem.rfind(".")
    if dot > 0:
        stem = stem[:dot]
    for i in range(len(stem) - 2, 0, -1):
        if stem[i] == "-" and stem[i + 1].isdigit():
            return stem[:i], stem[i + 1 :]
    return stem, ""


def purl_for(group: str, artifact: str, version: str) -> str | None:
    return purl_text(type="maven", namespace=group or None, name=artifact, version=version or None)


def _identifier(value: str | None) -> str:
    value = (value or "").strip()
    return "" if not value or any(c.isspace() for c in value) else value


def _bundle_license(manifest: dict[str, str]) -> str | None:
    text = manifest.get("Bundle-License", "").split(";")[0].strip()
    if not text or "://" in text:
        return None  # a URL names a licence text, not an identifier
    return spdx_expression(text)


@dataclass
class _Walk:
    """One archive of the layer and everything nested in it."""

    limits: Limits
    budget: int  # decompressed bytes still allowed
    components: list[Component] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def archive(self, location: str, data: bytes, depth: int) -> None:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                self._members(archive, location, depth)
        except Exception:
            self.notes.append(f"{location}: not a readable Java archive")

    def _members(self, archive: zipfile.ZipFile, location: str, depth: int) -> None:
        poms: list[zipfile.ZipInfo] = []
        manifest_info: zipfile.ZipInfo | None = None
        nested: list[zipfile.ZipInfo] = []
        for info in archive.infolist():
            name = info.filename
            if name.endswith("/pom.properties") and name.startswith(_POM_PREFIX):
                poms.append(info)
            elif name == _MANIFEST:
                manifest_info = info
            elif name.endswith(ARCHIVE_SUFFIXES) and not info.is_dir():
                nested.append(info)
        manifest: dict[str, str] = {}
        if manifest_info is not None:
            data = self._read(archive, manifest_info, location, METADATA_MAX_BYTES)
            manifest = parse_manifest(data) if data is not None else {}
        found = 0
        seen: set[tuple[str, str, str]] = set()
        for info in poms:
            data = self._read(archive, info, location, METADATA_MAX_BYTES)
            props = parse_properties(data) if data is not None else {}
            group = props.get("groupId", "")
            artifact = props.get("artifactId", "")
            version = props.get("version", "")
            if not artifact or (group, artifact, version) in seen:
                continue
            seen.add((group, artifact, version))
            license = _bundle_license(manifest) if len(poms) == 1 else None
            found += self._add(group, artifact, version, license, location, info.filename)
        if not found and manifest:
            self._from_manifest(manifest, location)
        for info in nested:
            inner = f"{location}!/{info.filename}"
            if depth >= self.limits.max_nesting:
                self.notes.append(
                    f"{inner}: archive nested deeper than {self.limits.max_nesting} levels"
                    " not examined"
                )
                continue
            data = self._read(archive, info, location, self.limits.max_file_bytes)
            if data is not None and data.startswith(_HEADS):
                self.archive(inner, data, depth + 1)

    def _from_manifest(self, manifest: dict[str, str], location: str) -> None:
        file_name, file_version = split_file_name(location.rpartition("!/")[2])
        if manifest.get("Short-Name"):  # a Jenkins plugin
            artifact = _identifier(manifest.get("Short-Name"))
            group = _identifier(manifest.get("Group-Id"))
            version = manifest.get("Plugin-Version", "")
        else:
            symbolic = manifest.get("Bundle-SymbolicName", "").split(";")[0]
            titles = (
                symbolic,
                manifest.get("Implementation-Title"),
                manifest.get("Specification-Title"),
            )
            named = next((t for t in map(_identifier, titles) if t), "")
            artifact = file_name if file_version or not named else named
            group = _identifier(manifest.get("Implementation-Vendor-Id"))
            version = (
                manifest.get("Implementation-Version")
                or manifest.get("Bundle-Version")
                or manifest.get("Specification-Version")
                or ""
            )
        version = _identifier(version) or file_version
        if artifact and version:
            self._add(group, artifact, version, _bundle_license(manifest), location, "")

    def _add(
        self, group: str, artifact: str, version: str, license: str | None, at: str, member: str
    ) -> int:
        purl = purl_for(group, artifact, version)
        if purl is None:
            return 0
        locations = (at, f"{at}!/{member}") if member else (at,)
        self.components.append(
            Component(
                ecosystem=MAVEN,
                name=f"{group}:{artifact}" if group else artifact,
                version=version,
                purl=purl,
                locations=locations,
                detector=JavaDetector.name,
                licenses=license,
            )
        )
        return 1

    def _read(
        self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, location: str, cap: int
    ) -> bytes | None:
        size = info.file_size
        where = f"{location}!/{info.filename}"
        if size > cap or size > self.budget:
            self.notes.append(f"{where}: {size} bytes uncompressed, over the limit, not read")
            return None
        ratio = size // max(info.compress_size, 1)
        if size > RATIO_FLOOR_BYTES and ratio > self.limits.max_ratio:
            self.notes.append(f"{where}: compression ratio {ratio}:1, not read")
            return None
        self.budget -= size
        try:
            with archive.open(info) as member:
                return member.read(size)  # never more than the declared size
        except Exception:
            return None


class _JavaCollector:
    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._components: list[Component] = []
        self._notes: list[str] = []

    def wants(self, entry: FileEntry) -> int:
        if entry.path.endswith(ARCHIVE_SUFFIXES) and entry.head.startswith(_HEADS):
            return self._limits.max_file_bytes
        return 0

    def take(self, entry: FileEntry, data: bytes) -> None:
        walk = _Walk(self._limits, self._limits.max_file_bytes)
        walk.archive(entry.path, data, 0)
        self._components.extend(walk.components)
        self._notes.extend(walk.notes)

    def finish(self) -> Iterable[Component]:
        return self._components

    def notes(self) -> list[str]:
        """What was not examined inside the layer's archives, and why."""
        return self._notes


class JavaDetector:
    name = "java"

    def collector(self, context: ScanContext) -> Collector:
        return _JavaCollector(context.limits)


DETECTOR: Detector = JavaDetector()
