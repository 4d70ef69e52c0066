"""/api/v1/vex: OpenVEX documents imported for an image, a repository or an organization
(each statement and product a triage decision there), listed, read and deleted.

Reading needs the right to pull the document's repository (an organization's documents: who
may see the organization); one the caller may not read answers 404 exactly like a missing one.
Importing and deleting need read-write on the repository, or ownership of the organization.
Every change is audited.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, BeforeValidator, Field
from sqlalchemy import Connection

from trustyard.api.audit import Trail
from trustyard.api.deps import Anyone, Caller, Limit, Registry, Repositories, Service, manage_org
from trustyard.api.deps import may_see_org as _may_see_org
from trustyard.api.errors import forbidden, hidden, problems
from trustyard.api.repositories import readable_repository
from trustyard.api.schemas import MAX_ROW_ID, NO_NUL, Page
from trustyard.api.triage import (
    DIGEST_PATTERN,
    After,
    PolicyRuns,
    Store,
    audit_change,
    aware,
    counts_changed,
    date_and_time,
    image_in,
    writable_repository,
)
from trustyard.auth.accounts import AccountService
from trustyard.auth.authorize import Action
from trustyard.auth.gate import Accounts
from trustyard.auth.permissions import Principal
from trustyard.auth.scopes import TokenScope
from trustyard.content.repositories import RepositoryService
from trustyard.db.engine import read_tx, write_tx
from trustyard.errors import Invalid
from trustyard.kit.clock import utc_now
from trustyard.vulnerabilities.triage import (
    IMAGE,
    ORGANIZATION,
    REPOSITORY,
    Scope,
    TriageStore,
    VexRecord,
)
from trustyard.vulnerabilities.vex import parse_document

router = APIRouter(tags=["triage"])

VexId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


# --- bodies ------------------------------------------------------------------------------------
class VexDocumentOut(BaseModel):
    id: int
    document_id: str = Field(description="the document's @id")
    author: str
    version: int
    issued_at: datetime | None
    scope: str = Field(description="image | repository | organization")
    repository: str | None
    organization: str | None
    digest: str | None
    decisions: int = Field(description="one per statement and product")
    expires_at: datetime | None
    imported_by: str | None
    imported_at: datetime
    replaced_version: int | None = Field(
        default=None, description="on import: the version this one replaced"
    )

    @classmethod
    def of(cls, record: VexRecord, replaced: int | None = None) -> VexDocumentOut:
        return cls(
            id=record.id,
            document_id=record.document_id,
            author=record.author,
            version=record.version,
            issued_at=record.issued_at,
            scope=record.scope,
            repository=record.repository,
            organization=record.namespace if record.scope == ORGANIZATION else None,
            digest=record.digest,
            decisions=record.rows,
            expires_at=record.expires_at,
            imported_by=record.imported_by,
            imported_at=record.imported_at,
            replaced_version=replaced,
        )


class VexDocumentDetail(VexDocumentOut):
    document: dict[str, Any] = Field(description="the OpenVEX document as imported")


# --- who may read and manage a document ---------------------------------------------------------
def _may_read(
    conn: Connection,
    accounts: Accounts,
    principal: Principal,
    scope: TokenScope | None,
    record: VexRecord,
) -> bool:
    if record.scope == ORGANIZATION:
        return record.namespace is not None and _may_see_org(principal, record.namespace)
    if record.repository is None:  # its repository is gone
        return principal.is_admin
    return accounts.policy.may(conn, principal, Action.PULL, record.repository, scope)


def _readable_document(
    conn: Connection,
    accounts: Accounts,
    store: TriageStore,
    principal: Principal,
    scope: TokenScope | None,
    vex_id: int,
) -> VexRecord:
    record = store.document(conn, vex_id)
    if not _may_read(conn, accounts, principal, scope, record):
        raise hidden("VEX document", str(vex_id))
    return record


def _managed_document(
    conn: Connection,
    accounts: Accounts,
    repositories: RepositoryService,
    service: AccountService,
    store: TriageStore,
    caller: Principal,
    vex_id: int,
) -> VexRecord:
    record = _readable_document(conn, accounts, store, caller, None, vex_id)
    if record.scope == ORGANIZATION:
        assert record.namespace is not None
        manage_org(service, conn, caller, record.namespace)
    elif record.repository is None:
        if not caller.is_admin:
            raise forbidden("only system administrators manage this document")
    else:
        writable_repository(conn, accounts, repositories, caller, record.repository)
    return record


# --- VEX documents -----------------------------------------------------------------------------
_VEX_BODY = Body(
    description="an OpenVEX (v0.2.0) document: @context, @id, author, timestamp, version, "
    "statements"
)


@router.post("/vex", status_code=201, responses=problems(404, 409))
def import_vex(
    document: Annotated[dict[str, Any], _VEX_BODY],
    response: Response,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    repositories: Repositories,
    service: Service,
    store: Store,
    runs: PolicyRuns,
    repository: Annotated[
        str | None,
        Query(max_length=255, pattern=NO_NUL, description="for this repository (or its image)"),
    ] = None,
    digest: Annotated[
        str | None, Query(pattern=DIGEST_PATTERN, description="for this image of `repository`")
    ] = None,
    organization: Annotated[
        str | None,
        Query(max_length=255, pattern=NO_NUL, description="for every repository of it"),
    ] = None,
    expires_at: Annotated[
        datetime | None,
        BeforeValidator(date_and_time),
        Query(description="when its statements end (default: never)"),
    ] = None,
) -> VexDocumentOut:
    """Import an OpenVEX document for an image (`repository` and `digest`), a repository, or
    an organization (`organization`): each statement and product becomes a decision there.
    The same `@id` again replaces the document only at a higher `version` (409 otherwise).
    Needs read-write on the repository, or ownership of the organization."""
    if (repository is None) == (organization is None):
        raise Invalid("give repository (with digest for one image) or organization")
    if digest is not None and repository is None:
        raise Invalid("digest names an image of `repository`")
    until = aware(expires_at)
    parsed = parse_document(document)
    data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    now = utc_now()
    with write_tx(accounts.engine) as conn:
        if organization is not None:
            manage_org(service, conn, caller, organization)
            scope = Scope(ORGANIZATION, organization)
            audited = ("organization", organization, organization)
        else:
            assert repository is not None
            target = writable_repository(conn, accounts, repositories, caller, repository)
            if digest is not None:
                image_in(conn, accounts, target.name, digest)
            kind = IMAGE if digest is not None else REPOSITORY
            scope = Scope(kind, target.namespace, target.id, digest)
            audited = ("repository", target.name, target.namespace)
        record, replaced = store.import_vex(
            conn, parsed, data, scope, expires_at=until, imported_by=caller.name, now=now
        )
        counts_changed(
            runs,
            conn,
            scope.kind,
            repository_id=scope.repository_id,
            namespace=scope.namespace,
            digest=scope.digest,
        )
        audit_change(
            trail,
            conn,
            "vex.import",
            audited[0],
            audited[1],
            audited[2],
            {
                "vex": record.id,
                "document": parsed.id,
                "version": parsed.version,
                "replaced_version": replaced,
                "digest": digest,
                "decisions": record.rows,
            },
        )
    response.headers["Location"] = f"/api/v1/vex/{record.id}"
    return VexDocumentOut.of(record, replaced)


@router.get("/vex", responses=problems(404))
def list_vex(
    reader: Anyone,
    accounts: Registry,
    repositories: Repositories,
    store: Store,
    limit: Limit = 100,
    after: After = None,
    repository: Annotated[str | None, Query(max_length=255, pattern=NO_NUL)] = None,
    organization: Annotated[
        str | None,
        Query(max_length=255, pattern=NO_NUL, description="the organization's own documents"),
    ] = None,
) -> Page[VexDocumentOut]:
    """The imported documents the caller may read, in import order (only those of
    `repository`, or of `organization`'s own scope, when given)."""
    if repository is not None and organization is not None:
        raise Invalid("filter by repository or by organization, not both")
    principal, scope = reader.principal, reader.scope
    with read_tx(accounts.engine) as conn:
        if repository is not None:
            target = readable_repository(conn, accounts, repositories, principal, scope, repository)
            found = store.documents(
                conn, repository_id=target.id, limit=limit + 1, after=after or 0
            )
        elif organization is not None:
            if not _may_see_org(principal, organization):
                raise hidden("organization", organization)
            found = store.documents(conn, namespace=organization, limit=limit + 1, after=after or 0)
        else:
            found, cursor = [], after or 0
            while len(found) <= limit:
                batch = store.documents(conn, limit=200, after=cursor)
                found += [r for r in batch if _may_read(conn, accounts, principal, scope, r)]
                if len(batch) < 200:
                    break
                cursor = batch[-1].id
    items = [VexDocumentOut.of(record) for record in found[:limit]]
    return Page(items=items, next=str(items[-1].id) if len(found) > limit else None)


@router.get("/vex/{vex_id}", responses=problems(404))
def get_vex(vex_id: VexId, reader: Anyone, accounts: Registry, store: Store) -> VexDocumentDetail:
    """One imported document, with the document itself."""
    with read_tx(accounts.engine) as conn:
        record = _readable_document(conn, accounts, store, reader.principal, reader.scope, vex_id)
        data = store.document_json(conn, vex_id)
    return VexDocumentDetail(**VexDocumentOut.of(record).model_dump(), document=data)


@router.delete("/vex/{vex_id}", status_code=204, responses=problems(404))
def delete_vex(
    vex_id: VexId,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    repositories: Repositories,
    service: Service,
    store: Store,
    runs: PolicyRuns,
) -> Response:
    """Delete an imported document with its decisions. Needs what importing it needed."""
    with write_tx(accounts.engine) as conn:
        record = _managed_document(conn, accounts, repositories, service, store, caller, vex_id)
        store.delete_document(conn, vex_id)
        counts_changed(
            runs,
            conn,
            record.scope,
            repository_id=record.repository_id,
            namespace=record.namespace,
            digest=record.digest,
        )
        kind, resource = (
            ("organization", record.namespace or "")
            if record.scope == ORGANIZATION
            else ("repository", record.repository or "")
        )
        audit_change(
            trail,
            conn,
            "vex.delete",
            kind,
            resource,
            record.namespace,
            {"vex": record.id, "document": record.document_id, "version": record.version},
        )
    return Response(status_code=204)
