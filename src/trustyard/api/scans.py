"""/api/v1 scanning: start a scan of an image (or rescan it), follow its progress, read its
bill of materials (JSON, CycloneDX or SPDX), a layer's own result, and search components
across the registry.

Reading needs the right to pull the repository (anonymous callers too, for public ones); a
private repository the caller may not read answers 404 exactly like a missing one. Starting
a scan needs read-write on the repository (DTR: "start scans" is a read-write right).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from trustyard.api.audit import Trail
from trustyard.api.deps import Anyone, Limit, Registry, Repositories
from trustyard.api.errors import ApiProblem, forbidden, problems
from trustyard.api.repositories import readable_repository
from trustyard.api.schemas import MAX_ROW_ID, NO_NUL, Page
from trustyard.auth import audit
from trustyard.auth.authorize import Action
from trustyard.db.engine import read_tx, write_tx
from trustyard.errors import Invalid, NotFound
from trustyard.oci import mediatypes as mt
from trustyard.scanning.service import ScanService
from trustyard.scanning.stores import ComponentRow, ScanRecord

router = APIRouter(tags=["scanning"])

CYCLONEDX = "application/vnd.cyclonedx+json"
SPDX = "application/spdx+json"
FORMATS = {"json": "application/json", "cyclonedx-json": CYCLONEDX, "spdx-json": SPDX}
STREAM_CHUNK = 64 << 10  # compressed bytes of a stored BOM inflated per piece of the response

Reference = Annotated[
    str,
    Path(
        min_length=1,
        max_length=300,
        pattern=r"^[A-Za-z0-9_.:+=-]+$",
        description="a tag, or a manifest digest (`sha256:...`)",
    ),
]
LayerDigest = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$",
        description="the layer's digest",
    ),
]
Format = Literal["json", "cyclonedx-json", "spdx-json"]
Platform = Annotated[
    str | None,
    Query(
        max_length=64,
        pattern=r"^[a-z0-9._-]+(?:/[a-z0-9._-]+){1,2}$",
        description="only this platform of an index, e.g. `linux/amd64` or `linux/arm64/v8`",
    ),
]
Filter = Annotated[str | None, Query(min_length=1, max_length=512, pattern=NO_NUL)]


def get_scans(request: Request) -> ScanService:
    scans: ScanService = request.app.state.scans
    return scans


Scans = Annotated[ScanService, Depends(get_scans)]


# --- bodies ------------------------------------------------------------------------------------
class Progress(BaseModel):
    bytes_done: int = Field(description="compressed layer bytes read so far")
    bytes_total: int
    layers_done: int
    layers_total: int


class ScanOut(BaseModel):
    id: int
    repository: str
    digest: str = Field(description="the scanned manifest (an image, or an index: every platform)")
    status: Literal["queued", "running", "succeeded", "failed"]
    trigger: Literal["push", "request", "rescan"]
    force: bool = Field(description="layers were read again instead of taken from the cache")
    requested_by: str | None
    progress: Progress
    error: str | None = Field(description="why the scan failed (or why its last attempt did)")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, scan: ScanRecord) -> ScanOut:
        return cls(
            id=scan.id,
            repository=scan.repository,
            digest=scan.manifest_digest,
            status=scan.status,  # type: ignore[arg-type]
            trigger=scan.trigger,  # type: ignore[arg-type]
            force=scan.force,
            requested_by=scan.requested_by,
            progress=Progress(
                bytes_done=scan.bytes_done,
                bytes_total=scan.bytes_total,
                layers_done=scan.layers_done,
                layers_total=scan.layers_total,
            ),
            error=scan.error,
            created_at=scan.created_at,
            started_at=scan.started_at,
            finished_at=scan.finished_at,
        )


class ImageBomOut(BaseModel):
    manifest_digest: str
    platform: str
    distro: dict[str, str] | None
    layers: list[dict[str, Any]] = Field(
        description="per layer (bottom first): digest, diff_id, media_type, the components it "
        "holds, and what it adds, changes (old and new) and removes in the image"
    )
    components: list[dict[str, Any]] = Field(
        description="the squashed image: every component with the layer that introduced it"
    )


class BomOut(BaseModel):
    repository: str
    digest: str
    scan: ScanOut
    images: list[ImageBomOut] = Field(description="one per platform")


class LayerBomOut(BaseModel):
    digest: str
    media_type: str
    distro: dict[str, str] | None
    components: list[dict[str, Any]]
    whiteouts: list[str]
    opaque_dirs: list[str]
    files: int
    uncompressed_bytes: int
    notes: list[str]


class ComponentMatch(BaseModel):
    repository: str
    digest: str = Field(description="the scanned manifest")
    tags: list[str] = Field(description="the tags naming that manifest")
    platform: str
    layer: str = Field(description="the digest of the layer that brought the component")
    ecosystem: str
    name: str
    version: str
    purl: str
    location: str

    @classmethod
    def of(cls, row: ComponentRow, tags: list[str]) -> ComponentMatch:
        return cls(
            repository=row.repository,
            digest=row.manifest_digest,
            tags=tags,
            platform=row.platform,
            layer=row.layer_digest,
            ecosystem=row.ecosystem,
            name=row.name,
            version=row.version,
            purl=row.purl,
            location=row.location,
        )


# --- routes --------------------------------------------------------------------------------------
SCAN_PATH = "/repositories/{name:path}/manifests/{reference}/scan"


@router.post(SCAN_PATH, status_code=202, responses=problems(404, 409))
def start_scan(
    name: str,
    reference: Reference,
    trail: Trail,
    accounts: Registry,
    repositories: Repositories,
    scans: Scans,
    force: Annotated[
        bool, Query(description="read every layer again instead of using the layer cache")
    ] = False,
) -> ScanOut:
    """Scan an image or index now (a rescan when it was scanned before); when a scan of it is
    already queued or running, that scan. Needs read-write on the repository."""
    caller = trail.principal
    with write_tx(accounts.engine) as conn:
        repository = readable_repository(conn, accounts, repositories, caller, None, name).name
        if not accounts.policy.may(conn, caller, Action.SCAN, repository):
            raise forbidden(f"starting scans of {repository!r} needs read-write on it")
        target = scans.target(conn, repository, reference)
        scans.check_scannable(target)
        scan = scans.request(conn, target, force=force, requested_by=caller.name)
        trail.record(
            conn,
            "scan.request",
            "repository",
            repository,
            organization=audit.organization_of(repository),
            detail={"digest": target.digest, "force": force, "scan": scan.id},
        )
    return ScanOut.of(scan)


@router.get(SCAN_PATH, responses=problems(404))
def get_scan(
    name: str,
    reference: Reference,
    reader: Anyone,
    accounts: Registry,
    repositories: Repositories,
    scans: Scans,
) -> ScanOut:
    """The latest scan of the manifest, with its progress (404 when it was never scanned)."""
    with read_tx(accounts.engine) as conn:
        repository = readable_repository(
            conn, accounts, repositories, reader.principal, reader.scope, name
        ).name
        target = scans.target(conn, repository, reference)
        return ScanOut.of(scans.latest(conn, target))


_BOM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": BomOut,
        "content": {
            CYCLONEDX: {"schema": {"type": "object", "description": "CycloneDX 1.6"}},
            SPDX: {"schema": {"type": "object", "description": "SPDX 2.3"}},
        },
    },
    **problems(404, 409),
}


@router.get(
    "/repositories/{name:path}/manifests/{reference}/bom",
    response_model=None,
    responses=_BOM_RESPONSES,
)
def get_bom(
    name: str,
    reference: Reference,
    reader: Anyone,
    accounts: Registry,
    repositories: Repositories,
    scans: Scans,
    format: Annotated[Format, Query(description="json, cyclonedx-json or spdx-json")] = "json",
    platform: Platform = None,
) -> Response:
    """The bill of materials of the manifest's latest finished scan: per platform, per layer
    and squashed. 404 when it was never scanned; 409 while its scan is queued or running, or
    when it failed (the problem says why)."""
    with read_tx(accounts.engine) as conn:
        repository = readable_repository(
            conn, accounts, repositories, reader.principal, reader.scope, name
        ).name
        target = scans.target(conn, repository, reference)
        if format == "json" and platform is None:
            scan, packed = scans.packed_boms(conn, target)
        else:
            scan, documents = scans.boms(conn, target)
    if format == "json" and platform is None:
        # Streamed as stored, never parsed: a large BOM costs no memory and little time.
        head = {
            "repository": repository,
            "digest": target.digest,
            "scan": ScanOut.of(scan).model_dump(mode="json"),
        }
        stored = packed if packed is not None else zlib.compress(b"[]")
        return StreamingResponse(_json_bom(head, stored), media_type="application/json")
    if platform is not None:
        documents = [d for d in documents if d.get("platform") == platform]
        if not documents:
            raise ApiProblem(404, f"the image has no platform {platform!r}")
    if format == "json":
        body = BomOut(
            repository=repository,
            digest=target.digest,
            scan=ScanOut.of(scan),
            images=[ImageBomOut.model_validate(d) for d in documents],
        )
        return JSONResponse(body.model_dump(mode="json"))
    from trustyard.scanning.bom import ImageBom

    boms = [ImageBom.from_json(d) for d in documents]
    index = target.digest if target.media_type in mt.INDEXES else None
    if format == "cyclonedx-json":
        from trustyard.scanning.cyclonedx import iter_cyclonedx

        # Written while it is sent: the memory is the BOMs', not the document's.
        chunks = iter_cyclonedx(boms, repository, index_digest=index)
        return StreamingResponse(chunks, media_type=CYCLONEDX)
    else:
        from trustyard.scanning.spdx import to_spdx

        text = to_spdx(boms, repository, index_digest=index)
    return Response(text, media_type=FORMATS[format])


def _json_bom(head: dict[str, Any], packed: bytes) -> Iterator[bytes]:
    """`{...head, "images": [...]}` with the images inflated from the stored BOMs as they go."""
    yield json.dumps(head, separators=(",", ":"), ensure_ascii=False)[:-1].encode()
    yield b',"images":'
    inflate = zlib.decompressobj()
    for start in range(0, len(packed), STREAM_CHUNK):
        yield inflate.decompress(packed[start : start + STREAM_CHUNK])
    yield inflate.flush() + b"}"


@router.get("/repositories/{name:path}/layers/{digest}/bom", responses=problems(404))
def get_layer_bom(
    name: str,
    digest: LayerDigest,
    reader: Anyone,
    accounts: Registry,
    repositories: Repositories,
    scans: Scans,
) -> LayerBomOut:
    """What one layer of the repository holds on its own (whatever image it is part of), as
    its scan found it: components, whiteouts, opaque directories, notes."""
    with read_tx(accounts.engine) as conn:
        repository = readable_repository(
            conn, accounts, repositories, reader.principal, reader.scope, name
        ).name
        layer = scans.layer(conn, repository, digest)
    if layer is None:
        raise NotFound("scanned layer", digest)
    return LayerBomOut(
        digest=layer.digest,
        media_type=layer.media_type,
        distro=layer.distro.to_json() if layer.distro else None,
        components=[c.to_json() for c in layer.components],
        whiteouts=layer.whiteouts,
        opaque_dirs=layer.opaque_dirs,
        files=layer.files,
        uncompressed_bytes=layer.uncompressed_bytes,
        notes=layer.notes,
    )


@router.get("/components")
def search_components(
    reader: Anyone,
    accounts: Registry,
    scans: Scans,
    name: Filter = None,
    version: Filter = None,
    ecosystem: Annotated[
        str | None, Query(min_length=1, max_length=32, pattern=r"^[a-z0-9.-]+$")
    ] = None,
    purl: Annotated[str | None, Query(min_length=5, max_length=1024, pattern=NO_NUL)] = None,
    limit: Limit = 100,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_ROW_ID, description="the `next` of the previous page")
    ] = None,
) -> Page[ComponentMatch]:
    """Which images contain a component (by exact name, optionally version and ecosystem, or
    by package URL): each match with its repository, manifest, tags, platform and the layer
    that brought it. Only repositories the caller may pull are searched."""
    if name is None and purl is None:
        raise Invalid("give a component name or a package URL (purl)")
    principal, scope = reader.principal, reader.scope
    with read_tx(accounts.engine) as conn:

        def may_read(repository: str) -> bool:
            return accounts.policy.may(conn, principal, Action.PULL, repository, scope)

        page, following = scans.search(
            conn,
            may_read,
            name=name,
            version=version,
            ecosystem=ecosystem,
            purl=purl,
            after=after or 0,
            limit=limit,
        )
    items = [ComponentMatch.of(row, tags) for row, tags in page]
    return Page(items=items, next=str(following) if following is not None else None)
