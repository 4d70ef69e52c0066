"""The audit log: an append-only record of mutations and refusals (who, what, where, outcome).

An event is written with `record` in the transaction of the change it describes, so it
commits (or rolls back) with it. `search` reads the log newest first, paged by event id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select

from trustyard.db.tables import audit_events

if TYPE_CHECKING:
    from trustyard.auth.authorize import Subject


@dataclass(frozen=True, slots=True)
class AuditEvent:
    at: datetime
    actor: str  # username, org+robot, or "" for anonymous
    actor_kind: str  # "user" | "robot" | "anonymous"
    action: str  # e.g. "login", "pull", "push", "user.create", "manifest.push"
    resource_kind: str  # "repository" | "registry" | "user" | "organization" | ...
    resource: str
    outcome: str  # "ok" | "denied" | "failed"
    address: str | None = None
    organization: str | None = None
    detail: dict[str, Any] | None = None
    id: int | None = None  # set on events read back from the log


# Built once: this runs inside every audited write transaction of /v2 (manifest pushes).
_INSERT = insert(audit_events)


def record(conn: Connection, event: AuditEvent) -> None:
    """Append one event (in the caller's transaction, so it commits with the change)."""
    conn.execute(
        _INSERT,
        {
            "at": event.at,
            "actor": event.actor[:128],
            "actor_kind": event.actor_kind,
            "action": event.action[:64],
            "resource_kind": event.resource_kind,
            "resource": event.resource[:512],
            "organization": event.organization[:64] if event.organization else None,
            "outcome": event.outcome,
            "address": (event.address or "")[:64] or None,
            "detail": json.dumps(event.detail) if event.detail else None,
        },
    )


def actor_of(subject: Subject) -> tuple[str, str]:
    """(actor, actor kind) of a /v2 subject; a registry token's subject is named by its
    `sub` claim (robots log in as `org+robot`)."""
    principal = subject.principal
    if principal is not None:
        return principal.name, principal.kind
    if subject.name:
        return subject.name, "robot" if "+" in subject.name else "user"
    return "", "anonymous"


def search(
    conn: Connection,
    *,
    limit: int = 100,
    before: int | None = None,
    actor: str | None = None,
    action: str | None = None,
    organization: str | None = None,
    since: datetime | None = None,
) -> list[AuditEvent]:
    """Events newest first (highest id first), only those with an id below `before` and
    matching every filter given. `since` is inclusive."""
    query = select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(audit_events.c.id < before)
    if actor is not None:
        query = query.where(audit_events.c.actor == actor)
    if action is not None:
        query = query.where(audit_events.c.action == action)
    if organization is not None:
        query = query.where(audit_events.c.organization == organization)
    if since is not None:
        # Stored times are UTC (naive on SQLite): compare in UTC; a naive `since` is UTC.
        since = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
        query = query.where(audit_events.c.at >= since)
    return [_event(row) for row in conn.execute(query)]


def _event(row: Any) -> AuditEvent:
    return AuditEvent(
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
        row.id,
    )


def pushes(conn: Connection, repository: str, digest: str, *, limit: int) -> list[AuditEvent]:
    """The newest `limit` pushes of manifest `digest` to `repository` (`manifest.push` events,
    the tag in their detail), oldest first: who pushed the image, under which tags, when."""
    # The detail is the JSON `record` wrote: {"digest": "<digest>", "tag": ...}. A digest is
    # [a-z0-9:+._=-] only: no LIKE wildcard needs escaping but `_`, which matches itself too.
    needle = "%" + json.dumps({"digest": digest})[1:-1] + "%"
    query = (
        select(audit_events)
        .where(
            audit_events.c.organization == organization_of(repository),
            audit_events.c.action == "manifest.push",
            audit_events.c.resource == repository,
            audit_events.c.outcome == "ok",
            audit_events.c.detail.like(needle),
        )
        .order_by(audit_events.c.id.desc())
        .limit(limit)
    )
    found = [_event(row) for row in conn.execute(query)]
    found.reverse()
    return [event for event in found if (event.detail or {}).get("digest") == digest]


def recent(conn: Connection, limit: int = 100, organization: str | None = None) -> list[AuditEvent]:
    """The newest events first; only one organization's when `organization` is given."""
    return search(conn, limit=limit, organization=organization)


def organization_of(repository: str) -> str:
    """The namespace a repository belongs to (an organization's or a user's name)."""
    return repository.split("/", 1)[0]
