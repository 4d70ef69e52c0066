"""OS packages matched against real package versions, through the one matching path
(`findings.image_components` -> an `Index` -> `findings.match`).

The debian-minbase test image is scanned as the scanner scans it (Scanner over its OCI
layout); small OSV records (Debian:12, source packages named as Debian names them) are built
here around its real versions: a fix backported below the upstream fix, binary packages met
through their source package (dpkg's `Source:` field), dpkg's `~`, epochs and binNMUs. Every
record is checked both ways, for the whole image: exactly the expected (record, package)
pairs match, in memory and from the database (SQLite and PostgreSQL, imported as an offline
bundle).

Alpine (apk origin) and RPM (source RPM, epoch) images do not exist among the test images:
their layers are built here and scanned by the same detectors (the rpmdb is the real one of
tests/unit/scanning/detectors/test_rpm.py). A dist-info that a deb owns is matched through
the deb, never as PyPI; the python-app image's pip packages stay PyPI's.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.databases import migrated_engine
from tests.support.images import image_layout
from tests.unit.scanning.detectors.test_rpm import RPMDB, SPECS, _build_rpmdb
from tests.unit.scanning.layerkit import FIXTURES, OCI_TAR, file, layer_ref, scan_bytes, tar_bytes
from trustyard.db.engine import read_tx
from trustyard.scanning.bom import OWNED_BY_OS_PACKAGE, assemble
from trustyard.scanning.detectors import default_detectors
from trustyard.scanning.scanner import MemoryLayerCache, Scanner
from trustyard.scanning.sources import ImageRef, open_path
from trustyard.vulnerabilities.components import Via
from trustyard.vulnerabilities.findings import image_components, match, packages
from trustyard.vulnerabilities.importer import Importer
from trustyard.vulnerabilities.index import Index
from trustyard.vulnerabilities.interfaces import ImageFinding
from trustyard.vulnerabilities.osv import parse_record
from trustyard.vulnerabilities.service import VulnerabilityService

Bom = dict[str, Any]
DEBIAN_12 = "Debian:12"


def record(
    osv_id: str,
    name: str,
    events: Sequence[Mapping[str, str]] = (),
    *,
    ecosystem: str = DEBIAN_12,
    versions: Sequence[str] = (),
) -> dict[str, Any]:
    """An OSV record with one affected package: an ECOSYSTEM range of `events`, or explicit
    `versions`."""
    affected: dict[str, Any] = {"package": {"ecosystem": ecosystem, "name": name}}
    if events:
        affected["ranges"] = [{"type": "ECOSYSTEM", "events": list(events)}]
    if versions:
        affected["versions"] = list(versions)
    return {"id": osv_id, "modified": "2026-11-01T00:00:00Z", "affected": [affected]}


def fixed(version: str) -> list[dict[str, str]]:
    return [{"introduced": "0"}, {"fixed": version}]


def last_affected(version: str) -> list[dict[str, str]]:
    return [{"introduced": "0"}, {"last_affected": version}]


def scan_layout(name: str) -> list[Bom]:
    source = open_path(image_layout(name))
    scanner = Scanner(cache=MemoryLayerCache())
    return [
        assemble(image, scanner.scan_image(source, image)).to_json() for image in source.images()
    ]


def scan_layers(*members: list[Any]) -> Bom:
    """An image of these layers (tar members), scanned by every detector."""
    blobs = [tar_bytes(layer) for layer in members]
    scans = [scan_bytes(blob, default_detectors(), media_type=OCI_TAR) for blob in blobs]
    refs = tuple(layer_ref(blob, OCI_TAR) for blob in blobs)
    image = ImageRef("sha256:" + "f" * 64, "linux/amd64", "linux", refs, {})
    return assemble(image, scans).to_json()


def matched(findings: list[ImageFinding]) -> dict[str, set[str]]:
    """vulnerability id -> the BOM package names it matched"""
    found: dict[str, set[str]] = defaultdict(set)
    for finding in findings:
        found[finding.vuln_id].add(finding.component.name)
    return dict(found)


def bom_component(bom: Bom, name: str) -> dict[str, Any]:
    return next(c for c in bom["components"] if c["name"] == name)


# --- debian-minbase ----------------------------------------------------------------------------

UTIL_LINUX = {
    "bsdutils",  # 1:2.38.1-5+deb12u3, source version 2.38.1-5+deb12u3 (no epoch)
    "libblkid1",
    "libmount1",
    "libsmartcols1",
    "libuuid1",
    "mount",
    "util-linux",
    "util-linux-extra",
}
SYSTEMD = {"libsystemd0", "libudev1"}  # 252.39-1~deb12u2
GLIBC = {"libc6", "libc-bin"}  # 2.36-9+deb12u14

# (record, the image's packages it must match: an empty set says "matches nothing")
MINBASE_CASES: list[tuple[dict[str, Any], set[str]]] = [
    # (a) Backported fixes. Upstream fixed these in glibc 2.39 and systemd 256; Debian 12
    # backported the fixes into its own revisions, which the image has: not affected.
    (record("DEB-GLIBC-BACKPORTED", "glibc", fixed("2.36-9+deb12u14")), set()),
    (record("DEB-GLIBC-LATER", "glibc", fixed("2.36-9+deb12u15")), GLIBC),
    (record("DEB-SYSTEMD-BACKPORTED", "systemd", fixed("252.39-1~deb12u2")), set()),
    (record("DEB-SYSTEMD-EARLIER", "systemd", fixed("252.39-1~deb12u1")), set()),
    # (b) Binary packages through their source package (dpkg's Source: field): libgnutls30
    # is gnutls28's, eight binaries are util-linux's. Advisories never name the binary.
    (record("DEB-GNUTLS", "gnutls28", fixed("3.7.9-2+deb12u8")), {"libgnutls30"}),
    (record("DEB-GNUTLS-BINARY-NAME", "libgnutls30", fixed("3.7.9-2+deb12u8")), set()),
    (record("DEB-UTIL-LINUX", "util-linux", fixed("2.38.1-5+deb12u4")), UTIL_LINUX),
    (record("DEB-UTIL-LINUX-FIXED", "util-linux", fixed("2.38.1-5+deb12u3")), set()),
    (
        record("DEB-PAM", "pam", fixed("1.5.2-6+deb12u3")),
        {"libpam-modules", "libpam-modules-bin", "libpam-runtime", "libpam0g"},
    ),
    (
        record("DEB-E2FS", "e2fsprogs", versions=["1.47.0-2"]),
        {
            "e2fsprogs",
            "libcom-err2",
            "libext2fs2",
            "libss2",
            "logsave",  # binNMUs +b2
        },
    ),
    # (c) dpkg's `~`: 252.39-1~deb12u2 sorts before 252.39-1 (the version in unstable)
    (record("DEB-SYSTEMD-SID", "systemd", fixed("252.39-1")), SYSTEMD),
    (record("DEB-DEBIANUTILS", "debianutils", fixed("5.7-0.5")), {"debianutils"}),
    (record("DEB-DEBIANUTILS-FIXED", "debianutils", fixed("5.7-0.5~deb12u1")), set()),
    (record("DEB-USRMERGE", "usrmerge", fixed("37~deb12u2")), {"usr-is-merged"}),
    # epochs: zlib is 1:1.2.13.dfsg-1; a version without the epoch is below it
    (record("DEB-ZLIB", "zlib", fixed("1:1.2.13.dfsg-2")), {"zlib1g"}),
    (record("DEB-ZLIB-NO-EPOCH", "zlib", fixed("1.3.1-1")), set()),
    (record("DEB-ZLIB-FIXED", "zlib", fixed("1:1.2.13.dfsg-1")), set()),
    (record("DEB-GMP", "gmp", fixed("2:6.2.1+dfsg1-1.1+deb12u1")), {"libgmp10"}),
    (record("DEB-GMP-NO-EPOCH", "gmp", fixed("6.3.0+dfsg-2")), set()),
    (record("DEB-SHADOW", "shadow", fixed("1:4.13+dfsg1-1+deb12u3")), {"login", "passwd"}),
    # binNMUs: bash 5.2.15-2+b13 is source bash 5.2.15-2; libcap2 1:2.66-4+deb12u3+b1 is
    # 1:2.66-4+deb12u3 (the binary's +bN is past a last_affected that names the source)
    (record("DEB-BASH", "bash", last_affected("5.2.15-2")), {"bash"}),
    (record("DEB-BASH-FIXED", "bash", fixed("5.2.15-2")), set()),
    (record("DEB-LIBCAP2", "libcap2", last_affected("1:2.66-4+deb12u3")), {"libcap2"}),
    (record("DEB-LIBCAP2-FIXED", "libcap2", fixed("1:2.66-4+deb12u3")), set()),
    # another release's record is not this image's
    (record("DEB11-GLIBC", "glibc", fixed("2.36-9+deb12u99"), ecosystem="Debian:11"), set()),
    (record("PYPI-NOT-DEBIAN", "bash", fixed("9"), ecosystem="PyPI"), set()),
]
MINBASE_RECORDS = [r for r, _ in MINBASE_CASES]
MINBASE_EXPECTED = {r["id"]: names for r, names in MINBASE_CASES if names}


@pytest.fixture(scope="module")
def minbase() -> Bom:
    (bom,) = scan_layout("debian-minbase")
    return bom


def memory_index(records: list[dict[str, Any]]) -> Index:
    return Index.of(parse_record(json.dumps(r).encode()) for r in records)


@pytest.fixture(scope="module", params=["memory", "sqlite", "postgres"])
def minbase_findings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, minbase: Bom
) -> Iterator[list[ImageFinding]]:
    components, _ = image_components([minbase])
    if request.param == "memory":
        yield match(memory_index(MINBASE_RECORDS), components)
        return
    bundle = tmp_path_factory.mktemp("debian-bundle")
    for r in MINBASE_RECORDS:
        (bundle / f"{r['id']}.json").write_text(json.dumps(r))
    with migrated_engine(request, tmp_path_factory, request.param) as engine:
        report = Importer(engine).import_bundle(bundle, source="debian")
        assert report.records == len(MINBASE_RECORDS)
        with read_tx(engine) as conn:
            index = VulnerabilityService().index_for(conn, packages(components))
        yield match(index, components)


def test_the_scanned_image_holds_the_versions_the_records_are_built_around(minbase: Bom) -> None:
    assert minbase["distro"]["id"] == "debian"
    assert minbase["distro"]["version_id"] == "12"
    versions = {c["name"]: (c["version"], c.get("properties", {})) for c in minbase["components"]}
    assert versions["libc6"] == ("2.36-9+deb12u14", {"source": "glibc"})
    assert versions["libgnutls30"] == ("3.7.9-2+deb12u7", {"source": "gnutls28"})
    assert versions["libsystemd0"] == ("252.39-1~deb12u2", {"source": "systemd"})
    assert versions["bsdutils"] == (
        "1:2.38.1-5+deb12u3",
        {"source": "util-linux", "source_version": "2.38.1-5+deb12u3"},
    )
    assert versions["bash"] == ("5.2.15-2+b13", {"source": "bash", "source_version": "5.2.15-2"})
    assert versions["libcap2"][0] == "1:2.66-4+deb12u3+b1"
    assert versions["zlib1g"] == ("1:1.2.13.dfsg-1", {"source": "zlib"})
    assert versions["debianutils"] == ("5.7-0.5~deb12u1", {})


def test_every_record_matches_exactly_its_packages(minbase_findings: list[ImageFinding]) -> None:
    assert matched(minbase_findings) == MINBASE_EXPECTED


def test_each_match_says_how_it_was_found_and_what_to_upgrade_to(
    minbase_findings: list[ImageFinding],
) -> None:
    by_pair = {(f.vuln_id, f.component.name): f for f in minbase_findings}
    gnutls = by_pair[("DEB-GNUTLS", "libgnutls30")]
    assert gnutls.component.target.name == "gnutls28"
    assert gnutls.component.target.via is Via.SOURCE
    assert gnutls.component.target.ecosystem == DEBIAN_12
    assert gnutls.fixed == "3.7.9-2+deb12u8"
    bsdutils = by_pair[("DEB-UTIL-LINUX", "bsdutils")].component
    assert (bsdutils.version, bsdutils.target.version) == ("1:2.38.1-5+deb12u3", "2.38.1-5+deb12u3")
    bash = by_pair[("DEB-BASH", "bash")]
    assert (bash.component.target.version, bash.fixed) == ("5.2.15-2", None)
    assert by_pair[("DEB-SYSTEMD-SID", "libudev1")].fixed == "252.39-1"
    assert by_pair[("DEB-ZLIB", "zlib1g")].fixed == "1:1.2.13.dfsg-2"
    assert {f.component.target.via for f in minbase_findings} == {Via.SOURCE, Via.PACKAGE}


def test_a_lower_revision_of_the_same_image_is_affected_by_the_backported_fix(
    minbase: Bom,
) -> None:
    # The same image a point release earlier: glibc 2.36-9+deb12u13 and systemd
    # 252.39-1~deb12u1 are before the backports, so the records that spared the image hit it.
    older = json.loads(json.dumps(minbase))
    for component in older["components"]:
        if component["name"] in GLIBC:
            component["version"] = "2.36-9+deb12u13"
        if component["name"] in SYSTEMD:
            component["version"] = "252.39-1~deb12u1"
    components, _ = image_components([older])
    found = matched(match(memory_index(MINBASE_RECORDS), components))
    assert found["DEB-GLIBC-BACKPORTED"] == GLIBC
    assert found["DEB-GLIBC-LATER"] == GLIBC
    assert found["DEB-SYSTEMD-BACKPORTED"] == SYSTEMD
    assert "DEB-SYSTEMD-EARLIER" not in found  # 252.39-1~deb12u1 is that fix itself
    assert {k: v for k, v in found.items() if k not in MINBASE_EXPECTED} == {
        "DEB-GLIBC-BACKPORTED": GLIBC,
        "DEB-SYSTEMD-BACKPORTED": SYSTEMD,
    }


def test_the_backport_spares_debians_build_not_an_upstream_copy_of_the_same_version(
    minbase: Bom,
) -> None:
    # glibc 2.36 as upstream released it (a binary fingerprint of a vendored copy no package
    # owns) lacks the fix Debian backported into 2.36-9+deb12u14: the same record hits the
    # copy, looked up by its upstream version, and spares the image's libc6 and libc-bin.
    index = memory_index([record("DEB-GLIBC-BACKPORTED", "glibc", fixed("2.36-9+deb12u14"))])
    fingerprint = {
        "ecosystem": "binary",
        "name": "glibc",
        "version": "2.36",
        "purl": "pkg:generic/glibc@2.36",
        "locations": ["opt/vendored/libc.so.6"],
        "detector": "fingerprints",
        "layer": "sha256:" + "0" * 64,
    }
    image = {**minbase, "components": [*minbase["components"], fingerprint]}
    components, _ = image_components([image])
    (hit,) = match(index, components)
    assert (hit.vuln_id, hit.component.ecosystem) == ("DEB-GLIBC-BACKPORTED", "binary")
    assert hit.component.target.via is Via.FINGERPRINT
    assert hit.fixed == "2.36-9+deb12u14"


# --- a dist-info that a deb installed, and pip's own ---------------------------------------------

DIST_PACKAGES = "usr/lib/python3/dist-packages"
OS_RELEASE_12 = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'


def test_a_dist_info_a_deb_installed_is_matched_through_the_deb_never_as_pypi() -> None:
    metadata = f"{DIST_PACKAGES}/PyYAML-6.0.dist-info/METADATA"
    status = (
        b"Package: python3-yaml\nStatus: install ok installed\nArchitecture: amd64\n"
        b"Source: pyyaml (6.0-3)\nVersion: 6.0-3+b2\n\n"
    )
    base = [
        file("etc/os-release", OS_RELEASE_12),
        file("var/lib/dpkg/status", status),
        file("var/lib/dpkg/info/python3-yaml:amd64.list", f"/{metadata}\n".encode()),
        file(metadata, b"Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0\n"),
    ]
    pip = [
        file(
            "usr/local/lib/python3.11/dist-packages/PyYAML-6.0.dist-info/METADATA",
            b"Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0\n",
        )
    ]
    bom = scan_layers(base, pip)
    pypi_yaml = [c for c in bom["components"] if c["ecosystem"] == "pypi"]
    assert [c.get("properties", {}).get(OWNED_BY_OS_PACKAGE) for c in pypi_yaml] == ["true", None]
    index = memory_index(
        [
            record("GHSA-YAML-UPSTREAM", "PyYAML", fixed("6.0.1"), ecosystem="PyPI"),
            record("DEB-PYYAML", "pyyaml", fixed("6.0-3+deb12u1")),
            record("DEB-PYYAML-FIXED", "pyyaml", fixed("6.0-3")),
        ]
    )
    components, left_out = image_components([bom])
    findings = match(index, components)
    where = {(f.vuln_id, f.component.ecosystem, f.component.purl) for f in findings}
    assert where == {
        ("DEB-PYYAML", "deb", bom_component(bom, "python3-yaml")["purl"]),
        ("GHSA-YAML-UPSTREAM", "pypi", pypi_yaml[1]["purl"]),  # the one pip installed
    }
    ((owned, reason),) = left_out
    assert owned["locations"][0] == metadata
    assert reason == "installed by an OS package: matched through that package"
    python3_yaml = next(f for f in findings if f.vuln_id == "DEB-PYYAML").component
    assert (python3_yaml.target.name, python3_yaml.target.version) == ("pyyaml", "6.0-3")


@pytest.mark.parametrize("name", ["python-app", "node-app"])
def test_language_packages_of_the_app_images_stay_in_their_ecosystem(name: str) -> None:
    (bom,) = scan_layout(name)
    language = [c for c in bom["components"] if c["ecosystem"] in ("pypi", "npm")]
    assert language
    assert all(OWNED_BY_OS_PACKAGE not in c.get("properties", {}) for c in language)
    components, left_out = image_components([bom])
    assert left_out == []
    targets = {c.name: c.target.ecosystem for c in components}
    expected = "PyPI" if name == "python-app" else "npm"
    assert {targets[c["name"]] for c in language} == {expected}
    assert targets["busybox-static"] == DEBIAN_12


# --- Alpine: the origin package -----------------------------------------------------------------

APK_INSTALLED = b"""C:Q1abc=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
L:MIT
o:musl
F:lib
R:ld-musl-x86_64.so.1

