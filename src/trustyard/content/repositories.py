"""Repositories as managed objects: create, read, change settings, delete, list a page.

Every method takes the caller's connection and never commits. Who may create, read, change or
delete a repository is not decided here: the edges ask the access domain first (`auth/`), in the
same transaction. Deleting a repository removes its tags, manifests, blob links and the team
grants on it (the schema cascades, in the caller's transaction); blobs stay for a garbage
collector. A push creates its repository itself (`ContentStore.push_target`).
"""

from __future__ import annotations

from sqlalchemy import Connection

from trustyard.content.interfaces import Repository
from trustyard.content.stores import ContentStore
from trustyard.errors import Invalid, NotFound
from trustyard.oci.names import is_valid_name

VISIBILITIES: tuple[str, ...] = ("private", "public")


def check_repository_name(name: str) -> None:
    if not is_valid_name(name):
        raise Invalid(
            f"invalid repository name {name[:300]!r}: lower-case path components "
            "([a-z0-9] separated by '.', '_', '__' or dashes) joined by '/', at most 255 characters"
        )


def _check_visibility(visibility: str) -> str:
    if visibility in VISIBILITIES:
        return visibility
    raise Invalid(f"unknown visibility {visibility[:50]!r}: use private or public")


class RepositoryService:
    def __init__(self, store: ContentStore | None = None) -> None:
        self.store = store or ContentStore()

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

    def page(
        self,
        conn: Connection,
        limit: int,
        after: str | None = None,
        *,
        namespace: str | None = None,
        namespaces: frozenset[str] | None = None,
    ) -> list[Repository]:
        """Up to `limit` repositories in byte-wise name order after `after`; only those of
        `namespace` when given; with `namespaces`, only those of these namespaces and public
        ones (the rows a caller's listing has to look at; the access domain decides which of
        them it shows)."""
        return self.store.list_repositories(
            conn, limit, after, namespace=namespace, namespaces=namespaces
        )
