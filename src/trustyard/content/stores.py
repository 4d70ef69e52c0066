"""All SQL of the content domain. Functions take the caller's connection; none commits."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    Table,
    bindparam,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from trustyard.content import queries
from trustyard.content.interfaces import (
    ManifestRecord,
    Page,
    ReferrerRecord,
    Repository,
    TagRow,
    UploadRecord,
)
from trustyard.db.sql import bytewise, keyset
from trustyard.db.tables import (
    blobs,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    tags,
    uploads,
)
from trustyard.errors import Conflict
from trustyard.kit.clock import utc, utc_now


class ContentStore:
    # --- repositories ------------------------------------------------------------------------
    def repository_id(self, conn: Connection, name: str) -> int | None:
        return conn.scalar(queries.REPOSITORY_ID, {"repository": name})

    def ensure_repository(self, conn: Connection, name: str) -> int:
        return self.claim_repository(conn, name)[0]

    def claim_repository(self, conn: Connection, name: str) -> tuple[int, bool]:
        """The repository's id, creating it if missing; True when this call created it."""
        existing = self.repository_id(conn, name)
        if existing is not None:
            return existing, False
        inserted = conn.scalar(
            _create_repository_statement(conn.dialect.name), {"name": name, "created_at": utc_now()}
        )
        if inserted is not None:
            return int(inserted), True
        created = self.repository_id(conn, name)  # a concurrent push created it
        assert created is not None
        return created, False

    def push_target(self, conn: Connection, name: str) -> tuple[int, bool, bool]:
        """What a manifest push needs of its repository, in the one query it already made:
        (id, whether this call created the repository, its scan_on_push setting)."""
        row = conn.execute(_PUSH_TARGET, {"repository": name}).first()
        if row is not None:
            return row.id, False, bool(row.scan_on_push)
        repository_id, created = self.claim_repository(conn, name)
        if created:
            return repository_id, True, True  # the column's default
        return self.push_target(conn, name)

    def catalog(self, conn: Connection, limit: int | None, last: str | None) -> Page:
        name = bytewise(conn, repositories.c.name)
        return _page(conn, keyset(select(repositories.c.name), name, last or None), limit)

    # --- repositories as managed objects ------------------------------------------------------
    def repository_visibility(self, conn: Connection, name: str) -> tuple[int, str] | None:
        """A repository's id and visibility (what every access decision reads: one query)."""
        row = conn.execute(_VISIBILITY, {"repository": name}).first()
        return (row.id, row.visibility) if row else None

    def repository_record(self, conn: Connection, name: str) -> Repository | None:
        row = conn.execute(select(repositories).where(repositories.c.name == name)).first()
        return _repository(row) if row else None

    def create_repository(
        self, conn: Connection, name: str, *, visibility: str, description: str
    ) -> Repository:
        """A new repository row; `Conflict` when the name is taken."""
        values = {
            "name": name,
            "visibility": visibility,
            "description": description,
            "created_at": utc_now(),
        }
        try:
            with conn.begin_nested():
                conn.execute(insert(repositories).values(**values))
        except IntegrityError:
            raise Conflict("repository", name) from None
        found = self.repository_record(conn, name)
        assert found is not None
        return found

    def list_repositories(
        self,
        conn: Connection,
        limit: int,
        after: str | None,
        *,
        namespace: str | None = None,
        namespaces: frozenset[str] | None = None,
        public: bool = True,
    ) -> list[Repository]:
        """Repositories in byte-wise name order after `after`, only those of `namespace` when
        given. `namespaces` None: every namespace; otherwise only repositories of those
        namespaces, and public ones when `public`."""
        query = keyset(
            select(repositories), bytewise(conn, repositories.c.name), after or None, limit
        )
        if namespace is not None:
            query = query.where(_in_namespace(namespace))
        if namespaces is not None:
            conditions = [_in_namespace(each) for each in sorted(namespaces)]
            if public:
                conditions.append(repositories.c.visibility == "public")
            query = query.where(or_(false(), *conditions))
        return [_repository(row) for row in conn.execute(query)]

    def update_repository(self, conn: Connection, repository_id: int, **fields: Any) -> None:
        conn.execute(
            update(repositories).where(repositories.c.id == repository_id).values(**fields)
        )

    def delete_repository(self, conn: Connection, repository_id: int) -> None:
        """Delete the repository row; the schema's ON DELETE CASCADE removes its tags,
        manifests (and their references), blob links and the access domain's team grants, in
        the caller's transaction. Blobs stay."""
        conn.execute(delete(repositories).where(repositories.c.id == repository_id))

    def has_repositories(self, conn: Connection, namespace: str) -> bool:
        query = select(repositories.c.id).where(_in_namespace(namespace)).limit(1)
        return conn.execute(query).first() is not None

    # --- blobs -------------------------------------------------------------------------------
    def blob_size(self, conn: Connection, digest: str) -> int | None:
        return conn.scalar(select(blobs.c.size).where(blobs.c.digest == digest))

    def repository_blob_size(self, conn: Connection, repository: str, digest: str) -> int | None:
        return conn.scalar(queries.REPOSITORY_BLOB_SIZE, {"repository": repository, "ref": digest})

    def record_blob(self, conn: Connection, digest: str, size: int) -> None:
        values = {"digest": digest, "size": size, "created_at": utc_now()}
        _insert_missing(conn, blobs, values, ["digest"])

    def link_blob(self, conn: Connection, repository_id: int, digest: str) -> None:
        values = {"repository_id": repository_id, "digest": digest, "created_at": utc_now()}
        _insert_missing(conn, repository_blobs, values, ["repository_id", "digest"])

    def unlink_blob(self, conn: Connection, repository: str, digest: str) -> bool:
        repo_id = self.repository_id(conn, repository)
        if repo_id is None:
            return False
        result = conn.execute(
            delete(repository_blobs).where(
                repository_blobs.c.repository_id == repo_id, repository_blobs.c.digest == digest
            )
        )
        return result.rowcount > 0

    def repositories_with_blob(self, conn: Connection, digest: str) -> list[str]:
        query = (
            select(repositories.c.name)
            .select_from(
                repository_blobs.join(
                    repositories, repositories.c.id == repository_blobs.c.repository_id
                )
            )
            .where(repository_blobs.c.digest == digest)
            .order_by(repositories.c.name)
        )
        return list(conn.scalars(query))

    def repository_blob_pairs(self, conn: Connection) -> set[tuple[str, str]]:
        query = select(repositories.c.name, repository_blobs.c.digest).select_from(
            repository_blobs.join(repositories)
        )
        return {(row.name, row.digest) for row in conn.execute(query)}

    def all_blobs(self, conn: Connection) -> Iterator[tuple[str, int]]:
        for row in conn.execute(select(blobs.c.digest, blobs.c.size).order_by(blobs.c.digest)):
            yield row.digest, row.size

    # --- uploads -----------------------------------------------------------------------------
    def create_upload(self, conn: Connection, upload_id: str, repository: str) -> None:
        stamp = utc_now()
        values = {
            "id": upload_id,
            "repository": repository,
            "offset": 0,
            "created_at": stamp,
            "updated_at": stamp,
        }
        conn.execute(_INSERT_UPLOAD, values)

    def get_upload(self, conn: Connection, upload_id: str) -> UploadRecord | None:
        row = conn.execute(_GET_UPLOAD, {"id": upload_id}).first()
        return UploadRecord(row.id, row.repository, row.offset) if row else None

    def advance_upload(self, conn: Connection, upload_id: str, old: int, new: int) -> bool:
        params = {"upload_id": upload_id, "old": old, "new": new, "stamp": utc_now()}
        return conn.execute(_ADVANCE_UPLOAD, params).rowcount == 1

    def delete_upload(self, conn: Connection, upload_id: str) -> bool:
        return conn.execute(_DELETE_UPLOAD, {"id": upload_id}).rowcount > 0

    def upload_ids(self, conn: Connection) -> set[str]:
        return set(conn.scalars(select(uploads.c.id)))

    # --- manifests ---------------------------------------------------------------------------
    def get_manifest(self, conn: Connection, repository: str, digest: str) -> ManifestRecord | None:
        params = {"repository": repository, "ref": digest}
        row = conn.execute(queries.MANIFEST_BY_DIGEST, params).first()
        return ManifestRecord(*row) if row else None

    def resolve_tag(self, conn: Connection, repository: str, tag: str) -> ManifestRecord | None:
        row = conn.execute(queries.MANIFEST_BY_TAG, {"repository": repository, "ref": tag}).first()
        return ManifestRecord(*row) if row else None

    def manifest_id(self, conn: Connection, repository_id: int, digest: str) -> int | None:
        return conn.scalar(_MANIFEST_ID, {"repository_id": repository_id, "digest": digest})

    def insert_manifest(
        self,
        conn: Connection,
        repository_id: int,
        record: ManifestRecord,
        artifact_type: str | None,
        annotations: dict[str, str] | None,
        references: Iterable[tuple[str, str]],
    ) -> int:
        values = {
            "repository_id": repository_id,
            "digest": record.digest,
            "media_type": record.media_type,
            "artifact_type": artifact_type,
            "subject_digest": record.subject_digest,
            "annotations": json.dumps(annotations) if annotations else None,
            "size": len(record.payload),
            "payload": record.payload,
            "created_at": utc_now(),
        }
        result = conn.execute(_INSERT_MANIFEST, values)
        manifest_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        rows = [{"manifest_id": manifest_id, "kind": k, "digest": d} for k, d in set(references)]
        if rows:
            conn.execute(_INSERT_REFERENCE, rows)
        return manifest_id

    def missing_manifests(
        self, conn: Connection, repository_id: int, digests: list[str]
    ) -> list[str]:
        if not digests:
            return []
        params = {"repository_id": repository_id, "digests": digests}
        present = set(conn.scalars(_PRESENT_MANIFESTS, params))
        return [d for d in digests if d not in present]

    def linked_blob_sizes(
        self, conn: Connection, repository_id: int, digests: list[str]
    ) -> dict[str, int]:
        if not digests:
            return {}
        params = {"repository_id": repository_id, "digests": digests}
        rows = conn.execute(_LINKED_BLOB_SIZES, params)
        return {row.digest: row.size for row in rows}

    def delete_manifest(self, conn: Connection, repository: str, digest: str) -> bool:
        repo_id = self.repository_id(conn, repository)
        if repo_id is None:
            return False
        manifest_id = self.manifest_id(conn, repo_id, digest)
        if manifest_id is None:
            return False
        conn.execute(delete(tags).where(tags.c.manifest_id == manifest_id))
        conn.execute(
            delete(manifest_references).where(manifest_references.c.manifest_id == manifest_id)
        )
        conn.execute(delete(manifests).where(manifests.c.id == manifest_id))
        return True

    def manifest_tags(self, conn: Connection, repository: str, digest: str) -> list[str]:
        """The tags of `repository` that name the manifest `digest`, in name order."""
        query = (
            select(tags.c.name)
            .select_from(
                tags.join(manifests, manifests.c.id == tags.c.manifest_id).join(
                    repositories, repositories.c.id == tags.c.repository_id
                )
            )
            .where(repositories.c.name == repository, manifests.c.digest == digest)
            .order_by(tags.c.name)
        )
        return list(conn.scalars(query))

    def referrers(self, conn: Connection, repository: str, digest: str) -> list[ReferrerRecord]:
        rows = conn.execute(
            select(
                manifests.c.digest,
                manifests.c.media_type,
                manifests.c.size,
                manifests.c.artifact_type,
                manifests.c.annotations,
            )
            .select_from(manifests.join(repositories))
            .where(repositories.c.name == repository, manifests.c.subject_digest == digest)
            .order_by(manifests.c.created_at, manifests.c.digest)
        )
        return [
            ReferrerRecord(
                r.digest,
                r.media_type,
                r.size,
                r.artifact_type,
                json.loads(r.annotations) if r.annotations else None,
            )
            for r in rows
        ]

    def all_manifests(self, conn: Connection) -> Iterator[tuple[str, str, bytes, str]]:
        query = select(
            repositories.c.name, manifests.c.digest, manifests.c.payload, manifests.c.media_type
        ).select_from(manifests.join(repositories))
        for row in conn.execute(query):
            yield row.name, row.digest, row.payload, row.media_type

    def all_references(self, conn: Connection) -> Iterator[tuple[str, str, str, str]]:
        """(repository, manifest digest, kind, referenced digest) for every reference."""
        query = select(
            repositories.c.name,
            manifests.c.digest,
            manifest_references.c.kind,
            manifest_references.c.digest.label("target"),
        ).select_from(manifest_references.join(manifests).join(repositories))
        for row in conn.execute(query):
            yield row.name, row.digest, row.kind, row.target

    # --- tags --------------------------------------------------------------------------------
    def set_tag(self, conn: Connection, repository_id: int, tag: str, manifest_id: int) -> None:
        """Point `tag` at a manifest: one upsert statement."""
        values = {
            "repository_id": repository_id,
            "name": tag,
            "manifest_id": manifest_id,
            "updated_at": utc_now(),
        }
        conn.execute(_set_tag_statement(conn.dialect.name), values)

    def delete_tag(self, conn: Connection, repository: str, tag: str) -> bool:
        repo_id = self.repository_id(conn, repository)
        if repo_id is None:
            return False
        result = conn.execute(
            delete(tags).where(tags.c.repository_id == repo_id, tags.c.name == tag)
        )
        return result.rowcount > 0

    def list_tags(
        self, conn: Connection, repository_id: int, limit: int | None, last: str | None
    ) -> Page:
        query = select(tags.c.name).where(tags.c.repository_id == repository_id)
        return _page(conn, keyset(query, bytewise(conn, tags.c.name), last or None), limit)

    def tag_rows(
        self, conn: Connection, repository_id: int, limit: int, after: str | None
    ) -> list[TagRow]:
        """Up to `limit` tags of the repository in byte order after `after`, each with its
        manifest (digest, media type, size, bytes) and when the tag was last pushed."""
        query = keyset(
            select(
                tags.c.name,
                tags.c.updated_at,
                manifests.c.id,
                manifests.c.digest,
                manifests.c.media_type,
                manifests.c.size,
                manifests.c.payload,
            )
            .select_from(tags.join(manifests, manifests.c.id == tags.c.manifest_id))
            .where(tags.c.repository_id == repository_id),
            bytewise(conn, tags.c.name),
            after,
            limit,
        )
        return [
            TagRow(
                row.name,
                row.id,
                row.digest,
                row.media_type,
                row.size,
                bytes(row.payload),
                utc(row.updated_at),
            )
            for row in conn.execute(query)
        ]

    def blob_totals(self, conn: Connection, manifest_ids: Iterable[int]) -> dict[int, int]:
        """For each manifest, the summed size of the blobs it references (config, layers)."""
        ids = list(manifest_ids)
        if not ids:
            return {}
        query = (
            select(manifest_references.c.manifest_id, func.sum(blobs.c.size).label("total"))
            .select_from(
                manifest_references.join(blobs, blobs.c.digest == manifest_references.c.digest)
            )
            .where(manifest_references.c.kind == "blob", manifest_references.c.manifest_id.in_(ids))
            .group_by(manifest_references.c.manifest_id)
        )
        return {row.manifest_id: int(row.total or 0) for row in conn.execute(query)}

    def manifests_by_digest(
        self, conn: Connection, repository_id: int, digests: Iterable[str]
    ) -> dict[str, tuple[int, int]]:
        """The id and size of the repository's manifests among `digests` (index children)."""
        wanted = list(set(digests))
        if not wanted:
            return {}
        query = select(manifests.c.digest, manifests.c.id, manifests.c.size).where(
            manifests.c.repository_id == repository_id, manifests.c.digest.in_(wanted)
        )
        return {row.digest: (row.id, row.size) for row in conn.execute(query)}

    def dangling_tags(self, conn: Connection) -> list[tuple[str, str]]:
        query = (
            select(repositories.c.name, tags.c.name.label("tag"))
            .select_from(
                tags.join(repositories, repositories.c.id == tags.c.repository_id).outerjoin(
                    manifests, manifests.c.id == tags.c.manifest_id
                )
            )
            .where(manifests.c.id.is_(None))
        )
        return [(row.name, row.tag) for row in conn.execute(query)]


