"""All SQL of the access domain. Functions take the caller's connection; none commits."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    delete,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from trustyard.auth.interfaces import AccessToken, Organization, Robot, Team, User
from trustyard.content.reads import REPOSITORY_NAME, join_repository
from trustyard.db.sql import bytewise, keyset
from trustyard.db.tables import (
    access_tokens,
    login_failures,
    organization_owners,
    organizations,
    robot_grants,
    robots,
    team_members,
    team_organization_grants,
    team_repository_grants,
    teams,
    users,
)
from trustyard.errors import Conflict
from trustyard.kit.clock import utc, utc_now, utc_or_none


def _insert(conn: Connection, table: Any, values: Mapping[str, Any], kind: str, name: str) -> int:
    try:
        with conn.begin_nested():
            result = conn.execute(insert(table).values(**values))
    except IntegrityError:
        raise Conflict(kind, name) from None
    key = result.inserted_primary_key
    return int(key[0]) if key else 0


def _user(row: Row[Any]) -> User:
    return User(
        row.id,
        row.username,
        row.email,
        row.full_name,
        bool(row.is_admin),
        bool(row.is_active),
        row.source,
        utc(row.created_at),
        utc_or_none(row.last_login_at),
    )


# The advisory-lock key space of namespaces (two-key form: "tyns" as an int4).
_NAMESPACE_LOCKS = 0x74796E73


class AccessStore:
    # --- users -------------------------------------------------------------------------------
    def create_user(self, conn: Connection, username: str, **fields: Any) -> User:
        values = {"username": username, "created_at": utc_now(), **fields}
        _insert(conn, users, values, "user", username)
        found = self.user(conn, username)
        assert found is not None
        return found

    def user(self, conn: Connection, username: str) -> User | None:
        row = conn.execute(select(users).where(users.c.username == username)).first()
        return _user(row) if row else None

    def password_hash(self, conn: Connection, username: str) -> tuple[User, str | None] | None:
        row = conn.execute(select(users).where(users.c.username == username)).first()
        return (_user(row), row.password_hash) if row else None

    def update_user(self, conn: Connection, username: str, **fields: Any) -> bool:
        """Set `fields`; deactivating revokes the user's refresh tokens for good (so that a
        reactivation does not revive them)."""
        result = conn.execute(update(users).where(users.c.username == username).values(**fields))
        if result.rowcount and fields.get("is_active") is False:
            owner = select(users.c.id).where(users.c.username == username).scalar_subquery()
            conn.execute(
                update(access_tokens)
                .where(
                    access_tokens.c.user_id == owner,
                    access_tokens.c.kind == "rft",
                    access_tokens.c.revoked_at.is_(None),
                )
                .values(revoked_at=utc_now())
            )
        return result.rowcount > 0

    def delete_user(self, conn: Connection, username: str) -> bool:
        return conn.execute(delete(users).where(users.c.username == username)).rowcount > 0

    def list_users(self, conn: Connection, limit: int, after: str | None) -> list[User]:
        query = keyset(select(users), users.c.username, after or None, limit)
        return [_user(row) for row in conn.execute(query)]

    def active_admins(self, conn: Connection, *, lock: bool = False) -> list[str]:
        """Active system administrators; `lock` holds their rows until the transaction ends
        (PostgreSQL), so two transactions cannot each remove "another" last administrator."""
        query = (
            select(users.c.username)
            .where(users.c.is_admin.is_(True), users.c.is_active.is_(True))
            .order_by(users.c.username)
        )
        return list(conn.scalars(query.with_for_update() if lock else query))

    def lock_namespace(self, conn: Connection, name: str) -> None:
        """Hold a lock on the namespace `name` until the transaction ends, so that creating a
        user, an organization or a claimed namespace of one name happen one after the other
        (PostgreSQL: an advisory lock; SQLite has one writer at a time already)."""
        if conn.dialect.name == "postgresql":
            conn.execute(
                text("SELECT pg_advisory_xact_lock(:space, hashtext(:name))"),
                {"space": _NAMESPACE_LOCKS, "name": name},
            )

    # --- organizations -----------------------------------------------------------------------
    def create_organization(self, conn: Connection, name: str, description: str) -> Organization:
        values = {"name": name, "description": description, "created_at": utc_now()}
        _insert(conn, organizations, values, "organization", name)
        found = self.organization(conn, name)
        assert found is not None
        return found

    def organization(self, conn: Connection, name: str) -> Organization | None:
        row = conn.execute(select(organizations).where(organizations.c.name == name)).first()
        return Organization(row.id, row.name, row.description, utc(row.created_at)) if row else None

    def list_organizations(
        self, conn: Connection, limit: int, after: str | None
    ) -> list[Organization]:
        query = keyset(select(organizations), organizations.c.name, after or None, limit)
        return [
            Organization(r.id, r.name, r.description, utc(r.created_at))
            for r in conn.execute(query)
        ]

    def delete_organization(self, conn: Connection, name: str) -> bool:
        result = conn.execute(delete(organizations).where(organizations.c.name == name))
        return result.rowcount > 0

    def add_owner(self, conn: Connection, organization_id: int, user_id: int) -> None:
        exists = conn.execute(
            select(organization_owners.c.user_id).where(
                organization_owners.c.organization_id == organization_id,
                organization_owners.c.user_id == user_id,
            )
        ).first()
        if not exists:
            conn.execute(
                insert(organization_owners).values(organization_id=organization_id, user_id=user_id)
            )

    def remove_owner(self, conn: Connection, organization_id: int, user_id: int) -> bool:
        result = conn.execute(
            delete(organization_owners).where(
                organization_owners.c.organization_id == organization_id,
                organization_owners.c.user_id == user_id,
            )
        )
        return result.rowcount > 0

    def owners(
        self,
        conn: Connection,
        organization_id: int,
        *,
        lock: bool = False,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[str]:
        """The owners' usernames in byte order (a page of them with `limit`/`after`)."""
        query = keyset(
            select(users.c.username)
            .select_from(organization_owners.join(users))
            .where(organization_owners.c.organization_id == organization_id),
            bytewise(conn, users.c.username),
            after,
            limit,
        )
        if lock:  # hold the owner rows (PostgreSQL) while deciding about the last owner
            query = query.with_for_update(of=organization_owners)
        return list(conn.scalars(query))

    def owned_organizations(self, conn: Connection, user_id: int) -> frozenset[str]:
        query = (
            select(organizations.c.name)
            .select_from(organization_owners.join(organizations))
            .where(organization_owners.c.user_id == user_id)
        )
        return frozenset(conn.scalars(query))

    # --- teams -------------------------------------------------------------------------------
    def create_team(
        self, conn: Connection, organization: Organization, name: str, description: str
    ) -> Team:
        values = {
            "organization_id": organization.id,
            "name": name,
            "description": description,
            "created_at": utc_now(),
        }
        _insert(conn, teams, values, "team", f"{organization.name}/{name}")
        found = self.team(conn, organization.name, name)
        assert found is not None
        return found

    def team(self, conn: Connection, organization: str, name: str) -> Team | None:
        row = conn.execute(
            select(teams, organizations.c.name.label("org"))
            .select_from(teams.join(organizations))
            .where(organizations.c.name == organization, teams.c.name == name)
        ).first()
        if row is None:
            return None
        return Team(row.id, row.org, row.name, row.description, row.ldap_group)

    def teams_of(
        self,
        conn: Connection,
        organization: str,
        *,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Team]:
        """The organization's teams in byte order of name (a page with `limit`/`after`)."""
        rows = conn.execute(
            keyset(
                select(teams, organizations.c.name.label("org"))
                .select_from(teams.join(organizations))
                .where(organizations.c.name == organization),
                bytewise(conn, teams.c.name),
                after,
                limit,
            )
        )
        return [Team(r.id, r.org, r.name, r.description, r.ldap_group) for r in rows]

    def update_team(self, conn: Connection, team_id: int, **fields: Any) -> None:
        conn.execute(update(teams).where(teams.c.id == team_id).values(**fields))

    def delete_team(self, conn: Connection, team_id: int) -> None:
        conn.execute(delete(teams).where(teams.c.id == team_id))

    def add_member(self, conn: Connection, team_id: int, user_id: int) -> None:
        exists = conn.execute(
            select(team_members.c.user_id).where(
                team_members.c.team_id == team_id, team_members.c.user_id == user_id
            )
        ).first()
        if not exists:
            conn.execute(insert(team_members).values(team_id=team_id, user_id=user_id))

    def remove_member(self, conn: Connection, team_id: int, user_id: int) -> bool:
        result = conn.execute(
            delete(team_members).where(
                team_members.c.team_id == team_id, team_members.c.user_id == user_id
            )
        )
        return result.rowcount > 0

    def members(
        self,
        conn: Connection,
        team_id: int,
        *,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[str]:
        """The team's members' usernames in byte order (a page with `limit`/`after`)."""
        query = keyset(
            select(users.c.username)
            .select_from(team_members.join(users))
            .where(team_members.c.team_id == team_id),
            bytewise(conn, users.c.username),
            after,
            limit,
        )
        return list(conn.scalars(query))

    def memberships(self, conn: Connection, user_id: int) -> frozenset[tuple[str, str]]:
        query = (
            select(organizations.c.name.label("org"), teams.c.name)
            .select_from(team_members.join(teams).join(organizations))
            .where(team_members.c.user_id == user_id)
        )
        return frozenset((row.org, row.name) for row in conn.execute(query))

    # --- grants ------------------------------------------------------------------------------
    def set_repository_grant(
        self, conn: Connection, team_id: int, repository_id: int, role: str | None
    ) -> bool:
        """Replace the grant (None: remove it); True when there was one before."""
        previous = conn.execute(
            delete(team_repository_grants).where(
                team_repository_grants.c.team_id == team_id,
                team_repository_grants.c.repository_id == repository_id,
            )
        )
        if role is not None:
            conn.execute(
                insert(team_repository_grants).values(
                    team_id=team_id, repository_id=repository_id, role=role
                )
            )
        return previous.rowcount > 0

    def set_organization_grant(self, conn: Connection, team_id: int, role: str | None) -> bool:
        """Replace the grant (None: remove it); True when there was one before."""
        previous = conn.execute(
            delete(team_organization_grants).where(team_organization_grants.c.team_id == team_id)
        )
        if role is not None:
            conn.execute(insert(team_organization_grants).values(team_id=team_id, role=role))
        return previous.rowcount > 0

    def repository_grants(
        self,
        conn: Connection,
        team_id: int,
        *,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[tuple[str, str]]:
        """The team's (repository, role) grants on single repositories, in byte order of
        repository name (a page with `limit`/`after`)."""
        query = keyset(
            select(REPOSITORY_NAME, team_repository_grants.c.role)
            .select_from(
                join_repository(team_repository_grants, team_repository_grants.c.repository_id)
            )
            .where(team_repository_grants.c.team_id == team_id),
            bytewise(conn, REPOSITORY_NAME),
            after,
            limit,
        )
        return [(row[0], row[1]) for row in conn.execute(query)]

    def grants_for_namespace(self, conn: Connection, organization: str) -> dict[str, Any]:
        """Every grant that can matter for repositories of one organization."""
        repo_rows = conn.execute(
            select(
                teams.c.name.label("team"),
                REPOSITORY_NAME.label("repo"),
                team_repository_grants.c.role,
            )
            .select_from(
                join_repository(
                    team_repository_grants.join(teams).join(organizations),
                    team_repository_grants.c.repository_id,
                )
            )
            .where(organizations.c.name == organization)
        )
        org_rows = conn.execute(
            select(teams.c.name.label("team"), team_organization_grants.c.role)
            .select_from(team_organization_grants.join(teams).join(organizations))
            .where(organizations.c.name == organization)
        )
        robot_rows = conn.execute(
            select(
                robots.c.name.label("robot"), robot_grants.c.repository_pattern, robot_grants.c.role
            )
            .select_from(robot_grants.join(robots).join(organizations))
            .where(organizations.c.name == organization)
        )
        return {
            "repository": [(r.team, r.repo, r.role) for r in repo_rows],
            "organization": [(r.team, r.role) for r in org_rows],
            "robot": [(r.robot, r.repository_pattern, r.role) for r in robot_rows],
        }

    # --- robots ------------------------------------------------------------------------------
    def create_robot(
        self, conn: Connection, organization: Organization, name: str, description: str
    ) -> Robot:
        values = {
            "organization_id": organization.id,
            "name": name,
            "description": description,
            "created_at": utc_now(),
        }
        robot_id = _insert(conn, robots, values, "robot", f"{organization.name}+{name}")
        return Robot(robot_id, organization.name, name, description)

    def robot(self, conn: Connection, organization: str, name: str) -> Robot | None:
        row = conn.execute(
            select(robots, organizations.c.name.label("org"))
            .select_from(robots.join(organizations))
            .where(organizations.c.name == organization, robots.c.name == name)
        ).first()
        return Robot(row.id, row.org, row.name, row.description) if row else None

    def robots_of(
        self,
        conn: Connection,
        organization: str,
        *,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Robot]:
        """The organization's robots in byte order of name (a page with `limit`/`after`)."""
        rows = conn.execute(
            keyset(
                select(robots, organizations.c.name.label("org"))
                .select_from(robots.join(organizations))
                .where(organizations.c.name == organization),
                bytewise(conn, robots.c.name),
                after,
                limit,
            )
        )
        return [Robot(r.id, r.org, r.name, r.description) for r in rows]

    def delete_robot(self, conn: Connection, robot_id: int) -> None:
        """Delete a robot; the schema cascades to its grants and tokens."""
        conn.execute(delete(robots).where(robots.c.id == robot_id))

    def set_robot_grant(
        self, conn: Connection, robot_id: int, pattern: str, role: str | None
    ) -> bool:
        """Replace the grant (None: remove it); True when there was one before."""
        previous = conn.execute(
            delete(robot_grants).where(
                robot_grants.c.robot_id == robot_id, robot_grants.c.repository_pattern == pattern
            )
        )
        if role is not None:
            conn.execute(
                insert(robot_grants).values(
                    robot_id=robot_id, repository_pattern=pattern, role=role
                )
            )
        return previous.rowcount > 0

    # --- tokens ------------------------------------------------------------------------------
    def create_token(self, conn: Connection, **values: Any) -> int:
        values = {**values, "scopes": json.dumps(list(values["scopes"])), "created_at": utc_now()}
        return _insert(conn, access_tokens, values, "token", values["public_id"])

    def token(self, conn: Connection, public_id: str) -> tuple[AccessToken, str] | None:
        row = conn.execute(_token_query().where(access_tokens.c.public_id == public_id)).first()
        return (_token(row), row.secret_hash) if row else None

    def tokens_of(
        self, conn: Connection, *, user_id: int | None = None, robot_id: int | None = None
    ) -> list[AccessToken]:
        """The tokens of one user or one robot, oldest first."""
        if (user_id is None) == (robot_id is None):
            raise ValueError("give exactly one of user_id and robot_id")
        where = (
            access_tokens.c.user_id == user_id
            if user_id is not None
            else access_tokens.c.robot_id == robot_id
        )
        query = _token_query().where(where).order_by(access_tokens.c.id)
        return [_token(row) for row in conn.execute(query)]

    def touch_token(self, conn: Connection, token_id: int) -> None:
        conn.execute(
            update(access_tokens)
            .where(access_tokens.c.id == token_id)
            .values(last_used_at=utc_now())
        )

    def revoke_token(self, conn: Connection, token_id: int) -> None:
        conn.execute(
            update(access_tokens).where(access_tokens.c.id == token_id).values(revoked_at=utc_now())
        )

    # --- failed logins -----------------------------------------------------------------------
    def login_failure(
        self, conn: Connection, key: str, *, lock: bool = False
    ) -> tuple[int, datetime, datetime | None] | None:
        """(failures, last failure, locked until) for `key`."""
        query = select(login_failures).where(login_failures.c.key == key)
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            return None
        return row.failures, utc(row.last_failure_at), utc_or_none(row.locked_until)

    def put_login_failure(
        self,
        conn: Connection,
        key: str,
        failures: int,
        last_failure_at: datetime,
        locked_until: datetime | None,
    ) -> None:
        values = {
            "failures": failures,
            "last_failure_at": last_failure_at,
            "locked_until": locked_until,
        }
        statement = update(login_failures).where(login_failures.c.key == key).values(**values)
        if conn.execute(statement).rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(insert(login_failures).values(key=key, **values))
        except IntegrityError:  # a concurrent first failure inserted it: count this one too
            conn.execute(statement)

    def clear_login_failures(self, conn: Connection, key: str) -> None:
        conn.execute(delete(login_failures).where(login_failures.c.key == key))

    def prune_login_failures(self, conn: Connection, before: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` counts whose last failure and lock both ended before `before`
        (they would count from zero again anyway); how many went."""
        stale = (
            select(login_failures.c.key)
            .where(
                login_failures.c.last_failure_at < before,
                or_(
                    login_failures.c.locked_until.is_(None), login_failures.c.locked_until < before
                ),
            )
            .order_by(login_failures.c.key)
            .limit(limit)
        )
        keys = list(conn.scalars(stale))
        if not keys:
            return 0
        return int(
            conn.execute(delete(login_failures).where(login_failures.c.key.in_(keys))).rowcount
        )

    # --- directory (LDAP) accounts ------------------------------------------------------------
    def users_from(self, conn: Connection, source: str) -> list[User]:
        """Every user whose account comes from `source` ("local", "ldap")."""
        query = select(users).where(users.c.source == source).order_by(users.c.username)
        return [_user(row) for row in conn.execute(query)]

    def ldap_teams(self, conn: Connection) -> list[Team]:
        """Every team, of any organization, whose members follow an LDAP group."""
        rows = conn.execute(
            select(teams, organizations.c.name.label("org"))
            .select_from(teams.join(organizations))
            .where(teams.c.ldap_group.is_not(None))
            .order_by(organizations.c.name, teams.c.name)
        )
        return [Team(r.id, r.org, r.name, r.description, r.ldap_group) for r in rows]


def _token_query() -> Any:
    return select(
        access_tokens,
        users.c.username.label("username"),
        robots.c.name.label("robot"),
        organizations.c.name.label("org"),
    ).select_from(
        access_tokens.outerjoin(users, users.c.id == access_tokens.c.user_id)
        .outerjoin(robots, robots.c.id == access_tokens.c.robot_id)
        .outerjoin(organizations, organizations.c.id == robots.c.organization_id)
    )


def _token(row: Row[Any]) -> AccessToken:
    owner = row.username if row.username else f"{row.org}+{row.robot}"
    return AccessToken(
        row.id,
        row.public_id,
        row.kind,
        row.name,
        owner,
        tuple(json.loads(row.scopes)),
        utc(row.created_at),
        utc_or_none(row.expires_at),
        utc_or_none(row.revoked_at),
        utc_or_none(row.last_used_at),
    )
