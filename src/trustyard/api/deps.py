"""Dependencies of every /api/v1 endpoint: the accounts, the caller, transactions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Header, Query, Request
from sqlalchemy import Connection

from trustyard.api.errors import forbidden, unauthorized
from trustyard.api.schemas import NO_NUL
from trustyard.auth import audit
from trustyard.auth.accounts import DEFAULT_TOKEN_SCOPES, AccountService
from trustyard.auth.authorize import Subject
from trustyard.auth.gate import Accounts
from trustyard.auth.permissions import Principal
from trustyard.auth.repositories import RepositoryAccessService
from trustyard.auth.scopes import TokenScope
from trustyard.content.repositories import RepositoryService
from trustyard.db.engine import read_tx
from trustyard.errors import NotFound
from trustyard.events.model import Event
from trustyard.events.outbox import Outbox
from trustyard.kit.asgi import Scope

# What a token must allow to manage accounts: everything its owner may do.
FULL_SCOPE = str(TokenScope.from_strings(DEFAULT_TOKEN_SCOPES))


def get_accounts(request: Request) -> Accounts:
    accounts: Accounts = request.app.state.accounts
    return accounts


def get_service(request: Request) -> AccountService:
    service: AccountService = request.app.state.service
    return service


# What a route asks of its caller: credentials ("caller") or maybe credentials ("reader").
Need = Literal["caller", "reader"]
# Scope key: who is asking, once their credentials were checked (by api/guard.py before the
# body is read, or by the first dependency that asks).
SUBJECT_KEY = "trustyard.subject"


async def authenticate(accounts: Accounts, scope: Scope) -> Subject:
    """The subject behind the request's Authorization header (Basic with a password or a
    `ty_` token, or Bearer), checked once per request; wrong credentials raise
    Unauthenticated (or Throttled, Unavailable)."""
    known = scope.get(SUBJECT_KEY)
    if isinstance(known, Subject):
        return known
    authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
    client = scope.get("client")
    # The address counts towards the per-address login back-off, as on /v2.
    subject = await accounts.authenticate(
        authorization.decode("latin-1") if authorization is not None else None,
        str(client[0]) if client else None,
    )
    scope[SUBJECT_KEY] = subject
    return subject


def vet(subject: Subject, need: Need) -> None:
    """Refuse a subject a route cannot serve: anyone but a known caller where one is needed,
    and registry (bearer) tokens everywhere."""
    if need == "caller" and (subject.anonymous or subject.name is None):
        raise unauthorized("authentication required")
    if subject.bearer:
        raise unauthorized("registry tokens are for /v2; log in with a password or access token")


async def get_caller(
    request: Request,
    accounts: Annotated[Accounts, Depends(get_accounts)],
    authorization: Annotated[str | None, Header()] = None,  # read from the scope; documented
) -> Principal:
    """The caller, authenticated by Basic (password or `ty_` token) or Bearer; anonymous
    callers are refused. The principal is reloaded so that new ownerships count at once."""
    subject = await authenticate(accounts, request.scope)
    if not (subject.anonymous or subject.name is None):
        request.state.actor = audit.actor_of(subject)  # for the audit of refusals
    vet(subject, "caller")
    assert subject.name is not None
    if subject.scope is not None and str(subject.scope) != FULL_SCOPE:
        raise forbidden(
            "this access token is limited to some repositories; managing accounts "
            "needs a password or a token with the default (full) scope"
        )
    name = subject.name

    def load() -> Principal:
        with read_tx(accounts.engine) as conn:
            return accounts.authenticator.load_principal(conn, name)

    try:
        return await asyncio.to_thread(load)
    except NotFound:
        raise unauthorized("the account is unknown or deactivated") from None


def require_user(principal: Principal) -> None:
    if principal.kind != "user":
        raise forbidden("only users may do this")


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise forbidden("only system administrators may do this")


def may_see_org(principal: Principal, org: str) -> bool:
    return (
        principal.is_admin
        or org in principal.owned_orgs
        or any(owned == org for owned, _ in principal.teams)
        or principal.robot_org == org
    )


def manage_org(service: AccountService, conn: Connection, principal: Principal, org: str) -> None:
    """Raise unless `principal` may manage `org` (its owner or a system administrator);
    an organization the caller cannot see is not found."""
    if not may_see_org(principal, org):
        raise NotFound("organization", org)
    service.get_organization(conn, org)
    if not (principal.is_admin or org in principal.owned_orgs):
        raise forbidden(f"only owners of {org!r} and system administrators may do this")


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads a public-or-private resource: maybe anonymous, maybe through a token
    limited to some repositories (`scope`)."""

    principal: Principal
    scope: TokenScope | None = None


async def get_reader(
    request: Request,
    accounts: Annotated[Accounts, Depends(get_accounts)],
    authorization: Annotated[str | None, Header()] = None,  # read from the scope; documented
) -> Reader:
    """Like `get_caller`, but anonymous callers and limited tokens are welcome (the access
    policy of /v2 then decides, the token's scope included)."""
    subject = await authenticate(accounts, request.scope)
    vet(subject, "reader")
    if subject.anonymous or subject.name is None:
        return Reader(Principal.anonymous())
    request.state.actor = audit.actor_of(subject)
    name = subject.name

    def load() -> Principal:
        with read_tx(accounts.engine) as conn:
            return accounts.authenticator.load_principal(conn, name)

    try:
        return Reader(await asyncio.to_thread(load), subject.scope)
    except NotFound:
        raise unauthorized("the account is unknown or deactivated") from None


def get_repositories(request: Request) -> RepositoryService:
    repositories: RepositoryService = request.app.state.repositories
    return repositories


def get_repository_access(request: Request) -> RepositoryAccessService:
    access: RepositoryAccessService = request.app.state.repository_access
    return access


class Publisher:
    """Records domain events in the transaction of an API change (nothing without an outbox:
    an API built only to list its routes)."""

    def __init__(self, outbox: Outbox | None) -> None:
        self.outbox = outbox

    def __call__(self, conn: Connection, *events: Event) -> None:
        if self.outbox is not None:
            self.outbox.publish(conn, *events)


def get_publisher(request: Request) -> Publisher:
    return Publisher(getattr(request.app.state, "events", None))


Caller = Annotated[Principal, Depends(get_caller)]
Anyone = Annotated[Reader, Depends(get_reader)]
Repositories = Annotated[RepositoryService, Depends(get_repositories)]
Access = Annotated[RepositoryAccessService, Depends(get_repository_access)]
Service = Annotated[AccountService, Depends(get_service)]
Registry = Annotated[Accounts, Depends(get_accounts)]
Publish = Annotated[Publisher, Depends(get_publisher)]
Limit = Annotated[int, Query(ge=1, le=500)]
After = Annotated[str | None, Query(max_length=255, pattern=NO_NUL)]
