"""What a scan finds: components, per-layer results and image BOMs (plain data, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The ecosystems components belong to. The first four are the ones the shared test images'
# ground truth uses (`*.packages.tsv`).
DEB = "deb"
PYPI = "pypi"
NPM = "npm"
GOLANG = "golang"
APK = "apk"
RPM = "rpm"
MAVEN = "maven"
GEM = "gem"
COMPOSER = "composer"
NUGET = "nuget"
CARGO = "cargo"
BINARY = "binary"  # a library or tool recognised from its bytes (OpenSSL, zlib, busybox...)

OS_ECOSYSTEMS = frozenset({DEB, APK, RPM})


@dataclass(frozen=True, slots=True)
class Component:
    """One component found in a layer.

    `locations` are paths inside the image (no leading slash, Windows layers without their
    `Files/` prefix), the evidence first: the file the detector read to find the component
    (dpkg's status file, a METADATA file, the Go binary...). `licenses` is an SPDX license
    expression (`LicenseRef-...` for what has no SPDX identifier), or None when unknown.
    """

    ecosystem: str
    name: str
    version: str
    purl: str
    locations: tuple[str, ...]
    detector: str
    licenses: str | None = None
    properties: tuple[tuple[str, str], ...] = ()

    @property
    def evidence(self) -> str:
        return self.locations[0] if self.locations else ""

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """Equal for the same component found at the same place (in any layer)."""
        return (self.ecosystem, self.name, self.version, self.evidence)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ecosystem": self.ecosystem,
            "name": self.name,
            "version": self.version,
            "purl": self.purl,
            "locations": list(self.locations),
            "detector": self.detector,
        }
        if self.licenses:
            data["licenses"] = self.licenses
        if self.properties:
            data["properties"] = dict(self.properties)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Component:
        return cls(
            ecosystem=data["ecosystem"],
            name=data["name"],
            version=data["version"],
            purl=data["purl"],
            locations=tuple(data.get("locations", ())),
            detector=data.get("detector", ""),
            licenses=data.get("licenses"),
            properties=tuple(sorted(data.get("properties", {}).items())),
        )


@dataclass(frozen=True, slots=True)
class Distro:
    """The operating system a layer's `os-release` names."""

    id: str  # "debian", "alpine", "rhel"...
    version_id: str  # "12", "3.19"...
    pretty_name: str = ""

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "version_id": self.version_id, "pretty_name": self.pretty_name}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Distro:
        return cls(data["id"], data.get("version_id", ""), data.get("pretty_name", ""))


@dataclass(slots=True)
class LayerScan:
    """Everything one layer says, on its own. Cached by layer digest: it never depends on the
    layers below it.

    - `whiteouts`: paths this layer deletes (`.wh.NAME`), `opaque_dirs`: directories whose
      lower content it hides (`.wh..wh..opq`).
    - `evidence_paths`: files detectors read (a later layer replacing one of them replaces
      the components found there).
    - `owned_paths`: files OS packages say they own (a binary fingerprint at such a path is the
      package itself, not an extra component).
    - `notes`: what was not examined and why (a file above a detector's size limit...).
    """

    digest: str
    media_type: str
    components: list[Component] = field(default_factory=list)
    whiteouts: list[str] = field(default_factory=list)
    opaque_dirs: list[str] = field(default_factory=list)
    evidence_paths: list[str] = field(default_factory=list)
    owned_paths: list[str] = field(default_factory=list)
    distro: Distro | None = None
    files: int = 0
    uncompressed_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "media_type": self.media_type,
            "components": [c.to_json() for c in self.components],
            "whiteouts": self.whiteouts,
            "opaque_dirs": self.opaque_dirs,
            "evidence_paths": self.evidence_paths,
            "owned_paths": self.owned_paths,
            "distro": self.distro.to_json() if self.distro else None,
            "files": self.files,
            "uncompressed_bytes": self.uncompressed_bytes,
            "notes": self.notes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LayerScan:
        distro = data.get("distro")
        return cls(
            digest=data["digest"],
            media_type=data.get("media_type", ""),
            components=[Component.from_json(c) for c in data.get("components", [])],
            whiteouts=list(data.get("whiteouts", [])),
            opaque_dirs=list(data.get("opaque_dirs", [])),
            evidence_paths=list(data.get("evidence_paths", [])),
            owned_paths=list(data.get("owned_paths", [])),
            distro=Distro.from_json(distro) if distro else None,
            files=int(data.get("files", 0)),
            uncompressed_bytes=int(data.get("uncompressed_bytes", 0)),
            notes=list(data.get("notes", [])),
        )


class ScanRefused(Exception):
    """A layer (or image) that cannot be scanned safely or at all: a decompression bomb, a
    path that escapes the layer, too many entries, an unknown compression... The message says
    which limit or rule, in words an operator can act on."""
