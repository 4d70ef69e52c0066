"""/api/v1/repositories: repositories as managed objects, under the access policy of /v2.

Reading (list, get) is open to anonymous callers and limited tokens for what they may pull;
a private repository the caller may not read answers 404 exactly like a missing one.
Creating needs the right to create in the namespace; changing settings and deleting need the
repository's admin role.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import Connection

from trustyard.api.audit import Trail
from trustyard.api.deps import (
    Access,
    After,
    Anyone,
    Caller,
    Limit,
    Publish,
    Registry,
    Repositories,
    Service,
)
from trustyard.api.errors import forbidden, hidden, problems
from trustyard.api.schemas import Page, RepositoryCreate, RepositoryOut, RepositoryUpdate
from trustyard.auth.authorize import Action
from trustyard.auth.gate import Accounts
from trustyard.auth.permissions import Principal
from trustyard.auth.scopes import TokenScope
from trustyard.content.interfaces import Repository
from trustyard.content.repositories import RepositoryService, check_repository_name
from trustyard.db.engine import read_tx, write_tx
from trustyard.errors import Invalid, ManifestUnknown, NotFound
from trustyard.events.model import repository_created, repository_deleted, repository_updated
from trustyard.oci.digest import parse_digest
from trustyard.oci.names import check_tag, is_valid_name

router = APIRouter(prefix="/repositories", tags=["repositories"])

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")


def readable_repository(
    conn: Connection,
    accounts: Accounts,
    repositories: RepositoryService,
    principal: Principal,
    scope: TokenScope | None,
    name: str,
) -> Repository:
    """The repository, if `principal` may read it; otherwise the same 404 as a missing one,
    after the same work: the lookup, the access decision (a missing repository counts as
    private) and the audit of the refusal happen whether or not it exists, so neither the
    answer nor its time tells a private repository from a missing one. Only a caller who
    could read it learns that it is missing (a plain 404, not audited)."""
    try:
        repository: Repository | None = repositories.get(conn, name)
    except NotFound:
        repository = None
    target = repository.name if repository is not None else name
    if not accounts.policy.may(conn, principal, Action.PULL, target, scope):
        raise hidden("repository", name)
    if repository is None:
        raise NotFound("repository", name[:300])
    return repository


def writable_repository(
    conn: Connection,
    accounts: Accounts,
    repositories: RepositoryService,
    principal: Principal,
    name: str,
    refusal: str,
) -> Repository:
    """The repository, if `principal` may push to it: 404 when they may not even read it (as
    a missing one), 403 with `refusal` when they may only read it."""
    repository = readable_repository(conn, accounts, repositories, principal, None, name)
    if not accounts.policy.may(conn, principal, Action.PUSH, repository.name):
        raise forbidden(refusal.format(repository=repository.name))
    return repository


def resolve_reference(conn: Connection, accounts: Accounts, repository: str, reference: str) -> str:
    """The digest of the manifest `reference` (a tag or a digest) names in the repository
    (ManifestUnknown: none, or a reference no tag or digest can be)."""
    content = accounts.policy.content
    try:
        if ":" in reference:
            record = content.get_manifest(conn, repository, str(parse_digest(reference)))
        else:
            record = content.resolve_tag(conn, repository, check_tag(reference))
    except Invalid:
        record = None
    if record is None:
        raise ManifestUnknown(reference)
    return record.digest


def _administered(
    conn: Connection,
    accounts: Accounts,
    repositories: RepositoryService,
    principal: Principal,
    name: str,
) -> Repository:
    """The repository, if `principal` administers it: 404 when they may not even read it,
    403 when they may read but not administer it."""
    repository = readable_repository(conn, accounts, repositories, principal, None, name)
    if not accounts.policy.may(conn, principal, Action.ADMIN, repository.name):
        raise forbidden(f"only administrators of {repository.name!r} may do this")
    return repository


@router.get("")
def list_repositories(
    reader: Anyone,
    accounts: Registry,
    access: Access,
    limit: Limit = 100,
    after: After = None,
    namespace: Annotated[
        str | None, Query(max_length=255, description="only repositories of this namespace")
    ] = None,
) -> Page[RepositoryOut]:
    """The repositories the caller may pull, in name order (anonymous callers: public ones)."""
    if after is not None and not is_valid_name(after):
        raise Invalid("after is a repository name (the `next` of the previous page)")
    if namespace is not None and _COMPONENT.fullmatch(namespace) is None:
        raise Invalid(f"invalid namespace {namespace[:100]!r}: a user or organization name")
    with read_tx(accounts.engine) as conn:
        found = access.visible(
            conn,
            reader.principal,
            reader.scope,
            limit=limit + 1,
            after=after,
            namespace=namespace,
        )
    items = [RepositoryOut.of(repository) for repository in found[:limit]]
    return Page(items=items, next=items[-1].name if len(found) > limit else None)


@router.post("", status_code=201, responses=problems(409))
def create_repository(
    body: RepositoryCreate,
    response: Response,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    repositories: Repositories,
    publish: Publish,
    service: Service,
) -> RepositoryOut:
    """Create an empty repository where the caller may create one (their own namespace, an
    organization they own or whose team holds an organization-wide read-write or admin grant;
    administrators anywhere: a namespace that is no user or organization becomes an
    organization they own)."""
    check_repository_name(body.name)
    with write_tx(accounts.engine) as conn:
        if not accounts.policy.may_create(conn, caller, body.name):
            namespace = body.name.split("/", 1)[0]
            raise forbidden(f"you may not create repositories in namespace {namespace!r}")
        created = repositories.create(conn, body.name, body.visibility, body.description)
        if service.claim_namespace(conn, created.name, caller.name):
            trail.record(
                conn,
                "organization.create",
                "organization",
                created.namespace,
                organization=created.namespace,
                detail={"by": "repository.create", "repository": created.name},
            )
        trail.record(
            conn,
            "repository.create",
            "repository",
            created.name,
            organization=created.namespace,
            detail={"visibility": created.visibility},
        )
        publish(conn, repository_created(created.name, created.visibility, "api", caller.name))
    response.headers["Location"] = f"/api/v1/repositories/{created.name}"
    return RepositoryOut.of(created)


@router.get("/{name:path}", responses=problems(404))
def get_repository(
    name: str, reader: Anyone, accounts: Registry, repositories: Repositories
) -> RepositoryOut:
    with read_tx(accounts.engine) as conn:
        repository = readable_repository(
            conn, accounts, repositories, reader.principal, reader.scope, name
        )
    return RepositoryOut.of(repository)


@router.patch("/{name:path}", responses=problems(404))
def update_repository(
    name: str,
    body: RepositoryUpdate,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    repositories: Repositories,
    publish: Publish,
) -> RepositoryOut:
    """Change visibility, description, scan on push, tag immutability or SBOM attachment
    (repository admins)."""
    changes = body.model_dump(exclude_none=True)
    with write_tx(accounts.engine) as conn:
        _administered(conn, accounts, repositories, caller, name)
        updated = repositories.update(conn, name, **changes)
        if changes:
            trail.record(
                conn,
                "repository.update",
                "repository",
                updated.name,
                organization=updated.namespace,
                detail=changes,
            )
            publish(conn, repository_updated(updated.name, changes, caller.name))
    return RepositoryOut.of(updated)


@router.delete("/{name:path}", status_code=204, responses=problems(404))
def delete_repository(
    name: str,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    repositories: Repositories,
    publish: Publish,
) -> Response:
    """Delete the repository with its tags, manifests and grants (repository admins); its
    blobs stay until a garbage collection."""
    with write_tx(accounts.engine) as conn:
        _administered(conn, accounts, repositories, caller, name)
        deleted = repositories.delete(conn, name)
        trail.record(
            conn, "repository.delete", "repository", deleted.name, organization=deleted.namespace
        )
        publish(conn, repository_deleted(deleted.name, caller.name))
    return Response(status_code=204)
