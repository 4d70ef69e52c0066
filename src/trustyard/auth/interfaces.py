"""Records and domain errors of the access domain (transport-free)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class AccessError(Exception):
    """Base of the access domain's errors; each edge maps them once."""


class NotFound(AccessError):
    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} does not exist")
        self.kind = kind
        self.name = name


class Conflict(AccessError):
    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} already exists")
        self.kind = kind
        self.name = name


class Invalid(AccessError):
    """A value breaks a rule (name grammar, password policy, unknown role...)."""


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


@dataclass(frozen=True, slots=True)
class Repository:
    """An OCI repository as a managed object (its content lives in the content domain)."""

    id: int
    name: str
    visibility: str  # "private" | "public"
    description: str
    scan_on_push: bool
    immutable_tags: bool
    created_at: datetime
    attach_sbom: bool = False  # push each scan's SBOM as a referrer of the image

    @property
    def namespace(self) -> str:
        """The user or organization the repository belongs to: its first path component."""
        return self.name.split("/", 1)[0]
