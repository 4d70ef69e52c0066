"""/api/v1/vulndb: the vulnerability database's state (any signed-in user), the admin's upload
of an OSV bundle (the air-gapped import) and the admin's request for an online update.

The upload's body is the bundle itself (a zip like osv.dev's all.zip, or a tar.gz), streamed
to a temporary file under `<data_dir>/vulndb/uploads` (never whole in memory) and bounded by
`vulnerabilities.max_upload_bytes`: a Content-Length past it is refused with 413 before a
byte is read, a body that grows past it as soon as it does. The route declares its own body
limit to the request guard (`LIMIT_KEY`, a ceiling above any upload limit), so the guard
checks the caller before the body and times out a stalled one, as for every route.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from starlette.requests import ClientDisconnect

from trustyard.api.audit import Trail
from trustyard.api.deps import Caller, Registry, require_admin
from trustyard.api.errors import PROBLEM, ApiProblem, problems
from trustyard.api.guard import LIMIT_KEY
from trustyard.db.engine import read_tx, write_tx
from trustyard.jobs.stores import JobStore
from trustyard.vulnerabilities.interfaces import (
    BundleInvalid,
    BundleRecordInvalid,
    DatabaseStatus,
    ImportReport,
    SourceStatus,
)
from trustyard.vulnerabilities.jobs import UPDATE_DEDUPE_KEY, enqueue_update
from trustyard.vulnerabilities.service import VulnDbTools

router = APIRouter(tags=["vulnerability database"])

UPLOAD_CEILING = 1 << 40  # the guard's limit for the route; the setting's is checked here
WRITE_BATCH = 1 << 20  # bytes gathered before a write to the temporary file


def get_tools(request: Request) -> VulnDbTools:
    tools: VulnDbTools = request.app.state.vulndb
    return tools


Tools = Annotated[VulnDbTools, Depends(get_tools)]


# --- bodies ------------------------------------------------------------------------------------
class SourceOut(BaseModel):
    name: str = Field(description="`osv:<ecosystem>` for an online source, else as imported")
    url: str | None = Field(description="where its records came from (a download, a file)")
    generation: int | None = Field(description="the records readers see; null: none yet")
    records: int
    bundle_sha256: str | None
    updated_at: datetime | None = Field(description="the last successful import")
    failed_at: datetime | None = Field(description="the last failure (kept after a success)")
    error: str | None = Field(description="why it failed then")
    importing: bool = Field(description="an import of it is being written now")

    @classmethod
    def of(cls, source: SourceStatus) -> SourceOut:
        return cls(
            name=source.name,
            url=source.url,
            generation=source.generation,
            records=source.records,
            bundle_sha256=source.bundle_sha256,
            updated_at=source.updated_at,
            failed_at=source.failed_at,
            error=source.error,
            importing=source.importing,
        )


class VulnDbOut(BaseModel):
    version: int = Field(description="moves whenever an import changes what matching sees")
    updated_at: datetime | None
    records: int
    sources: list[SourceOut]
    update_job: int | None = Field(description="the online update queued or running, if any")

    @classmethod
    def of(cls, status: DatabaseStatus, update_job: int | None) -> VulnDbOut:
        return cls(
            version=status.version,
            updated_at=status.updated_at,
            records=status.records,
            sources=[SourceOut.of(source) for source in status.sources],
            update_job=update_job,
        )


class ImportOut(BaseModel):
    source: str
    generation: int
    bundle_sha256: str | None
    records: int = Field(description="the source's records now")
    added: int
    changed: int
    unchanged: int
    removed: int
    withdrawn: int = Field(description="withdrawn records of the bundle, left out")
    skipped_entries: int = Field(description="entries that are not .json records")
    warnings: list[str] = Field(description="the first warnings (versions a scheme cannot read)")
    warning_count: int
    changed_packages: int = Field(description="(ecosystem, name) pairs whose records changed")
    seconds: float

    @classmethod
    def of(cls, report: ImportReport) -> ImportOut:
        return cls(
            source=report.source,
            generation=report.generation,
            bundle_sha256=report.bundle_sha256,
            records=report.records,
            added=report.added,
            changed=report.changed,
            unchanged=report.unchanged,
            removed=report.removed,
            withdrawn=report.withdrawn,
            skipped_entries=report.skipped_entries,
            warnings=list(report.warnings),
            warning_count=report.warning_count,
            changed_packages=len(report.changed_packages),
            seconds=report.seconds,
        )


class UpdateOut(BaseModel):
    job_id: int = Field(description="the `vulndb.update` job (see /api/v1/jobs)")
    created: bool = Field(description="false: an update was queued or running already")


# --- routes ------------------------------------------------------------------------------------
@router.get("/vulndb")
def vulndb_status(caller: Caller, accounts: Registry, tools: Tools) -> VulnDbOut:
    """The database's version, and per source its records, URL, last update and failure."""
    del caller  # any signed-in account
    with read_tx(accounts.engine) as conn:
        status = tools.service.status(conn)
        job = JobStore().live_id(conn, UPDATE_DEDUPE_KEY)
    return VulnDbOut.of(status, job)


