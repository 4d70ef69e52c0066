"""Request and response bodies of /api/v1."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from trustyard.auth.audit import AuditEvent
from trustyard.auth.interfaces import AccessToken, Organization, Robot, Team, User
from trustyard.auth.repositories import AccessEntry, RepositoryAccess
from trustyard.content.interfaces import Repository
from trustyard.content.tags import TagDetail
from trustyard.errors import Invalid

T = TypeVar("T")
# Text stored in or compared with the database: PostgreSQL cannot hold a NUL character.
NO_NUL = r"^[^\x00]*$"
# Row ids are INTEGER columns: PostgreSQL refuses to compare them with anything larger.
MAX_ROW_ID = 2**31 - 1


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None = Field(description="pass as `after` for the next page; null at the end")


def keyed_page(rows: Sequence[T], key: Callable[[T], str], limit: int) -> Page[T]:
    """The page of `rows`, read in key order after the previous page's key with `limit + 1`
    as their limit (the extra row only tells that another page follows)."""
    shown = list(rows[:limit])
    return Page(items=shown, next=key(shown[-1]) if len(rows) > limit else None)


def visible_page(
    read: Callable[[str | None, int], Sequence[T]],
    key: Callable[[T], str],
    visible: Callable[[T], bool],
    limit: int,
    after: str | None,
) -> Page[T]:
    """A page of only the rows `visible` keeps: `read(after, count)` gives `count` rows in
    key order after a key, and is asked again past the last row read until one more visible
    row than `limit` is found or the rows run out."""
    shown: list[T] = []
    count = max(limit + 1, 100)
    while True:
        rows = read(after, count)
        for row in rows:
            if visible(row):
                shown.append(row)
                if len(shown) > limit:
                    return Page(items=shown[:limit], next=key(shown[limit - 1]))
        if len(rows) < count:
            return Page(items=shown, next=None)
        after = key(rows[-1])


def page_in_order(
    items: Sequence[T], key: Callable[[T], str], limit: int, after: str | None
) -> Page[T]:
    """One page of `items` (in their own order) after the item whose key is `after`."""
    start = 0
    if after is not None:
        keys = [key(item) for item in items]
        if after not in keys:
            raise Invalid("after is the `next` of a previous page (that item is gone)")
        start = keys.index(after) + 1
    shown = list(items[start : start + limit])
    more = len(items) > start + limit
    return Page(items=shown, next=key(shown[-1]) if more else None)


class Me(BaseModel):
    name: str
    kind: str
    is_admin: bool
    owned_organizations: list[str]
    teams: list[str] = Field(description="`organization/team`")


class UserCreate(BaseModel):
    username: str = Field(max_length=64)
    password: str | None = Field(default=None, max_length=1024)
    email: str | None = Field(default=None, max_length=255, pattern=NO_NUL)
    full_name: str | None = Field(default=None, max_length=255, pattern=NO_NUL)
    is_admin: bool = False


class UserUpdate(BaseModel):
    email: str | None = Field(default=None, max_length=255, pattern=NO_NUL)
    full_name: str | None = Field(default=None, max_length=255, pattern=NO_NUL)
    is_admin: bool | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, max_length=1024)
    current_password: str | None = Field(
        default=None,
        max_length=1024,
        description="required to change one's own password (not to reset another user's)",
    )


class UserOut(BaseModel):
    username: str
    email: str | None
    full_name: str | None
    is_admin: bool
    is_active: bool
    source: str
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            username=user.username,
            email=user.email,
            full_name=user.full_name,
            is_admin=user.is_admin,
            is_active=user.is_active,
            source=user.source,
            created_at=user.created_at,
            last_login_at=user.last_login_at,
        )


class OrganizationCreate(BaseModel):
    name: str = Field(max_length=64)
    description: str = Field(default="", max_length=1000, pattern=NO_NUL)


class OrganizationOut(BaseModel):
    name: str
    description: str
    created_at: datetime

    @classmethod
    def of(cls, org: Organization) -> OrganizationOut:
        return cls(name=org.name, description=org.description, created_at=org.created_at)


class TeamCreate(BaseModel):
    name: str = Field(max_length=64)
    description: str = Field(default="", max_length=1000, pattern=NO_NUL)


class TeamOut(BaseModel):
    organization: str
    name: str
    description: str
    ldap_group: str | None

    @classmethod
    def of(cls, team: Team) -> TeamOut:
        return cls(
            organization=team.organization,
            name=team.name,
            description=team.description,
            ldap_group=team.ldap_group,
        )


class RoleBody(BaseModel):
    role: str = Field(description="read-only, read-write or admin", max_length=50)


class RobotCreate(BaseModel):
    name: str = Field(max_length=64)
    description: str = Field(default="", max_length=1000, pattern=NO_NUL)


class RobotOut(BaseModel):
    organization: str
    name: str
    username: str
    description: str

    @classmethod
    def of(cls, robot: Robot) -> RobotOut:
        return cls(
            organization=robot.organization,
            name=robot.name,
            username=robot.username,
            description=robot.description,
        )


class TokenCreate(BaseModel):
    name: str = Field(max_length=128, pattern=NO_NUL)
    scopes: list[str] | None = Field(default=None, max_length=100)
    expires_at: datetime | None = None


class TokenOut(BaseModel):
    public_id: str
    kind: str
    name: str
    owner: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, token: AccessToken) -> TokenOut:
        return cls(
            public_id=token.public_id,
            kind=token.kind,
            name=token.name,
            owner=token.owner,
            scopes=list(token.scopes),
            created_at=token.created_at,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
            last_used_at=token.last_used_at,
        )


class TokenCreated(TokenOut):
    token: str = Field(description="the token text: shown once, never stored")

    @classmethod
    def created(cls, token: AccessToken, text: str) -> TokenCreated:
        return cls(**TokenOut.of(token).model_dump(), token=text)


class TeamUpdate(BaseModel):
    description: str | None = Field(default=None, max_length=1000, pattern=NO_NUL)
    ldap_group: str | None = Field(
        default=None,
        max_length=512,
        pattern=NO_NUL,
        description="DN of the LDAP group whose members the team mirrors; null: managed by hand",
    )


Visibility = Literal["private", "public"]


class RepositoryCreate(BaseModel):
    name: str = Field(max_length=255, description="full name, `namespace/name`")
    visibility: Visibility = "private"
    description: str = Field(default="", max_length=10000, pattern=NO_NUL)


class RepositoryUpdate(BaseModel):
    visibility: Visibility | None = None
    description: str | None = Field(default=None, max_length=10000, pattern=NO_NUL)
    scan_on_push: bool | None = None
    immutable_tags: bool | None = None
    attach_sbom: bool | None = Field(
        default=None,
        description="push each scan's CycloneDX SBOM into the repository as a referrer "
        "(artifactType application/vnd.cyclonedx+json) of the scanned image",
    )


class RepositoryOut(BaseModel):
    name: str
    namespace: str
    visibility: str
    description: str
    scan_on_push: bool
    immutable_tags: bool
    attach_sbom: bool
    created_at: datetime

    @classmethod
    def of(cls, repository: Repository) -> RepositoryOut:
        return cls(
            name=repository.name,
            namespace=repository.namespace,
            visibility=repository.visibility,
            description=repository.description,
            scan_on_push=repository.scan_on_push,
            immutable_tags=repository.immutable_tags,
            attach_sbom=repository.attach_sbom,
            created_at=repository.created_at,
        )


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description="username, `org+robot`, or empty for anonymous callers")
    actor_kind: str
    action: str
    resource_kind: str
    resource: str
    organization: str | None = Field(description="namespace of the resource, if any")
    outcome: str = Field(description="ok, denied or failed")
    address: str | None
    detail: dict[str, Any] | None

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        assert event.id is not None
        return cls(
            id=event.id,
            at=event.at,
            actor=event.actor,
            actor_kind=event.actor_kind,
            action=event.action,
            resource_kind=event.resource_kind,
            resource=event.resource,
            organization=event.organization,
            outcome=event.outcome,
            address=event.address,
            detail=event.detail,
        )


class TeamDetailOut(TeamOut):
    organization_role: str | None = Field(
        description="the team's role on every repository of the organization, if any"
    )

    @classmethod
    def detail(cls, team: Team, organization_role: str | None) -> TeamDetailOut:
        return cls(**TeamOut.of(team).model_dump(), organization_role=organization_role)


class TeamGrantOut(BaseModel):
    repository: str
    role: str


class AccessEntryOut(BaseModel):
    name: str
    role: str
    via: list[str] = Field(description="the rules that give the role (the highest counts)")

    @classmethod
    def of(cls, entry: AccessEntry) -> AccessEntryOut:
        return cls(name=entry.name, role=entry.role.api_name, via=list(entry.via))


class RepositoryAccessOut(BaseModel):
    repository: str
    visibility: str = Field(description="public: everybody may also pull (read-only)")
    users: list[AccessEntryOut]
    teams: list[AccessEntryOut]
    robots: list[AccessEntryOut]

    @classmethod
    def of(cls, access: RepositoryAccess) -> RepositoryAccessOut:
        return cls(
            repository=access.repository.name,
            visibility=access.repository.visibility,
            users=[AccessEntryOut.of(entry) for entry in access.users],
            teams=[AccessEntryOut.of(entry) for entry in access.teams],
            robots=[AccessEntryOut.of(entry) for entry in access.robots],
        )


class VulnerabilityCountsOut(BaseModel):
    """Vulnerabilities by DTR's buckets: critical (CVSS >= 7.0), major (4.0-6.9), minor
    (< 4.0), unknown (no score nor label); one per (component, vulnerability)."""

    critical: int
    major: int
    minor: int
    unknown: int
    total: int


class TagOut(BaseModel):
    name: str
    digest: str
    media_type: str
    size: int = Field(description="bytes a pull may fetch: manifests, configs and layers")
    platforms: list[str] = Field(description="os/architecture[/variant] of the image(s)")
    pushed_at: datetime
    scan_status: str | None = Field(
        description="the latest scan of the manifest: queued, running, succeeded or failed; "
        "null when never scanned"
    )
    vulnerabilities: VulnerabilityCountsOut | None = Field(
        description="vulnerabilities of the manifest's latest matched scan by bucket, after "
        "triage; null when it has none"
    )

    @classmethod
    def of(
        cls,
        tag: TagDetail,
        scan_status: str | None,
        vulnerabilities: VulnerabilityCountsOut | None = None,
    ) -> TagOut:
        return cls(
            name=tag.name,
            digest=tag.digest,
            media_type=tag.media_type,
            size=tag.size,
            platforms=list(tag.platforms),
            pushed_at=tag.pushed_at,
            scan_status=scan_status,
            vulnerabilities=vulnerabilities,
        )
