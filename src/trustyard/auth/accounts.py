"""Accounts: users, organizations, teams, robots, grants and access tokens.

Every method takes the caller's connection and never commits (the edge opens
`trustyard.db.engine.write_tx`). Rules enforced here:

- users, organizations, teams and robots share one name grammar (`NAME_RE`, at most 64
  characters); a user and an organization never share a name (both are repository namespaces),
  nor take the name of a namespace that already holds repositories (only an administrator's
  organization may adopt such a namespace, left without owner by an open registry or an older
  version); creating a repository in a namespace that is no user or organization makes it an
  organization of the creator (`claim_namespace`), so nobody can take it over later;
- passwords follow `passwords.check_password_policy` and only their argon2id hash is stored;
- the last active system administrator cannot be deleted, deactivated or demoted, and an
  organization always keeps at least one owner (a user who is the last owner of an
  organization cannot be deleted either);
- a robot's grants name repositories of its own organization (`acme/app`, `acme/ci-*`, `acme/*`);
- a token's scopes follow `scopes.TokenScope` and are stored in canonical form. A personal access
  token created without scopes gets `DEFAULT_TOKEN_SCOPES` ("everything its owner may do": the
  scope never widens the owner's own roles, so this is exactly the owner's rights).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from argon2 import PasswordHasher
from sqlalchemy import Connection

from trustyard.auth import secrets
from trustyard.auth.interfaces import AccessToken, Organization, Robot, Team, User
from trustyard.auth.passwords import DEFAULT_HASHER, check_password_policy, hash_password
from trustyard.auth.permissions import Role
from trustyard.auth.scopes import TokenScope, is_valid_pattern
from trustyard.auth.stores import AccessStore
from trustyard.content.stores import ContentStore
from trustyard.errors import Conflict, Invalid, NotFound, StateConflict
from trustyard.kit.clock import utc_now
from trustyard.oci.names import is_valid_name

NAME_RE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
MAX_NAME_LENGTH = 64
MAX_TOKEN_NAME_LENGTH = 128
MAX_LDAP_GROUP_LENGTH = 512
ADMIN_USERNAME = "admin"
DEFAULT_TOKEN_SCOPES: tuple[str, ...] = ("repository:*:*", "registry:catalog:*")


class LastAdministrator(StateConflict):
    """The change would leave the registry without an active system administrator."""


class LastOwner(StateConflict):
    """The change would leave an organization without an owner."""


class OrganizationNotEmpty(StateConflict):
    """An organization that still has repositories cannot be deleted: a later organization
    of the same name would inherit them."""


class NamespaceTaken(StateConflict):
    """Repositories already exist in the namespace the new user or organization would own."""


class NamespaceNotEmpty(StateConflict):
    """A user whose personal namespace still has repositories cannot be deleted: a later
    account of the same name would own them."""


def valid_name(name: str) -> bool:
    """Whether `name` could name a user, organization, team or robot (lookups of anything
    else are `NotFound` without asking the database)."""
    return len(name) <= MAX_NAME_LENGTH and NAME_RE.fullmatch(name) is not None


_known = valid_name


def check_name(kind: str, name: str) -> None:
    """Raise `Invalid` unless `name` is a valid user, organization, team or robot name."""
    if len(name) > MAX_NAME_LENGTH or NAME_RE.fullmatch(name) is None:
        raise Invalid(
            f"invalid {kind} name {name[:80]!r}: lower-case letters and digits, optionally "
            f"separated by one '.', '_' or '-', at most {MAX_NAME_LENGTH} characters"
        )


class AccountService:
    def __init__(
        self, store: AccessStore | None = None, *, hasher: PasswordHasher = DEFAULT_HASHER
    ) -> None:
        self.store = store or AccessStore()
        self.content = ContentStore()  # which namespaces hold repositories, a repository's id
        self.hasher = hasher

    # --- users -------------------------------------------------------------------------------
    def ensure_admin(self, conn: Connection, password: str | None) -> str | None:
        """On first start, create `admin` as system administrator. Returns the generated
        password when none was given (to print once); None when an administrator exists."""
        if self.store.active_admins(conn):
            return None
        if password is not None:
            self.create_user(conn, ADMIN_USERNAME, password, is_admin=True, adopt=True)
            return None
        generated = secrets.generate_password()
        self.create_user(conn, ADMIN_USERNAME, generated, is_admin=True, adopt=True)
        return generated

    def create_user(
        self,
        conn: Connection,
        username: str,
        password: str | None,
        *,
        email: str | None = None,
        full_name: str | None = None,
        is_admin: bool = False,
        source: str = "local",
        adopt: bool = False,
    ) -> User:
        """`password` None: no local password (a directory account, or login by token only).
        `adopt`: the user may take a namespace that already holds repositories."""
        check_name("user", username)
        self._free_namespace(conn, username, adopt=adopt)
        password_hash = None
        if password is not None:
            check_password_policy(password, username=username)
            password_hash = hash_password(password, hasher=self.hasher)
        return self.store.create_user(
            conn,
            username,
            password_hash=password_hash,
            email=email,
            full_name=full_name,
            is_admin=is_admin,
            source=source,
        )

    def get_user(self, conn: Connection, username: str) -> User:
        user = self.store.user(conn, username) if _known(username) else None
        if user is None:
            raise NotFound("user", username[:100])
        return user

    def list_users(
        self, conn: Connection, *, limit: int = 100, after: str | None = None
    ) -> list[User]:
        return self.store.list_users(conn, limit, after)

    def update_user(
        self,
        conn: Connection,
        username: str,
        *,
        email: str | None = None,
        full_name: str | None = None,
        is_admin: bool | None = None,
        is_active: bool | None = None,
    ) -> User:
        """Change the given fields (None leaves a field as it is; "" clears a text field)."""
        user = self.get_user(conn, username)
        fields: dict[str, object] = {}
        if email is not None:
            fields["email"] = email or None
        if full_name is not None:
            fields["full_name"] = full_name or None
        if is_admin is not None:
            fields["is_admin"] = is_admin
        if is_active is not None:
            fields["is_active"] = is_active
        if is_admin is False or is_active is False:
            self._keep_an_admin(conn, user)
        if fields:
            self.store.update_user(conn, username, **fields)
        return self.get_user(conn, username)

    def deactivate_user(self, conn: Connection, username: str) -> User:
        return self.update_user(conn, username, is_active=False)

    def delete_user(self, conn: Connection, username: str) -> None:
        """Delete a user with their tokens, memberships and ownerships. Refused while
        repositories remain in their personal namespace."""
        user = self.get_user(conn, username)
        self._keep_an_admin(conn, user)
        if self.content.has_repositories(conn, username):
            raise NamespaceNotEmpty(
                f"{username!r} still has repositories in their namespace; delete them first"
            )
        for org in sorted(self.store.owned_organizations(conn, user.id)):
            organization = self.get_organization(conn, org)
            if self.store.owners(conn, organization.id, lock=True) == [username]:
                raise LastOwner(f"{username!r} is the last owner of organization {org!r}")
        self.store.delete_user(conn, username)

    def change_password(self, conn: Connection, username: str, new_password: str) -> None:
        """Set a new local password (the caller has checked the old one or is an admin).
        Directory accounts have none: their password lives in the directory."""
        user = self.get_user(conn, username)
        if user.source != "local":
            raise Invalid(
                f"{username!r} logs in through the {user.source} directory; "
                "change the password there"
            )
        check_password_policy(new_password, username=username)
        password_hash = hash_password(new_password, hasher=self.hasher)
        self.store.update_user(conn, username, password_hash=password_hash)

    def _keep_an_admin(self, conn: Connection, user: User) -> None:
        if not (user.is_admin and user.is_active):
            return
        if self.store.active_admins(conn, lock=True) == [user.username]:
            raise LastAdministrator(f"{user.username!r} is the last active system administrator")

    # --- organizations -----------------------------------------------------------------------
    def create_organization(
        self, conn: Connection, name: str, owner: str, description: str = "", *, adopt: bool = False
    ) -> Organization:
        """`adopt` (system administrators): the organization may take a namespace that
        already holds repositories."""
        check_name("organization", name)
        self._free_namespace(conn, name, adopt=adopt)
        first_owner = self.get_user(conn, owner)
        organization = self.store.create_organization(conn, name, description)
        self.store.add_owner(conn, organization.id, first_owner.id)
        return organization

    def claim_namespace(self, conn: Connection, repository: str, creator: str) -> bool:
        """Called in the transaction that created `repository`: when its namespace is no user
        or organization, make it an organization owned by `creator`. True when it did.
        `Invalid` when the namespace cannot name an organization."""
        namespace = repository.split("/", 1)[0]
        self.store.lock_namespace(conn, namespace)
        if self._namespace_kind(conn, namespace) is not None:
            return False
        self.create_organization(conn, namespace, creator, adopt=True)
        return True

    def _namespace_kind(self, conn: Connection, name: str) -> str | None:
        if self.store.user(conn, name) is not None:
            return "user"
        if self.store.organization(conn, name) is not None:
            return "organization"
        return None

    def _free_namespace(self, conn: Connection, name: str, *, adopt: bool) -> None:
        """Refuse a name that a user or organization has, or (unless `adopt`) that names a
        namespace holding repositories. The namespace lock (PostgreSQL) makes concurrent
        creations of one name wait for each other, so the checks cannot race."""
        self.store.lock_namespace(conn, name)
        kind = self._namespace_kind(conn, name)
        if kind is not None:
            raise Conflict(kind, name)
        if not adopt and self.content.has_repositories(conn, name):
            raise NamespaceTaken(
                f"repositories already exist in namespace {name!r} (created while it had no "
                "owner); a system administrator may create an organization of that name to "
                "adopt them"
            )

    def get_organization(self, conn: Connection, name: str) -> Organization:
        organization = self.store.organization(conn, name) if _known(name) else None
        if organization is None:
            raise NotFound("organization", name[:100])
        return organization

    def delete_organization(self, conn: Connection, name: str) -> None:
        """Delete an organization with its owners, teams, grants, robots and their tokens.
        Refused while repositories remain in its namespace."""
        organization = self.get_organization(conn, name)
        if self.content.has_repositories(conn, name):
            raise OrganizationNotEmpty(
                f"organization {name!r} still has repositories; delete them first"
            )
        self.store.delete_organization(conn, organization.name)

    def list_organizations(
        self, conn: Connection, *, limit: int = 100, after: str | None = None
    ) -> list[Organization]:
        return self.store.list_organizations(conn, limit, after)

    def owners(
        self,
        conn: Connection,
        organization: str,
        *,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[str]:
        """The owners' usernames in byte order: all, or `limit` of them after `after`."""
        org = self.get_organization(conn, organization)
        return self.store.owners(conn, org.id, limit=limit, after=after)

    def add_owner(self, conn: Connection, organization: str, username: str) -> None:
        org = self.get_organization(conn, organization)
        self.store.add_owner(conn, org.id, self.get_user(conn, username).id)

    def remove_owner(self, conn: Connection, organization: str, username: str) -> None:
        org = self.get_organization(conn, organization)
        user = self.get_user(conn, username)
        owners = self.store.owners(conn, org.id, lock=True)
        if username not in owners:
            raise NotFound("owner", f"{organization}/{username}")
        if owners == [username]:
            raise LastOwner(f"{username!r} is the last owner of organization {organization!r}")
        self.store.remove_owner(conn, org.id, user.id)

    # --- teams -------------------------------------------------------------------------------
    def create_team(
        self, conn: Connection, organization: str, name: str, description: str = ""
    ) -> Team:
        check_name("team", name)
        return self.store.create_team(
            conn, self.get_organization(conn, organization), name, description
        )

    def get_team(self, conn: Connection, organization: str, name: str) -> Team:
        self.get_organization(conn, organization)
        team = self.store.team(conn, organization, name) if _known(name) else None
        if team is None:
            raise NotFound("team", f"{organization}/{name[:100]}")
        return team

    def list_teams(
        self,
        conn: Connection,
        organization: str,
        *,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Team]:
        """The teams in byte order of name: all, or `limit` of them after the name `after`."""
        self.get_organization(conn, organization)
        return self.store.teams_of(conn, organization, limit=limit, after=after)

    def delete_team(self, conn: Connection, organization: str, name: str) -> None:
        """Delete a team with its memberships and grants."""
        self.store.delete_team(conn, self.get_team(conn, organization, name).id)

    def update_team(
        self,
        conn: Connection,
        organization: str,
        name: str,
        *,
        description: str | None = None,
        ldap_group: str | None = None,
        clear_ldap_group: bool = False,
    ) -> Team:
        """Change a team's description and the directory group it mirrors (None leaves a
        field as it is; `clear_ldap_group` makes the team managed by hand again)."""
        if ldap_group is not None and clear_ldap_group:
            raise ValueError("give ldap_group or clear_ldap_group, not both")
        team = self.get_team(conn, organization, name)
        if description is not None:
            self.store.update_team(conn, team.id, description=description)
        if ldap_group is not None or clear_ldap_group:
            return self.set_ldap_group(conn, organization, name, ldap_group)
        return self.get_team(conn, organization, name)

    def members(
        self,
        conn: Connection,
        organization: str,
        team: str,
        *,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[str]:
        """The members' usernames in byte order: all, or `limit` of them after `after`."""
        found = self.get_team(conn, organization, team)
        return self.store.members(conn, found.id, limit=limit, after=after)

    def add_member(self, conn: Connection, organization: str, team: str, username: str) -> None:
        found = self.get_team(conn, organization, team)
        self.store.add_member(conn, found.id, self.get_user(conn, username).id)

    def remove_member(self, conn: Connection, organization: str, team: str, username: str) -> None:
        found = self.get_team(conn, organization, team)
        if not self.store.remove_member(conn, found.id, self.get_user(conn, username).id):
            raise NotFound("member", f"{organization}/{team}/{username}")

    def set_ldap_group(
        self, conn: Connection, organization: str, team: str, group: str | None
    ) -> Team:
        """Sync the team's members from a directory group (None: managed by hand)."""
        if group is not None and (not group.strip() or len(group) > MAX_LDAP_GROUP_LENGTH):
            raise Invalid(
                f"an LDAP group is a non-empty name or DN of at most {MAX_LDAP_GROUP_LENGTH} "
                "characters"
            )
        found = self.get_team(conn, organization, team)
        self.store.update_team(conn, found.id, ldap_group=group)
        return self.get_team(conn, organization, team)

    # --- grants ------------------------------------------------------------------------------
    def set_team_repository_grant(
        self, conn: Connection, organization: str, team: str, repository: str, role: str | None
    ) -> bool:
        """Give `team` a role on one repository of its organization (None removes it).
        True when the team had a grant there before."""
        found = self.get_team(conn, organization, team)
        if repository.split("/", 1)[0] != organization:
            raise Invalid(f"{repository[:255]!r} is not a repository of {organization!r}")
        repo = self.content.repository_id(conn, repository) if is_valid_name(repository) else None
        if repo is None:
            raise NotFound("repository", repository[:255])
        return self.store.set_repository_grant(conn, found.id, repo, _role(role))

    def team_grants(
        self, conn: Connection, organization: str, team: str
    ) -> tuple[str | None, list[tuple[str, str]]]:
        """A team's organization-wide role (or None) and its (repository, role) grants in
        repository name order."""
        found = self.get_team(conn, organization, team)
        rows = self.store.grants_for_namespace(conn, organization)
        whole = next((role for name, role in rows["organization"] if name == found.name), None)
        each = sorted((repo, role) for name, repo, role in rows["repository"] if name == found.name)
        return whole, each

    def repository_grants(
        self,
        conn: Connection,
        organization: str,
        team: str,
        *,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[tuple[str, str]]:
        """A team's (repository, role) grants on single repositories in byte order of
        repository name: all, or `limit` of them after the repository `after`."""
        found = self.get_team(conn, organization, team)
        return self.store.repository_grants(conn, found.id, limit=limit, after=after)

    def set_team_organization_grant(
        self, conn: Connection, organization: str, team: str, role: str | None
    ) -> bool:
        """Give `team` a role on every repository of its organization (None removes it).
        True when the team had an organization-wide grant before."""
        found = self.get_team(conn, organization, team)
        return self.store.set_organization_grant(conn, found.id, _role(role))

    # --- robots ------------------------------------------------------------------------------
    def create_robot(
        self, conn: Connection, organization: str, name: str, description: str = ""
    ) -> Robot:
        check_name("robot", name)
        org = self.get_organization(conn, organization)
        return self.store.create_robot(conn, org, name, description)

    def get_robot(self, conn: Connection, organization: str, name: str) -> Robot:
        self.get_organization(conn, organization)
        robot = self.store.robot(conn, organization, name) if _known(name) else None
        if robot is None:
            raise NotFound("robot", f"{organization}+{name[:100]}")
        return robot

    def delete_robot(self, conn: Connection, organization: str, name: str) -> None:
        """Delete a robot; its grants and tokens go with it."""
        self.store.delete_robot(conn, self.get_robot(conn, organization, name).id)

    def list_robots(
        self,
        conn: Connection,
        organization: str,
        *,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Robot]:
        """The robots in byte order of name: all, or `limit` of them after the name `after`."""
        self.get_organization(conn, organization)
        return self.store.robots_of(conn, organization, limit=limit, after=after)

    def set_robot_grant(
        self, conn: Connection, organization: str, robot: str, pattern: str, role: str | None
    ) -> bool:
        """Give a robot a role on its organization's repositories matching `pattern`
        (`acme/app`, `acme/ci-*`, `acme/*`); None removes the grant. True when the robot had
        a grant on that pattern before."""
        found = self.get_robot(conn, organization, robot)
        inside = pattern == organization or pattern.startswith(f"{organization}/")
        if not (inside and is_valid_pattern(pattern)):
            raise Invalid(
                f"invalid robot grant pattern {pattern[:255]!r}: name a repository of "
                f"{organization!r} or a pattern such as {organization}/* or {organization}/ci-*"
            )
        return self.store.set_robot_grant(conn, found.id, pattern, _role(role))

    # --- tokens ------------------------------------------------------------------------------
    def create_token(
        self,
        conn: Connection,
        owner: str,
        name: str,
        scopes: Sequence[str] | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[AccessToken, str]:
        """A personal access token (`owner` a username) or a robot token (`owner` `org+robot`).

        Returns the token record and its text, which is never stored: show it once.
        `scopes` None means `DEFAULT_TOKEN_SCOPES`; `expires_at` None never expires.
        """
        if not name.strip() or len(name) > MAX_TOKEN_NAME_LENGTH:
            raise Invalid(f"a token name has 1 to {MAX_TOKEN_NAME_LENGTH} characters")
        parsed = TokenScope.from_strings(DEFAULT_TOKEN_SCOPES if scopes is None else scopes)
        if not parsed.entries:
            raise Invalid("a token needs at least one scope")
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise Invalid("a token's expiry needs a time zone")
            if expires_at <= utc_now():
                raise Invalid("a token's expiry is in the future")
        kind: secrets.TokenKind
        if "+" in owner:
            org, _, robot_name = owner.partition("+")
            robot = self.get_robot(conn, org, robot_name)
            kind, owner_ids = "rbt", {"robot_id": robot.id, "user_id": None}
        else:
            user = self.get_user(conn, owner)
            kind, owner_ids = "pat", {"user_id": user.id, "robot_id": None}
        text, public_id, secret_hash = secrets.new_token(kind)
        self.store.create_token(
            conn,
            public_id=public_id,
            secret_hash=secret_hash,
            kind=kind,
            name=name,
            scopes=[str(entry) for entry in parsed.entries],
            expires_at=expires_at,
            **owner_ids,
        )
        found = self.store.token(conn, public_id)
        assert found is not None
        return found[0], text

    def list_tokens(self, conn: Connection, owner: str) -> list[AccessToken]:
        """The tokens of a user or of a robot (`org+robot`), revoked and expired ones too."""
        if "+" in owner:
            org, _, robot_name = owner.partition("+")
            return self.store.tokens_of(conn, robot_id=self.get_robot(conn, org, robot_name).id)
        return self.store.tokens_of(conn, user_id=self.get_user(conn, owner).id)

    def get_token(
        self, conn: Connection, public_id: str, *, owner: str | None = None
    ) -> AccessToken:
        """A token by its public id; with `owner`, only a token of that owner is found."""
        plausible = len(public_id) == secrets.PUBLIC_ID_LENGTH and set(public_id) <= set(
            secrets.PUBLIC_ID_ALPHABET
        )
        found = self.store.token(conn, public_id) if plausible else None
        if found is None or (owner is not None and found[0].owner != owner):
            raise NotFound("token", public_id[:100])
        return found[0]

    def revoke_token(
        self, conn: Connection, public_id: str, *, owner: str | None = None
    ) -> AccessToken:
        """Revoke a token (idempotent). With `owner`, only a token of that owner is found."""
        token = self.get_token(conn, public_id, owner=owner)
        if token.revoked_at is None:
            self.store.revoke_token(conn, token.id)
        again = self.store.token(conn, public_id)
        assert again is not None
        return again[0]


def _role(text: str | None) -> str | None:
    """The stored form of a role given by its API name; None stays None (remove the grant)."""
    return None if text is None else Role.parse(text).api_name
