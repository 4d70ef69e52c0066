"""The audit log: an append-only record of mutations and refusals (who, what, where, outcome)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from trustyard.db.tables import audit_events


@dataclass(frozen=True, slots=True)
class AuditEvent:
    at: datetime
    actor: str  # username, org+robot, or "" for anonymous
    actor_kind: str  # "user" | "robot" | "anonymous"
    action: str  # e.g. "login", "pull", "push", "user.create"
    resource_kind: str  # "repository" | "registry" | "user" | "organization" | ...
    resource: str
    outcome: str  # "ok" | "denied" | "failed"
    address: str | None = None
    organization: str | None = None
    detail: dict[str, Any] | None = None


def record(conn: Connection, event: AuditEvent) -> None:
    """Append one event (in the caller's transaction, so it commits with the change)."""
    conn.execute(
        insert(audit_events).values(
            at=event.at,
            actor=event.actor[:128],
            actor_kind=event.actor_kind,
            action=event.action[:64],
            resource_kind=event.resource_kind,
            resource=event.resource[:512],
            organization=event.organization,
            outcome=event.outcome,
            address=(event.address or "")[:64] or None,
            detail=json.dumps(event.detail) if event.detail else None,
        )
    )


def recent(conn: Connection, limit: int = 100, organization: str | None = None) -> list[AuditEvent]:
    """The newest events first; only one organization's when `organization` is given."""
    query = select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
    if organization is not None:
        query = query.where(audit_events.c.organization == organization)
    return [
        AuditEvent(
            row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC),
            row.actor,
            row.actor_kind,
            row.action,
            row.resource_kind,
            row.resource,
            row.outcome,
            row.address,
            row.organization,
            json.loads(row.detail) if row.detail else None,
        )
        for row in conn.execute(query)
    ]


def organization_of(repository: str) -> str:
    """The namespace a repository belongs to (an organization's or a user's name)."""
    return repository.split("/", 1)[0]
