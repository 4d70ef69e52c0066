"""/api/v1/repositories/{name}/tags and .../access: what a repository holds and who may use it.

The tags are for the repository's readers (paged, in byte order, each with its digest, size,
platforms, last push and latest scan status); who may access it is for its administrators
(organization owners and system administrators are among them). A private repository the caller
may not read answers 404 exactly like a missing one.

Included before the repositories router: GET /repositories/{name:path} would take these paths.
As on /v2 (`/v2/<name>/tags/list`), the last path component decides: `acme/app/tags` is the
tag list of `acme/app`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from trustyard.api.deps import Access, After, Anyone, Caller, Limit, Registry, Repositories
from trustyard.api.errors import forbidden, problems
from trustyard.api.repositories import readable_repository
from trustyard.api.schemas import Page, RepositoryAccessOut, TagOut, VulnerabilityCountsOut
from trustyard.api.vulnerabilities import get_images, tag_counts
from trustyard.auth.authorize import Action
from trustyard.content.tags import TagService
from trustyard.db.engine import read_tx
from trustyard.scanning.stores import ScanStore
from trustyard.vulnerabilities import exports

router = APIRouter(prefix="/repositories", tags=["repositories"])


def get_tags(request: Request) -> TagService:
    tags: TagService = request.app.state.tags
    return tags


Tags = Annotated[TagService, Depends(get_tags)]


@router.get("/{name:path}/tags", responses=problems(404))
def list_tags(
    name: str,
    reader: Anyone,
    accounts: Registry,
    repositories: Repositories,
    tags: Tags,
    limit: Limit = 100,
    after: After = None,
) -> Page[TagOut]:
    """The repository's tags in byte order, each with the digest, media type and total size
    of its manifest, its platforms, when it was last pushed and the status of the manifest's
    latest scan (null: never scanned) and its vulnerability counts (null: never matched)."""
    with read_tx(accounts.engine) as conn:
        repository = readable_repository(
            conn, accounts, repositories, reader.principal, reader.scope, name
        )
        found = tags.page(conn, repository.id, limit + 1, after)
        digests = [t.digest for t in found[:limit]]
        statuses = ScanStore().latest_statuses(conn, repository.id, digests)
        counts = tag_counts(conn, get_images(), repository.id, repository.name, digests)
    items = [
        TagOut.of(
            tag,
            statuses.get(tag.digest),
            VulnerabilityCountsOut(**exports.counts_json(counts[tag.digest]))
            if tag.digest in counts
            else None,
        )
        for tag in found[:limit]
    ]
    return Page(items=items, next=items[-1].name if len(found) > limit else None)


@router.get("/{name:path}/access", responses=problems(404))
def get_access(
    name: str, caller: Caller, accounts: Registry, repositories: Repositories, access: Access
) -> RepositoryAccessOut:
    """Who may use the repository, with their roles and the rules that give them: users
    (system administrators, the namespace's user or the organization's owners), teams of the
    organization and its robots. A public repository is also read-only for everybody. For the
    repository's administrators: 403 for its other readers, 404 for everybody else."""
    with read_tx(accounts.engine) as conn:
        repository = readable_repository(conn, accounts, repositories, caller, None, name)
        if not accounts.policy.may(conn, caller, Action.ADMIN, repository.name):
            raise forbidden(f"only administrators of {repository.name!r} may see who has access")
        return RepositoryAccessOut.of(access.holders(conn, repository.name))
