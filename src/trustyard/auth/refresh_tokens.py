"""Refresh tokens of the Docker token endpoint (`offline_token=true`, OAuth2 `access_type=offline`).

A client that logs in for offline access gets, next to its short-lived registry token, a refresh
token it can later exchange (`grant_type=refresh_token`) for new registry tokens instead of
keeping the password. Its text reads `ty_rft_<public id>_<secret>` (the layout of `secrets`);
only the SHA-256 of the secret is stored, in `access_tokens` with kind "rft", so refresh tokens
are listed with their owner's other tokens (`GET /api/v1/tokens`, a robot's token list) and
revoked the same way (`DELETE /api/v1/tokens/{public_id}`). A refresh token is not an access
token: it is refused as a Basic password, and an access token is refused as a refresh token.
It is bound to the `client_id` it was issued to: only that client may exchange it (one issued
without a client_id may be exchanged by any).

What an exchange grants is decided again each time, never remembered: the owner's roles as they
are now, narrowed by the token's scopes (those of the access or robot token it was obtained
with; "everything the owner may do" when obtained with a password). A refresh token stops
working when it is revoked or expires (`auth.refresh_token_ttl_seconds`, at most the lifetime
of the token it was obtained with), when its owner is deactivated or deleted, when the password
it was obtained with changes (a fingerprint of the password hash is kept: an administrator's
reset and a rehash after new argon2 parameters count as changes too), and when the access or
robot token it was obtained with is revoked, expires or is deleted. Deactivating a user revokes
their refresh tokens (`AccessStore.update_user`): reactivating them revives their access tokens,
not their refresh tokens.

Functions take the caller's connection and never commit; the secret is compared in constant
time and never appears in a repr, an error message or the audit log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from trustyard.auth import audit
from trustyard.auth.access import Authenticator, DirectoryAnswer
from trustyard.auth.accounts import DEFAULT_TOKEN_SCOPES
from trustyard.auth.interfaces import AccessError
from trustyard.auth.permissions import Principal
from trustyard.auth.scopes import TokenScope
from trustyard.auth.secrets import (
    PREFIX,
    PUBLIC_ID_ALPHABET,
    PUBLIC_ID_LENGTH,
    SECRET_BYTES,
    hash_secret,
    parse_token,
    secret_matches,
)
from trustyard.db.tables import access_tokens, organizations, robots, users
from trustyard.errors import NotFound
from trustyard.kit.clock import utc
from trustyard.kit.clock import utc_now as _now

REFRESH_KIND = "rft"
DEFAULT_REFRESH_TTL = timedelta(days=30)
MAX_CLIENT_ID_LENGTH = 64

_SECRET_LENGTH = len(base64.urlsafe_b64encode(bytes(SECRET_BYTES)).rstrip(b"="))
_TEXT_RE = re.compile(
    rf"{PREFIX}_{REFRESH_KIND}_([a-z2-7]{{{PUBLIC_ID_LENGTH}}})_([A-Za-z0-9_-]{{{_SECRET_LENGTH}}})"
)
_CLIENT_ID_RE = re.compile(rf"[\x20-\x7e]{{1,{MAX_CLIENT_ID_LENGTH}}}")


class InvalidGrant(AccessError):
    """A refresh token that must not be honoured. The message says why, for the audit log; the
    client is told no more than "invalid_grant"."""

    def __init__(self, reason: str, *, public_id: str = "", owner: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.public_id = public_id
        self.owner = owner


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """A refresh token just made: hand `text` to the client once; it is never stored."""

    text: str
    public_id: str
    owner: str  # username, or org+robot
    expires_at: datetime
    obtained_with: str  # "password" | "token"

    def __repr__(self) -> str:
        return (
            f"RefreshToken(public_id={self.public_id!r}, owner={self.owner!r}, "
            f"expires_at={self.expires_at!r}, obtained_with={self.obtained_with!r})"
        )


@dataclass(frozen=True, slots=True)
class Offline:
    """A login for offline access: its refresh token, and who logged in (with the scope of the
    access or robot token used, None for a password)."""

    refresh: RefreshToken
    principal: Principal
    scope: TokenScope | None


@dataclass(frozen=True, slots=True)
class Exchange:
    """What a valid refresh token stands for now."""

    public_id: str
    principal: Principal
    scope: TokenScope


def is_valid_client_id(client_id: str) -> bool:
    """RFC 6749 appendix A.1 (printable ASCII), 1 to `MAX_CLIENT_ID_LENGTH` characters."""
    return _CLIENT_ID_RE.fullmatch(client_id) is not None


def new_refresh_text() -> tuple[str, str, str]:
    """A new refresh token: (text, public id, hash of the secret)."""
    public_id = "".join(secrets.choice(PUBLIC_ID_ALPHABET) for _ in range(PUBLIC_ID_LENGTH))
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode()
    return f"{PREFIX}_{REFRESH_KIND}_{public_id}_{secret}", public_id, hash_secret(secret)


def parse_refresh_text(text: str) -> tuple[str, str] | None:
    """(public id, secret) of a well-formed refresh token text, else None."""
    match = _TEXT_RE.fullmatch(text)
    if match is None:
        return None
    public_id, secret = match.groups()
    return public_id, secret


def password_stamp(password_hash: str | None) -> str:
    """The fingerprint of a stored password hash kept with a refresh token ("" hashes for an
    account without a local password)."""
    return hashlib.sha256((password_hash or "").encode("utf-8")).hexdigest()


class RefreshTokens:
    def __init__(
        self, authenticator: Authenticator | None = None, ttl: timedelta = DEFAULT_REFRESH_TTL
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError("a refresh token's lifetime must be positive")
        self.authenticator = authenticator or Authenticator()
        self.ttl = ttl

    def issue(
        self,
        conn: Connection,
        username: str,
        secret: str,
        client_id: str | None = None,
        *,
        now: datetime | None = None,
        answer: DirectoryAnswer | None = None,
    ) -> Offline | None:
        """Check Docker Basic credentials (a password, or an access or robot token of
        `username`) against the database as it is now, and make a refresh token for that login;
        None when they do not log in.

        The credentials are checked again here, not taken from a cache: the password's
        fingerprint and the token row read below are those of this very check.
        """
        found = self.authenticator.login(conn, username, secret, answer=answer)
        if found is None:
            return None
        principal, scope = found
        moment = now or _now()
        expires_at = moment + self.ttl
        parent_id: int | None = None
        stamp: str | None = None
        parsed = parse_token(secret)
        if parsed is not None:
            parent = conn.execute(
                select(access_tokens.c.id, access_tokens.c.expires_at).where(
                    access_tokens.c.public_id == parsed.public_id
                )
            ).one()
            parent_id = parent.id
            if parent.expires_at is not None:
                expires_at = min(expires_at, utc(parent.expires_at))
            stored_scopes = [str(entry) for entry in scope.entries] if scope else []
        else:
            password_hash = conn.scalar(
                select(users.c.password_hash).where(users.c.username == principal.name)
            )
            stamp = password_stamp(password_hash)
            stored_scopes = list(DEFAULT_TOKEN_SCOPES)  # all the owner may do
        text, public_id, secret_hash = new_refresh_text()
        conn.execute(
            insert(access_tokens).values(
                public_id=public_id,
                secret_hash=secret_hash,
                kind=REFRESH_KIND,
                name=f"refresh token ({client_id or 'unnamed client'})",
                scopes=json.dumps(stored_scopes),
                created_at=moment,
                expires_at=expires_at,
                parent_id=parent_id,
                credential_stamp=stamp,
                client_id=client_id,
                **self._owner_ids(conn, principal),
            )
        )
        refresh = RefreshToken(
            text,
            public_id,
            principal.name,
            expires_at,
            "token" if parsed is not None else "password",
        )
        return Offline(refresh, principal, scope)

    def exchange(
        self,
        conn: Connection,
        text: str,
        *,
        client_id: str | None = None,
        now: datetime | None = None,
    ) -> Exchange:
        """The owner and scope of a valid refresh token presented by `client_id` (touching its
        `last_used_at`); raises `InvalidGrant` for anything else."""
        parsed = parse_refresh_text(text)
        if parsed is None:
            raise InvalidGrant("malformed refresh token")
        public_id, secret = parsed
        row = conn.execute(_refresh_query().where(access_tokens.c.public_id == public_id)).first()
        if row is None or row.kind != REFRESH_KIND:
            raise InvalidGrant("unknown refresh token", public_id=public_id)
        owner = _owner(row)
        if not secret_matches(secret, row.secret_hash):
            raise InvalidGrant("wrong refresh token secret", public_id=public_id, owner=owner)
        if row.client_id is not None and row.client_id != client_id:
            raise InvalidGrant(
                "the refresh token was issued to another client", public_id=public_id, owner=owner
            )
        moment = now or _now()
        if row.revoked_at is not None:
            raise InvalidGrant("revoked refresh token", public_id=public_id, owner=owner)
        if row.expires_at is None or utc(row.expires_at) <= moment:
            raise InvalidGrant("expired refresh token", public_id=public_id, owner=owner)
        if row.parent_id is not None:
            parent = conn.execute(
                select(access_tokens.c.revoked_at, access_tokens.c.expires_at).where(
                    access_tokens.c.id == row.parent_id
                )
            ).first()
            if (
                parent is None
                or parent.revoked_at is not None
                or (parent.expires_at is not None and utc(parent.expires_at) <= moment)
            ):
                raise InvalidGrant(
                    "the token it was obtained with is revoked or expired",
                    public_id=public_id,
                    owner=owner,
                )
        if row.credential_stamp is not None and not hmac.compare_digest(
            row.credential_stamp.encode("ascii"), password_stamp(row.password_hash).encode("ascii")
        ):
            raise InvalidGrant(
                "the password it was obtained with has changed", public_id=public_id, owner=owner
            )
        try:
            principal = self.authenticator.load_principal(conn, owner)
        except NotFound:
            raise InvalidGrant(
                "its owner is deactivated or deleted", public_id=public_id, owner=owner
            ) from None
        conn.execute(
            update(access_tokens).where(access_tokens.c.id == row.id).values(last_used_at=moment)
        )
        scope = TokenScope.from_strings(json.loads(row.scopes))
        return Exchange(public_id, principal, scope)

    @staticmethod
    def _owner_ids(conn: Connection, principal: Principal) -> dict[str, int | None]:
        if principal.kind == "robot":
            org, _, name = principal.name.partition("+")
            robot_id = conn.scalar(
                select(robots.c.id)
                .select_from(robots.join(organizations))
                .where(organizations.c.name == org, robots.c.name == name)
            )
            return {"user_id": None, "robot_id": robot_id}
        user_id = conn.scalar(select(users.c.id).where(users.c.username == principal.name))
        return {"user_id": user_id, "robot_id": None}


# --- audit -----------------------------------------------------------------------------------


def issued_event(
    offline: Offline, client_id: str | None, address: str | None, at: datetime
) -> audit.AuditEvent:
    """The audit record of a refresh token handed out."""
    principal = offline.principal
    return audit.AuditEvent(
        at,
        principal.name,
        principal.kind,
        "refresh_token.create",
        "token",
        offline.refresh.public_id,
        "ok",
        address,
        principal.robot_org,
        {"client_id": client_id or "", "obtained_with": offline.refresh.obtained_with},
    )


def refused_event(
    error: InvalidGrant, client_id: str | None, address: str | None, at: datetime
) -> audit.AuditEvent:
    """The audit record of a refresh token refused at the token endpoint."""
    owner = error.owner
    kind = "robot" if "+" in owner else "user" if owner else "anonymous"
    return audit.AuditEvent(
        at,
        owner,
        kind,
        "refresh_token.exchange",
        "token",
        error.public_id,
        "failed",
        address,
        owner.partition("+")[0] if kind == "robot" else None,
        {"client_id": client_id or "", "reason": error.reason},
    )


def _refresh_query() -> Any:
    return select(
        access_tokens,
        users.c.username.label("username"),
        users.c.password_hash.label("password_hash"),
        robots.c.name.label("robot"),
        organizations.c.name.label("org"),
    ).select_from(
        access_tokens.outerjoin(users, users.c.id == access_tokens.c.user_id)
        .outerjoin(robots, robots.c.id == access_tokens.c.robot_id)
        .outerjoin(organizations, organizations.c.id == robots.c.organization_id)
    )


def _owner(row: Row[Any]) -> str:
    return str(row.username) if row.username else f"{row.org}+{row.robot}"
