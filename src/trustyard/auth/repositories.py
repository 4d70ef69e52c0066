"""Who may see and use repositories: the holders of roles on one repository, and the
repositories a principal may read, a page at a time.

Repositories themselves (create, read, settings, delete) are the content domain's
(`content/repositories.py`); this module reads them through it and applies the rules of
`permissions`, the same as /v2. Every method takes the caller's connection and never commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from trustyard.auth.access import AccessPolicy
from trustyard.auth.permissions import (
    Grants,
    Principal,
    RepositoryFacts,
    Role,
    Visibility,
    visible,
)
from trustyard.auth.scopes import TokenScope, name_matches
from trustyard.auth.stores import AccessStore
from trustyard.content.interfaces import Repository
from trustyard.content.repositories import RepositoryService

# Rows read per query while looking for visible repositories.
_BATCH = 200


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """Who holds a role on a repository (a user, a team of its organization, a robot `org+name`)
    and every rule that gives it (the highest role counts)."""

    name: str
    role: Role
    via: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RepositoryAccess:
    repository: Repository
    users: list[AccessEntry]
    teams: list[AccessEntry]
    robots: list[AccessEntry]


class _Holders:
    def __init__(self) -> None:
        self.found: dict[str, tuple[Role, list[str]]] = {}

    def add(self, name: str, role: Role, via: str) -> None:
        held, reasons = self.found.get(name, (Role.NONE, []))
        self.found[name] = (max(held, role), [*reasons, via])

    def entries(self) -> list[AccessEntry]:
        return [
            AccessEntry(name, role, tuple(via)) for name, (role, via) in sorted(self.found.items())
        ]


class RepositoryAccessService:
    def __init__(
        self,
        store: AccessStore | None = None,
        policy: AccessPolicy | None = None,
        repositories: RepositoryService | None = None,
    ) -> None:
        self.store = store or AccessStore()
        self.policy = policy or AccessPolicy(self.store)
        self.repositories = repositories or RepositoryService()

    def holders(self, conn: Connection, name: str) -> RepositoryAccess:
        """Who may use the repository and with which role, by the rules of `permissions`:
        system administrators, the namespace's user or the organization's owners (admin),
        teams with a grant on it or on the whole organization, robots whose grant pattern
        matches it. A public repository is read-only for everybody besides."""
        repository = self.repositories.get(conn, name)
        namespace = repository.namespace
        users, teams, robots = _Holders(), _Holders(), _Holders()
        for admin in self.store.active_admins(conn):
            users.add(admin, Role.ADMIN, "system administrator")
        owner = self.store.user(conn, namespace)
        if owner is not None and owner.is_active:
            users.add(namespace, Role.ADMIN, "personal namespace")
        organization = self.store.organization(conn, namespace)
        if organization is not None:
            for username in self.store.owners(conn, organization.id):
                users.add(username, Role.ADMIN, "organization owner")
            grants = self.store.grants_for_namespace(conn, namespace)
            for team, granted, role in grants["repository"]:
                if granted == repository.name:
                    teams.add(team, Role.parse(role), "repository grant")
            for team, role in grants["organization"]:
                teams.add(team, Role.parse(role), "organization grant")
            for robot, pattern, role in grants["robot"]:
                if name_matches(pattern, repository.name):
                    robots.add(f"{namespace}+{robot}", Role.parse(role), f"grant on {pattern}")
        return RepositoryAccess(repository, users.entries(), teams.entries(), robots.entries())

    def visible(
        self,
        conn: Connection,
        principal: Principal,
        scope: TokenScope | None,
        *,
        limit: int,
        after: str | None = None,
        namespace: str | None = None,
    ) -> list[Repository]:
        """Up to `limit` repositories `principal` (through `scope`) may read, in name order
        after `after`, only of `namespace` when given. Anonymous callers see public ones."""
        if principal.is_admin:
            namespaces: frozenset[str] | None = None
        else:
            mine = {principal.name} if principal.kind == "user" else set()
            mine |= principal.owned_orgs | {org for org, _ in principal.teams}
            if principal.robot_org is not None:
                mine.add(principal.robot_org)
            namespaces = frozenset(mine)
        grants: dict[str, Grants] = {}
        found: list[Repository] = []
        cursor = after
        while len(found) < limit:
            rows = self.repositories.page(
                conn, _BATCH, cursor, namespace=namespace, namespaces=namespaces
            )
            for repository in rows:
                shown: Visibility = "public" if repository.visibility == "public" else "private"
                facts = RepositoryFacts(repository.name, shown)
                held = grants.get(facts.namespace)
                if held is None:
                    held = grants[facts.namespace] = self.policy.grants(
                        conn, principal, facts.namespace
                    )
                if visible(principal, facts, held, scope):
                    found.append(repository)
                    if len(found) == limit:
                        break
            if len(rows) < _BATCH:
                break
            cursor = rows[-1].name
        return found
