"""Directory (LDAP) users in the database: the local account a directory login creates or
refreshes, and the team memberships the directory's groups decide.

A directory user gets a local account at their first login: source "ldap", no local password,
named as the directory names them in lower case, email and full name copied from the directory
(and refreshed at every login). Teams with an `ldap_group` follow the directory: at each login,
and in the sync job, the user joins the teams whose group they are in and leaves those whose
group they left; teams without a group are managed by hand and never touched. Group names and
DNs are compared without regard to case, as LDAP compares `cn` values and DNs.

Methods take the caller's connection and never commit; none talks to the directory (callers
ask it between transactions: a slow directory must never hold the database's write lock).
Every change is written to the audit log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import Connection

from trustyard.auth import audit
from trustyard.auth.accounts import AccountService
from trustyard.auth.interfaces import User
from trustyard.auth.ldap import LdapDirectory, LdapIdentity, TeamSyncPlan, plan_team_sync
from trustyard.errors import Conflict, Invalid
from trustyard.kit.clock import utc_now

log = logging.getLogger(__name__)

LDAP_SOURCE = "ldap"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who the audit log names for a change: the user logging in, or the sync job."""

    name: str
    kind: str  # "user" | "system"
    address: str | None = None


SYNC_JOB = Actor("ldap-sync", "system")


def local_name(directory_name: str) -> str:
    """The local username of a directory user."""
    return directory_name.lower()


def _group_key(group: str) -> str:
    return group.strip().casefold()


class LdapAccounts:
    """The directory and what its answers change in the database."""

    def __init__(self, directory: LdapDirectory, service: AccountService | None = None) -> None:
        self.directory = directory
        self.service = service or AccountService()
        self.store = self.service.store

    @staticmethod
    def handles(username: str, user: User | None) -> bool:
        """Whether the directory checks a password login as `username`, whose local account
        is `user` (None: there is none): yes for directory accounts and unknown names, never
        for local accounts (such as `admin`) nor robots (`org+robot` log in with tokens)."""
        return "+" not in username and (user is None or user.source == LDAP_SOURCE)

    def admit(self, conn: Connection, identity: LdapIdentity, actor: Actor) -> User | None:
        """The local account of a user the directory vouched for, created or refreshed, with
        its teams synced; None when it may not log in: the name belongs to a local account or
        an organization, breaks the name rules, or the account is deactivated here."""
        name = local_name(identity.username)
        user = self.store.user(conn, name)
        if user is None:
            user = self._create(conn, name, identity, actor)
            if user is None:
                return None
        if user.source != LDAP_SOURCE:
            log.warning(
                "directory user %r not admitted: the %s account %r has that name",
                identity.username,
                user.source,
                name,
            )
            return None
        user = self.refresh(conn, user, identity)
        if not user.is_active:
            return None
        self.sync_teams(conn, user, identity.groups, actor)
        return user

    def _create(
        self, conn: Connection, name: str, identity: LdapIdentity, actor: Actor
    ) -> User | None:
        try:
            user = self.service.create_user(
                conn,
                name,
                None,
                email=identity.email,
                full_name=identity.display_name,
                source=LDAP_SOURCE,
            )
        except Invalid as error:
            log.warning("directory user %r not admitted: %s", identity.username, error)
            return None
        except Conflict as error:
            # A concurrent first login created the user (fine), or an organization has the name.
            found = self.store.user(conn, name)
            if found is None:
                log.warning("directory user %r not admitted: %s", identity.username, error)
            return found
        _record(conn, actor, "user.create", "user", name, None, {"source": LDAP_SOURCE})
        return user

    def refresh(self, conn: Connection, user: User, identity: LdapIdentity) -> User:
        """Copy the directory's email and full name onto the local account."""
        if (user.email, user.full_name) == (identity.email, identity.display_name):
            return user
        return self.service.update_user(
            conn,
            user.username,
            email=identity.email or "",
            full_name=identity.display_name or "",
        )

    def sync_teams(
        self, conn: Connection, user: User, groups: Iterable[str], actor: Actor
    ) -> TeamSyncPlan:
        """Put `user` in exactly the LDAP-linked teams whose group is among `groups`."""
        teams = {f"{t.organization}/{t.name}": t for t in self.store.ldap_teams(conn)}
        links = [(_group_key(t.ldap_group or ""), key) for key, t in teams.items()]
        current = {f"{org}/{team}" for org, team in self.store.memberships(conn, user.id)}
        plan = plan_team_sync({_group_key(group) for group in groups}, links, current)
        for key in sorted(plan.add):
            team = teams[key]
            self.service.add_member(conn, team.organization, team.name, user.username)
            detail = {"member": user.username, "ldap_group": team.ldap_group}
            _record(conn, actor, "team.member.add", "team", key, team.organization, detail)
        for key in sorted(plan.remove):
            team = teams[key]
            self.service.remove_member(conn, team.organization, team.name, user.username)
            detail = {"member": user.username, "ldap_group": team.ldap_group}
            _record(conn, actor, "team.member.remove", "team", key, team.organization, detail)
        return plan


def _record(
    conn: Connection,
    actor: Actor,
    action: str,
    resource_kind: str,
    resource: str,
    organization: str | None,
    detail: Mapping[str, object],
) -> None:
    audit.record(
        conn,
        audit.AuditEvent(
            at=utc_now(),
            actor=actor.name,
            actor_kind=actor.kind,
            action=action,
            resource_kind=resource_kind,
            resource=resource,
            outcome="ok",
            address=actor.address,
            organization=organization,
            detail={"via": "ldap", **detail},
        ),
    )