_BUNDLE_BODY = {
    "required": True,
    "description": "the bundle: a zip of OSV records (osv.dev's all.zip) or a tar.gz",
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}


@router.post(
    "/vulndb/imports",
    responses=problems(409, 413),
    openapi_extra={"requestBody": _BUNDLE_BODY, LIMIT_KEY: UPLOAD_CEILING},
)
async def import_bundle(
    request: Request,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    tools: Tools,
    source: Annotated[
        str,
        Query(
            min_length=1,
            max_length=128,
            pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._:+@()/-]*$",
            description="the source whose records the bundle replaces",
        ),
    ] = "upload",
    sha256: Annotated[
        str | None,
        Query(pattern=r"^[0-9a-fA-F]{64}$", description="the bundle's SHA-256, checked first"),
    ] = None,
) -> Any:
    """Import an OSV bundle sent as the body (air-gapped sites): atomically, it replaces the
    records of `source`. A bundle that is corrupt, truncated, over a limit or holds an
    invalid record changes nothing: 422 naming the entry and the record."""
    require_admin(caller)
    limit = tools.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    tools.uploads.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".bundle", dir=tools.uploads)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            await _receive(request, f, limit)
        report = await asyncio.to_thread(
            tools.importer.import_bundle, path, source=source, sha256=sha256
        )
    except BundleInvalid as error:
        await asyncio.to_thread(_reword, tools, accounts.engine, source, error.bundle)
        return _refused_bundle(error)
    finally:
        path.unlink(missing_ok=True)

    def audit() -> None:
        with write_tx(accounts.engine) as conn:
            detail = {"records": report.records, "sha256": report.bundle_sha256}
            trail.record(conn, "vulndb.import", "vulnerability-source", source, detail=detail)

    await asyncio.to_thread(audit)
    return ImportOut.of(report)


@router.post("/vulndb/updates", status_code=202)
def request_update(caller: Caller, trail: Trail, tools: Tools, accounts: Registry) -> UpdateOut:
    """Run the online update now (as a job): while one is queued or running, that one."""
    require_admin(caller)
    with write_tx(accounts.engine) as conn:
        job = enqueue_update(tools.queue, conn)
        if job.created:
            trail.record(conn, "vulndb.update", "job", str(job.id))
    return UpdateOut(job_id=job.id, created=job.created)


# --- the upload --------------------------------------------------------------------------------
def _too_large(limit: int) -> ApiProblem:
    return ApiProblem(
        413, f"the bundle is larger than {limit} bytes (vulnerabilities.max_upload_bytes)"
    )


async def _receive(request: Request, f: Any, limit: int) -> None:
    """The body into `f`, a batch of chunks per write (off the event loop)."""
    size = 0
    pending: list[bytes] = []
    buffered = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            pending.append(chunk)
            buffered += len(chunk)
            if buffered >= WRITE_BATCH:
                await asyncio.to_thread(f.writelines, pending)
                pending, buffered = [], 0
    except ClientDisconnect:
        raise ApiProblem(400, "the client went away before the whole bundle came") from None
    if pending:
        await asyncio.to_thread(f.writelines, pending)


def _reword(tools: VulnDbTools, engine: Engine, source: str, path: str) -> None:
    """The failure the importer recorded names the temporary file: name the upload instead."""
    with write_tx(engine) as conn:
        tools.importer.store.reword_error(conn, source, path, "the upload")


def _refused_bundle(error: BundleInvalid) -> JSONResponse:
    """422 with the rule, and the entry and record at fault: problem+json, plus members."""
    detail = error.message.replace(error.bundle, "the upload")
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(422).phrase,
        "status": 422,
        "detail": detail,
        "rule": error.rule,
        "entry": error.entry,
    }
    if isinstance(error, BundleRecordInvalid):
        body.update(record=error.record_id, field=error.field, reason=error.reason)
    return JSONResponse(body, status_code=422, media_type=PROBLEM)
