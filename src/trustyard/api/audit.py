"""The audit trail of /api/v1 mutations, and GET /api/v1/audit to read the log."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BeforeValidator
from sqlalchemy import Connection

from trustyard.api.deps import Caller, Limit, Registry
from trustyard.api.errors import forbidden
from trustyard.api.schemas import MAX_ROW_ID, NO_NUL, AuditEventOut, Page
from trustyard.auth import audit
from trustyard.auth.permissions import Principal
from trustyard.db.engine import read_tx
from trustyard.errors import Invalid

router = APIRouter(tags=["audit"])

# An ISO 8601 date and time, its offset optional (naive times are UTC): pydantic alone would
# also take a bare date or seconds since the epoch, which the OpenAPI document does not promise.
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)


def _date_and_time(value: object) -> object:
    if isinstance(value, str) and _DATETIME.fullmatch(value) is None:
        raise ValueError("expected an ISO 8601 date and time, e.g. 2024-05-01T12:00:00Z")
    return value


class AuditTrail:
    """Records what the caller changed, in the transaction of the change."""

    def __init__(self, principal: Principal, address: str | None) -> None:
        self.principal = principal
        self.address = address

    def record(
        self,
        conn: Connection,
        action: str,
        resource_kind: str,
        resource: str,
        *,
        organization: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        audit.record(
            conn,
            audit.AuditEvent(
                datetime.now(UTC),
                self.principal.name,
                self.principal.kind,
                action,
                resource_kind,
                resource,
                "ok",
                self.address,
                organization,
                detail,
            ),
        )


def get_trail(request: Request, caller: Caller) -> AuditTrail:
    return AuditTrail(caller, request.client.host if request.client else None)


Trail = Annotated[AuditTrail, Depends(get_trail)]


@router.get("/audit")
def list_audit_events(
    caller: Caller,
    accounts: Registry,
    limit: Limit = 100,
    after: Annotated[
        int | None, Query(ge=1, le=MAX_ROW_ID, description="the `next` of the previous page")
    ] = None,
    actor: Annotated[str | None, Query(max_length=128, pattern=NO_NUL)] = None,
    action: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    organization: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=NO_NUL,
            description="the namespace of the events (required unless the caller is an admin)",
        ),
    ] = None,
    since: Annotated[
        datetime | None,
        BeforeValidator(_date_and_time),
        Query(description="only events at or after this time (UTC if naive)"),
    ] = None,
) -> Page[AuditEventOut]:
    """The audit log, newest first. System administrators read every event; an organization
    owner reads the events of an organization they own (`organization` is then required)."""
    if not caller.is_admin:
        if organization is None:
            raise forbidden("only system administrators read the whole log; pass ?organization=")
        if organization not in caller.owned_orgs:
            raise forbidden(f"only owners of {organization!r} may read its audit log")
    if since is not None:
        try:
            since = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
        except OverflowError:
            raise Invalid("since is out of range") from None
    with read_tx(accounts.engine) as conn:
        events = audit.search(
            conn,
            limit=limit + 1,
            before=after,
            actor=actor,
            action=action,
            organization=organization,
            since=since,
        )
    items = [AuditEventOut.of(event) for event in events[:limit]]
    return Page(items=items, next=str(items[-1].id) if len(events) > limit else None)
