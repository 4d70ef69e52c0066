"""/api/v1/organizations: organizations, their owners, teams, members, grants and robots.

Every change is recorded in the audit log in its own transaction."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import Connection

from trustyard.api.audit import Trail
from trustyard.api.deps import (
    After,
    Caller,
    Limit,
    Registry,
    Service,
    manage_org,
    may_see_org,
    require_admin,
    require_user,
)
from trustyard.api.errors import problems
from trustyard.api.schemas import (
    OrganizationCreate,
    OrganizationOut,
    Page,
    RobotCreate,
    RobotOut,
    RoleBody,
    TeamCreate,
    TeamDetailOut,
    TeamGrantOut,
    TeamOut,
    TeamUpdate,
    keyed_page,
    visible_page,
)
from trustyard.auth.accounts import AccountService
from trustyard.auth.authorize import Action
from trustyard.auth.gate import Accounts
from trustyard.auth.permissions import Principal, Role
from trustyard.db.engine import read_tx, write_tx
from trustyard.errors import NotFound

router = APIRouter(prefix="/organizations", tags=["organizations"])


def _no_content() -> Response:
    return Response(status_code=204)


def _itself(name: str) -> str:
    return name


def _repository(grant: tuple[str, str]) -> str:
    return grant[0]


@router.get("")
def list_organizations(
    caller: Caller, accounts: Registry, service: Service, limit: Limit = 100, after: After = None
) -> Page[OrganizationOut]:
    """Administrators see every organization; others those they own or are in a team of."""
    with read_tx(accounts.engine) as conn:
        if caller.is_admin:
            found = service.list_organizations(conn, limit=limit + 1, after=after)
        else:
            names = set(caller.owned_orgs) | {org for org, _ in caller.teams}
            chosen = sorted(name for name in names if after is None or name > after)
            found = [service.get_organization(conn, name) for name in chosen[: limit + 1]]
    items = [OrganizationOut.of(org) for org in found[:limit]]
    return Page(items=items, next=items[-1].name if len(found) > limit else None)


@router.post("", status_code=201, responses=problems(409))
def create_organization(
    body: OrganizationCreate, caller: Caller, trail: Trail, accounts: Registry, service: Service
) -> OrganizationOut:
    """Any user may create an organization and becomes its first owner. A name that a user
    or organization has, or (except for system administrators, who adopt them) that names a
    namespace already holding repositories, is refused with 409."""
    require_user(caller)
    with write_tx(accounts.engine) as conn:
        org = service.create_organization(
            conn, body.name, caller.name, body.description, adopt=caller.is_admin
        )
        trail.record(conn, "organization.create", "organization", org.name, organization=org.name)
    return OrganizationOut.of(org)


@router.get("/{org}", responses=problems(404))
def get_organization(
    org: str, caller: Caller, accounts: Registry, service: Service
) -> OrganizationOut:
    if not may_see_org(caller, org):
        raise NotFound("organization", org)
    with read_tx(accounts.engine) as conn:
        return OrganizationOut.of(service.get_organization(conn, org))


@router.delete("/{org}", status_code=204, responses=problems(404, 409))
def delete_organization(
    org: str, caller: Caller, trail: Trail, accounts: Registry, service: Service
) -> Response:
    """Delete an organization with its teams, robots and their tokens (administrators only);
    409 while repositories remain in its namespace."""
    require_admin(caller)
    with write_tx(accounts.engine) as conn:
        service.delete_organization(conn, org)
        trail.record(conn, "organization.delete", "organization", org, organization=org)
    return _no_content()


# --- owners ------------------------------------------------------------------------------------


@router.get("/{org}/owners", responses=problems(404))
def list_owners(
    org: str,
    caller: Caller,
    accounts: Registry,
    service: Service,
    limit: Limit = 100,
    after: After = None,
) -> Page[str]:
    """The owners' usernames (for anyone who sees the organization)."""
    if not may_see_org(caller, org):
        raise NotFound("organization", org)
    with read_tx(accounts.engine) as conn:
        found = service.owners(conn, org, limit=limit + 1, after=after)
    return keyed_page(found, _itself, limit)


@router.put("/{org}/owners/{user}", status_code=204, responses=problems(404))
def add_owner(
    org: str, user: str, caller: Caller, trail: Trail, accounts: Registry, service: Service
) -> Response:
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        if user not in service.owners(conn, org):
            service.add_owner(conn, org, user)
            trail.record(
                conn, "owner.add", "organization", org, organization=org, detail={"user": user}
            )
    return _no_content()


@router.delete("/{org}/owners/{user}", status_code=204, responses=problems(404, 409))
def remove_owner(
    org: str, user: str, caller: Caller, trail: Trail, accounts: Registry, service: Service
) -> Response:
    """Remove an owner; the last owner cannot be removed (409)."""
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        service.remove_owner(conn, org, user)
        trail.record(
            conn, "owner.remove", "organization", org, organization=org, detail={"user": user}
        )
    return _no_content()


# --- teams -------------------------------------------------------------------------------------


