"""/api/v1 triage of a repository's images: DTR's vulnerability overrides (list, create,
delete) and an image's triage exported as an OpenVEX document; the helpers api/vex.py (the
imported OpenVEX documents) shares.

Reading needs the right to pull the repository (anonymous callers too, for public ones); a
private repository the caller may not read answers 404 exactly like a missing one. Creating and
deleting overrides needs read-write on the repository. Every change is audited.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, BeforeValidator, Field
from sqlalchemy import Connection

from trustyard.api.audit import AuditTrail, Trail
from trustyard.api.deps import Anyone, Caller, Limit, Registry, Repositories
from trustyard.api.errors import problems
from trustyard.api.repositories import readable_repository, resolve_reference
from trustyard.api.repositories import writable_repository as writable
from trustyard.api.schemas import MAX_ROW_ID, NO_NUL, Page
from trustyard.auth.gate import Accounts
from trustyard.auth.permissions import Principal
from trustyard.content.interfaces import Repository
from trustyard.content.repositories import RepositoryService
from trustyard.db.engine import read_tx, write_tx
from trustyard.errors import Invalid, ManifestUnknown
from trustyard.kit.clock import utc_now
from trustyard.policies.triggers import PolicyTriggers
from trustyard.vulnerabilities.triage import (
    IMAGE,
    ORGANIZATION,
    REPOSITORY,
    Scope,
    TriageRow,
    TriageStore,
    image_document,
)
from trustyard.vulnerabilities.vex import (
    MAX_NAME,
    MAX_PURL,
    MAX_TEXT,
    Justification,
)

router = APIRouter(tags=["triage"])

OVERRIDES = "/repositories/{name:path}/vulnerability-overrides"
DIGEST_PATTERN = r"^sha256:[a-f0-9]{64}$"
Digest = Annotated[str, Field(pattern=DIGEST_PATTERN, description="a manifest digest")]
OverrideId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
VexId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
After = Annotated[
    int | None, Query(ge=1, le=MAX_ROW_ID, description="the `next` of the previous page")
]
Reference = Annotated[
    str,
    Path(
        min_length=1,
        max_length=300,
        pattern=r"^[A-Za-z0-9_.:+=-]+$",
        description="a tag, or a manifest digest (`sha256:...`)",
    ),
]
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)


def date_and_time(value: object) -> object:
    if isinstance(value, str) and _DATETIME.fullmatch(value) is None:
        raise ValueError("expected an ISO 8601 date and time, e.g. 2030-05-01T12:00:00Z")
    return value


def aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        raise Invalid("expires_at is out of range") from None


Expiry = Annotated[datetime | None, BeforeValidator(date_and_time)]


def get_triage(request: Request) -> TriageStore:
    store: TriageStore = request.app.state.triage
    return store


Store = Annotated[TriageStore, Depends(get_triage)]


def get_policy_triggers(request: Request) -> PolicyTriggers | None:
    triggers: PolicyTriggers | None = getattr(request.app.state, "policy_triggers", None)
    return triggers


PolicyRuns = Annotated[PolicyTriggers | None, Depends(get_policy_triggers)]


def counts_changed(
    runs: PolicyTriggers | None,
    conn: Connection,
    scope: str,
    *,
    repository_id: int | None,
    namespace: str | None,
    digest: str | None,
) -> None:
    """A decision of `scope` came or went, in the change's transaction: the promotion
    policies that judge vulnerability counts run again where it holds."""
    if runs is None:
        return
    if scope == ORGANIZATION:
        runs.counts_changed(conn, namespace=namespace, digest=digest)
    else:
        runs.counts_changed(conn, repository_id=repository_id, digest=digest)


# --- bodies ------------------------------------------------------------------------------------
class OverrideCreate(BaseModel):
    vulnerability: str = Field(
        min_length=1, max_length=MAX_NAME, pattern=NO_NUL, description="any name of it"
    )
    reason: str = Field(
        min_length=1, max_length=MAX_TEXT, pattern=NO_NUL, description="why it is hidden"
    )
    component_purl: str | None = Field(
        default=None,
        max_length=MAX_PURL,
        pattern=NO_NUL,
        description="only for this component (package URL); default every component",
    )
    digest: Digest | None = Field(
        default=None, description="only in this image; default every image of the repository"
    )
    justification: Justification | None = None
    expires_at: Expiry = Field(default=None, description="when the override ends")


class TriageOut(BaseModel):
    id: int
    scope: str = Field(description="image | repository | organization")
    repository: str | None
    digest: str | None
    namespace: str | None
    vulnerability: str
    component_purl: str | None
    status: str = Field(description="not_affected | affected | fixed | under_investigation")
    justification: str | None
    statement: str | None
    source: str = Field(description="override | vex")
    document: int | None = Field(description="the VEX document it comes from")
    expires_at: datetime | None
    expired: bool
    created_by: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: TriageRow, repository: str | None, now: datetime) -> TriageOut:
        return cls(
            id=row.id,
            scope=row.scope,
            repository=repository,
            digest=row.manifest_digest,
            namespace=row.namespace,
            vulnerability=row.vuln_id,
            component_purl=row.component_purl,
            status=row.status.value,
            justification=row.justification,
            statement=row.statement,
            source=row.source,
            document=row.document,
            expires_at=row.expires_at,
            expired=row.expired(now),
            created_by=row.created_by,
            created_at=row.created_at,
        )


# --- who may do what ---------------------------------------------------------------------------
def writable_repository(
    conn: Connection,
    accounts: Accounts,
    repositories: RepositoryService,
    caller: Principal,
    name: str,
) -> Repository:
    """The repository, if `caller` may triage it (read-write): 404 when they may not read it,
    403 when they may only read it."""
    refusal = "triage of {repository!r} needs read-write on it"
    return writable(conn, accounts, repositories, caller, name, refusal)


def image_in(conn: Connection, accounts: Accounts, repository: str, digest: str) -> str:
    if accounts.policy.content.get_manifest(conn, repository, digest) is None:
        raise ManifestUnknown(digest)
    return digest


def audit_change(
    trail: AuditTrail,
    conn: Connection,
    action: str,
    kind: str,
    resource: str,
    organization: str | None,
    detail: dict[str, object],
) -> None:
    trail.record(conn, action, kind, resource, organization=organization, detail=detail)


# --- overrides ---------------------------------------------------------------------------------
@router.get(OVERRIDES, responses=problems(404))
def list_overrides(
    name: str,
    reader: Anyone,
    accounts: Registry,
    repositories: Repositories,
    store: Store,
    limit: Limit = 100,
    after: After = None,
    digest: Annotated[
        str | None, Query(pattern=DIGEST_PATTERN, description="only this image's")
    ] = None,
) -> Page[TriageOut]:
    """The repository's vulnerability overrides, oldest first (expired ones included)."""
    now = utc_now()
    with read_tx(accounts.engine) as conn:
        repository = readable_repository(
            conn, accounts, repositories, reader.principal, reader.scope, name
        )
        found = store.overrides(
            conn, repository.id, digest=digest, limit=limit + 1, after=after or 0
        )
    items = [TriageOut.of(row, repository.name, now) for row in found[:limit]]
    return Page(items=items, next=str(items[-1].id) if len(found) > limit else None)


