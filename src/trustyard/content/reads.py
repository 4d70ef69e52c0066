"""What the feature domains read of content (scanning today, every later feature the same way).

Plain reads by repository id and manifest digest, the tags of many manifests at once, and the
joins a feature's own query needs to name a manifest's repository or to keep only manifests
that still exist. A feature's tables key their rows by (repository id, manifest digest); it
joins through these helpers instead of naming content's tables, so that content stays the only
code that knows them. Functions take the caller's connection; none commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Connection, FromClause, Join, and_, select

from trustyard.db.tables import manifests, repositories, tags

# A repository's name, for the select list of a query joined through `join_repository`.
REPOSITORY_NAME: ColumnElement[str] = repositories.c.name


def join_repository(source: FromClause, repository_id: ColumnElement[Any]) -> Join:
    """`source` joined to the repository its `repository_id` column names (an inner join:
    rows of a repository that is gone drop out)."""
    return source.join(repositories, repositories.c.id == repository_id)


def join_repository_as(
    source: FromClause, repository_id: ColumnElement[Any], alias: str
) -> tuple[Join, ColumnElement[str]]:
    """`source` joined (inner) to the repository `repository_id` names, under an alias of its
    own, for a query naming two repositories (a promotion policy's source and target); returns
    the join and the alias's name column."""
    aliased = repositories.alias(alias)
    return source.join(aliased, aliased.c.id == repository_id), aliased.c.name


def join_manifest(
    source: FromClause, repository_id: ColumnElement[Any], digest: ColumnElement[Any]
) -> Join:
    """`source` joined to the manifest its (repository id, digest) columns name (an inner
    join: rows whose manifest was deleted drop out)."""
    return source.join(
        manifests, and_(manifests.c.repository_id == repository_id, manifests.c.digest == digest)
    )


class ContentReads:
    """Single reads of a manifest or a repository setting, by repository id."""

    def manifest_payload(self, conn: Connection, repository_id: int, digest: str) -> bytes | None:
        """The manifest's bytes as pushed (None: not in this repository)."""
        return conn.scalar(
            select(manifests.c.payload).where(
                manifests.c.repository_id == repository_id, manifests.c.digest == digest
            )
        )

    def manifest_media_type(self, conn: Connection, repository_id: int, digest: str) -> str | None:
        return conn.scalar(
            select(manifests.c.media_type).where(
                manifests.c.repository_id == repository_id, manifests.c.digest == digest
            )
        )

    def attach_sbom(self, conn: Connection, repository_id: int) -> bool:
        """The repository's setting: push each scan's SBOM as a referrer of the image."""
        value = conn.scalar(
            select(repositories.c.attach_sbom).where(repositories.c.id == repository_id)
        )
        return bool(value)

    def manifest_tags(
        self, conn: Connection, pairs: Iterable[tuple[int, str]]
    ) -> dict[tuple[int, str], list[str]]:
        """The tags naming each (repository id, manifest digest), in name order, read in one
        query (a pair no tag names maps to an empty list)."""
        wanted = set(pairs)
        found: dict[tuple[int, str], list[str]] = {pair: [] for pair in wanted}
        if not wanted:
            return found
        rows = conn.execute(
            select(tags.c.repository_id, manifests.c.digest, tags.c.name)
            .select_from(tags.join(manifests, manifests.c.id == tags.c.manifest_id))
            .where(
                tags.c.repository_id.in_({rid for rid, _ in wanted}),
                manifests.c.digest.in_({digest for _, digest in wanted}),
            )
            .order_by(tags.c.name)
        )
        for row in rows:
            key = (row.repository_id, row.digest)
            if key in found:
                found[key].append(row.name)
        return found
