"""The exports of an image's vulnerabilities: JSON (counts after triage, per layer and
component), CSV (a row per finding, no formula a spreadsheet would run) and CycloneDX 1.6
(valid under the strict validator, every `affects[].ref` a component of the same document)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.scanning.bom_samples import AMD64, APP, ARM64, BASE, image_bom
from trustyard.scanning.bom import ImageBom
from trustyard.scanning.cyclonedx import iter_cyclonedx
from trustyard.vulnerabilities import exports
from trustyard.vulnerabilities.components import Target, Via
from trustyard.vulnerabilities.interfaces import (
    ImageComponent,
    ImageFinding,
    ImageVulnerabilities,
    Triage,
    TriageStatus,
)

VALIDATOR = JsonStrictValidator(SchemaVersion.V1_6)
MOMENT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
REPOSITORY = "acme/python-app"


def component(bom: ImageBom, name: str) -> ImageComponent:
    """The BOM's component `name` as matching sees it."""
    [item] = [c for c in bom.components if c.component.name == name]
    c = item.component
    targets = {
        "Django": Target("PyPI", "Django", "2.2", Via.PACKAGE),
        "busybox-static": Target("Debian:12", "busybox", c.version, Via.SOURCE),
        "openssl": Target("Debian:12", "openssl", "3.0.11", Via.FINGERPRINT),
        "github.com/google/uuid": Target("Go", name, "v1.3.0", Via.PACKAGE),
    }
    return ImageComponent(
        bom.platform, c.ecosystem, c.name, c.version, c.purl, item.layer, targets[name]
    )


def finding(
    of: ImageComponent,
    vuln_id: str,
    bucket: str,
    score: float | None = None,
    vector: str | None = None,
    *,
    aliases: tuple[str, ...] = (),
    fixed: str | None = None,
    triage: Triage | None = None,
) -> ImageFinding:
    return ImageFinding(
        component=of,
        vuln_id=vuln_id,
        record_ids=(vuln_id,),
        aliases=aliases,
        bucket=bucket,
        score=score,
        vector=vector,
        fixed=fixed,
        found_at=MOMENT,
        triage=triage,
    )


def triage(status: TriageStatus, justification: str | None = None, **kw: Any) -> Triage:
    return Triage(
        id=kw.get("id", 1),
        scope=kw.get("scope", "image"),
        status=status,
        justification=justification,
        statement=kw.get("statement"),
        source=kw.get("source", "vex"),
        expires_at=kw.get("expires_at"),
        created_by="sam",
        created_at=MOMENT,
    )


V31 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
V2 = "AV:N/AC:L/Au:N/C:P/I:N/A:N"
V4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"


def sample(bom: ImageBom | None = None) -> ImageVulnerabilities:
    bom = bom or image_bom()
    django = component(bom, "Django")
    busybox = component(bom, "busybox-static")
    openssl = component(bom, "openssl")
    findings = (
        finding(busybox, "CVE-2022-48174", "critical", 9.8, V31, fixed="1:1.35.0-4+deb12u2"),
        finding(django, "GHSA-aaaa-bbbb-cccc", "critical", 9.3, V4, aliases=("CVE-2019-1",)),
        finding(django, "PYSEC-2019-2", "major", 5.0, V2, fixed="2.2.2"),
        finding(django, "PYSEC-2019-3", "minor", fixed="2.2.3"),
        finding(
            django,
            "PYSEC-2019-4",
            "major",
            6.1,
            "CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N",
            triage=triage(TriageStatus.UNDER_INVESTIGATION, statement="looking"),
        ),
        finding(
            django,
            "PYSEC-2019-5",
            "critical",
            8.0,
            V31,
            triage=triage(
                TriageStatus.NOT_AFFECTED,
                "vulnerable_code_not_in_execute_path",
                statement="admin is off",
                expires_at=MOMENT,
            ),
        ),
        finding(openssl, "CVE-2023-5678", "unknown", fixed="3.0.13"),
    )
    return ImageVulnerabilities(
        repository=REPOSITORY,
        manifest_digest=bom.manifest_digest,
        status="matched",
        scan_id=7,
        database_version=3,
        matched_at=MOMENT,
        error=None,
        findings=findings,
    )


