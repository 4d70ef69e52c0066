"""The gate both edges ask when accounts are on: who is asking (Basic or Bearer), and the
policy that decides. It raises domain errors only (Unauthenticated, Throttled, Unavailable);
registry/ and api/ map them to their wire.

Credentials are checked once per process and remembered for a short while (argon2 is meant to
be slow), and only as long as the credential generation (db.generation, moved by triggers when
a token is revoked or a password changes) stays where it was when they were checked: a revoked
token or an old password is refused from the next request on, on every worker. A registry token
is verified once and remembered until it expires. Decisions for
Basic-authenticated callers need the caller's current roles (several queries): with a
`generation` source (db.generation: a counter that database triggers move whenever accounts,
teams, grants, robots or repositories change) they are remembered until it moves, so a revoked
grant or a deactivated account still counts from the next request on, on every worker.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy import Connection, Engine

from trustyard.auth import audit
from trustyard.auth.access import (
    TOKEN_PREFIX,
    AccessPolicy,
    Authenticator,
    DirectoryAnswer,
)
from trustyard.auth.authorize import ANONYMOUS, Action, Resource, Subject
from trustyard.auth.jwt_tokens import InvalidToken, SigningKeyError
from trustyard.auth.ldap import LdapUnavailable
from trustyard.auth.login_throttle import LoginThrottle, retry_after
from trustyard.auth.permissions import Principal, may_list_catalog
from trustyard.auth.refresh_tokens import DEFAULT_REFRESH_TTL, RefreshTokens
from trustyard.auth.registry_tokens import RegistryTokens
from trustyard.auth.signing import SigningKeys
from trustyard.db.engine import read_tx, write_tx
from trustyard.errors import NotFound, Throttled, Unauthenticated, Unavailable

log = logging.getLogger(__name__)

ANONYMOUS_PRINCIPAL = Principal.anonymous()
# Seconds a checked password or access token is trusted in memory at most (a directory
# account's password changes in the directory, which moves no generation here).
CREDENTIAL_TTL = 30.0
_CACHE_LIMIT = 10_000


@dataclass
class Accounts:
    """Everything /v2 and /api/v1 need when accounts are on."""

    engine: Engine
    authenticator: Authenticator
    policy: AccessPolicy
    keys: SigningKeys
    tokens: RegistryTokens
    service: str
    refresh_ttl: timedelta = DEFAULT_REFRESH_TTL
    refresh_tokens: RefreshTokens = field(init=False)  # the token endpoint's offline access
    # Moves whenever access may have changed (None: decide from the database every time).
    generation: Callable[[], int] | None = None
    # Moves whenever a remembered login may be invalid (None: logins kept for CREDENTIAL_TTL).
    credentials: Callable[[], int] | None = None
    throttle: LoginThrottle = field(default_factory=LoginThrottle)

    def __post_init__(self) -> None:
        # Authorization header hash -> (until, credential generation or None, subject).
        self._known: dict[str, tuple[float, int | None, Subject]] = {}
        self._decisions: dict[tuple[object, ...], bool] = {}
        self._decided_at: int | None = None
        self.refresh_tokens = RefreshTokens(self.authenticator, self.refresh_ttl)

    def _remember(
        self, key: str, subject: Subject, until: float, generation: int | None = None
    ) -> Subject:
        if len(self._known) >= _CACHE_LIMIT:
            self._known.clear()
        self._known[key] = (until, generation, subject)
        return subject

    async def authenticate(self, authorization: str | None, address: str | None = None) -> Subject:
        """The subject behind an Authorization header; bad credentials are Unauthenticated, and
        too many wrong passwords (per account and address, per address) Throttled."""
        if not authorization:
            return ANONYMOUS
        material = authorization
        if authorization[:6].lower() == "basic ":
            # A password remembered for one address must not let another address past its
            # login throttle: a locked address could otherwise still tell the right password
            # (admitted from the cache) from wrong ones (refused unchecked).
            material = f"{authorization}\x00{address or ''}"
        key = hashlib.sha256(material.encode()).hexdigest()
        known = self._known.get(key)
        if (
            known is not None
            and known[0] > time.monotonic()
            and (known[1] is None or known[1] == self._credential_generation())
        ):
            return known[2]
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic":
            # Read before the check: a change committed during it moves the generation past.
            generation = self._credential_generation()
            subject = await asyncio.to_thread(self._basic, value.strip(), address)
            return self._remember(key, subject, time.monotonic() + CREDENTIAL_TTL, generation)
        if scheme.lower() == "bearer" and value.strip().startswith(TOKEN_PREFIX):
            # A personal access or robot token sent as a bearer token (API clients do this).
            generation = self._credential_generation()
            subject = await asyncio.to_thread(self._access_token, value.strip(), address)
            return self._remember(key, subject, time.monotonic() + CREDENTIAL_TTL, generation)
        if scheme.lower() == "bearer":
            subject, expires_at = self._bearer(value.strip())
            ttl = max(0.0, expires_at - time.time())
            return self._remember(key, subject, time.monotonic() + ttl)
        raise Unauthenticated(f"unsupported authorization scheme {scheme[:20]!r}")

    def _credential_generation(self) -> int | None:
        return None if self.credentials is None else self.credentials()

    def _basic(self, value: str, address: str | None) -> Subject:
        try:
            username, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthenticated("malformed Basic credentials") from None
        if "\x00" in username:  # no account has one, and PostgreSQL text cannot hold it
            raise Unauthenticated("malformed Basic credentials")
        # Tokens are not throttled (256 random bits cannot be guessed): login_throttle.
        password = not secret.startswith(TOKEN_PREFIX)
        now = datetime.now(UTC)
        if password:
            with read_tx(self.engine) as conn:
                until = self.throttle.refused_until(conn, username, address, now)
            if until is not None:
                wait = retry_after(until, now)
                raise Throttled(
                    f"too many failed logins from this address; retry in {wait} s", wait
                )
        answer = self.directory_answer(username, secret)
        with write_tx(self.engine) as conn:
            with directory_errors(username):
                found = self.authenticator.login(
                    conn, username, secret, answer=answer, address=address
                )
            if found is not None:
                if password:
                    self.throttle.succeeded(conn, username, address)
                principal, scope = found
                return Subject(principal.name, principal, scope)
            if password:
                self.throttle.failed(conn, username, address, now)
            audit.record(
                conn,
                audit.AuditEvent(
                    now,
                    username[:128],
                    "user",
                    "login",
                    "user",
                    username[:512],
                    "failed",
                    address,
                ),
            )
        raise Unauthenticated("wrong username or password")

    def _access_token(self, text: str, address: str | None) -> Subject:
        """An access token without a username: it names its owner. Not throttled: a token
        cannot be guessed, and a bad one must not lock out others sharing the address."""
        now = datetime.now(UTC)
        with write_tx(self.engine) as conn:
            found = self.authenticator.authenticate_token(conn, text)
            if found is not None:
                principal, scope = found
                return Subject(principal.name, principal, scope)
            audit.record(
                conn,
                audit.AuditEvent(
                    now, "", "anonymous", "login", "token", "bearer token", "failed", address
                ),
            )
        raise Unauthenticated("invalid, expired or revoked access token")

    def directory_answer(self, username: str, secret: str) -> DirectoryAnswer | None:
        """The LDAP directory's answer to a password login that needs one (None: it does not),
        for `Authenticator.login`. Asked outside any transaction (call this before opening
        one): a slow directory must never hold the database. An outage is Unavailable."""
        if self.authenticator.ldap is None:
            return None
        with read_tx(self.engine) as conn:
            asks = self.authenticator.asks_directory(conn, username, secret)
        if not asks:
            return None
        with directory_errors(username):
            return self.authenticator.ask_directory(username, secret)

    def _bearer(self, token: str) -> tuple[Subject, float]:
        try:
            kid = jwt.get_unverified_header(token).get("kid", "")
        except jwt.PyJWTError:
            raise Unauthenticated("malformed bearer token") from None
        try:
            with read_tx(self.engine) as conn:
                signer = self.keys.for_kid(conn, str(kid))
            if signer is None:
                raise InvalidToken("the token is signed by an unknown key")
            verified = signer.verify(token, self.service)
        except (InvalidToken, SigningKeyError) as error:
            raise Unauthenticated(str(error)) from None
        subject = Subject(verified.subject or None, None, verified.scope, bearer=True)
        return subject, verified.expires_at.timestamp()

    def _current(self, conn: Connection, subject: Subject) -> Principal | None:
        """The subject's roles as they are now (credentials are remembered for a while, but a
        new team, a lost ownership or a deactivation counts at once); None: gone."""
        if subject.principal is None or subject.principal.kind == "anonymous":
            return ANONYMOUS_PRINCIPAL
        try:
            return self.authenticator.load_principal(conn, subject.principal.name)
        except NotFound:
            return None

    def authorizer(self) -> Callable[[Subject, Action, Resource], bool]:
        def authorize(subject: Subject, action: Action, resource: Resource) -> bool:
            repository = resource.name if resource.kind == "repository" else None
            if subject.bearer:
                return subject.scope is not None and subject.scope.allows(action, repository)
            if repository is None:
                return may_list_catalog(subject.principal or ANONYMOUS_PRINCIPAL, subject.scope)
            if self.generation is None:
                return decide(subject, action, repository)
            generation = self.generation()
            if generation != self._decided_at or len(self._decisions) >= _CACHE_LIMIT:
                self._decisions.clear()
                self._decided_at = generation
            who = subject.principal
            key = (who.kind if who else None, subject.name, subject.scope, action, repository)
            known = self._decisions.get(key)
            if known is None:
                known = self._decisions[key] = decide(subject, action, repository)
            return known

        def decide(subject: Subject, action: Action, repository: str) -> bool:
            with read_tx(self.engine) as conn:
                principal = self._current(conn, subject)
                if principal is None:
                    return False
                return self.policy.allows(conn, principal, action, repository, subject.scope)

        return authorize


@contextmanager
def directory_errors(username: str) -> Iterator[None]:
    """An LDAP outage is Unavailable (503 on both edges), neither a failed login nor an internal
    error."""
    try:
        yield
    except LdapUnavailable as error:
        log.warning("LDAP login of %r impossible: %s", username[:128], error)
        raise Unavailable(
            "the LDAP directory does not answer: directory accounts cannot log in until it "
            "does (local accounts can); retry later",
        ) from None
