"""Records and domain errors of the access domain (transport-free)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from trustyard.errors import DomainError


class AccessError(DomainError):
    """Base of the errors only the access domain raises (a bad token, a refused grant...);
    the generic ones (NotFound, Conflict, Invalid) are `trustyard.errors`'."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    email: str | None
    full_name: str | None
    is_admin: bool
    is_active: bool
    source: str
    created_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True, slots=True)
class Organization:
    id: int
    name: str
    description: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Team:
    id: int
    organization: str
    name: str
    description: str
    ldap_group: str | None


@dataclass(frozen=True, slots=True)
class Robot:
    id: int
    organization: str
    name: str
    description: str

    @property
    def username(self) -> str:
        """How a robot logs in: `org+name`."""
        return f"{self.organization}+{self.name}"


@dataclass(frozen=True, slots=True)
class AccessToken:
    id: int
    public_id: str
    kind: str  # "pat" | "rbt"
    name: str
    owner: str  # username, or org+robot
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
