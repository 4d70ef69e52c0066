"""Docker registry tokens: what the token endpoint grants for the scopes a client asks for.

Given who is asking (and, for a personal access or robot token, that token's own scope), the
requested `repository:<name>:<actions>` and `registry:catalog:*` scopes are cut down to what
the access policy allows, and a short-lived ES256 JWT carrying that `access` claim is signed
with the registry's shared key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from trustyard.auth.access import AccessPolicy
from trustyard.auth.authorize import Action
from trustyard.auth.permissions import Principal, may_list_catalog
from trustyard.auth.scopes import ScopeGrant, TokenScope, granted_subset, parse_scopes
from trustyard.auth.signing import SigningKeys

DEFAULT_TTL = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    access: list[ScopeGrant]
    issued_at: datetime
    expires_in: int  # seconds


class RegistryTokens:
    def __init__(
        self,
        keys: SigningKeys,
        policy: AccessPolicy,
        service: str,
        ttl: timedelta = DEFAULT_TTL,
    ) -> None:
        self.keys = keys
        self.policy = policy
        self.service = service
        self.ttl = ttl

    def grant(
        self,
        conn: Connection,
        principal: Principal,
        requested: str,
        token_scope: TokenScope | None = None,
    ) -> list[ScopeGrant]:
        """The requested scopes (space-separated), each cut down to the allowed actions."""

        def may(action: Action, name: str) -> bool:
            if action is Action.CATALOG:
                return may_list_catalog(principal, token_scope)
            return self.policy.allows(conn, principal, action, name, token_scope)

        return granted_subset(parse_scopes(requested) if requested else [], may)

    def issue(
        self,
        conn: Connection,
        principal: Principal,
        requested: str,
        token_scope: TokenScope | None = None,
        now: datetime | None = None,
    ) -> IssuedToken:
        moment = now or datetime.now(UTC)
        access = self.grant(conn, principal, requested, token_scope)
        token = self.keys.current(conn).issue(
            principal.name, self.service, access, self.ttl, now=moment
        )
        return IssuedToken(token, access, moment, int(self.ttl.total_seconds()))
