"""/api/v1/tokens (the caller's personal access tokens) and robot tokens."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import Connection

from trustyard.api.audit import AuditTrail, Trail
from trustyard.api.deps import (
    After,
    Caller,
    Limit,
    Registry,
    Service,
    manage_org,
    require_user,
)
from trustyard.api.errors import problems
from trustyard.api.schemas import Page, TokenCreate, TokenCreated, TokenOut, page_in_order
from trustyard.auth.interfaces import AccessToken
from trustyard.db.engine import read_tx, write_tx

router = APIRouter(tags=["tokens"])


def _record(
    trail: AuditTrail, conn: Connection, action: str, token: AccessToken, org: str | None = None
) -> None:
    """A token event: its public id and owner, never its secret."""
    detail: dict[str, object] = {"owner": token.owner, "name": token.name}
    if action == "token.create":
        detail["scopes"] = list(token.scopes)
        if token.expires_at is not None:
            detail["expires_at"] = token.expires_at.isoformat()
    trail.record(conn, action, "token", token.public_id, organization=org, detail=detail)


@router.get("/tokens")
def list_tokens(
    caller: Caller, accounts: Registry, service: Service, limit: Limit = 100, after: After = None
) -> Page[TokenOut]:
    """The caller's tokens, oldest first (revoked and expired ones too)."""
    require_user(caller)
    with read_tx(accounts.engine) as conn:
        found = [TokenOut.of(token) for token in service.list_tokens(conn, caller.name)]
    return page_in_order(found, _public_id, limit, after)


@router.post("/tokens", status_code=201, responses=problems(409))
def create_token(
    body: TokenCreate, caller: Caller, trail: Trail, accounts: Registry, service: Service
) -> TokenCreated:
    """A personal access token; its text is in this answer only."""
    require_user(caller)
    with write_tx(accounts.engine) as conn:
        token, text = service.create_token(
            conn, caller.name, body.name, body.scopes, body.expires_at
        )
        _record(trail, conn, "token.create", token)
    return TokenCreated.created(token, text)


@router.delete("/tokens/{public_id}", responses=problems(404))
def revoke_token(
    public_id: str, caller: Caller, trail: Trail, accounts: Registry, service: Service
) -> TokenOut:
    require_user(caller)
    with write_tx(accounts.engine) as conn:
        active = service.get_token(conn, public_id, owner=caller.name).revoked_at is None
        revoked = service.revoke_token(conn, public_id, owner=caller.name)
        if active:
            _record(trail, conn, "token.revoke", revoked)
    return TokenOut.of(revoked)


@router.get("/organizations/{org}/robots/{robot}/tokens", responses=problems(404))
def list_robot_tokens(
    org: str,
    robot: str,
    caller: Caller,
    accounts: Registry,
    service: Service,
    limit: Limit = 100,
    after: After = None,
) -> Page[TokenOut]:
    """The robot's tokens, oldest first."""
    with read_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        found = [TokenOut.of(token) for token in service.list_tokens(conn, f"{org}+{robot}")]
    return page_in_order(found, _public_id, limit, after)


def _public_id(token: TokenOut) -> str:
    return token.public_id


@router.post(
    "/organizations/{org}/robots/{robot}/tokens", status_code=201, responses=problems(404, 409)
)
def create_robot_token(
    org: str,
    robot: str,
    body: TokenCreate,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    service: Service,
) -> TokenCreated:
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        service.get_robot(conn, org, robot)
        token, text = service.create_token(
            conn, f"{org}+{robot}", body.name, body.scopes, body.expires_at
        )
        _record(trail, conn, "token.create", token, org)
    return TokenCreated.created(token, text)


@router.delete("/organizations/{org}/robots/{robot}/tokens/{public_id}", responses=problems(404))
def revoke_robot_token(
    org: str,
    robot: str,
    public_id: str,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    service: Service,
) -> TokenOut:
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        owner = f"{org}+{robot}"
        active = service.get_token(conn, public_id, owner=owner).revoked_at is None
        revoked = service.revoke_token(conn, public_id, owner=owner)
        if active:
            _record(trail, conn, "token.revoke", revoked, org)
    return TokenOut.of(revoked)