P:libcrypto3
V:3.1.4-r5
A:x86_64
L:Apache-2.0
o:openssl
F:lib
R:libcrypto.so.3

P:libssl3
V:3.1.4-r5
A:x86_64
L:Apache-2.0
o:openssl
F:lib
R:libssl.so.3

P:busybox
V:1.36.1-r15
A:x86_64
L:GPL-2.0-only
o:busybox
F:bin
R:busybox

"""
ALPINE_OS_RELEASE = (
    b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n'
)
ALPINE = "Alpine:v3.19"


def test_alpine_packages_are_matched_through_their_origin() -> None:
    bom = scan_layers(
        [file("etc/os-release", ALPINE_OS_RELEASE), file("lib/apk/db/installed", APK_INSTALLED)]
    )
    assert bom["distro"]["version_id"] == "3.19.1"
    index = memory_index(
        [
            record("ALPINE-OPENSSL", "openssl", fixed("3.1.4-r6"), ecosystem=ALPINE),
            record("ALPINE-OPENSSL-FIXED", "openssl", fixed("3.1.4-r5"), ecosystem=ALPINE),
            record("ALPINE-LIBSSL3-NAME", "libssl3", fixed("3.1.4-r6"), ecosystem=ALPINE),
            # apk's order: _git is after the release, and a pre-release suffix before it
            record("ALPINE-MUSL", "musl", fixed("1.2.4_git20230717-r5"), ecosystem=ALPINE),
            record("ALPINE-MUSL-FIXED", "musl", fixed("1.2.4"), ecosystem=ALPINE),
            record("ALPINE-BUSYBOX", "busybox", fixed("1.36.1_rc1-r0"), ecosystem=ALPINE),
            record("ALPINE-OTHER-BRANCH", "openssl", fixed("3.1.4-r6"), ecosystem="Alpine:v3.18"),
        ]
    )
    components, left_out = image_components([bom])
    assert left_out == []
    findings = match(index, components)
    assert matched(findings) == {
        "ALPINE-OPENSSL": {"libcrypto3", "libssl3"},
        "ALPINE-MUSL": {"musl"},
    }
    assert {(f.component.target.name, f.component.target.version) for f in findings} == {
        ("openssl", "3.1.4-r5"),
        ("musl", "1.2.4_git20230717-r4"),
    }


# --- RPM: the source RPM, with the binary's epoch ------------------------------------------------

ROCKY_OS_RELEASE = (
    b'NAME="Rocky Linux"\nID="rocky"\nVERSION_ID="9.3"\nPRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"\n'
)
ROCKY = "Rocky Linux:9"


@pytest.fixture(scope="module")
def rpmdb() -> bytes:
    """The real rpmdb of the rpm detector's tests: ty-hello 2:1.2.3-4 (source RPM
    ty-hello-1.2.3-4.src.rpm), ty-lib 0.9-2.el9, ty-data 2024.1-1."""
    key = hashlib.sha256(repr(sorted(SPECS.items())).encode()).hexdigest()[:16]
    target = Path(FIXTURES) / "rpm" / key / "rpmdb.sqlite"
    if not target.exists():
        _build_rpmdb(target)
    return target.read_bytes()


def test_rpm_packages_are_matched_through_their_source_rpm_with_the_epoch(rpmdb: bytes) -> None:
    bom = scan_layers([file("etc/os-release", ROCKY_OS_RELEASE), file(RPMDB, rpmdb)])
    hello = bom_component(bom, "ty-hello")
    assert (hello["version"], hello["properties"]) == (
        "2:1.2.3-4",
        {"source": "ty-hello-1.2.3-4.src.rpm"},
    )
    index = memory_index(
        [
            # the epoch decides: 2:1.2.3-4 is past every version of epoch 0 and 1
            record("RLSA-HELLO", "ty-hello", fixed("2:1.2.3-5"), ecosystem=ROCKY),
            record("RLSA-HELLO-NO-EPOCH", "ty-hello", fixed("1.2.4-1"), ecosystem=ROCKY),
            record("RLSA-HELLO-EPOCH-1", "ty-hello", fixed("1:9.0-1"), ecosystem=ROCKY),
            record("RLSA-HELLO-FIXED", "ty-hello", fixed("2:1.2.3-4"), ecosystem=ROCKY),
            record("RLSA-LIB", "ty-lib", fixed("0.9-3.el9"), ecosystem=ROCKY),
            record("RLSA-LIB-FIXED", "ty-lib", fixed("0.9-2.el9"), ecosystem=ROCKY),
            record("RLSA-LIB-ALMA", "ty-lib", fixed("0.9-3.el9"), ecosystem="AlmaLinux:9"),
        ]
    )
    components, left_out = image_components([bom])
    assert left_out == []
    findings = match(index, components)
    assert matched(findings) == {"RLSA-HELLO": {"ty-hello"}, "RLSA-LIB": {"ty-lib"}}
    targets = {f.component.name: f.component.target for f in findings}
    assert (targets["ty-hello"].name, targets["ty-hello"].version) == ("ty-hello", "2:1.2.3-4")
    assert targets["ty-hello"].via is Via.SOURCE
    assert (targets["ty-lib"].version, targets["ty-lib"].ecosystem) == ("0.9-2.el9", ROCKY)
