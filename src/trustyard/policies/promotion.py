"""Promotion: an image of one repository copied into another under a tag, and its record.

`PromotionService.promote` is the one way an image is promoted, by hand (the API) or by a
policy (its run). It copies the image through content (metadata only: `ManifestCopier`), and
when the target tag moved writes the `promotions` row (the image's history) and adds the
PROMOTION event to the target's events. Promoting an image to a tag that already names it
moves nothing: no row and no PROMOTION event (a signature or SBOM added to the source since
is still copied, with its MANIFEST_PUSH). The caller publishes the events in its transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from sqlalchemy import Connection, bindparam, insert, or_, select

from trustyard.content.interfaces import Repository
from trustyard.content.promotion import (
    FACT_PROMOTION_DEPTH,
    CopiedImage,
    CopyTooLarge,
    ManifestCopier,
    TagImmutable,
)
from trustyard.content.reads import REPOSITORY_NAME, join_repository
from trustyard.db.tables import promotions
from trustyard.errors import Invalid
from trustyard.events import model as events
from trustyard.events.model import Event
from trustyard.kit.clock import utc, utc_now
from trustyard.oci.names import is_valid_tag
from trustyard.policies.interfaces import PolicyRecord, PromotionRecord, PromotionRefused

MANUAL: Final = "manual"
# What set a promotion off: by hand, or a policy's run on a push, a finished scan, a change of
# vulnerability counts (a database update or a triage decision), on demand, or at creation.
TRIGGERS: Final = frozenset(
    {MANUAL, "push", "scan", "vulnerabilities", "triage", "demand", "initial"}
)


@dataclass(frozen=True, slots=True)
class PromotionResult:
    """What a promotion did: its record when a tag moved (None: nothing moved), and the
    events to publish (the target's MANIFEST_PUSH and TAG_PUSH events, then PROMOTION)."""

    record: PromotionRecord | None
    events: tuple[Event, ...]
    copy: CopiedImage | None = None

    @property
    def moved(self) -> bool:
        return self.record is not None


class PromotionStore:
    """All SQL on the `promotions` table."""

    def insert(self, conn: Connection, values: dict[str, Any]) -> int:
        result = conn.execute(_INSERT, values)
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def get(self, conn: Connection, promotion_id: int) -> PromotionRecord | None:
        row = conn.execute(_SELECT.where(promotions.c.id == promotion_id)).first()
        return _record(row) if row is not None else None

    def history(self, conn: Connection, repository_id: int, digest: str) -> list[PromotionRecord]:
        """The promotions of a manifest into or out of the repository, oldest first."""
        query = _SELECT.where(
            promotions.c.manifest_digest == bindparam("digest"),
            or_(
                promotions.c.target_repository_id == bindparam("repository_id"),
                promotions.c.source_repository_id == bindparam("repository_id"),
            ),
        ).order_by(promotions.c.created_at, promotions.c.id)
        rows = conn.execute(query, {"digest": digest, "repository_id": repository_id})
        return [_record(row) for row in rows]

    def page(
        self,
        conn: Connection,
        repository_id: int,
        *,
        direction: str | None,
        before: int | None,
        limit: int,
    ) -> list[PromotionRecord]:
        """Promotions into (`in`) or out of (`out`) the repository, or both (None), newest
        first, with an id below `before` (keyset paging)."""
        into = promotions.c.target_repository_id == repository_id
        out = promotions.c.source_repository_id == repository_id
        where = into if direction == "in" else out if direction == "out" else or_(into, out)
        query = _SELECT.where(where).order_by(promotions.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(promotions.c.id < before)
        return [_record(row) for row in conn.execute(query)]


class PromotionService:
    def __init__(
        self, copier: ManifestCopier | None = None, store: PromotionStore | None = None
    ) -> None:
        self.copier = copier or ManifestCopier()
        self.store = store or PromotionStore()

    def promote(
        self,
        conn: Connection,
        source: Repository,
        reference: str,
        target: Repository,
        tag: str,
        *,
        actor: str | None,
        promoted_as: str | None,
        policy: PolicyRecord | None,
        trigger: str,
        depth: int,
    ) -> PromotionResult:
        """Promote the image `reference` (a tag or digest of `source`) into `target` as `tag`,
        in the caller's transaction. The caller has decided that `promoted_as` may read the
        source and push to the target; `actor` is who the record and events name (who asked,
        or who pushed what a policy promotes). Refused: a tag a policy's template rendered
        that breaks the tag grammar, and an immutable target tag naming another image
        (`PromotionRefused`); an unknown reference is `ManifestUnknown`."""
        if trigger not in TRIGGERS:
            raise Invalid(f"unknown promotion trigger {trigger[:50]!r}")
        if depth < 0:
            raise Invalid(f"a promotion's depth is 0 or more, not {depth}")
        if policy is not None and not is_valid_tag(tag):
            raise PromotionRefused(
                f"policy {policy.id} made the tag {tag[:200]!r}, which is not a valid tag: at"
                " most 128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'"
            )
        try:
            copied = self.copier.copy(
                conn, source, reference, target, tag, actor=actor, depth=depth
            )
        except (TagImmutable, CopyTooLarge) as refused:
            raise PromotionRefused(refused.message) from refused
        if not copied.moved:
            return PromotionResult(None, copied.events, copied)
        at = utc_now()
        record = PromotionRecord(
            id=0,
            target_repository=target.name,
            target_tag=tag,
            digest=copied.digest,
            source_repository=source.name,
            source_reference=reference,
            policy_id=policy.id if policy else None,
            policy_revision=policy.revision if policy else None,
            trigger=trigger,
            depth=depth,
            actor=actor,
            promoted_as=promoted_as,
            previous_digest=copied.previous_digest,
            created_at=at,
        )
        promotion_id = self.store.insert(conn, _values(record, target.id, source.id))
        record = replace(record, id=promotion_id)
        promoted = events.promotion(
            target.name,
            tag,
            copied.digest,
            source.name,
            reference,
            actor,
            policy_id=record.policy_id,
            trigger=trigger,
            at=at,
            facts={FACT_PROMOTION_DEPTH: depth},
        )
        return PromotionResult(record, (*copied.events, promoted), copied)

    def history(self, conn: Connection, repository_id: int, digest: str) -> list[PromotionRecord]:
        """Every promotion of the manifest `digest` into the repository or out of it."""
        return self.store.history(conn, repository_id, digest)

    def page(
        self,
        conn: Connection,
        repository_id: int,
        *,
        direction: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[PromotionRecord]:
        """The promotions into and out of the repository (or one `direction`: in | out),
        newest first, below the id `before`."""
        return self.store.page(conn, repository_id, direction=direction, before=before, limit=limit)


def _values(record: PromotionRecord, target_id: int, source_id: int) -> dict[str, Any]:
    return {
        "target_repository_id": target_id,
        "target_tag": record.target_tag,
        "manifest_digest": record.digest,
        "source_repository": record.source_repository,
        "source_repository_id": source_id,
        "source_reference": record.source_reference,
        "policy_id": record.policy_id,
        "policy_revision": record.policy_revision,
        "trigger": record.trigger,
        "depth": record.depth,
        "actor": record.actor,
        "promoted_as": record.promoted_as,
        "previous_digest": record.previous_digest,
        "created_at": record.created_at,
    }


def _record(row: Any) -> PromotionRecord:
    return PromotionRecord(
        id=row.id,
        target_repository=row.target_name,
        target_tag=row.target_tag,
        digest=row.manifest_digest,
        source_repository=row.source_repository,
        source_reference=row.source_reference,
        policy_id=row.policy_id,
        policy_revision=row.policy_revision,
        trigger=row.trigger,
        depth=row.depth,
        actor=row.actor,
        promoted_as=row.promoted_as,
        previous_digest=row.previous_digest,
        created_at=utc(row.created_at),
    )


_COLUMNS: Sequence[Any] = (*promotions.c, REPOSITORY_NAME.label("target_name"))
_SELECT = select(*_COLUMNS).select_from(
    join_repository(promotions, promotions.c.target_repository_id)
)
_INSERT = insert(promotions)
