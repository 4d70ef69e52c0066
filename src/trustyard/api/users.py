"""/api/v1/me and /api/v1/users: system administrators manage users; a user reads themselves."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response

from trustyard.api.audit import Trail
from trustyard.api.deps import After, Caller, Limit, Registry, Service, require_admin
from trustyard.api.errors import forbidden, problems
from trustyard.api.schemas import Me, Page, UserCreate, UserOut, UserUpdate
from trustyard.auth.gate import Accounts
from trustyard.auth.login_throttle import LoginThrottle
from trustyard.db.engine import read_tx, write_tx

router = APIRouter(tags=["users"])


@router.get("/me")
def me(caller: Caller) -> Me:
    return Me(
        name=caller.name,
        kind=caller.kind,
        is_admin=caller.is_admin,
        owned_organizations=sorted(caller.owned_orgs),
        teams=sorted(f"{org}/{team}" for org, team in caller.teams),
    )


@router.get("/users")
def list_users(
    caller: Caller, accounts: Registry, service: Service, limit: Limit = 100, after: After = None
) -> Page[UserOut]:
    require_admin(caller)
    with read_tx(accounts.engine) as conn:
        found = service.list_users(conn, limit=limit + 1, after=after)
    items = [UserOut.of(user) for user in found[:limit]]
    return Page(items=items, next=items[-1].username if len(found) > limit else None)


@router.post("/users", status_code=201, responses=problems(409))
def create_user(
    body: UserCreate, caller: Caller, trail: Trail, accounts: Registry, service: Service
) -> UserOut:
    require_admin(caller)
    with write_tx(accounts.engine) as conn:
        user = service.create_user(
            conn,
            body.username,
            body.password,
            email=body.email,
            full_name=body.full_name,
            is_admin=body.is_admin,
        )
        detail = {"is_admin": True} if user.is_admin else None
        trail.record(conn, "user.create", "user", user.username, detail=detail)
    return UserOut.of(user)


@router.get("/users/{name}", responses=problems(404))
def get_user(name: str, caller: Caller, accounts: Registry, service: Service) -> UserOut:
    if caller.name != name or caller.kind != "user":
        require_admin(caller)
    with read_tx(accounts.engine) as conn:
        return UserOut.of(service.get_user(conn, name))


@router.patch("/users/{name}", responses=problems(404, 409))
def update_user(
    name: str,
    body: UserUpdate,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    service: Service,
) -> UserOut:
    """Administrators change anything; users change their own email, name and password."""
    itself = caller.kind == "user" and caller.name == name
    if not caller.is_admin and not (itself and body.is_admin is None and body.is_active is None):
        raise forbidden("only system administrators may change other users or roles")
    if itself and body.password is not None:
        # Whoever holds a session or a token must not be able to take the account over.
        _check_current_password(accounts, name, body.current_password, trail.address)
    with write_tx(accounts.engine) as conn:
        if body.password is not None:
            service.change_password(conn, name, body.password)
        user = service.update_user(
            conn,
            name,
            email=body.email,
            full_name=body.full_name,
            is_admin=body.is_admin,
            is_active=body.is_active,
        )
        changed = body.model_dump(exclude_none=True)
        if changed:
            # Which fields changed, and the new roles; never the password itself.
            detail = {"fields": sorted(changed)}
            detail |= {k: v for k, v in changed.items() if k in ("is_admin", "is_active")}
            trail.record(conn, "user.update", "user", user.username, detail=detail)
    return UserOut.of(user)


def _check_current_password(
    accounts: Accounts, name: str, current: str | None, address: str | None
) -> None:
    if not current:
        raise forbidden("changing your own password needs current_password")
    now = datetime.now(UTC)
    throttle: LoginThrottle = accounts.throttle
    with write_tx(accounts.engine) as conn:
        user = accounts.authenticator.store.user(conn, name)
        if user is None or user.source != "local":
            return  # unknown (the update answers 404) or a directory account (refused there)
        if throttle.refused_until(conn, name, address, now) is not None:
            raise forbidden("too many failed logins; try again later")
        if accounts.authenticator.authenticate_password(conn, name, current) is None:
            throttle.failed(conn, name, address, now)
            failed = True
        else:
            failed = False
    if failed:
        raise forbidden("current_password is wrong")


@router.delete("/users/{name}", status_code=204, responses=problems(404, 409))
def delete_user(
    name: str, caller: Caller, trail: Trail, accounts: Registry, service: Service
) -> Response:
    require_admin(caller)
    with write_tx(accounts.engine) as conn:
        service.delete_user(conn, name)
        trail.record(conn, "user.delete", "user", name)
    return Response(status_code=204)