# Write-path statements, built once: constructing SQLAlchemy expressions per call was a third
# of a manifest PUT's CPU time.
_MANIFEST_ID = select(manifests.c.id).where(
    manifests.c.repository_id == bindparam("repository_id"),
    manifests.c.digest == bindparam("digest"),
)
_PRESENT_MANIFESTS = select(manifests.c.digest).where(
    manifests.c.repository_id == bindparam("repository_id"),
    manifests.c.digest.in_(bindparam("digests", expanding=True)),
)
_LINKED_BLOB_SIZES = (
    select(blobs.c.digest, blobs.c.size)
    .select_from(repository_blobs.join(blobs))
    .where(
        repository_blobs.c.repository_id == bindparam("repository_id"),
        repository_blobs.c.digest.in_(bindparam("digests", expanding=True)),
    )
)
_VISIBILITY = select(repositories.c.id, repositories.c.visibility).where(
    repositories.c.name == bindparam("repository")
)
_PUSH_TARGET = select(repositories.c.id, repositories.c.scan_on_push).where(
    repositories.c.name == bindparam("repository")
)
_INSERT_MANIFEST = insert(manifests)
_INSERT_UPLOAD = insert(uploads)
_GET_UPLOAD = select(uploads.c.id, uploads.c.repository, uploads.c.offset).where(
    uploads.c.id == bindparam("id")
)
_ADVANCE_UPLOAD = (
    update(uploads)
    .where(uploads.c.id == bindparam("upload_id"), uploads.c.offset == bindparam("old"))
    .values(offset=bindparam("new"), updated_at=bindparam("stamp"))
)
_DELETE_UPLOAD = delete(uploads).where(uploads.c.id == bindparam("id"))
_INSERT_REFERENCE = insert(manifest_references)
_SET_TAG: dict[str, Any] = {}