# --- JSON -----------------------------------------------------------------------------------
def test_json_counts_after_triage_per_layer_and_component() -> None:
    report = exports.to_json(sample())
    assert report["status"] == "matched"
    assert (report["database_version"], report["scan_id"]) == (3, 7)
    # The not_affected one is out of the counts and of the document.
    assert report["counts"] == {"critical": 2, "major": 2, "minor": 1, "unknown": 1, "total": 6}
    assert report["suppressed"] == 1
    layers = {(layer["platform"], layer["digest"]): layer for layer in report["layers"]}
    assert set(layers) == {("linux/amd64", BASE), ("linux/amd64", APP)}
    base, app = layers[("linux/amd64", BASE)], layers[("linux/amd64", APP)]
    assert [c["name"] for c in base["components"]] == ["busybox-static"]
    assert base["counts"]["critical"] == 1
    django = next(c for c in app["components"] if c["name"] == "Django")
    assert django["matched_as"] == {
        "ecosystem": "PyPI",
        "name": "Django",
        "version": "2.2",
        "via": "package",
    }
    assert [f["id"] for f in django["findings"]] == [
        "GHSA-aaaa-bbbb-cccc",
        "PYSEC-2019-2",
        "PYSEC-2019-3",
        "PYSEC-2019-4",
    ]
    ghsa = django["findings"][0]
    assert ghsa["aliases"] == ["CVE-2019-1"]
    assert (ghsa["bucket"], ghsa["score"], ghsa["vector"]) == ("critical", 9.3, V4)
    assert django["findings"][1]["fixed"] == "2.2.2"
    assert django["findings"][3]["triage"]["status"] == "under_investigation"
    openssl = next(c for c in app["components"] if c["name"] == "openssl")
    assert openssl["findings"][0]["via"] == "fingerprint"
    assert json.loads(json.dumps(report)) == report  # plain JSON


def test_json_lists_suppressed_findings_with_their_triage_when_asked() -> None:
    report = exports.to_json(sample(), suppressed=True)
    assert report["counts"]["total"] == 6  # counts never include them
    every = [f for layer in report["layers"] for c in layer["components"] for f in c["findings"]]
    [hidden] = [f for f in every if f["suppressed"]]
    assert hidden["id"] == "PYSEC-2019-5"
    assert hidden["triage"]["status"] == "not_affected"
    assert hidden["triage"]["justification"] == "vulnerable_code_not_in_execute_path"
    assert hidden["triage"]["expires_at"] == MOMENT.isoformat()


def test_json_of_an_image_not_matched_yet_says_so() -> None:
    pending = ImageVulnerabilities(REPOSITORY, AMD64, "pending", None, None, None, None)
    report = exports.to_json(pending)
    assert (report["status"], report["layers"], report["counts"]["total"]) == ("pending", [], 0)


# --- CSV ------------------------------------------------------------------------------------
def test_csv_has_a_row_per_open_finding() -> None:
    rows = list(csv.DictReader(io.StringIO(exports.to_csv(sample()))))
    assert list(rows[0]) == list(exports.CSV_COLUMNS)
    assert len(rows) == 6
    busybox = rows[0]
    assert busybox["vulnerability"] == "CVE-2022-48174"
    assert (busybox["component"], busybox["via"]) == ("busybox-static", "source-package")
    assert busybox["matched_as"] == "Debian:12/busybox@1:1.35.0-4+deb12u1+b1"
    assert (busybox["bucket"], busybox["score"], busybox["fixed"]) == (
        "critical",
        "9.8",
        "1:1.35.0-4+deb12u2",
    )
    assert busybox["layer"] == BASE
    assert rows[1]["aliases"] == "CVE-2019-1"
    assert rows[3]["score"] == ""
    with_all = list(csv.DictReader(io.StringIO(exports.to_csv(sample(), suppressed=True))))
    assert [r["triage_status"] for r in with_all if r["vulnerability"] == "PYSEC-2019-5"] == [
        "not_affected"
    ]


def test_csv_cells_never_start_a_formula() -> None:
    bom = image_bom()
    django = component(bom, "Django")
    hostile = ImageComponent(
        django.platform,
        "pypi",
        '=HYPERLINK("http://evil","x")',
        "+1",
        "@SUM(A1)",
        django.layer,
        Target("PyPI", "-2+3", "\t=1", Via.PACKAGE),
    )
    vulns = ImageVulnerabilities(
        REPOSITORY,
        AMD64,
        "matched",
        1,
        1,
        MOMENT,
        None,
        (finding(hostile, "=cmd|' /C calc'!A0", "minor", fixed="-1"),),
    )
    [row] = list(csv.reader(io.StringIO(exports.to_csv(vulns))))[1:]
    for cell in row:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    assert row[exports.CSV_COLUMNS.index("component")] == '\'=HYPERLINK("http://evil","x")'
    assert row[exports.CSV_COLUMNS.index("fixed")] == "'-1"


@given(st.text(max_size=30))
def test_safe_cell_keeps_the_text_and_never_starts_a_formula(text: str) -> None:
    cell = exports.safe_cell(text)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert cell in (text, "'" + text)


# --- CycloneDX ------------------------------------------------------------------------------
def cyclonedx(vulns: ImageVulnerabilities, boms: list[ImageBom], **kw: Any) -> dict[str, Any]:
    suppressed = kw.pop("suppressed", False)
    sections = exports.cyclonedx_sections(vulns, suppressed=suppressed)
    text = b"".join(iter_cyclonedx(boms, vulns.repository, sections=sections, **kw)).decode()
    error = VALIDATOR.validate_str(text)
    assert error is None, str(error)
    document: dict[str, Any] = json.loads(text)
    return document


