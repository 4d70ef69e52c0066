"""Authentication (passwords, access tokens), principals, the access policy.

Every function takes the caller's connection and never commits. Authentication writes
(`last_login_at`, `last_used_at`, a rehashed password), so the edge calls it inside
`write_tx`. Failed logins answer None without saying why; the edge counts failed passwords
with `login_throttle.LoginThrottle` and refuses early while it says so (without verifying
anything, and without counting the refused attempt).

With LDAP on, the directory checks the passwords of directory accounts and of names unknown
here (local accounts, such as `admin`, never reach it). The edge asks it between transactions:
`asks_directory` (read), then `ask_directory` (no connection; raises `LdapUnavailable` when the
directory cannot answer, which is not a failed login), then `login` with that answer (write).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from sqlalchemy import Connection

from trustyard.auth.accounts import valid_name
from trustyard.auth.authorize import Action
from trustyard.auth.interfaces import User
from trustyard.auth.ldap import LdapIdentity
from trustyard.auth.ldap_accounts import Actor, LdapAccounts, local_name
from trustyard.auth.passwords import DEFAULT_HASHER, dummy_verify, hash_password, needs_rehash
from trustyard.auth.passwords import verify_password as _verify_password
from trustyard.auth.permissions import (
    NO_GRANTS,
    Grants,
    NamespaceKind,
    Principal,
    RepositoryFacts,
    Role,
    Visibility,
)
from trustyard.auth.permissions import effective_role as _effective_role
from trustyard.auth.permissions import may as _may
from trustyard.auth.permissions import may_create as _may_create
from trustyard.auth.scopes import TokenScope
from trustyard.auth.secrets import PREFIX, parse_token, secret_matches
from trustyard.auth.stores import AccessStore
from trustyard.content.stores import ContentStore
from trustyard.errors import NotFound
from trustyard.kit.clock import utc_now as _now

TOKEN_PREFIX = f"{PREFIX}_"


@dataclass(frozen=True, slots=True)
class DirectoryAnswer:
    """The directory's verdict on one password login: who it is, or None (unknown user or
    wrong password)."""

    identity: LdapIdentity | None


class Authenticator:
    def __init__(
        self,
        store: AccessStore | None = None,
        *,
        hasher: PasswordHasher = DEFAULT_HASHER,
        ldap: LdapAccounts | None = None,
    ) -> None:
        self.store = store or AccessStore()
        self.hasher = hasher
        self.ldap = ldap

    def asks_directory(self, conn: Connection, username: str, secret: str) -> bool:
        """Whether `login` needs the directory's answer for these credentials: LDAP is on,
        the secret is a password (not a token), and the name is not a local account's."""
        if self.ldap is None or secret.startswith(TOKEN_PREFIX):
            return False
        return self.ldap.handles(username, self.store.user(conn, username))

    def ask_directory(self, username: str, password: str) -> DirectoryAnswer:
        """Ask the directory (no database connection: call it between transactions).
        Raises `LdapUnavailable` when the directory cannot answer."""
        if self.ldap is None:
            return DirectoryAnswer(None)
        return DirectoryAnswer(self.ldap.directory.authenticate(username, password))

    def authenticate_password(
        self,
        conn: Connection,
        username: str,
        password: str,
        *,
        answer: DirectoryAnswer | None = None,
        address: str | None = None,
    ) -> Principal | None:
        """The principal of an active user whose password matches, else None: a local user's
        password hash, or (LDAP on) the directory's `answer` for the other names."""
        found = self.store.password_hash(conn, username)
        user = None if found is None else found[0]
        if self.ldap is not None and self.ldap.handles(username, user):
            if answer is None:  # not asked beforehand (or the account changed meanwhile)
                answer = self.ask_directory(username, password)
            return self._directory_login(conn, self.ldap, answer, address)
        stored = None if found is None else found[1]
        if found is None or stored is None:
            dummy_verify(hasher=self.hasher)  # same work as a real check: no username oracle
            return None
        user = found[0]
        if not _verify_password(stored, password, hasher=self.hasher) or not user.is_active:
            return None
        fields: dict[str, object] = {"last_login_at": _now()}
        if needs_rehash(stored, hasher=self.hasher):
            fields["password_hash"] = hash_password(password, hasher=self.hasher)
        self.store.update_user(conn, username, **fields)
        return self._user_principal(conn, user)

    def _directory_login(
        self, conn: Connection, ldap: LdapAccounts, answer: DirectoryAnswer, address: str | None
    ) -> Principal | None:
        """Create or refresh the local account the directory vouched for, sync its teams."""
        if answer.identity is None:
            return None
        actor = Actor(local_name(answer.identity.username), "user", address)
        user = ldap.admit(conn, answer.identity, actor)
        if user is None:
            return None
        self.store.update_user(conn, user.username, last_login_at=_now())
        return self._user_principal(conn, user)

    def authenticate_token(
        self, conn: Connection, token_text: str, *, at: datetime | None = None
    ) -> tuple[Principal, TokenScope] | None:
        """The principal and scope of a valid (not revoked, not expired at `at`) token whose
        owner is active, else None. Touches the token's `last_used_at`."""
        parsed = parse_token(token_text)
        if parsed is None:
            return None
        found = self.store.token(conn, parsed.public_id)
        if found is None:
            return None
        token, stored = found
        if not secret_matches(parsed.secret, stored) or token.kind != parsed.kind:
            return None
        moment = at or _now()
        if token.revoked_at is not None:
            return None
        if token.expires_at is not None and token.expires_at <= moment:
            return None
        try:
            principal = self.load_principal(conn, token.owner)
        except NotFound:  # owner deactivated
            return None
        self.store.touch_token(conn, token.id)
        return principal, TokenScope.from_strings(token.scopes)

    def login(
        self,
        conn: Connection,
        username: str,
        secret: str,
        *,
        answer: DirectoryAnswer | None = None,
        address: str | None = None,
    ) -> tuple[Principal, TokenScope | None] | None:
        """Docker Basic credentials: a password, or a token text (`ty_...`) that must belong to
        `username` (a robot logs in as `org+robot`). The scope is None for a password.
        `answer` is the directory's, when `asks_directory` said it is needed."""
        if secret.startswith(TOKEN_PREFIX):
            result = self.authenticate_token(conn, secret)
            if result is None or result[0].name != username:
                return None
            return result
        principal = self.authenticate_password(
            conn, username, secret, answer=answer, address=address
        )
        return None if principal is None else (principal, None)

    def load_principal(self, conn: Connection, name: str) -> Principal:
        """A user's principal (teams, owned organizations) or a robot's (`org+robot`).
        Unknown and inactive users raise `NotFound`."""
        if "+" in name:
            org, _, robot = name.partition("+")
            if self.store.robot(conn, org, robot) is None:
                raise NotFound("robot", name)
            return Principal.robot(org, robot)
        user = self.store.user(conn, name)
        if user is None or not user.is_active:
            raise NotFound("user", name)
        return self._user_principal(conn, user)

    def _user_principal(self, conn: Connection, user: User) -> Principal:
        return Principal.user(
            user.username,
            is_admin=user.is_admin,
            teams=self.store.memberships(conn, user.id),
            owned_orgs=self.store.owned_organizations(conn, user.id),
        )