@router.get("/{org}/teams", responses=problems(404))
def list_teams(
    org: str,
    caller: Caller,
    accounts: Registry,
    service: Service,
    limit: Limit = 100,
    after: After = None,
) -> Page[TeamOut]:
    if not may_see_org(caller, org):
        raise NotFound("organization", org)
    with read_tx(accounts.engine) as conn:
        found = service.list_teams(conn, org, limit=limit + 1, after=after)
    return keyed_page([TeamOut.of(team) for team in found], lambda team: team.name, limit)


@router.post("/{org}/teams", status_code=201, responses=problems(404, 409))
def create_team(
    org: str, body: TeamCreate, caller: Caller, trail: Trail, accounts: Registry, service: Service
) -> TeamOut:
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        team = service.create_team(conn, org, body.name, body.description)
        trail.record(conn, "team.create", "team", f"{org}/{team.name}", organization=org)
        return TeamOut.of(team)


@router.get("/{org}/teams/{team}", responses=problems(404))
def get_team(
    org: str, team: str, caller: Caller, accounts: Registry, service: Service
) -> TeamDetailOut:
    """A team, with its organization-wide role (for anyone who sees the organization)."""
    if not may_see_org(caller, org):
        raise NotFound("organization", org)
    with read_tx(accounts.engine) as conn:
        found = service.get_team(conn, org, team)
        whole, _ = service.team_grants(conn, org, team)
    return TeamDetailOut.detail(found, whole)


@router.get("/{org}/teams/{team}/repositories", responses=problems(404))
def list_team_repositories(
    org: str,
    team: str,
    caller: Caller,
    accounts: Registry,
    service: Service,
    limit: Limit = 100,
    after: After = None,
) -> Page[TeamGrantOut]:
    """The team's grants on single repositories, in name order (its organization-wide role is
    in the team's details). Anyone who sees the organization reads them, except grants on
    repositories they may not read themselves, which are left out."""
    if not may_see_org(caller, org):
        raise NotFound("organization", org)
    with read_tx(accounts.engine) as conn:

        def read(start: str | None, count: int) -> list[tuple[str, str]]:
            return service.repository_grants(conn, org, team, limit=count, after=start)

        def readable(grant: tuple[str, str]) -> bool:
            return accounts.policy.may(conn, caller, Action.PULL, grant[0])

        page = visible_page(read, _repository, readable, limit, after)
    items = [TeamGrantOut(repository=repository, role=role) for repository, role in page.items]
    return Page(items=items, next=page.next)


@router.patch("/{org}/teams/{team}", responses=problems(404))
def update_team(
    org: str,
    team: str,
    body: TeamUpdate,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    service: Service,
) -> TeamOut:
    """Change the description, or the LDAP group (DN) whose members the team mirrors
    (`"ldap_group": null` makes the team managed by hand again)."""
    changes = body.model_dump(include=body.model_fields_set)
    if changes.get("description", "") is None:
        del changes["description"]
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        updated = service.update_team(
            conn,
            org,
            team,
            description=changes.get("description"),
            ldap_group=changes.get("ldap_group"),
            clear_ldap_group="ldap_group" in changes and changes["ldap_group"] is None,
        )
        if changes:
            trail.record(
                conn, "team.update", "team", f"{org}/{team}", organization=org, detail=changes
            )
    return TeamOut.of(updated)


@router.delete("/{org}/teams/{team}", status_code=204, responses=problems(404))
def delete_team(
    org: str, team: str, caller: Caller, trail: Trail, accounts: Registry, service: Service
) -> Response:
    """Delete a team with its memberships and grants."""
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        service.delete_team(conn, org, team)
        trail.record(conn, "team.delete", "team", f"{org}/{team}", organization=org)
    return _no_content()


@router.get("/{org}/teams/{team}/members", responses=problems(404))
def list_members(
    org: str,
    team: str,
    caller: Caller,
    accounts: Registry,
    service: Service,
    limit: Limit = 100,
    after: After = None,
) -> Page[str]:
    if not may_see_org(caller, org):
        raise NotFound("organization", org)
    with read_tx(accounts.engine) as conn:
        found = service.members(conn, org, team, limit=limit + 1, after=after)
    return keyed_page(found, _itself, limit)


@router.put("/{org}/teams/{team}/members/{user}", status_code=204, responses=problems(404))
def add_member(
    org: str,
    team: str,
    user: str,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    service: Service,
) -> Response:
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        if user not in service.members(conn, org, team):
            service.add_member(conn, org, team, user)
            trail.record(
                conn, "member.add", "team", f"{org}/{team}", organization=org, detail={"user": user}
            )
    return _no_content()


@router.delete("/{org}/teams/{team}/members/{user}", status_code=204, responses=problems(404))
def remove_member(
    org: str,
    team: str,
    user: str,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    service: Service,
) -> Response:
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        service.remove_member(conn, org, team, user)
        trail.record(
            conn, "member.remove", "team", f"{org}/{team}", organization=org, detail={"user": user}
        )
    return _no_content()


# --- grants ------------------------------------------------------------------------------------