def refs_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["bom-ref"]: c for c in document["components"]}


def test_cyclonedx_is_valid_and_each_vulnerability_affects_its_component() -> None:
    bom = image_bom()
    document = cyclonedx(sample(bom), [bom])
    components = refs_of(document)
    entries = document["vulnerabilities"]
    assert [e["id"] for e in entries] == [
        "CVE-2022-48174",
        "GHSA-aaaa-bbbb-cccc",
        "PYSEC-2019-2",
        "PYSEC-2019-3",
        "PYSEC-2019-4",
        "CVE-2023-5678",
    ]
    by_id = {e["id"]: e for e in entries}
    for entry in entries:
        [affected] = entry["affects"]
        assert affected["ref"] in components
    busybox = components[by_id["CVE-2022-48174"]["affects"][0]["ref"]]
    assert busybox["name"] == "busybox-static"
    assert by_id["CVE-2022-48174"]["recommendation"] == "upgrade to 1:1.35.0-4+deb12u2"
    assert by_id["CVE-2022-48174"]["ratings"] == [
        {
            "source": {"name": "OSV"},
            "score": 9.8,
            "severity": "critical",
            "method": "CVSSv31",
            "vector": V31,
        }
    ]
    assert by_id["GHSA-aaaa-bbbb-cccc"]["ratings"][0]["method"] == "CVSSv4"
    assert by_id["GHSA-aaaa-bbbb-cccc"]["references"] == [
        {
            "id": "CVE-2019-1",
            "source": {"name": "NVD", "url": "https://nvd.nist.gov/vuln/detail/CVE-2019-1"},
        }
    ]
    assert by_id["PYSEC-2019-2"]["ratings"][0]["method"] == "CVSSv2"
    assert by_id["PYSEC-2019-3"]["ratings"][0] == {
        "source": {"name": "OSV"},
        "severity": "low",
        "method": "other",
    }
    assert by_id["PYSEC-2019-4"]["ratings"][0]["method"] == "CVSSv3"
    assert by_id["PYSEC-2019-4"]["analysis"]["state"] == "in_triage"
    assert by_id["CVE-2023-5678"]["ratings"][0]["severity"] == "unknown"
    props = {p["name"]: p["value"] for p in by_id["CVE-2023-5678"]["properties"]}
    assert props["trustyard:via"] == "fingerprint"


def test_cyclonedx_analysis_of_a_not_affected_finding_when_asked() -> None:
    bom = image_bom()
    document = cyclonedx(sample(bom), [bom], suppressed=True)
    [entry] = [e for e in document["vulnerabilities"] if e["id"] == "PYSEC-2019-5"]
    analysis = entry["analysis"]
    assert (analysis["state"], analysis["justification"]) == ("not_affected", "code_not_reachable")
    assert "admin is off" in analysis["detail"]
    assert entry["affects"][0]["versions"] == [{"version": "2.2", "status": "unaffected"}]


def test_cyclonedx_of_an_index_points_at_each_platforms_component() -> None:
    amd, arm = image_bom("linux/amd64", AMD64), image_bom("linux/arm64", ARM64)
    one, two = sample(amd), sample(arm)
    both = ImageVulnerabilities(
        REPOSITORY,
        "sha256:" + "c" * 64,
        "matched",
        9,
        3,
        MOMENT,
        None,
        one.findings + two.findings,
    )
    document = cyclonedx(both, [amd, arm], index_digest=both.manifest_digest)
    components = refs_of(document)
    entries = document["vulnerabilities"]
    assert len(entries) == 12
    platforms = {
        next(
            p["value"]
            for p in components[e["affects"][0]["ref"]]["properties"]
            if p["name"] == "trustyard:platform"
        )
        for e in entries
    }
    assert platforms == {"linux/amd64", "linux/arm64"}
    assert len({e["affects"][0]["ref"] for e in entries}) == 6  # 3 components x 2 platforms


def test_cyclonedx_without_findings_has_an_empty_vulnerabilities_section() -> None:
    bom = image_bom()
    empty = ImageVulnerabilities(REPOSITORY, AMD64, "matched", 1, 1, MOMENT, None)
    document = cyclonedx(empty, [bom])
    assert document["vulnerabilities"] == []
    assert len(document["components"]) == 6


def test_cyclonedx_severity_follows_the_cvss_scale() -> None:
    assert [exports.severity_of(s, "x") for s in (9.0, 8.9, 7.0, 6.9, 4.0, 3.9, 0.0)] == [
        "critical",
        "high",
        "high",
        "medium",
        "medium",
        "low",
        "none",
    ]
    assert exports.severity_of(None, "major") == "medium"


def test_filename_is_header_safe() -> None:
    vulns = ImageVulnerabilities('a/b"c', AMD64, "matched", 1, 1, MOMENT, None)
    assert exports.filename(vulns, "csv") == "a_b_c_aaaaaaaaaaaa-vulnerabilities.csv"
