"""The hot read queries, written once with named parameters.

ContentStore runs them through SQLAlchemy; the SQLite fast path compiles the same statements
to plain SQL for the standard-library driver.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select

from trustyard.db.tables import blobs, manifests, repositories, repository_blobs, tags

_MANIFEST_COLUMNS = (
    manifests.c.digest,
    manifests.c.media_type,
    manifests.c.payload,
    manifests.c.subject_digest,
)

MANIFEST_BY_DIGEST = (
    select(*_MANIFEST_COLUMNS)
    .select_from(manifests.join(repositories))
    .where(repositories.c.name == bindparam("repository"), manifests.c.digest == bindparam("ref"))
)

MANIFEST_BY_TAG = (
    select(*_MANIFEST_COLUMNS)
    .select_from(
        tags.join(manifests, manifests.c.id == tags.c.manifest_id).join(
            repositories, repositories.c.id == tags.c.repository_id
        )
    )
    .where(repositories.c.name == bindparam("repository"), tags.c.name == bindparam("ref"))
)

REPOSITORY_ID = select(repositories.c.id).where(repositories.c.name == bindparam("repository"))

TAG_NAMES = (
    select(tags.c.name)
    .select_from(tags.join(repositories, repositories.c.id == tags.c.repository_id))
    .where(repositories.c.name == bindparam("repository"))
)

REPOSITORY_BLOB_SIZE = (
    select(blobs.c.size)
    .select_from(
        repository_blobs.join(
            repositories, repositories.c.id == repository_blobs.c.repository_id
        ).join(blobs, blobs.c.digest == repository_blobs.c.digest)
    )
    .where(
        repositories.c.name == bindparam("repository"),
        repository_blobs.c.digest == bindparam("ref"),
    )
)
