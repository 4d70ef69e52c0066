"""All SQL of promotion policies (`promotion_policies`). Functions take the caller's
connection; none commits.

A policy's repositories are named through content's join helpers (content/reads.py): a
record carries the names of its source and target as they are now.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from trustyard.content.reads import join_repository_as
from trustyard.db.sql import keyset
from trustyard.db.tables import promotion_policies as policies
from trustyard.kit.clock import utc, utc_or_none
from trustyard.policies.interfaces import Need, PolicyRecord

_SOURCE_JOIN, _SOURCE_NAME = join_repository_as(policies, policies.c.source_repository_id, "src")
_FROM, _TARGET_NAME = join_repository_as(_SOURCE_JOIN, policies.c.target_repository_id, "dst")
_TARGETS, _TARGETS_NAME = join_repository_as(policies, policies.c.target_repository_id, "dst")
_COLUMNS = (
    *policies.c,
    _SOURCE_NAME.label("source_repository"),
    _TARGET_NAME.label("target_repository"),
)
# The PostgreSQL advisory lock of changes to the policy graph ("typolicy" as an integer).
_GRAPH_LOCK = int.from_bytes(b"typolicy", "big") >> 1


def encode_needs(needs: Iterable[Need]) -> str:
    return ",".join(sorted(need.value for need in needs))


_ENABLED_NEEDS = (
    select(policies.c.id, policies.c.needs)
    .where(policies.c.source_repository_id == bindparam("source"), policies.c.enabled.is_(True))
    .order_by(policies.c.id)
)


def decode_needs(value: str | None) -> frozenset[Need]:
    return frozenset(Need(part) for part in (value or "").split(",") if part)


def _record(row: Any) -> PolicyRecord:
    rules = json.loads(row.rules) if row.rules is not None else None
    return PolicyRecord(
        id=row.id,
        source_repository_id=row.source_repository_id,
        source_repository=row.source_repository,
        target_repository_id=row.target_repository_id,
        target_repository=row.target_repository,
        enabled=bool(row.enabled),
        rules=tuple(rules) if rules is not None else None,
        expression=row.expression,
        tag_template=row.tag_template,
        needs=decode_needs(row.needs),
        revision=row.revision,
        created_by=row.created_by,
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
        last_promoted_at=utc_or_none(row.last_promoted_at),
        last_error=row.last_error,
    )


@dataclass(frozen=True, slots=True)
class PolicyValues:
    """What a policy's owner sets (the rest is bookkeeping): exactly one of `rules` (the
    canonical list) and `expression`."""

    target_repository_id: int
    enabled: bool
    rules: Sequence[Mapping[str, Any]] | None
    expression: str | None
    tag_template: str
    needs: frozenset[Need]

    def columns(self) -> dict[str, Any]:
        return {
            "target_repository_id": self.target_repository_id,
            "enabled": self.enabled,
            "rules": json.dumps(list(self.rules)) if self.rules is not None else None,
            "expression": self.expression,
            "tag_template": self.tag_template,
            "needs": encode_needs(self.needs),
        }


@dataclass(frozen=True, slots=True)
class Edge:
    """One enabled policy of the graph: it promotes from `source_id` into `target_id`."""

    policy_id: int
    source_id: int
    target_id: int
    target: str  # the target repository's name


class PolicyStore:
    def _select(self) -> Select[Any]:
        return select(*_COLUMNS).select_from(_FROM)

    # --- reads -----------------------------------------------------------------------------
    def get(self, conn: Connection, policy_id: int) -> PolicyRecord | None:
        row = conn.execute(self._select().where(policies.c.id == policy_id)).first()
        return _record(row) if row is not None else None

    def lock(self, conn: Connection, policy_id: int) -> PolicyRecord | None:
        """The policy, its row locked until the transaction ends (PostgreSQL: FOR UPDATE of
        the policy's row only, never of its repositories'; SQLite has one writer already), so
        an edit waits for a run that holds it and a run for an edit."""
        query = self._select().where(policies.c.id == policy_id).with_for_update(of=policies)
        row = conn.execute(query).first()
        return _record(row) if row is not None else None

    def of_source(
        self,
        conn: Connection,
        source_id: int,
        *,
        enabled: bool | None = None,
        limit: int | None = None,
        after: int | None = None,
    ) -> list[PolicyRecord]:
        """The source repository's policies in id order (only enabled or disabled ones when
        `enabled` is given), a page of `limit` past the id `after` when given."""
        query = self._select().where(policies.c.source_repository_id == source_id)
        if enabled is not None:
            query = query.where(policies.c.enabled.is_(enabled))
        return [_record(row) for row in conn.execute(keyset(query, policies.c.id, after, limit))]

    def enabled_in_namespace(self, conn: Connection, namespace: str) -> list[PolicyRecord]:
        """The enabled policies whose source repository is in `namespace`, in id order (a
        triage decision of an organization changes the counts of all its repositories)."""
        query = self._select().where(
            _SOURCE_NAME.startswith(namespace + "/", autoescape=True),
            policies.c.enabled.is_(True),
        )
        return [_record(row) for row in conn.execute(query.order_by(policies.c.id))]

    def count_of_source(self, conn: Connection, source_id: int) -> int:
        query = select(func.count()).where(policies.c.source_repository_id == source_id)
        return int(conn.scalar(query) or 0)

    def enabled_needs(self, conn: Connection, source_id: int) -> list[tuple[int, frozenset[Need]]]:
        """The id and needs of each enabled policy of the repository, in id order: what a
        push's trigger reads (one indexed query, built once, no records made)."""
        rows = conn.execute(_ENABLED_NEEDS, {"source": source_id})
        return [(row.id, decode_needs(row.needs)) for row in rows]

    def has_enabled(self, conn: Connection, source_id: int) -> bool:
        """Whether the repository has an enabled policy (one indexed probe)."""
        query = (
            select(policies.c.id)
            .where(policies.c.source_repository_id == source_id, policies.c.enabled.is_(True))
            .limit(1)
        )
        return conn.scalar(query) is not None

    def successors(self, conn: Connection, source_ids: Iterable[int]) -> list[Edge]:
        """The enabled policies promoting out of any of `source_ids`: one step of the graph
        the cycle check walks."""
        wanted = set(source_ids)
        if not wanted:
            return []
        query = (
            select(
                policies.c.id,
                policies.c.source_repository_id,
                policies.c.target_repository_id,
                _TARGETS_NAME,
            )
            .select_from(_TARGETS)
            .where(policies.c.source_repository_id.in_(wanted), policies.c.enabled.is_(True))
            .order_by(policies.c.id)
        )
        return [Edge(row[0], row[1], row[2], row[3]) for row in conn.execute(query)]

    # --- writes ----------------------------------------------------------------------------
    def lock_graph(self, conn: Connection) -> None:
        """Serialize changes to the graph of policies until the transaction ends, so that two
        policies closing a cycle together cannot both pass the check (PostgreSQL: an advisory
        lock; SQLite has one writer at a time already)."""
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _GRAPH_LOCK})

    def insert(
        self,
        conn: Connection,
        source_id: int,
        values: PolicyValues,
        *,
        created_by: str | None,
        now: datetime,
    ) -> int:
        row = {
            **values.columns(),
            "source_repository_id": source_id,
            "revision": 1,
            "created_by": created_by,
            "created_at": now,
            "updated_at": now,
        }
        result = conn.execute(insert(policies).values(**row).returning(policies.c.id))
        return int(result.scalar_one())

    def update(
        self, conn: Connection, policy_id: int, values: PolicyValues, *, now: datetime
    ) -> bool:
        """Replace what the owner sets and bump the revision (a run records the revision it
        judged by); the last run's error is cleared (it was about the old rules)."""
        result = conn.execute(
            update(policies)
            .where(policies.c.id == policy_id)
            .values(
                **values.columns(),
                revision=policies.c.revision + 1,
                updated_at=now,
                last_error=None,
            )
        )
        return result.rowcount == 1

    def delete(self, conn: Connection, policy_id: int) -> bool:
        result = conn.execute(delete(policies).where(policies.c.id == policy_id))
        return result.rowcount == 1

    def record_run(
        self,
        conn: Connection,
        policy_id: int,
        *,
        promoted_at: datetime | None = None,
        error: str | None = None,
    ) -> None:
        """What a run ended with: `promoted_at` when it moved a tag, `error` why it could not
        promote (None clears the last one). The revision stays."""
        values: dict[str, Any] = {"last_error": error[:4000] if error is not None else None}
        if promoted_at is not None:
            values["last_promoted_at"] = promoted_at
        conn.execute(update(policies).where(policies.c.id == policy_id).values(**values))
