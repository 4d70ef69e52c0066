"""/api/v1/organizations beyond creation: owners, changing and deleting teams, deleting robots
and organizations, on a real server with accounts on, checked against /v2."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.integration.oci_helpers import assert_error, push_image, sha256, start_upload
from tests.integration.test_api import PASSWORD, assert_problem, basic
from tests.support.server import TrustyardServer

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api-organizations")]

ADMIN_PASSWORD = "an admin password for organization tests"
USERS = ("olga", "otto", "rita", "mallory")
DN = "cn=developers,ou=groups,dc=example,dc=org"


class World:
    """Users log in with personal access tokens (argon2 password checks are slow)."""

    def __init__(self, server: TrustyardServer, tokens: dict[str, str]) -> None:
        self.server = server
        self.tokens = tokens

    def client(self, user: str | None, secret: str | None = None) -> httpx.Client:
        if user is None:
            return httpx.Client(base_url=self.server.url, timeout=60)
        secret = secret or (ADMIN_PASSWORD if user == "admin" else self.tokens[user])
        return httpx.Client(base_url=self.server.url, auth=basic(user, secret), timeout=60)


@pytest.fixture(scope="module")
def world(start_server: Callable[..., TrustyardServer]) -> World:
    server = start_server(
        "api-organizations",
        TRUSTYARD_AUTH__ENABLED="true",
        TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    tokens: dict[str, str] = {}
    with httpx.Client(base_url=server.url, auth=basic("admin", ADMIN_PASSWORD)) as admin:
        for name in USERS:
            created = admin.post("/api/v1/users", json={"username": name, "password": PASSWORD})
            assert created.status_code == 201, created.text
            with httpx.Client(base_url=server.url, auth=basic(name, PASSWORD)) as user:
                tokens[name] = user.post("/api/v1/tokens", json={"name": "t"}).json()["token"]
    return World(server, tokens)


def new_org(world: World, name: str, *, member: str | None = "rita") -> None:
    """`name` owned by olga, with team `devs` (read-only on the whole organization)."""
    with world.client("olga") as olga:
        assert olga.post("/api/v1/organizations", json={"name": name}).status_code == 201
        assert olga.post(f"/api/v1/organizations/{name}/teams", json={"name": "devs"}).is_success
        grant = olga.put(
            f"/api/v1/organizations/{name}/teams/devs/organization-grant",
            json={"role": "read-only"},
        )
        assert grant.status_code == 204
        if member is not None:
            assert olga.put(f"/api/v1/organizations/{name}/teams/devs/members/{member}").is_success


def test_owners_are_listed_added_and_removed_but_never_the_last(world: World) -> None:
    new_org(world, "owned")
    path = "/api/v1/organizations/owned/owners"
    with world.client("rita") as rita:  # a member sees the owners, cannot change them
        assert rita.get(path).json()["items"] == ["olga"]
        assert_problem(rita.put(f"{path}/rita"), 403)
        assert_problem(rita.delete(f"{path}/olga"), 403)
    with world.client("mallory") as mallory:  # an outsider sees no organization at all
        assert_problem(mallory.get(path), 404)
        assert_problem(mallory.put(f"{path}/mallory"), 404)
        assert_problem(mallory.delete(f"{path}/olga"), 404)
    with world.client(None) as anonymous:
        assert_problem(anonymous.get(path), 401)
    with world.client("olga") as olga:
        assert olga.put(f"{path}/otto").status_code == 204
        assert olga.put(f"{path}/otto").status_code == 204  # idempotent
        assert olga.get(path).json()["items"] == ["olga", "otto"]
        assert_problem(olga.put(f"{path}/nobody"), 404)
        assert_problem(olga.delete(f"{path}/rita"), 404)  # not an owner
        assert_problem(olga.get("/api/v1/organizations/nowhere/owners"), 404)
    with world.client("otto") as otto:  # the new owner manages at once
        assert otto.get("/api/v1/me").json()["owned_organizations"] == ["owned"]
        assert otto.post("/api/v1/organizations/owned/teams", json={"name": "otto"}).is_success
        assert otto.delete(f"{path}/olga").status_code == 204
        last = otto.delete(f"{path}/otto")
        assert "last owner" in str(assert_problem(last, 409)["detail"])
        assert otto.get(path).json()["items"] == ["otto"]
    with world.client("olga") as olga:  # olga is no owner any more, only a stranger
        assert_problem(olga.put(f"{path}/olga"), 404)
    with world.client("admin") as admin:  # administrators manage every organization
        assert admin.put(f"{path}/olga").status_code == 204
        assert admin.delete(f"{path}/otto").status_code == 204
        assert admin.get(path).json()["items"] == ["olga"]


def test_teams_are_changed_by_owners(world: World) -> None:
    new_org(world, "teamed")
    path = "/api/v1/organizations/teamed/teams/devs"
    with world.client("olga") as olga:
        changed = olga.patch(path, json={"description": "the developers", "ldap_group": DN})
        assert changed.status_code == 200, changed.text
        assert changed.json() == {
            "organization": "teamed",
            "name": "devs",
            "description": "the developers",
            "ldap_group": DN,
        }
        # a field left out stays; null clears the directory group
        assert olga.patch(path, json={"description": "devs"}).json()["ldap_group"] == DN
        cleared = olga.patch(path, json={"ldap_group": None}).json()
        assert (cleared["description"], cleared["ldap_group"]) == ("devs", None)
        assert olga.patch(path, json={}).json() == cleared
        listed = olga.get("/api/v1/organizations/teamed/teams").json()["items"]
        assert [team for team in listed if team["name"] == "devs"] == [cleared]
        assert_problem(olga.patch(path, json={"ldap_group": "  "}), 422)
        assert_problem(olga.patch(path, json={"ldap_group": "x" * 513}), 422)
        assert_problem(olga.patch(path, json={"description": "x" * 1001}), 422)
        assert_problem(olga.patch(path, json={"ldap_group": "cn=a\x00b"}), 422)
        assert_problem(olga.put("/api/v1/organizations/teamed/owners/a%00b"), 404)
        assert_problem(olga.delete("/api/v1/organizations/teamed/teams/a%00b"), 404)
        assert_problem(olga.patch("/api/v1/organizations/teamed/teams/none", json={}), 404)
    with world.client("rita") as rita:
        assert_problem(rita.patch(path, json={"description": "mine"}), 403)
        assert_problem(rita.delete(path), 403)
    with world.client("mallory") as mallory:
        assert_problem(mallory.patch(path, json={"description": "mine"}), 404)
        assert_problem(mallory.delete(path), 404)


def test_deleting_a_team_takes_its_access_away(world: World) -> None:
    new_org(world, "disbanded")
    with world.client("olga") as olga:
        push_image(olga, "disbanded/app", "v1")
    with world.client("rita") as rita:
        assert rita.get("/v2/disbanded/app/manifests/v1").status_code == 200
        assert "disbanded/devs" in rita.get("/api/v1/me").json()["teams"]
    with world.client("olga") as olga:
        deleted = olga.delete("/api/v1/organizations/disbanded/teams/devs")
        assert deleted.status_code == 204
        assert_problem(olga.delete("/api/v1/organizations/disbanded/teams/devs"), 404)
        assert olga.get("/api/v1/organizations/disbanded/teams").json() == {
            "items": [],
            "next": None,
        }
    with world.client("rita") as rita:
        assert_error(rita.get("/v2/disbanded/app/manifests/v1"), 404, "NAME_UNKNOWN")
        assert "disbanded/devs" not in rita.get("/api/v1/me").json()["teams"]
        assert_problem(rita.get("/api/v1/organizations/disbanded"), 404)


def test_deleting_a_robot_revokes_its_tokens_and_grants(world: World) -> None:
    new_org(world, "robotic", member=None)
    with world.client("olga") as olga:
        push_image(olga, "robotic/app", "v1")
        assert olga.post("/api/v1/organizations/robotic/robots", json={"name": "ci"}).is_success
        granted = olga.put(
            "/api/v1/organizations/robotic/robots/ci/repositories/robotic/*",
            json={"role": "read-write"},
        )
        assert granted.status_code == 204
        tokens = [
            olga.post("/api/v1/organizations/robotic/robots/ci/tokens", json={"name": name}).json()[
                "token"
            ]
            for name in ("used", "spare")
        ]
    with world.client("robotic+ci", tokens[0]) as robot:
        assert robot.get("/v2/robotic/app/manifests/v1").status_code == 200
        assert robot.get("/api/v1/me").json()["name"] == "robotic+ci"
    with world.client("rita") as rita:
        assert_problem(rita.delete("/api/v1/organizations/robotic/robots/ci"), 404)
    with world.client("olga") as olga:
        assert olga.delete("/api/v1/organizations/robotic/robots/ci").status_code == 204
        assert_problem(olga.delete("/api/v1/organizations/robotic/robots/ci"), 404)
        assert olga.get("/api/v1/organizations/robotic/robots").json()["items"] == []
        assert_problem(olga.get("/api/v1/organizations/robotic/robots/ci/tokens"), 404)
    with world.client("robotic+ci", tokens[0]) as robot:
        assert_problem(robot.get("/api/v1/me"), 401)
    # (a token checked in the last 30 s is remembered by /v2, which still refuses it: the
    # robot is gone; a token not seen before is unknown at once)
    with world.client("robotic+ci", tokens[1]) as robot:
        assert_error(robot.get("/v2/robotic/app/manifests/v1"), 401, "UNAUTHORIZED")
    # a new robot of the same name starts without the old grants
    with world.client("olga") as olga:
        assert olga.post("/api/v1/organizations/robotic/robots", json={"name": "ci"}).is_success
        fresh = olga.post(
            "/api/v1/organizations/robotic/robots/ci/tokens", json={"name": "again"}
        ).json()["token"]
    with world.client("robotic+ci", fresh) as robot:
        assert_error(robot.get("/v2/robotic/app/manifests/v1"), 404, "NAME_UNKNOWN")


def test_robot_grants_are_revoked(world: World) -> None:
    new_org(world, "granting", member=None)
    base = "/api/v1/organizations/granting/robots"
    with world.client("olga") as olga:
        push_image(olga, "granting/app", "v1")
        assert olga.post(base, json={"name": "ci"}).is_success
        grant = olga.put(f"{base}/ci/repositories/granting/app", json={"role": "read-only"})
        assert grant.status_code == 204
        token = olga.post(f"{base}/ci/tokens", json={"name": "t"}).json()["token"]
    with world.client("granting+ci", token) as robot:
        assert robot.get("/v2/granting/app/manifests/v1").status_code == 200
    with world.client("rita") as rita:
        assert_problem(rita.delete(f"{base}/ci/repositories/granting/app"), 404)
    with world.client("olga") as olga:
        assert olga.delete(f"{base}/ci/repositories/granting/app").status_code == 204
        assert olga.delete(f"{base}/ci/repositories/granting/app").status_code == 204
        assert_problem(olga.delete(f"{base}/ci/repositories/other/app"), 422)
        assert_problem(olga.delete(f"{base}/nobody/repositories/granting/app"), 404)
    with world.client("granting+ci", token) as robot:
        assert_error(robot.get("/v2/granting/app/manifests/v1"), 404, "NAME_UNKNOWN")


def test_only_administrators_delete_organizations_and_only_empty_ones(world: World) -> None:
    new_org(world, "doomed")
    with world.client("olga") as olga:
        push_image(olga, "doomed/app", "v1")
        assert olga.post("/api/v1/organizations/doomed/robots", json={"name": "ci"}).is_success
        assert_problem(olga.delete("/api/v1/organizations/doomed"), 403)  # owners may not
    with world.client("mallory") as mallory:
        assert_problem(mallory.delete("/api/v1/organizations/doomed"), 403)
    with world.client("admin") as admin:
        refused = admin.delete("/api/v1/organizations/doomed")
        assert "still has repositories" in str(assert_problem(refused, 409)["detail"])
        assert admin.delete("/api/v1/repositories/doomed/app").status_code == 204
        deleted = admin.delete("/api/v1/organizations/doomed")
        assert deleted.status_code == 204
        assert_problem(admin.get("/api/v1/organizations/doomed"), 404)
        assert_problem(admin.delete("/api/v1/organizations/doomed"), 404)
        assert_problem(admin.get("/api/v1/organizations/doomed/robots"), 404)
        # the name is free: even a user may take it now
        user = admin.post("/api/v1/users", json={"username": "doomed", "password": PASSWORD})
        assert user.status_code == 201
    with world.client("rita") as rita:
        assert "doomed/devs" not in rita.get("/api/v1/me").json()["teams"]
    with world.client("olga") as olga:
        assert "doomed" not in olga.get("/api/v1/me").json()["owned_organizations"]


def test_creating_a_repository_claims_its_namespace(world: World) -> None:
    """An administrator's push (or API create) into a namespace that is no user or
    organization makes it an organization the administrator owns: nobody can found that
    organization afterwards and read the repository (the start-up banner once suggested
    `team/app`, and alice took `team` over)."""
    with world.client("admin") as admin:
        push_image(admin, "claimed/app", "v1")
        assert admin.get("/api/v1/organizations/claimed/owners").json()["items"] == ["admin"]
        created = admin.post("/api/v1/repositories", json={"name": "viaapi/app"})
        assert created.status_code == 201, created.text
        assert admin.get("/api/v1/organizations/viaapi/owners").json()["items"] == ["admin"]
        audit = admin.get(
            "/api/v1/audit", params={"action": "organization.create", "organization": "claimed"}
        )
        assert [event["actor"] for event in audit.json()["items"]] == ["admin"]
        # the name is taken for users too
        taken = admin.post("/api/v1/users", json={"username": "claimed", "password": PASSWORD})
        assert_problem(taken, 409)
        # a namespace no organization could be named is not created at all
        location = start_upload(admin, "not__an__org/app")
        blob = b"unclaimable"
        finished = admin.put(location, params={"digest": sha256(blob)}, content=blob)
        assert_error(finished, 403, "DENIED")
        assert_problem(admin.get("/api/v1/repositories/not__an__org/app"), 404)
        assert_problem(admin.post("/api/v1/repositories", json={"name": "not__an__org/app"}), 403)
    with world.client("mallory") as mallory:
        for name in ("claimed", "viaapi"):
            assert_problem(mallory.post("/api/v1/organizations", json={"name": name}), 409)
        assert_error(mallory.get("/v2/claimed/app/manifests/v1"), 404, "NAME_UNKNOWN")
        assert_problem(mallory.get("/api/v1/repositories/claimed/app"), 404)
    with world.client("admin") as admin:  # pushing into it later claims nothing new
        push_image(admin, "claimed/second", "v1")
        assert admin.get("/api/v1/organizations/claimed/owners").json()["items"] == ["admin"]


def test_a_team_its_grants_and_every_list_read_page_by_page(world: World) -> None:
    """A team's details and its repository grants are readable (they were 405), and every
    list of the organization answers {"items", "next"} with cursor paging."""
    new_org(world, "detailed", member=None)
    base = "/api/v1/organizations/detailed"
    with world.client("olga") as olga:
        assert olga.post(f"{base}/teams", json={"name": "viewers"}).status_code == 201
        assert olga.put(f"{base}/teams/viewers/members/rita").status_code == 204
        for name in ("detailed/app", "detailed/lib", "detailed/secret"):
            assert olga.post("/api/v1/repositories", json={"name": name}).status_code == 201
        for name, role in (("detailed/app", "read-write"), ("detailed/lib", "admin")):
            granted = olga.put(f"{base}/teams/devs/repositories/{name}", json={"role": role})
            assert granted.status_code == 204
        assert olga.post(f"{base}/teams", json={"name": "ops"}).status_code == 201
        secret = olga.put(f"{base}/teams/ops/repositories/detailed/secret", json={"role": "admin"})
        assert secret.status_code == 204
        team = olga.get(f"{base}/teams/devs")
        assert team.status_code == 200, team.text
        assert team.json() == {
            "organization": "detailed",
            "name": "devs",
            "description": "",
            "ldap_group": None,
            "organization_role": "read-only",
        }
        first = olga.get(f"{base}/teams/devs/repositories", params={"limit": 1}).json()
        assert first == {
            "items": [{"repository": "detailed/app", "role": "read-write"}],
            "next": "detailed/app",
        }
        rest = olga.get(f"{base}/teams/devs/repositories", params={"after": first["next"]})
        assert rest.json() == {
            "items": [{"repository": "detailed/lib", "role": "admin"}],
            "next": None,
        }
        assert_problem(olga.get(f"{base}/teams/nobody"), 404)
        assert_problem(olga.get(f"{base}/teams/nobody/repositories"), 404)
        # every list of the organization pages the same way
        assert olga.put(f"{base}/owners/otto").status_code == 204
        owners = olga.get(f"{base}/owners", params={"limit": 1}).json()
        assert owners == {"items": ["olga"], "next": "olga"}
        assert olga.get(f"{base}/owners", params={"after": "olga"}).json() == {
            "items": ["otto"],
            "next": None,
        }
        teams = olga.get(f"{base}/teams", params={"limit": 1}).json()
        assert teams["items"][0]["name"] == "devs"
        assert teams["next"] == "devs"
        assert [
            t["name"] for t in olga.get(f"{base}/teams", params={"after": "devs"}).json()["items"]
        ] == ["ops", "viewers"]
        members = olga.get(f"{base}/teams/viewers/members").json()
        assert members == {"items": ["rita"], "next": None}
        for robot in ("a", "b"):
            assert olga.post(f"{base}/robots", json={"name": robot}).status_code == 201
            for _ in range(2):
                made = olga.post(f"{base}/robots/{robot}/tokens", json={"name": "t"})
                assert made.status_code == 201
        robots = olga.get(f"{base}/robots", params={"limit": 1}).json()
        assert ([r["name"] for r in robots["items"]], robots["next"]) == (["a"], "a")
        tokens = olga.get(f"{base}/robots/a/tokens", params={"limit": 1}).json()
        assert len(tokens["items"]) == 1
        again = olga.get(f"{base}/robots/a/tokens", params={"after": tokens["next"]}).json()
        assert len(again["items"]) == 1
        assert again["next"] is None
        assert again["items"][0]["public_id"] != tokens["items"][0]["public_id"]
        gone = olga.get(f"{base}/robots/a/tokens", params={"after": "aaaaaaaaaaaa"})
        assert_problem(gone, 422)
        mine = olga.get("/api/v1/tokens").json()
        assert set(mine) == {"items", "next"}
    with world.client("rita") as rita:  # a member who may read none of the repositories:
        assert rita.get(f"{base}/teams/devs").status_code == 200  # grants on them are left out
        for team in ("devs", "ops"):
            listed = rita.get(f"{base}/teams/{team}/repositories").json()
            assert listed == {"items": [], "next": None}
    with world.client("mallory") as mallory:  # an outsider sees no organization at all
        for path in (f"{base}/teams/devs", f"{base}/teams/devs/repositories"):
            assert_problem(mallory.get(path), 404)
