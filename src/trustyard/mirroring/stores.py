"""All SQL of mirroring policies (`mirror_policies`). Functions take the caller's connection;
none commits.

A record names its local repository (through content's join helper) and its remote as they
are now. The sealed webhook secret leaves the store only through `sealed_webhook_secret`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from trustyard.content.reads import join_repository_as
from trustyard.db.tables import mirror_policies as policies
from trustyard.db.tables import remotes
from trustyard.errors import StateConflict
from trustyard.kit.clock import utc, utc_or_none
from trustyard.mirroring.interfaces import Direction, MirrorPolicyRecord
from trustyard.policies.interfaces import Need

_REPOSITORY_JOIN, _REPOSITORY_NAME = join_repository_as(policies, policies.c.repository_id, "repo")
_FROM = _REPOSITORY_JOIN.join(remotes, remotes.c.id == policies.c.remote_id)
_COLUMNS = (
    *(column for column in policies.c if column.name != "webhook_secret"),
    (policies.c.webhook_secret.is_not(None)).label("has_webhook_secret"),
    _REPOSITORY_NAME.label("repository"),
    remotes.c.name.label("remote"),
)
# What a push into a repository reads: its enabled push policies (one indexed query, built once).
_ENABLED_PUSH = (
    select(*_COLUMNS)
    .select_from(_FROM)
    .where(
        policies.c.repository_id == bindparam("repository"),
        policies.c.direction == Direction.PUSH.value,
        policies.c.enabled.is_(True),
    )
    .order_by(policies.c.id)
)


def encode_needs(needs: Iterable[str]) -> str:
    return ",".join(sorted(str(need) for need in needs))


def decode_needs(value: str | None) -> frozenset[Need]:
    return frozenset(Need(part) for part in (value or "").split(",") if part)


def _record(row: Any) -> MirrorPolicyRecord:
    rules = json.loads(row.rules) if row.rules is not None else None
    return MirrorPolicyRecord(
        id=row.id,
        direction=Direction(row.direction),
        repository_id=row.repository_id,
        repository=row.repository,
        remote_id=row.remote_id,
        remote=row.remote,
        remote_repository=row.remote_repository,
        enabled=bool(row.enabled),
        rules=tuple(rules) if rules is not None else None,
        expression=row.expression,
        tag_template=row.tag_template,
        needs=decode_needs(row.needs),
        propagate_deletes=bool(row.propagate_deletes),
        with_referrers=bool(row.with_referrers),
        poll_interval_seconds=row.poll_interval_seconds,
        has_webhook_secret=bool(row.has_webhook_secret),
        next_poll_at=utc_or_none(row.next_poll_at),
        revision=row.revision,
        created_by=row.created_by,
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
        last_run_id=row.last_run_id,
        last_run_at=utc_or_none(row.last_run_at),
        last_error=row.last_error,
    )


def policy_columns(
    *,
    remote_id: int,
    remote_repository: str,
    enabled: bool,
    rules: list[dict[str, Any]] | None,
    expression: str | None,
    tag_template: str,
    needs: Iterable[str],
    propagate_deletes: bool,
    with_referrers: bool,
    poll_interval_seconds: int | None,
) -> dict[str, Any]:
    """The columns a policy's owner sets, as stored."""
    return {
        "remote_id": remote_id,
        "remote_repository": remote_repository,
        "enabled": enabled,
        "rules": json.dumps(rules) if rules is not None else None,
        "expression": expression,
        "tag_template": tag_template,
        "needs": encode_needs(needs),
        "propagate_deletes": propagate_deletes,
        "with_referrers": with_referrers,
        "poll_interval_seconds": poll_interval_seconds,
    }