@router.post(OVERRIDES, status_code=201, responses=problems(404))
def create_override(
    name: str,
    body: OverrideCreate,
    response: Response,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    repositories: Repositories,
    store: Store,
    runs: PolicyRuns,
) -> TriageOut:
    """Hide a vulnerability (DTR's override): of one component (`component_purl`) or all, in
    one image (`digest`) or every image of the repository, with the reason; optionally until
    `expires_at`. Counts and exports leave it out. Needs read-write on the repository."""
    now = utc_now()
    expires_at = aware(body.expires_at)
    with write_tx(accounts.engine) as conn:
        repository = writable_repository(conn, accounts, repositories, caller, name)
        if body.digest is not None:
            image_in(conn, accounts, repository.name, body.digest)
        kind = IMAGE if body.digest is not None else REPOSITORY
        row = store.add_override(
            conn,
            Scope(kind, repository.namespace, repository.id, body.digest),
            body.vulnerability,
            statement=body.reason,
            component_purl=body.component_purl,
            justification=body.justification.value if body.justification else None,
            expires_at=expires_at,
            created_by=caller.name,
            now=now,
        )
        counts_changed(
            runs, conn, kind, repository_id=repository.id, namespace=None, digest=body.digest
        )
        audit_change(
            trail,
            conn,
            "vulnerability.override.create",
            "repository",
            repository.name,
            repository.namespace,
            {
                "override": row.id,
                "vulnerability": row.vuln_id,
                "component_purl": row.component_purl,
                "digest": row.manifest_digest,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    response.headers["Location"] = f"/api/v1/repositories/{repository.name}/vulnerability-overrides"
    return TriageOut.of(row, repository.name, now)


@router.delete(f"{OVERRIDES}/{{override_id}}", status_code=204, responses=problems(404))
def delete_override(
    name: str,
    override_id: OverrideId,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    repositories: Repositories,
    store: Store,
    runs: PolicyRuns,
) -> Response:
    """Remove an override: the vulnerability counts again. Needs read-write on the repository."""
    with write_tx(accounts.engine) as conn:
        repository = writable_repository(conn, accounts, repositories, caller, name)
        row = store.delete_override(conn, repository.id, override_id)
        counts_changed(
            runs,
            conn,
            row.scope,
            repository_id=repository.id,
            namespace=None,
            digest=row.manifest_digest,
        )
        audit_change(
            trail,
            conn,
            "vulnerability.override.delete",
            "repository",
            repository.name,
            repository.namespace,
            {"override": row.id, "vulnerability": row.vuln_id},
        )
    return Response(status_code=204)


# --- export ------------------------------------------------------------------------------------
@router.get("/repositories/{name:path}/manifests/{reference}/vex", responses=problems(404))
def export_vex(
    name: str,
    reference: Reference,
    request: Request,
    reader: Anyone,
    accounts: Registry,
    repositories: Repositories,
    store: Store,
) -> dict[str, Any]:
    """The triage that holds for the image now (overrides and imported statements; for each
    vulnerability and component the winning decision) as an OpenVEX document about it."""
    now = utc_now()
    with read_tx(accounts.engine) as conn:
        repository = readable_repository(
            conn, accounts, repositories, reader.principal, reader.scope, name
        )
        digest = resolve_reference(conn, accounts, repository.name, reference)
        rows = store.applicable(conn, repository.id, digest, repository.namespace, now)
    base = str(request.base_url).rstrip("/")
    url = f"{base}/api/v1/repositories/{repository.name}/manifests/{digest}/vex"
    return image_document(
        rows, repository.name, digest, registry=request.url.netloc, url=url, now=now
    )
