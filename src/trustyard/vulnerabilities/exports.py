"""The vulnerabilities of an image as documents: JSON (summary, per layer, per component, per
finding), CSV (a row per finding) and CycloneDX 1.6 (the image's BOM with its
`vulnerabilities`). Pure functions over `ImageVulnerabilities`; triage is already applied
to its findings (`ImageFinding.triage`).

A finding that triage takes away (`not_affected`, `fixed`: `ImageFinding.suppressed`) is out
of the counts and, unless `suppressed=True` is asked for, out of the documents too; asked
for, it is listed with its triage (in CycloneDX, its `analysis`). Other triage
(`affected`, `under_investigation`) is always shown.

CSV cells are written for spreadsheets: a cell that begins with `=`, `+`, `-`, `@`, a tab or
a carriage return is prefixed with `'`, so no cell is read as a formula (OWASP's CSV
injection advice); values come from images, which anybody who may push controls.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from trustyard.vulnerabilities.interfaces import (
    Counts,
    ImageComponent,
    ImageFinding,
    ImageVulnerabilities,
    Triage,
    TriageStatus,
)

JSON_TYPE = "application/json"
CSV_TYPE = "text/csv; charset=utf-8"
CYCLONEDX_TYPE = "application/vnd.cyclonedx+json"

CSV_COLUMNS = (
    "repository",
    "manifest_digest",
    "platform",
    "layer",
    "ecosystem",
    "component",
    "version",
    "purl",
    "via",
    "matched_as",
    "vulnerability",
    "aliases",
    "bucket",
    "score",
    "vector",
    "fixed",
    "triage_status",
    "triage_justification",
    "triage_statement",
    "triage_scope",
    "triage_expires_at",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# OpenVEX status -> CycloneDX's impactAnalysisState.
ANALYSIS_STATES = {
    TriageStatus.NOT_AFFECTED: "not_affected",
    TriageStatus.AFFECTED: "exploitable",
    TriageStatus.FIXED: "resolved",
    TriageStatus.UNDER_INVESTIGATION: "in_triage",
}
# OpenVEX justification -> CycloneDX's impactAnalysisJustification (CISA's "VEX Status
# Justifications" and CycloneDX's own guide pair them so).
ANALYSIS_JUSTIFICATIONS = {
    "component_not_present": "code_not_present",
    "vulnerable_code_not_present": "code_not_present",
    "vulnerable_code_not_in_execute_path": "code_not_reachable",
    "vulnerable_code_cannot_be_controlled_by_adversary": "protected_by_mitigating_control",
    "inline_mitigations_already_exist": "protected_by_mitigating_control",
}
# A vector's prefix -> CycloneDX's scoreMethod (a bare vector is CVSS v2's).
_METHODS = (("CVSS:4.0/", "CVSSv4"), ("CVSS:3.1/", "CVSSv31"), ("CVSS:3.0/", "CVSSv3"))


def shown(vulns: ImageVulnerabilities, suppressed: bool = False) -> list[ImageFinding]:
    """The findings a document lists: every one with `suppressed`, else the open ones."""
    return [f for f in vulns.findings if suppressed or not f.suppressed]


def filename(vulns: ImageVulnerabilities, extension: str) -> str:
    """A download name: `<repository>_<digest hex, 12>-vulnerabilities.<extension>`, in
    characters safe in a Content-Disposition header."""
    repository = "".join(c if c.isalnum() or c in "._-" else "_" for c in vulns.repository)
    digest = vulns.manifest_digest.partition(":")[2][:12] or "image"
    return f"{repository}_{digest}-vulnerabilities.{extension}"


# --- JSON -------------------------------------------------------------------------------------
def to_json(vulns: ImageVulnerabilities, *, suppressed: bool = False) -> dict[str, Any]:
    """The report: state, database version, counts after triage, and per layer (the layer
    that brought each component) its components, each with its findings."""
    findings = shown(vulns, suppressed)
    layers: dict[tuple[str, str], dict[ImageComponent, list[ImageFinding]]] = {}
    for finding in findings:
        component = finding.component
        by_component = layers.setdefault((component.platform, component.layer), {})
        by_component.setdefault(component, []).append(finding)
    return {
        "repository": vulns.repository,
        "manifest_digest": vulns.manifest_digest,
        "status": vulns.status,
        "scan_id": vulns.scan_id,
        "database_version": vulns.database_version,
        "matched_at": _when(vulns.matched_at),
        "error": vulns.error,
        "counts": counts_json(vulns.counts),
        "suppressed": sum(1 for f in vulns.findings if f.suppressed),
        "layers": [
            {
                "platform": platform,
                "digest": layer,
                "counts": counts_json(Counts.of(f for fs in components.values() for f in fs)),
                "components": [
                    _component_json(component, items) for component, items in components.items()
                ],
            }
            for (platform, layer), components in layers.items()
        ],
    }


def counts_json(counts: Counts) -> dict[str, int]:
    return {
        "critical": counts.critical,
        "major": counts.major,
        "minor": counts.minor,
        "unknown": counts.unknown,
        "total": counts.total,
    }


def _component_json(component: ImageComponent, findings: Sequence[ImageFinding]) -> dict[str, Any]:
    target = component.target
    return {
        "ecosystem": component.ecosystem,
        "name": component.name,
        "version": component.version,
        "purl": component.purl,
        "matched_as": {
            "ecosystem": target.ecosystem,
            "name": target.name,
            "version": target.version,
            "via": str(target.via),
        },
        "counts": counts_json(Counts.of(findings)),
        "findings": [finding_json(f) for f in findings],
    }


def finding_json(finding: ImageFinding) -> dict[str, Any]:
    return {
        "id": finding.vuln_id,
        "aliases": list(finding.aliases),
        "records": list(finding.record_ids),
        "bucket": finding.bucket,
        "score": finding.score,
        "vector": finding.vector,
        "fixed": finding.fixed,
        "via": str(finding.component.target.via),
        "found_at": _when(finding.found_at),
        "suppressed": finding.suppressed,
        "triage": triage_json(finding.triage),
    }


def triage_json(triage: Triage | None) -> dict[str, Any] | None:
    if triage is None:
        return None
    return {
        "id": triage.id,
        "scope": triage.scope,
        "status": str(triage.status),
        "justification": triage.justification,
        "statement": triage.statement,
        "source": triage.source,
        "expires_at": _when(triage.expires_at),
        "created_by": triage.created_by,
        "created_at": _when(triage.created_at),
    }


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


# --- CSV --------------------------------------------------------------------------------------
def iter_csv(vulns: ImageVulnerabilities, *, suppressed: bool = False) -> Iterator[str]:
    """The CSV text, a header and then a row per finding (component order), line by line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")

    def line(cells: Iterable[object]) -> str:
        writer.writerow([safe_cell(cell) for cell in cells])
        text = out.getvalue()
        out.seek(0)
        out.truncate()
        return text

    yield line(CSV_COLUMNS)
    for finding in shown(vulns, suppressed):
        yield line(_row(vulns, finding))


