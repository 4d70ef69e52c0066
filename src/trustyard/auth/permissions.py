"""The permission model (Docker Trusted Registry's): roles, who holds which, what each allows.

Pure: the caller loads the principal, the repository's facts and the relevant grants, and
asks. Roles are additive, the highest wins:

- a system administrator is admin everywhere;
- a user is admin of their personal namespace (`alice/...` for alice);
- an organization owner is admin of every repository of the organization;
- a team's grants count on repositories of the team's own organization only: per repository
  (`team_repository`) and organization-wide (`team_organization`);
- a robot holds only its robot grants (a name or a pattern such as `acme/ci-*`), and only on
  repositories of its own organization;
- a public repository is read-only for everybody, anonymous callers and robots included.

A repository's namespace is its first path component (`acme` for `acme/app/web`, and the name
itself for a one-component name), so users and organizations must not share names. A token
scope (`TokenScope`) can only narrow these rights, never widen them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from trustyard.auth.authorize import Action
from trustyard.auth.scopes import TokenScope, name_matches
from trustyard.errors import Invalid

PrincipalKind = Literal["anonymous", "user", "robot"]
Visibility = Literal["public", "private"]
NamespaceKind = Literal["user", "org"]


class Role(enum.IntEnum):
    NONE = 0
    READ_ONLY = 1
    READ_WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> Role:
        """A role from its API name: "read-only", "read-write" or "admin"."""
        for role in _GRANTABLE:
            if role.api_name == text:
                return role
        raise Invalid(f"unknown role {text[:50]!r}: use read-only, read-write or admin")

    @property
    def api_name(self) -> str:
        return self.name.lower().replace("_", "-")


_GRANTABLE = (Role.READ_ONLY, Role.READ_WRITE, Role.ADMIN)

REQUIRED_ROLE: Mapping[Action, Role] = MappingProxyType(
    {
        Action.PULL: Role.READ_ONLY,
        Action.PUSH: Role.READ_WRITE,
        Action.DELETE: Role.READ_WRITE,
        Action.SCAN: Role.READ_WRITE,
        Action.ADMIN: Role.ADMIN,
    }
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking. For a robot, `name` is its login (`acme+ci`) and `robot_org` is `acme`."""

    kind: PrincipalKind
    name: str
    is_admin: bool = False  # system administrator
    teams: frozenset[tuple[str, str]] = frozenset()  # (organization, team)
    owned_orgs: frozenset[str] = frozenset()
    robot_org: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "anonymous":
            ok = self.name == "" and not (self.is_admin or self.teams or self.owned_orgs)
            ok = ok and self.robot_org is None
        elif self.kind == "user":
            ok = self.name != "" and self.robot_org is None
        else:
            ok = bool(self.robot_org) and self.name.startswith(f"{self.robot_org}+")
            ok = ok and self.name != f"{self.robot_org}+"
            ok = ok and not (self.is_admin or self.teams or self.owned_orgs)
        if not ok:
            raise ValueError(f"inconsistent {self.kind} principal {self.name!r}")

    @classmethod
    def anonymous(cls) -> Principal:
        return cls("anonymous", "")

    @classmethod
    def user(
        cls,
        name: str,
        *,
        is_admin: bool = False,
        teams: frozenset[tuple[str, str]] = frozenset(),
        owned_orgs: frozenset[str] = frozenset(),
    ) -> Principal:
        return cls("user", name, is_admin=is_admin, teams=teams, owned_orgs=owned_orgs)

    @classmethod
    def robot(cls, organization: str, robot: str) -> Principal:
        return cls("robot", f"{organization}+{robot}", robot_org=organization)

    @property
    def robot_name(self) -> str | None:
        """The robot's name inside its organization (`ci` for `acme+ci`)."""
        if self.robot_org is None:
            return None
        return self.name[len(self.robot_org) + 1 :]


@dataclass(frozen=True, slots=True)
class RepositoryFacts:
    name: str
    visibility: Visibility

    def __post_init__(self) -> None:
        if self.visibility not in ("public", "private"):
            raise ValueError(f"visibility is public or private, not {self.visibility!r}")

    @property
    def namespace(self) -> str:
        return self.name.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class Grants:
    """The grants that may concern one request (the caller may load just those)."""

    team_repository: Mapping[tuple[str, str, str], Role] = field(default_factory=dict)
    team_organization: Mapping[tuple[str, str], Role] = field(default_factory=dict)
    robot: Mapping[tuple[str, str, str], Role] = field(default_factory=dict)  # pattern last

    def __post_init__(self) -> None:
        for name in ("team_repository", "team_organization", "robot"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))


NO_GRANTS = Grants()


def effective_role(principal: Principal, repo: RepositoryFacts, grants: Grants) -> Role:
    """The highest role any rule gives `principal` on `repo`."""
    floor = Role.READ_ONLY if repo.visibility == "public" else Role.NONE
    namespace = repo.namespace
    if principal.kind == "anonymous":
        return floor
    if principal.kind == "robot":
        if principal.robot_org != namespace:
            return floor
        robot = principal.robot_name
        held = [
            role
            for (org, name, pattern), role in grants.robot.items()
            if org == namespace and name == robot and name_matches(pattern, repo.name)
        ]
        return max([floor, *held])
    if principal.is_admin or namespace == principal.name or namespace in principal.owned_orgs:
        return Role.ADMIN
    best = floor
    for org, team in principal.teams:
        if org != namespace:
            continue
        best = max(
            best,
            grants.team_repository.get((org, team, repo.name), Role.NONE),
            grants.team_organization.get((org, team), Role.NONE),
        )
    return best


def may(
    principal: Principal,
    action: Action,
    repo: RepositoryFacts,
    grants: Grants,
    scope: TokenScope | None = None,
) -> bool:
    """Whether `principal` (through a token limited to `scope`, if any) may do `action`."""
    if action is Action.CATALOG:
        return may_list_catalog(principal, scope)
    if scope is not None and not scope.allows(action, repo.name):
        return False
    return effective_role(principal, repo, grants) >= REQUIRED_ROLE[action]


def may_list_catalog(principal: Principal, scope: TokenScope | None = None) -> bool:
    """Everybody may list the catalog (it shows only what `visible` allows), unless a token's
    scope leaves out `registry:catalog:*`."""
    return scope is None or scope.allows(Action.CATALOG)


def visible(
    principal: Principal,
    repo: RepositoryFacts,
    grants: Grants,
    scope: TokenScope | None = None,
) -> bool:
    """Whether the repository's existence may be revealed (in the catalog, in error answers):
    the principal may read it, through `scope` when the request came with a limited token."""
    return may(principal, Action.PULL, repo, grants, scope)


def may_create(
    principal: Principal, namespace: str, namespace_kind: NamespaceKind | None, grants: Grants
) -> bool:
    """Whether `principal` may create a repository in `namespace`.

    `namespace_kind` is None when no user or organization has that name. System administrators
    may create anywhere, in a namespace that does not exist yet too; a user in their personal
    namespace; an organization's owners, and members of a team of that organization holding an
    organization-wide read-write or admin grant. Nobody else: not anonymous callers, not robots.
    """
    if principal.kind != "user":
        return False
    if principal.is_admin:
        return True
    if namespace_kind == "user":
        return namespace == principal.name
    if namespace_kind == "org":
        if namespace in principal.owned_orgs:
            return True
        return any(
            grants.team_organization.get((org, team), Role.NONE) >= Role.READ_WRITE
            for org, team in principal.teams
            if org == namespace
        )
    return False
