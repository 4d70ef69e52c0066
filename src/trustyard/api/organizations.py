"""/api/v1/organizations: organizations, their teams, members, grants and robots."""

from __future__ import annotations

from fastapi import APIRouter, Response

from trustyard.api.deps import (
    After,
    Caller,
    Limit,
    Registry,
    Service,
    manage_org,
    may_see_org,
    require_user,
)
from trustyard.api.schemas import (
    OrganizationCreate,
    OrganizationOut,
    Page,
    RobotCreate,
    RobotOut,
    RoleBody,
    TeamCreate,
    TeamOut,
)
from trustyard.auth.interfaces import NotFound
from trustyard.db.engine import read_tx, write_tx

router = APIRouter(prefix="/organizations", tags=["organizations"])


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


@router.post("", status_code=201)
def create_organization(
    body: OrganizationCreate, caller: Caller, accounts: Registry, service: Service
) -> OrganizationOut:
    require_user(caller)
    with write_tx(accounts.engine) as conn:
        org = service.create_organization(conn, body.name, caller.name, body.description)
    return OrganizationOut.of(org)


@router.get("/{org}")
def get_organization(
    org: str, caller: Caller, accounts: Registry, service: Service
) -> OrganizationOut:
    if not may_see_org(caller, org):
        raise NotFound("organization", org)
    with read_tx(accounts.engine) as conn:
        return OrganizationOut.of(service.get_organization(conn, org))


@router.get("/{org}/teams")
def list_teams(org: str, caller: Caller, accounts: Registry, service: Service) -> list[TeamOut]:
    if not may_see_org(caller, org):
        raise NotFound("organization", org)
    with read_tx(accounts.engine) as conn:
        return [TeamOut.of(team) for team in service.list_teams(conn, org)]


@router.post("/{org}/teams", status_code=201)
def create_team(
    org: str, body: TeamCreate, caller: Caller, accounts: Registry, service: Service
) -> TeamOut:
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        return TeamOut.of(service.create_team(conn, org, body.name, body.description))


@router.get("/{org}/teams/{team}/members")
def list_members(
    org: str, team: str, caller: Caller, accounts: Registry, service: Service
) -> list[str]:
    if not may_see_org(caller, org):
        raise NotFound("organization", org)
    with read_tx(accounts.engine) as conn:
        return service.members(conn, org, team)


@router.put("/{org}/teams/{team}/members/{user}", status_code=204)
def add_member(
    org: str, team: str, user: str, caller: Caller, accounts: Registry, service: Service
) -> Response:
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        if user not in service.members(conn, org, team):
            service.add_member(conn, org, team, user)
    return Response(status_code=204)


@router.delete("/{org}/teams/{team}/members/{user}", status_code=204)
def remove_member(
    org: str, team: str, user: str, caller: Caller, accounts: Registry, service: Service
) -> Response:
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        service.remove_member(conn, org, team, user)
    return Response(status_code=204)


@router.put("/{org}/teams/{team}/repositories/{repository:path}", status_code=204)
def grant_repository(
    org: str,
    team: str,
    repository: str,
    body: RoleBody,
    caller: Caller,
    accounts: Registry,
    service: Service,
) -> Response:
    """Give the team a role on one repository of the organization (`repository` is its full
    name, `acme/app`)."""
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        service.set_team_repository_grant(conn, org, team, repository, body.role)
    return Response(status_code=204)


@router.delete("/{org}/teams/{team}/repositories/{repository:path}", status_code=204)
def revoke_repository(
    org: str, team: str, repository: str, caller: Caller, accounts: Registry, service: Service
) -> Response:
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        service.set_team_repository_grant(conn, org, team, repository, None)
    return Response(status_code=204)


@router.put("/{org}/teams/{team}/organization-grant", status_code=204)
def grant_organization(
    org: str, team: str, body: RoleBody, caller: Caller, accounts: Registry, service: Service
) -> Response:
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        service.set_team_organization_grant(conn, org, team, body.role)
    return Response(status_code=204)


@router.delete("/{org}/teams/{team}/organization-grant", status_code=204)
def revoke_organization(
    org: str, team: str, caller: Caller, accounts: Registry, service: Service
) -> Response:
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        service.set_team_organization_grant(conn, org, team, None)
    return Response(status_code=204)


@router.get("/{org}/robots")
def list_robots(org: str, caller: Caller, accounts: Registry, service: Service) -> list[RobotOut]:
    with read_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        return [RobotOut.of(robot) for robot in service.list_robots(conn, org)]


@router.post("/{org}/robots", status_code=201)
def create_robot(
    org: str, body: RobotCreate, caller: Caller, accounts: Registry, service: Service
) -> RobotOut:
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        return RobotOut.of(service.create_robot(conn, org, body.name, body.description))


@router.put("/{org}/robots/{robot}/repositories/{pattern:path}", status_code=204)
def grant_robot(
    org: str,
    robot: str,
    pattern: str,
    body: RoleBody,
    caller: Caller,
    accounts: Registry,
    service: Service,
) -> Response:
    """Give a robot a role on repositories matching `pattern` (`acme/app`, `acme/ci-*`)."""
    with write_tx(accounts.engine) as conn:
        manage_org(service, conn, caller, org)
        service.set_robot_grant(conn, org, robot, pattern, body.role)
    return Response(status_code=204)
