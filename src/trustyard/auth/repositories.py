"""Repositories as managed objects: create, read, change settings, delete, and list the ones a
principal may see.

Every method takes the caller's connection and never commits. Who may create, read or
administer a repository is decided by the edge through `AccessPolicy` (the same rules as /v2);
`visible` applies the same rules to a listing. Deleting a repository removes its tags,
manifests, blob links and team grants (the schema cascades); blobs stay for a garbage collector.
"""

from __future__ import annotations

from sqlalchemy import Connection

from trustyard.auth.access import AccessPolicy
from trustyard.auth.interfaces import Invalid, NotFound, Repository
from trustyard.auth.permissions import Grants, Principal, RepositoryFacts, Visibility, visible
from trustyard.auth.scopes import TokenScope
from trustyard.auth.stores import AccessStore
from trustyard.oci.names import is_valid_name

VISIBILITIES: tuple[Visibility, ...] = ("private", "public")
# Rows read per query while looking for visible repositories.
_BATCH = 200


def check_repository_name(name: str) -> None:
    if not is_valid_name(name):
        raise Invalid(
            f"invalid repository name {name[:300]!r}: lower-case path components "
            "([a-z0-9] separated by '.', '_', '__' or dashes) joined by '/', at most 255 characters"
        )


def _check_visibility(visibility: str) -> Visibility:
    for known in VISIBILITIES:
        if visibility == known:
            return known
    raise Invalid(f"unknown visibility {visibility[:50]!r}: use private or public")


class RepositoryService:
    def __init__(self, store: AccessStore | None = None, policy: AccessPolicy | None = None):
        self.store = store or AccessStore()
        self.policy = policy or AccessPolicy(self.store)

    def create(
        self, conn: Connection, name: str, visibility: str = "private", description: str = ""
    ) -> Repository:
        """A new, empty repository; `Conflict` when it exists (pushed or created before)."""
        check_repository_name(name)
        return self.store.create_repository(
            conn, name, visibility=_check_visibility(visibility), description=description
        )

    def get(self, conn: Connection, name: str) -> Repository:
        found = self.store.repository_record(conn, name) if is_valid_name(name) else None
        if found is None:
            raise NotFound("repository", name[:300])
        return found

    def update(
        self,
        conn: Connection,
        name: str,
        *,
        visibility: str | None = None,
        description: str | None = None,
        scan_on_push: bool | None = None,
        immutable_tags: bool | None = None,
        attach_sbom: bool | None = None,
    ) -> Repository:
        """Change the given settings (None leaves a setting as it is)."""
        repository = self.get(conn, name)
        fields: dict[str, object] = {}
        if visibility is not None:
            fields["visibility"] = _check_visibility(visibility)
        if description is not None:
            fields["description"] = description
        if scan_on_push is not None:
            fields["scan_on_push"] = scan_on_push
        if immutable_tags is not None:
            fields["immutable_tags"] = immutable_tags
        if attach_sbom is not None:
            fields["attach_sbom"] = attach_sbom
        if fields:
            self.store.update_repository(conn, repository.id, **fields)
        return self.get(conn, name)

    def delete(self, conn: Connection, name: str) -> Repository:
        """Delete the repository with its tags, manifests, blob links and grants; returns
        what was deleted."""
        repository = self.get(conn, name)
        self.store.delete_repository(conn, repository.id)
        return repository

    def visible(
        self,
        conn: Connection,
        principal: Principal,
        scope: TokenScope | None,
        *,
        limit: int,
        after: str | None = None,
        namespace: str | None = None,
    ) -> list[Repository]:
        """Up to `limit` repositories `principal` (through `scope`) may read, in name order
        after `after`, only of `namespace` when given. Anonymous callers see public ones."""
        if principal.is_admin:
            namespaces: frozenset[str] | None = None
        else:
            mine = {principal.name} if principal.kind == "user" else set()
            mine |= principal.owned_orgs | {org for org, _ in principal.teams}
            if principal.robot_org is not None:
                mine.add(principal.robot_org)
            namespaces = frozenset(mine)
        grants: dict[str, Grants] = {}
        found: list[Repository] = []
        cursor = after
        while len(found) < limit:
            rows = self.store.list_repositories(
                conn, _BATCH, cursor, namespace=namespace, namespaces=namespaces
            )
            for repository in rows:
                shown: Visibility = "public" if repository.visibility == "public" else "private"
                facts = RepositoryFacts(repository.name, shown)
                held = grants.get(facts.namespace)
                if held is None:
                    held = grants[facts.namespace] = self.policy.grants(
                        conn, principal, facts.namespace
                    )
                if visible(principal, facts, held, scope):
                    found.append(repository)
                    if len(found) == limit:
                        break
            if len(rows) < _BATCH:
                break
            cursor = rows[-1].name
        return found