class MirrorPolicyStore:
    def _select(self) -> Select[Any]:
        return select(*_COLUMNS).select_from(_FROM)

    # --- reads -----------------------------------------------------------------------------
    def get(self, conn: Connection, policy_id: int) -> MirrorPolicyRecord | None:
        row = conn.execute(self._select().where(policies.c.id == policy_id)).first()
        return _record(row) if row is not None else None

    def lock(self, conn: Connection, policy_id: int) -> MirrorPolicyRecord | None:
        """The policy, its row (only) locked until the transaction ends (PostgreSQL)."""
        query = self._select().where(policies.c.id == policy_id).with_for_update(of=policies)
        row = conn.execute(query).first()
        return _record(row) if row is not None else None

    def of_repository(
        self, conn: Connection, repository_id: int, direction: Direction | None = None
    ) -> list[MirrorPolicyRecord]:
        query = self._select().where(policies.c.repository_id == repository_id)
        if direction is not None:
            query = query.where(policies.c.direction == direction.value)
        return [_record(row) for row in conn.execute(query.order_by(policies.c.id))]

    def enabled_push(self, conn: Connection, repository_id: int) -> list[MirrorPolicyRecord]:
        """The enabled push policies of the repository, in id order (what a push pays for:
        one indexed query on (repository_id, direction))."""
        return [_record(row) for row in conn.execute(_ENABLED_PUSH, {"repository": repository_id})]

    def due_pull(self, conn: Connection, now: datetime, limit: int) -> list[MirrorPolicyRecord]:
        """Enabled pull policies whose next poll is due (or never set), soonest first."""
        query = (
            self._select()
            .where(
                policies.c.direction == Direction.PULL.value,
                policies.c.enabled.is_(True),
                or_(policies.c.next_poll_at.is_(None), policies.c.next_poll_at <= now),
            )
            .order_by(policies.c.next_poll_at, policies.c.id)
            .limit(limit)
        )
        return [_record(row) for row in conn.execute(query)]

    def count_of_repository(self, conn: Connection, repository_id: int) -> int:
        query = select(func.count()).where(policies.c.repository_id == repository_id)
        return int(conn.scalar(query) or 0)

    def count_of_remote(self, conn: Connection, remote_id: int) -> int:
        query = select(func.count()).where(policies.c.remote_id == remote_id)
        return int(conn.scalar(query) or 0)

    def sealed_webhook_secret(self, conn: Connection, policy_id: int) -> str | None:
        query = select(policies.c.webhook_secret).where(policies.c.id == policy_id)
        value = conn.scalar(query)
        return str(value) if value is not None else None

    # --- changes ---------------------------------------------------------------------------
    def insert(
        self,
        conn: Connection,
        direction: Direction,
        repository_id: int,
        columns: dict[str, Any],
        *,
        webhook_secret: str | None,
        next_poll_at: datetime | None,
        created_by: str | None,
        now: datetime,
    ) -> int:
        row = {
            **columns,
            "direction": direction.value,
            "repository_id": repository_id,
            "webhook_secret": webhook_secret,
            "next_poll_at": next_poll_at,
            "revision": 1,
            "created_by": created_by,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with conn.begin_nested():
                result = conn.execute(insert(policies).values(**row).returning(policies.c.id))
                return int(result.scalar_one())
        except IntegrityError:  # the remote or the repository was deleted meanwhile
            raise StateConflict(
                "the remote or the repository of this policy was deleted meanwhile"
            ) from None

    def update(
        self, conn: Connection, policy_id: int, columns: dict[str, Any], *, now: datetime
    ) -> None:
        """Store `columns` with the next revision."""
        conn.execute(
            update(policies)
            .where(policies.c.id == policy_id)
            .values(**columns, revision=policies.c.revision + 1, updated_at=now)
        )

    def delete(self, conn: Connection, policy_id: int) -> bool:
        result = conn.execute(delete(policies).where(policies.c.id == policy_id))
        return bool(result.rowcount)

    def set_webhook_secret(self, conn: Connection, policy_id: int, sealed: str | None) -> None:
        conn.execute(
            update(policies).where(policies.c.id == policy_id).values(webhook_secret=sealed)
        )

    def set_next_poll(self, conn: Connection, policy_id: int, at: datetime | None) -> None:
        conn.execute(update(policies).where(policies.c.id == policy_id).values(next_poll_at=at))

    def set_last_run(
        self, conn: Connection, policy_id: int, run_id: int, at: datetime, error: str | None
    ) -> None:
        """The policy's last run (its id, when it ended, its error or None)."""
        conn.execute(
            update(policies)
            .where(policies.c.id == policy_id)
            .values(last_run_id=run_id, last_run_at=at, last_error=error)
        )

    def set_last_error(self, conn: Connection, policy_id: int, error: str | None) -> None:
        conn.execute(update(policies).where(policies.c.id == policy_id).values(last_error=error))
