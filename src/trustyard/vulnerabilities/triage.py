"""Triage: DTR's overrides and imported OpenVEX statements, and the one place that applies
them to an image's findings.

Every decision is a `vuln_triage` row: a vulnerability name, optionally one component (purl),
a status with its justification and statement, an optional expiry, and a scope: `image`
(repository + manifest digest), `repository`, or `organization` (a namespace; such a row may
still name one manifest digest). An override (`source` override) is DTR's "hide this
vulnerability": `not_affected` with the reason as statement, for one image or a whole
repository. A VEX document (`vex_documents`, kept as imported) becomes one row per statement
and product (`vex.Target`), all in the scope it was imported for; re-importing its `@id` with
a higher `version` replaces its rows, an equal or lower version is refused.

`apply_triage` decides which row applies to each finding: rows that have not expired, whose
vulnerability is one of the finding's names and whose component purl (if any) names the
finding's component; of those, the narrowest scope (a row naming the image's digest, then the
repository's, then the organization's), among equals the newest. Reads and writes take the
caller's connection; nothing commits.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, case, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from trustyard.content.reads import REPOSITORY_NAME, join_repository
from trustyard.db.tables import vex_documents, vuln_triage
from trustyard.errors import Invalid, NotFound, StateConflict
from trustyard.kit.clock import utc, utc_or_none
from trustyard.vulnerabilities.interfaces import (
    ImageFinding,
    ImageVulnerabilities,
    Triage,
    TriageStatus,
)
from trustyard.vulnerabilities.vex import (
    MAX_NAME,
    MAX_PURL,
    Assertion,
    VexDocument,
    VexInvalid,
    export_document,
    image_purl,
    normal_purl,
    purl_matches,
)

IMAGE, REPOSITORY, ORGANIZATION = "image", "repository", "organization"
OVERRIDE, VEX = "override", "vex"
INSERT_BATCH = 500


class VexVersionConflict(StateConflict):
    """A document whose `@id` is imported already at the same or a higher version, or for
    another repository or organization."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a decision holds: an image (`repository_id` + `digest`), a repository, or an
    organization (`namespace`)."""

    kind: str  # image | repository | organization
    namespace: str
    repository_id: int | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in (IMAGE, REPOSITORY, ORGANIZATION):
            raise Invalid(f"unknown triage scope {self.kind!r}")
        if self.kind != ORGANIZATION and self.repository_id is None:
            raise Invalid(f"an {self.kind} scope needs its repository")
        if (self.kind == IMAGE) != (self.digest is not None):
            raise Invalid("an image scope, and only it, names a manifest digest")


@dataclass(frozen=True, slots=True)
class TriageRow:
    id: int
    scope: str
    repository_id: int | None
    manifest_digest: str | None
    namespace: str | None
    vuln_id: str
    component_purl: str | None
    status: TriageStatus
    justification: str | None
    statement: str | None
    source: str
    document: int | None  # vex_documents.id
    expires_at: datetime | None
    created_by: str | None
    created_at: datetime

    @property
    def rank(self) -> int:
        """0 for a decision about one image, 1 a repository's, 2 an organization's."""
        if self.manifest_digest is not None:
            return 0
        return 1 if self.scope == REPOSITORY else 2

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def applies_to(self, finding: ImageFinding) -> bool:
        if self.vuln_id not in finding.names:
            return False
        return self.component_purl is None or purl_matches(
            self.component_purl, finding.component.purl
        )

    def triage(self) -> Triage:
        return Triage(
            id=self.id,
            scope=IMAGE if self.rank == 0 and self.scope != ORGANIZATION else self.scope,
            status=self.status,
            justification=self.justification,
            statement=self.statement,
            source=self.source,
            expires_at=self.expires_at,
            created_by=self.created_by,
            created_at=self.created_at,
        )


@dataclass(frozen=True, slots=True)
class _Known:
    id: int
    version: int


@dataclass(frozen=True, slots=True)
class VexRecord:
    """An imported document: what it is, who imported it, where it holds, its rows."""

    id: int
    document_id: str
    author: str
    version: int
    issued_at: datetime | None
    imported_by: str | None
    imported_at: datetime
    scope: str  # image | repository | organization
    repository_id: int | None
    repository: str | None
    namespace: str | None
    digest: str | None
    rows: int
    expires_at: datetime | None


def _row(row: Row[Any]) -> TriageRow:
    return TriageRow(
        id=row.id,
        scope=row.scope,
        repository_id=row.repository_id,
        manifest_digest=row.manifest_digest,
        namespace=row.namespace,
        vuln_id=row.vuln_id,
        component_purl=row.component_purl,
        status=TriageStatus(row.status),
        justification=row.justification,
        statement=row.statement,
        source=row.source,
        document=row.document_id,
        expires_at=utc_or_none(row.expires_at),
        created_by=row.created_by,
        created_at=utc(row.created_at),
    )


def _check_name(vuln_id: str) -> None:
    if not vuln_id.strip() or len(vuln_id) > MAX_NAME or "\x00" in vuln_id:
        raise Invalid(f"a vulnerability name of 1 to {MAX_NAME} characters is required")


def _check_purl(purl: str) -> None:
    if len(purl) > MAX_PURL or normal_purl(purl) is None:
        raise Invalid(f"component_purl is not a package URL of at most {MAX_PURL} characters")


class TriageStore:
    """All SQL of triage (vuln_triage, vex_documents)."""

    # --- overrides ---------------------------------------------------------------------------
    def add_override(
        self,
        conn: Connection,
        scope: Scope,
        vuln_id: str,
        *,
        statement: str,
        component_purl: str | None = None,
        justification: str | None = None,
        expires_at: datetime | None = None,
        created_by: str | None,
        now: datetime,
    ) -> TriageRow:
        """DTR's override: hide `vuln_id` (of one component, or all) in one image or in every
        image of a repository, `statement` saying why."""
        if scope.kind == ORGANIZATION:
            raise Invalid("an override holds for an image or a repository")
        _check_name(vuln_id)
        if component_purl is not None:
            _check_purl(component_purl)
        if not statement.strip():
            raise Invalid("an override needs its reason (statement)")
        if expires_at is not None and utc(expires_at) <= now:
            raise Invalid("expires_at is in the past")
        new_id = conn.execute(
            insert(vuln_triage)
            .values(
                scope=scope.kind,
                repository_id=scope.repository_id,
                manifest_digest=scope.digest,
                namespace=scope.namespace,
                vuln_id=vuln_id,
                component_purl=component_purl,
                status=TriageStatus.NOT_AFFECTED.value,
                justification=justification,
                statement=statement,
                source=OVERRIDE,
                expires_at=utc(expires_at) if expires_at is not None else None,
                created_by=created_by,
                created_at=now,
            )
            .returning(vuln_triage.c.id)
        ).scalar_one()
        return self.get(conn, new_id)

    def get(self, conn: Connection, triage_id: int) -> TriageRow:
        row = conn.execute(select(vuln_triage).where(vuln_triage.c.id == triage_id)).first()
        if row is None:
            raise NotFound("triage decision", str(triage_id))
        return _row(row)

    def overrides(
        self,
        conn: Connection,
        repository_id: int,
        *,
        digest: str | None = None,
        limit: int = 100,
        after: int = 0,
    ) -> list[TriageRow]:
        """The repository's overrides (of one image when `digest`), oldest first, expired
        ones included."""
        query = (
            select(vuln_triage)
            .where(
                vuln_triage.c.repository_id == repository_id,
                vuln_triage.c.source == OVERRIDE,
                vuln_triage.c.id > after,
            )
            .order_by(vuln_triage.c.id)
            .limit(limit)
        )
        if digest is not None:
            query = query.where(vuln_triage.c.manifest_digest == digest)
        return [_row(row) for row in conn.execute(query)]

    def delete_override(self, conn: Connection, repository_id: int, triage_id: int) -> TriageRow:
        """Remove one override of the repository (NotFound: none of that id there)."""
        try:
            found = self.get(conn, triage_id)
        except NotFound:
            found = None
        if found is None or found.source != OVERRIDE or found.repository_id != repository_id:
            raise NotFound("override", str(triage_id))
        conn.execute(delete(vuln_triage).where(vuln_triage.c.id == triage_id))
        return found

    # --- VEX documents ------------------------------------------------------------------------
    def import_vex(
        self,
        conn: Connection,
        document: VexDocument,
        data: bytes,
        scope: Scope,
        *,
        expires_at: datetime | None = None,
        imported_by: str | None,
        now: datetime,
    ) -> tuple[VexRecord, int | None]:
        """Store `document` (its JSON `data` as imported) and one row per statement and
        target in `scope`. A document already imported under its `@id` is replaced when this
        one's version is higher (the same repository or organization only); an equal or
        lower version is refused. Returns the record and the version it replaced."""
        if expires_at is not None and utc(expires_at) <= now:
            raise Invalid("expires_at is in the past")
        rows = list(_statement_rows(document, scope))
        known = self._imported(conn, document.id)
        replaced: int | None = None
        values = {
            "author": document.author,
            "version": document.version,
            "issued_at": document.timestamp,
            "data": zlib.compress(data),
            "imported_by": imported_by,
            "imported_at": now,
        }
        if known is not None:
            if document.version <= known.version:
                raise VexVersionConflict(
                    f"OpenVEX document {document.id!r} is imported at version {known.version}; "
                    "only a higher version replaces it",
                    {"document": document.id, "version": known.version},
                )
            old = self.document(conn, known.id)
            if (old.repository_id, old.namespace if old.repository_id is None else None) != (
                scope.repository_id,
                scope.namespace if scope.repository_id is None else None,
            ):
                raise VexVersionConflict(
                    f"OpenVEX document {document.id!r} is imported for another repository or "
                    "organization; delete it there first",
                    {"document": document.id},
                )
            conn.execute(delete(vuln_triage).where(vuln_triage.c.document_id == known.id))
            conn.execute(update(vex_documents).where(vex_documents.c.id == known.id).values(values))
            doc_pk = known.id
            replaced = known.version
        else:
            try:
                with conn.begin_nested():
                    doc_pk = conn.execute(
                        insert(vex_documents)
                        .values(document_id=document.id, **values)
                        .returning(vex_documents.c.id)
                    ).scalar_one()
            except IntegrityError:
                # Another import of the same @id committed since the lookup (PostgreSQL).
                raise VexVersionConflict(
                    f"OpenVEX document {document.id!r} was imported meanwhile; import it "
                    "again with a higher version to replace it",
                    {"document": document.id},
                ) from None
        expiry = utc(expires_at) if expires_at is not None else None
        for start in range(0, len(rows), INSERT_BATCH):
            batch = rows[start : start + INSERT_BATCH]
            conn.execute(
                insert(vuln_triage),
                [
                    {
                        **row,
                        "source": VEX,
                        "document_id": doc_pk,
                        "expires_at": expiry,
                        "created_by": imported_by,
                        "created_at": row["created_at"] or now,
                    }
                    for row in batch
                ],
            )
        return self.document(conn, doc_pk), replaced

    def _imported(self, conn: Connection, document_id: str) -> _Known | None:
        """The stored document of that @id, locked until the transaction ends on
        PostgreSQL, so that two re-imports of it run one after the other."""
        row = conn.execute(
            select(vex_documents.c.id, vex_documents.c.version)
            .where(vex_documents.c.document_id == document_id)
            .with_for_update()
        ).first()
        return _Known(row.id, row.version) if row is not None else None

    def documents(
        self,
        conn: Connection,
        *,
        repository_id: int | None = None,
        namespace: str | None = None,
        limit: int = 100,
        after: int = 0,
    ) -> list[VexRecord]:
        """Imported documents in import order (those of one repository, or of one
        organization's own scope, when asked)."""
        query = select(vex_documents.c.id).where(vex_documents.c.id > after)
        if repository_id is not None or namespace is not None:
            owned = select(vuln_triage.c.document_id).where(vuln_triage.c.document_id.is_not(None))
            if repository_id is not None:
                owned = owned.where(vuln_triage.c.repository_id == repository_id)
            else:
                owned = owned.where(
                    vuln_triage.c.scope == ORGANIZATION, vuln_triage.c.namespace == namespace
                )
            query = query.where(vex_documents.c.id.in_(owned))
        ids = list(conn.scalars(query.order_by(vex_documents.c.id).limit(limit)))
        return self._records(conn, ids)

    def document(self, conn: Connection, doc_pk: int) -> VexRecord:
        found = self._records(conn, [doc_pk])
        if not found:
            raise NotFound("VEX document", str(doc_pk))
        return found[0]

    def document_json(self, conn: Connection, doc_pk: int) -> dict[str, Any]:
        data = conn.scalar(select(vex_documents.c.data).where(vex_documents.c.id == doc_pk))
        if data is None:
            raise NotFound("VEX document", str(doc_pk))
        value: dict[str, Any] = json.loads(zlib.decompress(data))
        return value

    def delete_document(self, conn: Connection, doc_pk: int) -> VexRecord:
        record = self.document(conn, doc_pk)
        conn.execute(delete(vuln_triage).where(vuln_triage.c.document_id == doc_pk))
        conn.execute(delete(vex_documents).where(vex_documents.c.id == doc_pk))
        return record

    def _records(self, conn: Connection, ids: Sequence[int]) -> list[VexRecord]:
        if not ids:
            return []
        t = vuln_triage.c
        facts = {
            row.document_id: row
            for row in conn.execute(
                select(
                    t.document_id,
                    func.max(t.scope).label("max_scope"),
                    func.min(t.repository_id).label("repository_id"),
                    func.min(t.namespace).label("namespace"),
                    func.min(t.manifest_digest).label("min_digest"),
                    func.max(t.manifest_digest).label("max_digest"),
                    func.sum(case((t.manifest_digest.is_(None), 1), else_=0)).label("whole"),
                    func.count().label("rows"),
                    func.min(t.expires_at).label("expires_at"),
                )
                .where(t.document_id.in_(ids))
                .group_by(t.document_id)
            )
        }
        repo_ids = {f.repository_id for f in facts.values() if f.repository_id is not None}
        names: dict[int, str] = {}
        if repo_ids:
            names = {
                row.repository_id: row.name
                for row in conn.execute(
                    select(t.repository_id, REPOSITORY_NAME.label("name"))
                    .select_from(join_repository(vuln_triage, t.repository_id))
                    .where(t.repository_id.in_(repo_ids))
                    .distinct()
                )
            }
        records = []
        for doc in conn.execute(
            select(vex_documents).where(vex_documents.c.id.in_(ids)).order_by(vex_documents.c.id)
        ):
            fact = facts.get(doc.id)
            scope, digest = _scope_of(fact)
            repository_id = fact.repository_id if fact is not None else None
            records.append(
                VexRecord(
                    id=doc.id,
                    document_id=doc.document_id,
                    author=doc.author,
                    version=doc.version,
                    issued_at=utc_or_none(doc.issued_at),
                    imported_by=doc.imported_by,
                    imported_at=utc(doc.imported_at),
                    scope=scope,
                    repository_id=repository_id,
                    repository=names.get(repository_id) if repository_id is not None else None,
                    namespace=fact.namespace if fact is not None else None,
                    digest=digest,
                    rows=fact.rows if fact is not None else 0,
                    expires_at=utc_or_none(fact.expires_at) if fact is not None else None,
                )
            )
        return records

    # --- reading what applies -----------------------------------------------------------------
    def applicable(
        self,
        conn: Connection,
        repository_id: int,
        digest: str,
        namespace: str,
        now: datetime,
        names: Iterable[str] | None = None,
    ) -> list[TriageRow]:
        """The decisions that hold for the image now (not expired), narrowest first, then
        newest; only those naming one of `names` when given."""
        t = vuln_triage.c
        query = select(vuln_triage).where(
            or_(
                and_(t.repository_id == repository_id, t.scope.in_((IMAGE, REPOSITORY))),
                and_(t.scope == ORGANIZATION, t.namespace == namespace),
            ),
            or_(t.manifest_digest.is_(None), t.manifest_digest == digest),
        )
        wanted = set(names) if names is not None else None
        if wanted is not None:
            if not wanted:
                return []
            if len(wanted) <= 500:
                query = query.where(t.vuln_id.in_(sorted(wanted)))
        found = [_row(row) for row in conn.execute(query)]
        live = [r for r in found if not r.expired(now) and (wanted is None or r.vuln_id in wanted)]
        return sorted(live, key=_precedence)

    def live_in(
        self, conn: Connection, repository_id: int, namespace: str, now: datetime
    ) -> list[TriageRow]:
        """Every decision that holds now for some image of the repository (its images', its
        own, its organization's), narrowest first, then newest: one query, for deciding many
        images at once (`decide` with the rows whose digest is None or the image's)."""
        t = vuln_triage.c
        query = select(vuln_triage).where(
            or_(
                and_(t.repository_id == repository_id, t.scope.in_((IMAGE, REPOSITORY))),
                and_(t.scope == ORGANIZATION, t.namespace == namespace),
            )
        )
        live = [row for row in map(_row, conn.execute(query)) if not row.expired(now)]
        return sorted(live, key=_precedence)


def _precedence(row: TriageRow) -> tuple[int, float, int]:
    return row.rank, -row.created_at.timestamp(), -row.id


def _scope_of(fact: Row[Any] | None) -> tuple[str, str | None]:
    if fact is None:
        return REPOSITORY, None
    if fact.max_scope == ORGANIZATION:
        return ORGANIZATION, None
    if fact.whole == 0 and fact.min_digest == fact.max_digest:
        return IMAGE, fact.min_digest
    return REPOSITORY, None


def _statement_rows(document: VexDocument, scope: Scope) -> Iterable[dict[str, Any]]:
    for statement in document.statements:
        for target in statement.targets:
            digest = target.digest
            if scope.kind == IMAGE:
                if digest is not None and digest != scope.digest:
                    raise VexInvalid(
                        f"names image {digest}, but the document is imported for {scope.digest}",
                        statement.index,
                        "products",
                    )
                digest = scope.digest
            kind = scope.kind
            if kind == REPOSITORY and digest is not None:
                kind = IMAGE
            yield {
                "scope": kind,
                "repository_id": scope.repository_id,
                "manifest_digest": digest,
                "namespace": scope.namespace,
                "vuln_id": statement.vulnerability,
                "component_purl": target.purl,
                "status": statement.status.value,
                "justification": statement.justification.value if statement.justification else None,
                "statement": statement.statement,
                "created_at": statement.timestamp or document.timestamp,
            }


# --- applying ----------------------------------------------------------------------------------
def decide(findings: Iterable[ImageFinding], rows: Sequence[TriageRow]) -> tuple[ImageFinding, ...]:
    """Each finding with the first of `rows` (in precedence order) that applies to it, or
    with no triage. Pure."""
    by_name: dict[str, list[TriageRow]] = {}
    for row in rows:
        by_name.setdefault(row.vuln_id, []).append(row)
    decided = []
    for finding in findings:
        candidates = [r for name in finding.names for r in by_name.get(name, ())]
        chosen = min(
            (r for r in candidates if r.applies_to(finding)), key=_precedence, default=None
        )
        triage = chosen.triage() if chosen is not None else None
        decided.append(replace(finding, triage=triage) if triage != finding.triage else finding)
    return tuple(decided)


def apply_triage(
    conn: Connection,
    vulns: ImageVulnerabilities,
    repository_id: int,
    namespace: str,
    now: datetime,
    store: TriageStore | None = None,
) -> ImageVulnerabilities:
    """`vulns` with every finding's `.triage` set to the decision that holds for it at `now`
    (None where none does), so that `.counts` leave out suppressed findings (`not_affected`,
    `fixed`) and exports can show the analysis.

    A decision holds for a finding when it has not expired, its vulnerability name is one of
    `finding.names` (the id, the merged records' ids, their aliases), its component purl (if
    any) names the finding's component (the same purl, qualifiers in any order; a stated purl
    without a qualifier matches every value of it) and its scope covers the image: this
    manifest of `repository_id`, the whole repository, or the organization `namespace` (the
    repository's namespace, `auth.audit.organization_of(name)`). The narrowest scope wins
    (image, then repository, then organization), among equals the newest. One query; the
    caller's connection, nothing written."""
    names = {name for finding in vulns.findings for name in finding.names}
    if not names:
        return vulns
    rows = (store or TriageStore()).applicable(
        conn, repository_id, vulns.manifest_digest, namespace, now, names
    )
    return replace(vulns, findings=decide(vulns.findings, rows))


def assertions(rows: Iterable[TriageRow]) -> list[Assertion]:
    """The decisions of `rows` (in precedence order) as VEX assertions: one per
    (vulnerability, component), the first (winning) one of each."""
    seen: set[tuple[str, str | None]] = set()
    out: list[Assertion] = []
    for row in rows:
        key = (row.vuln_id, row.component_purl)
        if key in seen:
            continue
        seen.add(key)
        out.append(
            Assertion(
                vulnerability=row.vuln_id,
                aliases=(),
                component_purl=row.component_purl,
                status=row.status,
                justification=row.justification,
                statement=row.statement,
                timestamp=row.created_at,
            )
        )
    return sorted(out, key=lambda a: (a.vulnerability, a.component_purl or ""))


def image_document(
    rows: Sequence[TriageRow],
    repository: str,
    digest: str,
    *,
    registry: str,
    url: str,
    now: datetime,
) -> dict[str, Any]:
    """The decisions of `rows` (those that hold for the image, in precedence order:
    `TriageStore.applicable`) as an OpenVEX document about the image `pkg:oci/...@digest`
    (its `repository_url` on `registry`). Its @id is `url` with a digest of the decisions
    as fragment, so a changed triage is a new document; issued at the newest decision."""
    decided = assertions(rows)
    fingerprint = hashlib.sha256(
        json.dumps(
            [
                [a.vulnerability, a.component_purl, a.status, a.justification, a.statement]
                for a in decided
            ]
        ).encode()
    ).hexdigest()[:16]
    issued = max((a.timestamp for a in decided), default=now)
    product = image_purl(repository, digest, registry)
    return export_document(
        f"{url}#{fingerprint}", f"trustyard ({registry})", issued, product, decided
    )