def _set_tag_statement(dialect_name: str) -> Any:
    statement = _SET_TAG.get(dialect_name)
    if statement is None:
        dialect = postgresql if dialect_name == "postgresql" else sqlite
        upsert = dialect.insert(tags)
        statement = upsert.on_conflict_do_update(
            index_elements=["repository_id", "name"],
            set_={
                "manifest_id": upsert.excluded.manifest_id,
                "updated_at": upsert.excluded.updated_at,
            },
        )
        _SET_TAG[dialect_name] = statement
    return statement


_INSERT_MISSING: dict[tuple[str, str], Any] = {}


def _create_repository_statement(dialect_name: str) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id: the new id, or no row when the
    repository exists (rowcount cannot tell: with RETURNING, PostgreSQL's driver says -1)."""
    cache_key = ("repositories-returning", dialect_name)
    statement = _INSERT_MISSING.get(cache_key)
    if statement is None:
        dialect = postgresql if dialect_name == "postgresql" else sqlite
        statement = (
            dialect.insert(repositories)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(repositories.c.id)
        )
        _INSERT_MISSING[cache_key] = statement
    return statement


def _insert_missing(conn: Connection, table: Table, values: dict[str, Any], key: list[str]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: one statement, safe against concurrent inserts."""
    cache_key = (table.name, conn.dialect.name)
    statement = _INSERT_MISSING.get(cache_key)
    if statement is None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(table).on_conflict_do_nothing(index_elements=key)
        _INSERT_MISSING[cache_key] = statement
    conn.execute(statement, values)


def _repository(row: Row[Any]) -> Repository:
    return Repository(
        row.id,
        row.name,
        row.visibility,
        row.description,
        bool(row.scan_on_push),
        bool(row.immutable_tags),
        utc(row.created_at),
        bool(row.attach_sbom),
    )


def _in_namespace(namespace: str) -> ColumnElement[bool]:
    """Repositories whose first path component is `namespace` (compared exactly: no LIKE,
    whose wildcards and case rules differ between databases)."""
    prefix = f"{namespace}/"
    return or_(
        repositories.c.name == namespace,
        func.substr(repositories.c.name, 1, len(prefix)) == prefix,
    )


def _page(conn: Connection, query: Select[Any], limit: int | None) -> Page:
    if limit is not None:
        names = list(conn.scalars(query.limit(limit + 1)))
        return Page(names[:limit], len(names) > limit)
    return Page(list(conn.scalars(query)), False)
