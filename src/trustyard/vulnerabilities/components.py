"""Which package of the vulnerability database a BOM component is: the OSV ecosystem (with the
distribution's release for OS packages), the name as advisories write it, and the version.

- Language packages (PyPI, npm, Go, crates.io, Maven, RubyGems, NuGet, Packagist) are matched
  under their own name and version. Go's `stdlib` keeps its toolchain version (`go1.19.8`:
  the Go order reads it).
- OS packages are matched under the distribution's ecosystem (`Debian:12`, `Ubuntu:22.04:LTS`,
  `Alpine:v3.19`, `Rocky Linux:9`...), through their source package, the name advisories use
  (a deb's `Source:` and its version, an apk's origin, an rpm's source RPM): `libssl3` is
  matched as `openssl`.
- A language package that an OS package installed (the scanner marks it `owned-by-os-package`)
  is matched through that OS package only: distributions backport fixes without changing the
  upstream version, so the language ecosystem's advisories would be noise. The BOM still lists it.
- A component found only by a binary fingerprint (OpenSSL, zlib, busybox... in a file no package
  owns) is matched under the image's distribution by name and upstream version, and says so.

`target_of` answers None for what no database covers (an OS package of a distribution without
an OSV ecosystem here, an unknown ecosystem): `reason_untargeted` says why, for the report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# The scanner's ecosystems (scanning/model.py) that advisories cover under their own names.
LANGUAGE_ECOSYSTEMS: dict[str, str] = {
    "pypi": "PyPI",
    "npm": "npm",
    "golang": "Go",
    "cargo": "crates.io",
    "maven": "Maven",
    "gem": "RubyGems",
    "nuget": "NuGet",
    "composer": "Packagist",
}
OS_ECOSYSTEMS = frozenset({"deb", "apk", "rpm"})
BINARY = "binary"
OWNED_BY_OS = "owned-by-os-package"  # the property the scanner sets on such components

_RELEASE = re.compile(r"(\d+)(?:\.(\d+))?")
_SOURCE_RPM = re.compile(r"(.+)-[^-]+-[^-]+\.(?:no)?src\.rpm")


class Via(StrEnum):
    """How a component met its advisories."""

    PACKAGE = "package"  # its own name and version
    SOURCE = "source-package"  # an OS package through its source package
    FINGERPRINT = "fingerprint"  # a binary recognised from its bytes, by upstream version


@dataclass(frozen=True, slots=True)
class Target:
    """What to look a component up as: `ecosystem` as OSV writes it (with the release),
    `name` and `version` as its advisories write them."""

    ecosystem: str
    name: str
    version: str
    via: Via


def distro_ecosystem(distro: Mapping[str, Any] | None) -> str | None:
    """The OSV ecosystem of a distribution release (`{"id": "debian", "version_id": "12"}` ->
    `Debian:12`), None when OSV has none (or the release is unknown)."""
    if not distro:
        return None
    ident = str(distro.get("id") or "").lower()
    version = str(distro.get("version_id") or "")
    release = _RELEASE.match(version)
    major = release.group(1) if release else None
    minor = release.group(2) if release else None
    if ident in ("wolfi", "chainguard"):
        return ident.capitalize()
    if major is None:
        return None
    if ident == "debian":
        return f"Debian:{major}"
    if ident == "ubuntu" and minor is not None:
        lts = int(major) % 2 == 0 and minor == "04"
        return f"Ubuntu:{major}.{minor}" + (":LTS" if lts else "")
    if ident == "alpine" and minor is not None:
        return f"Alpine:v{major}.{minor}"
    if ident == "rocky":
        return f"Rocky Linux:{major}"
    if ident == "almalinux":
        return f"AlmaLinux:{major}"
    return None


def target_of(component: Mapping[str, Any], distro: Mapping[str, Any] | None) -> Target | None:
    """The database package of one BOM component (its JSON, as `Component.to_json` writes
    it), under the image's distribution `distro` (`Distro.to_json`)."""
    ecosystem = component.get("ecosystem", "")
    name = component.get("name", "")
    version = component.get("version", "")
    properties = component.get("properties") or {}
    if not name or not version:
        return None
    language = LANGUAGE_ECOSYSTEMS.get(ecosystem)
    if language is not None:
        if properties.get(OWNED_BY_OS) == "true":
            return None
        return Target(language, name, version, Via.PACKAGE)
    if ecosystem in OS_ECOSYSTEMS:
        osv = distro_ecosystem(distro)
        if osv is None:
            return None
        source, source_version = _source(ecosystem, properties)
        if source is None:
            return Target(osv, name, _os_version(ecosystem, version, component), Via.PACKAGE)
        found = source_version or _os_version(ecosystem, version, component)
        return Target(osv, source, found, Via.SOURCE)
    if ecosystem == BINARY:
        osv = distro_ecosystem(distro)
        if osv is None:
            return None
        return Target(osv, name, version, Via.FINGERPRINT)
    return None


def reason_untargeted(component: Mapping[str, Any], distro: Mapping[str, Any] | None) -> str:
    """Why `target_of` answered None for `component`, in a few words."""
    ecosystem = component.get("ecosystem", "")
    if ecosystem in LANGUAGE_ECOSYSTEMS:
        if (component.get("properties") or {}).get(OWNED_BY_OS) == "true":
            return "installed by an OS package: matched through that package"
        return "no name or version"
    if ecosystem in OS_ECOSYSTEMS or ecosystem == BINARY:
        if not distro:
            return "the image's distribution is unknown"
        return f"no vulnerability database covers {distro.get('id')} {distro.get('version_id')}"
    return f"no vulnerability database covers the {ecosystem!r} ecosystem"


def _source(ecosystem: str, properties: Mapping[str, str]) -> tuple[str | None, str | None]:
    source = properties.get("source")
    if not source:
        return None, None
    if ecosystem == "rpm":  # openssl-3.0.7-24.el9.src.rpm -> openssl
        parsed = _SOURCE_RPM.fullmatch(source)
        return (parsed.group(1) if parsed else None), None
    return source, properties.get("source_version") or None


def _os_version(ecosystem: str, version: str, component: Mapping[str, Any]) -> str:
    """An rpm's version with its epoch (`1:3.0.7-24.el9`) when the purl carries one, as RPM
    advisories write it; deb and apk versions already hold theirs."""
    if ecosystem != "rpm" or ":" in version:
        return version
    purl = str(component.get("purl", ""))
    found = re.search(r"[?&]epoch=(\d+)", purl)
    return f"{found.group(1)}:{version}" if found and found.group(1) != "0" else version
