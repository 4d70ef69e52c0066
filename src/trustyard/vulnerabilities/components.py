"""Which package of the vulnerability database a BOM component is: the OSV ecosystem (with the
distribution's release for OS packages), the name as advisories write it, and the version.

- Language packages (PyPI, npm, Go, crates.io, Maven, RubyGems, NuGet, Packagist) are matched
  under their own name and version. Go's `stdlib` keeps its toolchain version (`go1.19.8`:
  the Go order reads it).
- OS packages are matched under the distribution's ecosystem (`Debian:12`, `Ubuntu:22.04:LTS`,
  `Alpine:v3.19`, `Rocky Linux:9`, `openSUSE:Leap 15.5`...), through their source package,
  the name and version advisories use:
  - a deb's `Source: name (version)` (dpkg writes the version only when it differs from the
    binary's: a binNMU `5.2.15-2+b13` is source `5.2.15-2`, and `bsdutils 1:2.38.1-5` is
    source `util-linux 2.38.1-5`, without the epoch); without a source version, a binNMU's
    `+bN` is dropped;
  - an apk's origin, at the package's version;
  - an rpm's source RPM (`openssl-3.0.7-24.el9.src.rpm` is `openssl` at `3.0.7-24.el9`), with
    the binary's epoch (the source RPM's name has none; subpackages share their source's).
  `libssl3` is matched as `openssl`. A package of another family than the distribution's (a
  deb on Alpine) is not matched: its versions would be read in the wrong order.
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

from trustyard.vulnerabilities.versions import Scheme, scheme_for

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
# The scanner's OS package ecosystems, each with the version order of its distributions.
OS_ECOSYSTEMS: dict[str, Scheme] = {"deb": Scheme.DPKG, "apk": Scheme.APK, "rpm": Scheme.RPM}
BINARY = "binary"
# The property the scanner sets on such components (scanning.bom.OWNED_BY_OS_PACKAGE: the BOM's
# JSON is the contract, features do not import each other; a test checks the two agree).
OWNED_BY_OS = "owned-by-os-package"

_RELEASE = re.compile(r"(\d+)(?:\.(\d+))?")
_SOURCE_RPM = re.compile(r"(?P<name>.+)-(?P<version>[^-]+-[^-]+)\.(?:no)?src\.rpm")
_BINNMU = re.compile(r"\+b\d+$")
_OPENEULER = re.compile(r"(\d+\.\d+)(?: \(([A-Za-z0-9-]+)\))?")


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
    `Debian:12`), None when OSV has none (or the release is unknown). `version_id` first, the
    release in `pretty_name` when there is none (`Ubuntu 22.04.3 LTS`)."""
    if not distro:
        return None
    ident = str(distro.get("id") or "").lower()
    version = str(distro.get("version_id") or "").strip()
    pretty = str(distro.get("pretty_name") or "").strip()
    if ident in ("wolfi", "chainguard"):
        return ident.capitalize()
    named = _named_release(ident, version, pretty)
    if named is not None:
        return named or None
    release = _RELEASE.match(version) or (_RELEASE.search(pretty) if not version else None)
    if release is None:
        return None
    major, minor = release.group(1), release.group(2)
    if ident == "debian":
        return f"Debian:{major}"
    if ident == "ubuntu" and minor is not None:
        lts = int(major) % 2 == 0 and minor == "04"
        return f"Ubuntu:{major}.{minor}" + (":LTS" if lts else "")
    if ident == "alpine" and minor is not None and "_" not in version:
        return f"Alpine:v{major}.{minor}"  # `3.21.0_alpha2024...` is edge: no release branch
    if ident == "rocky":
        return f"Rocky Linux:{major}"
    if ident == "almalinux":
        return f"AlmaLinux:{major}"
    if ident == "mageia":
        return f"Mageia:{major}"
    return None


def _named_release(ident: str, version: str, pretty: str) -> str | None:
    """The ecosystems named after a product rather than a number: "" when the distribution is
    one of them but its release cannot be told, None for the others."""
    if ident == "opensuse-tumbleweed":
        return "openSUSE:Tumbleweed"
    if ident == "opensuse-leap":
        return f"openSUSE:Leap {version}" if re.fullmatch(r"\d+\.\d+", version) else ""
    if ident in ("sles", "sled"):  # SUSE: the product's marketing name, as os-release has it
        return f"SUSE:{pretty[5:]}" if pretty.startswith("SUSE ") and len(pretty) > 5 else ""
    if ident == "openeuler":  # `openEuler 22.03 (LTS-SP1)` -> `openEuler:22.03-LTS-SP1`
        found = _OPENEULER.search(pretty) or _OPENEULER.match(version)
        if found is None:
            return ""
        return f"openEuler:{found.group(1)}" + (f"-{found.group(2)}" if found.group(2) else "")
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
        if osv is None or scheme_for(osv) != OS_ECOSYSTEMS[ecosystem]:
            return None
        own_version = _os_version(ecosystem, version, component)
        source, source_version = _source(ecosystem, properties, own_version)
        if source is None:
            return Target(osv, name, source_version, Via.PACKAGE)
        return Target(osv, source, source_version, Via.SOURCE)
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
        release = f"{distro.get('id')} {distro.get('version_id') or ''}".strip()
        osv = distro_ecosystem(distro)
        if osv is None:
            return f"no vulnerability database covers {release}"
        if ecosystem in OS_ECOSYSTEMS and scheme_for(osv) != OS_ECOSYSTEMS[ecosystem]:
            return f"a {ecosystem} package on {release}: not one of its packages"
        return "no name or version"
    return f"no vulnerability database covers the {ecosystem!r} ecosystem"


def _source(ecosystem: str, properties: Mapping[str, str], version: str) -> tuple[str | None, str]:
    """The source package (None when the component names none) and the version to look up."""
    source = properties.get("source") or None
    if ecosystem == "deb":
        # dpkg writes `Source: name (version)` when the versions differ (a binNMU, a binary
        # with its own epoch or version); without one, a binNMU's `+bN` is not the source's.
        return source, properties.get("source_version") or _BINNMU.sub("", version)
    if ecosystem == "rpm" and source is not None:
        # openssl-3.0.7-24.el9.src.rpm -> openssl at 3.0.7-24.el9, with the binary's epoch
        parsed = _SOURCE_RPM.fullmatch(source)
        if parsed is None:
            return None, version
        epoch, colon, _ = version.partition(":")
        prefix = f"{epoch}:" if colon and epoch.isdigit() else ""
        return parsed["name"], prefix + parsed["version"]
    return source, version


def _os_version(ecosystem: str, version: str, component: Mapping[str, Any]) -> str:
    """An rpm's version with its epoch (`1:3.0.7-24.el9`) when the purl carries one, as RPM
    advisories write it; deb and apk versions already hold theirs."""
    if ecosystem != "rpm" or ":" in version:
        return version
    purl = str(component.get("purl", ""))
    found = re.search(r"[?&]epoch=(\d+)", purl)
    return f"{found.group(1)}:{version}" if found and found.group(1) != "0" else version