def _manage_grants(
    accounts: Accounts,
    service: AccountService,
    conn: Connection,
    caller: Principal,
    org: str,
    repository: str,
) -> None:
    """Team grants on one repository: its admins (DTR's admin role) manage them, as do the
    organization's owners and system administrators."""
    if repository.split("/", 1)[0] == org and accounts.policy.may(
        conn, caller, Action.ADMIN, repository
    ):
        return
    manage_org(service, conn, caller, org)


@router.put(
    "/{org}/teams/{team}/repositories/{repository:path}",
    status_code=204,
    responses=problems(404),
)
def grant_repository(
    org: str,
    team: str,
    repository: str,
    body: RoleBody,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    service: Service,
) -> Response:
    """Give the team a role on one repository of the organization (`repository` is its full
    name, `acme/app`). Organization owners and the repository's admins may."""
    with write_tx(accounts.engine) as conn:
        _manage_grants(accounts, service, conn, caller, org, repository)
        service.set_team_repository_grant(conn, org, team, repository, body.role)
        detail = {"team": team, "role": Role.parse(body.role).api_name}
        trail.record(conn, "grant.set", "repository", repository, organization=org, detail=detail)
    return _no_content()


@router.delete(
    "/{org}/teams/{team}/repositories/{repository:path}", status_code=204, responses=problems(404)
)
def revoke_repository(
    org: str,
    team: str,
    repository: str,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    service: Service,
) -> Response:
    with write_tx(accounts.engine) as conn:
        _manage_grants(accounts, service, conn, caller, org, repository)
        if service.set_team_repository_grant(conn, org, team, repository, None):
            trail.record(
                conn,
                "grant.remove",
                "repository",
                repository,
                organization=org,
                detail={"team": team},
            )
    return _no_content()


@router.put("/{org}/teams/{team}/organization-grant", status_code=204, responses=problems(404))
def grant_organization(
    org: str,
    team: str,
    body: RoleBody,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    service: Service,
) -> Response:
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        service.set_team_organization_grant(conn, org, team, body.role)
        detail = {"team": team, "role": Role.parse(body.role).api_name}
        trail.record(conn, "grant.set", "organization", org, organization=org, detail=detail)
    return _no_content()


@router.delete("/{org}/teams/{team}/organization-grant", status_code=204, responses=problems(404))
def revoke_organization(
    org: str, team: str, caller: Caller, trail: Trail, accounts: Registry, service: Service
) -> Response:
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        if service.set_team_organization_grant(conn, org, team, None):
            trail.record(
                conn, "grant.remove", "organization", org, organization=org, detail={"team": team}
            )
    return _no_content()


# --- robots ------------------------------------------------------------------------------------


@router.get("/{org}/robots", responses=problems(404))
def list_robots(
    org: str,
    caller: Caller,
    accounts: Registry,
    service: Service,
    limit: Limit = 100,
    after: After = None,
) -> Page[RobotOut]:
    with read_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        found = service.list_robots(conn, org, limit=limit + 1, after=after)
    return keyed_page([RobotOut.of(robot) for robot in found], lambda robot: robot.name, limit)


@router.post("/{org}/robots", status_code=201, responses=problems(404, 409))
def create_robot(
    org: str, body: RobotCreate, caller: Caller, trail: Trail, accounts: Registry, service: Service
) -> RobotOut:
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        robot = service.create_robot(conn, org, body.name, body.description)
        trail.record(conn, "robot.create", "robot", robot.username, organization=org)
        return RobotOut.of(robot)


@router.delete("/{org}/robots/{robot}", status_code=204, responses=problems(404))
def delete_robot(
    org: str, robot: str, caller: Caller, trail: Trail, accounts: Registry, service: Service
) -> Response:
    """Delete a robot; its grants and tokens go with it."""
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        service.delete_robot(conn, org, robot)
        trail.record(conn, "robot.delete", "robot", f"{org}+{robot}", organization=org)
    return _no_content()


@router.put(
    "/{org}/robots/{robot}/repositories/{pattern:path}",
    status_code=204,
    responses=problems(404),
)
def grant_robot(
    org: str,
    robot: str,
    pattern: str,
    body: RoleBody,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    service: Service,
) -> Response:
    """Give a robot a role on repositories matching `pattern` (`acme/app`, `acme/ci-*`)."""
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        service.set_robot_grant(conn, org, robot, pattern, body.role)
        detail = {"pattern": pattern, "role": Role.parse(body.role).api_name}
        trail.record(conn, "grant.set", "robot", f"{org}+{robot}", organization=org, detail=detail)
    return _no_content()


@router.delete(
    "/{org}/robots/{robot}/repositories/{pattern:path}", status_code=204, responses=problems(404)
)
def revoke_robot(
    org: str,
    robot: str,
    pattern: str,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    service: Service,
) -> Response:
    """Remove a robot's grant on `pattern` (nothing to remove is fine)."""
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        if service.set_robot_grant(conn, org, robot, pattern, None):
            trail.record(
                conn,
                "grant.remove",
                "robot",
                f"{org}+{robot}",
                organization=org,
                detail={"pattern": pattern},
            )
    return _no_content()
