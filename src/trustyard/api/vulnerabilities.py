"""/api/v1 vulnerabilities of an image: the report of its latest matched scan, as JSON (per
layer, per component, per finding, with counts after triage), CSV or CycloneDX 1.6 with a
`vulnerabilities` section (`vulnerabilities/exports.py` writes all three).

Reading needs the right to pull the repository, as for its bill of materials: a private
repository the caller may not read answers 404 exactly like a missing one, as does a
manifest the repository does not hold. The JSON always says the image's state
(`not_scanned`, `pending`, `failed`, `matched`); CSV and CycloneDX need findings of a matched
scan and answer 409 saying the state otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from trustyard.api.deps import Anyone, Registry, Repositories
from trustyard.api.errors import problems
from trustyard.api.repositories import readable_repository
from trustyard.api.scans import Reference, Scans
from trustyard.api.schemas import VulnerabilityCountsOut
from trustyard.auth import audit
from trustyard.db.engine import read_tx
from trustyard.errors import StateConflict
from trustyard.kit.clock import utc_now
from trustyard.oci import mediatypes as mt
from trustyard.scanning.bom import ImageBom
from trustyard.scanning.cyclonedx import iter_cyclonedx
from trustyard.scanning.stores import ScanStore
from trustyard.vulnerabilities import exports
from trustyard.vulnerabilities.images import ImageStore
from trustyard.vulnerabilities.interfaces import Counts, ImageVulnerabilities
from trustyard.vulnerabilities.triage import TriageStore, apply_triage, decide

router = APIRouter(tags=["vulnerabilities"])

Format = Literal["json", "csv", "cyclonedx"]
Bucket = Literal["critical", "major", "minor", "unknown"]
Via = Literal["package", "source-package", "fingerprint"]


def get_images() -> ImageStore:
    return ImageStore(ScanStore())  # stateless: the stores read through the caller's connection


Images = Annotated[ImageStore, Depends(get_images)]


# --- bodies ------------------------------------------------------------------------------------
class TriageOut(BaseModel):
    id: int
    scope: Literal["image", "repository", "organization"]
    status: Literal["not_affected", "affected", "fixed", "under_investigation"]
    justification: str | None
    statement: str | None
    source: Literal["override", "vex"]
    expires_at: datetime | None
    created_by: str | None
    created_at: datetime


class FindingOut(BaseModel):
    id: str = Field(description="the OSV id (of the record the others are aliases of)")
    aliases: list[str] = Field(description="its other names (CVE, GHSA...)")
    records: list[str] = Field(description="the database records merged into this finding")
    bucket: Bucket = Field(description="DTR's: critical >= 7.0, major 4.0-6.9, minor < 4.0")
    score: float | None = Field(description="the CVSS base score, when a vector scored")
    vector: str | None
    fixed: str | None = Field(description="the version to upgrade to, when one fixes it")
    via: Via = Field(description="how the component met the advisory")
    found_at: datetime | None
    suppressed: bool = Field(description="triage (not_affected, fixed) takes it out of counts")
    triage: TriageOut | None


class MatchedAsOut(BaseModel):
    ecosystem: str = Field(description="the advisory database's (with the release for OS)")
    name: str = Field(description="the package advisories name (a deb's source package...)")
    version: str
    via: Via


class ComponentOut(BaseModel):
    ecosystem: str
    name: str
    version: str
    purl: str
    matched_as: MatchedAsOut
    counts: VulnerabilityCountsOut
    findings: list[FindingOut]


class LayerOut(BaseModel):
    platform: str
    digest: str = Field(description="the layer that brought these components")
    counts: VulnerabilityCountsOut
    components: list[ComponentOut]


class ImageVulnerabilitiesOut(BaseModel):
    repository: str
    manifest_digest: str
    status: Literal["not_scanned", "pending", "failed", "matched"] = Field(
        description="not_scanned; pending: its scan is queued or running, or not matched yet; "
        "failed: the scan or its matching failed (error); matched"
    )
    scan_id: int | None = Field(description="the scan whose findings these are")
    database_version: int | None = Field(description="the database version they were found at")
    matched_at: datetime | None
    error: str | None
    counts: VulnerabilityCountsOut = Field(description="by DTR bucket, after triage")
    suppressed: int = Field(description="findings triage takes away (not in counts)")
    layers: list[LayerOut]


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": ImageVulnerabilitiesOut,
        "content": {
            "text/csv": {"schema": {"type": "string", "description": "one row per finding"}},
            exports.CYCLONEDX_TYPE: {"schema": {"type": "object", "description": "CycloneDX 1.6"}},
        },
    },
    **problems(404, 409),
}


# --- routes --------------------------------------------------------------------------------------
@router.get(
    "/repositories/{name:path}/manifests/{reference}/vulnerabilities",
    response_model=None,
    responses=_RESPONSES,
)
def get_vulnerabilities(
    name: str,
    reference: Reference,
    reader: Anyone,
    accounts: Registry,
    repositories: Repositories,
    scans: Scans,
    images: Images,
    format: Annotated[Format, Query(description="json, csv or cyclonedx")] = "json",
    suppressed: Annotated[
        bool,
        Query(description="also list the findings triage takes away (not_affected, fixed)"),
    ] = False,
) -> Response:
    """The vulnerabilities of the manifest (an image, or every platform of an index) from its
    latest matched scan: counts by DTR bucket after triage, and per layer (the layer that
    brought each component) each component's findings. 404 for an unknown manifest; CSV and
    CycloneDX answer 409 until the image has been matched."""
    boms: list[ImageBom] = []
    with read_tx(accounts.engine) as conn:
        repository = readable_repository(
            conn, accounts, repositories, reader.principal, reader.scope, name
        ).name
        target = scans.target(conn, repository, reference)
        found = images.image_vulnerabilities(conn, target.repository_id, repository, target.digest)
        vulns = apply_triage(
            conn, found, target.repository_id, audit.organization_of(repository), utc_now()
        )
        if format != "json":
            _check_matched(vulns)
        if format == "cyclonedx" and vulns.scan_id is not None:
            boms = [ImageBom.from_json(d) for d in images.scans.boms(conn, vulns.scan_id)]
    if format == "json":
        return JSONResponse(exports.to_json(vulns, suppressed=suppressed))
    if format == "csv":
        return StreamingResponse(
            exports.iter_csv(vulns, suppressed=suppressed),
            media_type=exports.CSV_TYPE,
            headers=_download(vulns, "csv"),
        )
    index = target.digest if target.media_type in mt.INDEXES else None
    sections = exports.cyclonedx_sections(vulns, suppressed=suppressed)
    chunks = iter_cyclonedx(boms, repository, index_digest=index, sections=sections)
    return StreamingResponse(
        chunks, media_type=exports.CYCLONEDX_TYPE, headers=_download(vulns, "cdx.json")
    )


def tag_counts(
    conn: Connection,
    images: ImageStore,
    repository_id: int,
    repository: str,
    digests: Sequence[str],
) -> dict[str, Counts]:
    """The counts of each manifest's latest matched scan after triage (a digest never matched
    is absent): the stored counts (one query), recounted from the findings of a manifest only
    where a decision holds for it (one query per manifest with findings to ask that)."""
    counts = images.counts_for(conn, repository_id, digests)
    store, now, namespace = TriageStore(), utc_now(), audit.organization_of(repository)
    for digest, raw in counts.items():
        if raw.total == 0:
            continue
        rows = store.applicable(conn, repository_id, digest, namespace, now)
        if rows:
            found = images.image_vulnerabilities(conn, repository_id, repository, digest)
            counts[digest] = Counts.of(decide(found.findings, rows))
    return counts


def _check_matched(vulns: ImageVulnerabilities) -> None:
    if vulns.scan_id is not None:
        return
    where = f"{vulns.repository}@{vulns.manifest_digest}"
    reasons = {
        "not_scanned": "has not been scanned: start a scan first",
        "pending": "is not matched yet: its scan is queued or running, or being matched",
        "failed": f"has no vulnerabilities: its scan or their matching failed: {vulns.error}",
    }
    reason = reasons.get(vulns.status, f"is {vulns.status}")
    raise StateConflict(f"{where} {reason}", {"status": vulns.status})


def _download(vulns: ImageVulnerabilities, extension: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{exports.filename(vulns, extension)}"'}