class AccessPolicy:
    """`permissions` with its facts loaded from the database: grants from the access domain's
    tables, a repository's visibility from the content domain's."""

    def __init__(
        self, store: AccessStore | None = None, content: ContentStore | None = None
    ) -> None:
        self.store = store or AccessStore()
        self.content = content or ContentStore()

    def facts(self, conn: Connection, repository: str) -> RepositoryFacts:
        """A repository's facts; one that does not exist yet counts as private."""
        found = self.content.repository_visibility(conn, repository)
        visibility: Visibility = "public" if found and found[1] == "public" else "private"
        return RepositoryFacts(repository, visibility)

    def grants(self, conn: Connection, principal: Principal, namespace: str) -> Grants:
        """The grants of `namespace` that can matter to `principal` (none are loaded when no
        grant could change its role)."""
        concerned = principal.robot_org == namespace or (
            principal.kind == "user"
            and not principal.is_admin
            and namespace not in principal.owned_orgs
            and any(org == namespace for org, _ in principal.teams)
        )
        if not concerned:
            return NO_GRANTS
        rows = self.store.grants_for_namespace(conn, namespace)
        return Grants(
            team_repository={
                (namespace, team, repo): Role.parse(role) for team, repo, role in rows["repository"]
            },
            team_organization={
                (namespace, team): Role.parse(role) for team, role in rows["organization"]
            },
            robot={
                (namespace, robot, pattern): Role.parse(role)
                for robot, pattern, role in rows["robot"]
            },
        )

    def role(self, conn: Connection, principal: Principal, repository: str) -> Role:
        facts = self.facts(conn, repository)
        return _effective_role(principal, facts, self.grants(conn, principal, facts.namespace))

    def may(
        self,
        conn: Connection,
        principal: Principal,
        action: Action,
        repository: str,
        scope: TokenScope | None = None,
    ) -> bool:
        """Whether `principal` (through a token limited to `scope`) may do `action` on
        `repository`. For `Action.CATALOG` the repository is ignored."""
        if action is Action.CATALOG:
            return _may(principal, action, RepositoryFacts("catalog", "private"), NO_GRANTS, scope)
        facts = self.facts(conn, repository)
        grants = self.grants(conn, principal, facts.namespace)
        return _may(principal, action, facts, grants, scope)

    def allows(
        self,
        conn: Connection,
        principal: Principal,
        action: Action,
        repository: str,
        scope: TokenScope | None = None,
    ) -> bool:
        """`may`, plus creating a repository that does not exist yet by pushing to it."""
        if self.may(conn, principal, action, repository, scope):
            return True
        return (
            action is Action.PUSH
            and self.content.repository_id(conn, repository) is None
            and (scope is None or scope.allows(action, repository))
            and self.may_create(conn, principal, repository)
        )

    def may_create(self, conn: Connection, principal: Principal, repository: str) -> bool:
        """Whether `principal` may create `repository` (the caller knows it does not exist).
        Creating one in a namespace that is no user or organization makes it an organization
        (`AccountService.claim_namespace`), so its name must be able to name one."""
        namespace = repository.split("/", 1)[0]
        kind: NamespaceKind | None = None
        if self.store.user(conn, namespace) is not None:
            kind = "user"
        elif self.store.organization(conn, namespace) is not None:
            kind = "org"
        elif not valid_name(namespace):
            return False  # creating it would claim a namespace no organization can be named
        return _may_create(principal, namespace, kind, self.grants(conn, principal, namespace))