def to_csv(vulns: ImageVulnerabilities, *, suppressed: bool = False) -> str:
    return "".join(iter_csv(vulns, suppressed=suppressed))


def safe_cell(value: object) -> str:
    """`value` as a CSV cell that no spreadsheet runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _row(vulns: ImageVulnerabilities, finding: ImageFinding) -> list[object]:
    component, triage = finding.component, finding.triage
    target = component.target
    return [
        vulns.repository,
        vulns.manifest_digest,
        component.platform,
        component.layer,
        component.ecosystem,
        component.name,
        component.version,
        component.purl,
        str(target.via),
        f"{target.ecosystem}/{target.name}@{target.version}",
        finding.vuln_id,
        " ".join(finding.aliases),
        finding.bucket,
        "" if finding.score is None else f"{finding.score:.1f}",
        finding.vector,
        finding.fixed,
        str(triage.status) if triage else None,
        triage.justification if triage else None,
        triage.statement if triage else None,
        triage.scope if triage else None,
        _when(triage.expires_at) if triage else None,
    ]


# --- CycloneDX --------------------------------------------------------------------------------
# The BOM itself is scanning's (`scanning.cyclonedx.iter_cyclonedx`: features do not import
# each other); the edge that writes it passes `cyclonedx_sections(...)` as its `sections`:
#     iter_cyclonedx(boms, repository, sections=cyclonedx_sections(vulns))
# (platform, ecosystem, name, version, purl, introducing layer), as the BOM writer keys them.
ComponentKey = tuple[str, str, str, str, str, str]


class BomRefView(Protocol):
    """The bom-refs the BOM writer gave (`scanning.cyclonedx.BomRefs`)."""

    @property
    def root(self) -> str: ...
    @property
    def images(self) -> Mapping[str, str]: ...  # platform -> its image's (or the root's)
    def of(self, key: ComponentKey) -> Sequence[str]: ...


SectionItems = Iterator[tuple[str, Iterable[dict[str, Any]]]]


def cyclonedx_sections(
    vulns: ImageVulnerabilities, *, suppressed: bool = False
) -> Callable[[BomRefView], SectionItems]:
    """The `vulnerabilities` section of the image's CycloneDX BOM (that of the matched scan):
    one entry per vulnerability of a component, its `affects[].ref` that component's bom-ref
    in the same document."""
    findings = shown(vulns, suppressed)

    def sections(refs: BomRefView) -> SectionItems:
        yield "vulnerabilities", _vulnerabilities(findings, refs)

    return sections


def component_key(component: ImageComponent) -> ComponentKey:
    return (
        component.platform,
        component.ecosystem,
        component.name,
        component.version,
        component.purl,
        component.layer,
    )


def _vulnerabilities(
    findings: Sequence[ImageFinding], refs: BomRefView
) -> Iterator[dict[str, Any]]:
    written: set[tuple[ComponentKey, str]] = set()
    for finding in findings:
        key = component_key(finding.component)
        if (key, finding.vuln_id) in written:
            continue  # the same component found twice in a layer: its refs are listed once
        written.add((key, finding.vuln_id))
        targets = refs.of(key) or [refs.images.get(finding.component.platform, refs.root)]
        yield vulnerability_entry(finding, targets)


def vulnerability_entry(finding: ImageFinding, affects: Sequence[str]) -> dict[str, Any]:
    """One CycloneDX `vulnerabilities[]` entry: the OSV id, its aliases as references, the
    rating, the fix, the analysis from triage."""
    target = finding.component.target
    entry: dict[str, Any] = {"id": finding.vuln_id, "source": _source(finding.vuln_id)}
    others = sorted(set(finding.aliases) | set(finding.record_ids) - {finding.vuln_id})
    if others:
        entry["references"] = [{"id": name, "source": _source(name)} for name in others]
    entry["ratings"] = [_rating(finding)]
    if finding.fixed:
        entry["recommendation"] = f"upgrade to {finding.fixed}"
    analysis = _analysis(finding.triage)
    if analysis:
        entry["analysis"] = analysis
    status = "unaffected" if finding.suppressed else "affected"
    entry["affects"] = [
        {"ref": ref, "versions": [{"version": finding.component.version, "status": status}]}
        for ref in affects
    ]
    entry["properties"] = [
        {"name": "trustyard:bucket", "value": finding.bucket},
        {"name": "trustyard:matched_as", "value": f"{target.ecosystem}/{target.name}"},
        {"name": "trustyard:matched_version", "value": target.version},
        {"name": "trustyard:via", "value": str(target.via)},
        *({"name": "trustyard:record", "value": r} for r in finding.record_ids),
    ]
    return entry


def _source(vuln_id: str) -> dict[str, str]:
    """Where a vulnerability id is published, by its prefix (OSV serves every one)."""
    prefix = vuln_id.partition("-")[0].upper()
    if prefix == "CVE":
        return {"name": "NVD", "url": f"https://nvd.nist.gov/vuln/detail/{vuln_id}"}
    if prefix == "GHSA":
        return {"name": "GitHub", "url": f"https://github.com/advisories/{vuln_id}"}
    return {"name": "OSV", "url": f"https://osv.dev/vulnerability/{vuln_id}"}


def _rating(finding: ImageFinding) -> dict[str, Any]:
    rating: dict[str, Any] = {"source": {"name": "OSV"}}
    if finding.score is not None:
        rating["score"] = finding.score
    rating["severity"] = severity_of(finding.score, finding.bucket)
    if finding.vector:
        rating["method"] = method_of(finding.vector)
        rating["vector"] = finding.vector
    else:
        rating["method"] = "other"
    return rating


def method_of(vector: str) -> str:
    for prefix, method in _METHODS:
        if vector.startswith(prefix):
            return method
    return "CVSSv2"


def severity_of(score: float | None, bucket: str) -> str:
    """CycloneDX's severity: from the score by the CVSS qualitative scale; without one, from
    DTR's bucket (critical, 7.0 and above, is at least CVSS "high")."""
    if score is not None:
        if score >= 9.0:
            return "critical"
        if score >= 7.0:
            return "high"
        if score >= 4.0:
            return "medium"
        return "low" if score > 0.0 else "none"
    return {"critical": "high", "major": "medium", "minor": "low"}.get(bucket, "unknown")


def _analysis(triage: Triage | None) -> dict[str, Any] | None:
    if triage is None:
        return None
    analysis: dict[str, Any] = {"state": ANALYSIS_STATES[triage.status]}
    justification = ANALYSIS_JUSTIFICATIONS.get(triage.justification or "")
    if justification and triage.status is TriageStatus.NOT_AFFECTED:
        analysis["justification"] = justification
    detail = _detail(triage)
    if detail:
        analysis["detail"] = detail
    analysis["firstIssued"] = triage.created_at.isoformat()
    return analysis


def _detail(triage: Triage) -> str:
    parts: list[str] = []
    if triage.statement:
        parts.append(triage.statement)
    if triage.justification and triage.justification not in ANALYSIS_JUSTIFICATIONS:
        parts.append(f"justification: {triage.justification}")
    origin = "override" if triage.source == "override" else "VEX statement"
    by = f" by {triage.created_by}" if triage.created_by else ""
    parts.append(f"{origin} for the {triage.scope}{by}")
    if triage.expires_at is not None:
        parts.append(f"until {triage.expires_at.isoformat()}")
    return "; ".join(parts)
