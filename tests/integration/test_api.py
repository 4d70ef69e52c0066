"""The management API /api/v1 on a real server with accounts on: authentication, problem+json
errors, users, organizations, teams, grants, robots and tokens, checked against /v2."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import httpx
import pytest

from tests.integration.oci_helpers import push_image
from tests.support.server import TrustyardServer

# One module, one server: keep its tests on one xdist worker (they build on shared accounts).
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api")]

ADMIN_PASSWORD = "an admin password for api tests"
PASSWORD = "correct horse battery staple"
PROBLEM = "application/problem+json"

ROUTES = {
    ("get", "/api/v1/me"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("get", "/api/v1/users/{name}"),
    ("patch", "/api/v1/users/{name}"),
    ("delete", "/api/v1/users/{name}"),
    ("get", "/api/v1/organizations"),
    ("post", "/api/v1/organizations"),
    ("get", "/api/v1/organizations/{org}"),
    ("get", "/api/v1/organizations/{org}/teams"),
    ("post", "/api/v1/organizations/{org}/teams"),
    ("get", "/api/v1/organizations/{org}/teams/{team}"),
    ("get", "/api/v1/organizations/{org}/teams/{team}/members"),
    ("get", "/api/v1/organizations/{org}/teams/{team}/repositories"),
    ("put", "/api/v1/organizations/{org}/teams/{team}/members/{user}"),
    ("delete", "/api/v1/organizations/{org}/teams/{team}/members/{user}"),
    ("put", "/api/v1/organizations/{org}/teams/{team}/repositories/{repository}"),
    ("delete", "/api/v1/organizations/{org}/teams/{team}/repositories/{repository}"),
    ("put", "/api/v1/organizations/{org}/teams/{team}/organization-grant"),
    ("delete", "/api/v1/organizations/{org}/teams/{team}/organization-grant"),
    ("get", "/api/v1/organizations/{org}/robots"),
    ("post", "/api/v1/organizations/{org}/robots"),
    ("put", "/api/v1/organizations/{org}/robots/{robot}/repositories/{pattern}"),
    ("get", "/api/v1/organizations/{org}/robots/{robot}/tokens"),
    ("post", "/api/v1/organizations/{org}/robots/{robot}/tokens"),
    ("delete", "/api/v1/organizations/{org}/robots/{robot}/tokens/{public_id}"),
    ("get", "/api/v1/tokens"),
    ("post", "/api/v1/tokens"),
    ("delete", "/api/v1/tokens/{public_id}"),
    ("delete", "/api/v1/organizations/{org}"),
    ("get", "/api/v1/organizations/{org}/owners"),
    ("put", "/api/v1/organizations/{org}/owners/{user}"),
    ("delete", "/api/v1/organizations/{org}/owners/{user}"),
    ("patch", "/api/v1/organizations/{org}/teams/{team}"),
    ("delete", "/api/v1/organizations/{org}/teams/{team}"),
    ("delete", "/api/v1/organizations/{org}/robots/{robot}"),
    ("delete", "/api/v1/organizations/{org}/robots/{robot}/repositories/{pattern}"),
    ("get", "/api/v1/repositories"),
    ("post", "/api/v1/repositories"),
    ("get", "/api/v1/repositories/{name}"),
    ("get", "/api/v1/repositories/{name}/tags"),
    ("get", "/api/v1/repositories/{name}/access"),
    ("patch", "/api/v1/repositories/{name}"),
    ("delete", "/api/v1/repositories/{name}"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/{job_id}"),
    ("post", "/api/v1/jobs/{job_id}/retry"),
    ("post", "/api/v1/jobs/{job_id}/cancel"),
    ("get", "/api/v1/webhooks"),
    ("post", "/api/v1/webhooks"),
    ("get", "/api/v1/webhooks/{webhook_id}"),
    ("patch", "/api/v1/webhooks/{webhook_id}"),
    ("delete", "/api/v1/webhooks/{webhook_id}"),
    ("post", "/api/v1/webhooks/{webhook_id}/test"),
    ("get", "/api/v1/webhooks/{webhook_id}/deliveries"),
    ("post", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"),
    ("post", "/api/v1/repositories/{name}/manifests/{reference}/scan"),
    ("get", "/api/v1/repositories/{name}/manifests/{reference}/scan"),
    ("get", "/api/v1/repositories/{name}/manifests/{reference}/bom"),
    ("get", "/api/v1/repositories/{name}/layers/{digest}/bom"),
    ("get", "/api/v1/repositories/{name}/manifests/{reference}/vulnerabilities"),
    ("get", "/api/v1/components"),
    ("get", "/api/v1/vulndb"),
    ("post", "/api/v1/vulndb/imports"),
    ("post", "/api/v1/vulndb/updates"),
    ("get", "/api/v1/repositories/{name}/vulnerability-overrides"),
    ("post", "/api/v1/repositories/{name}/vulnerability-overrides"),
    ("delete", "/api/v1/repositories/{name}/vulnerability-overrides/{override_id}"),
    ("get", "/api/v1/repositories/{name}/manifests/{reference}/vex"),
    ("post", "/api/v1/vex"),
    ("get", "/api/v1/vex"),
    ("get", "/api/v1/vex/{vex_id}"),
    ("delete", "/api/v1/vex/{vex_id}"),
    ("post", "/api/v1/repositories/{name}/promotion-policies"),
    ("get", "/api/v1/repositories/{name}/promotion-policies"),
    ("get", "/api/v1/repositories/{name}/promotion-policies/{policy_id}"),
    ("patch", "/api/v1/repositories/{name}/promotion-policies/{policy_id}"),
    ("delete", "/api/v1/repositories/{name}/promotion-policies/{policy_id}"),
    ("post", "/api/v1/repositories/{name}/promotion-policies/{policy_id}/run"),
    ("post", "/api/v1/repositories/{name}/policy-dry-run"),
    ("post", "/api/v1/repositories/{name}/promotions"),
    ("get", "/api/v1/repositories/{name}/promotions"),
    ("get", "/api/v1/repositories/{name}/manifests/{reference}/history"),
    ("post", "/api/v0/repositories/{namespace}/{reponame}/promotionPolicies"),
    ("get", "/api/v0/repositories/{namespace}/{reponame}/promotionPolicies"),
    ("get", "/api/v0/repositories/{namespace}/{reponame}/promotionPolicies/{promotionPolicyID}"),
    ("put", "/api/v0/repositories/{namespace}/{reponame}/promotionPolicies/{promotionPolicyID}"),
    ("post", "/api/v0/repositories/{namespace}/{reponame}/promotionPolicies/{promotionPolicyID}"),
    (
        "delete",
        "/api/v0/repositories/{namespace}/{reponame}/promotionPolicies/{promotionPolicyID}",
    ),
}


def basic(user: str, secret: str) -> httpx.BasicAuth:
    return httpx.BasicAuth(user, secret)


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["type"] == "about:blank"
    return body


@pytest.fixture(scope="module")
def api(start_server: Callable[..., TrustyardServer]) -> TrustyardServer:
    server = start_server(
        "api", TRUSTYARD_AUTH__ENABLED="true", TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD
    )
    with httpx.Client(base_url=server.url, auth=basic("admin", ADMIN_PASSWORD)) as admin:
        for name in ("olga", "rita", "mallory"):
            created = admin.post("/api/v1/users", json={"username": name, "password": PASSWORD})
            assert created.status_code == 201, created.text
    with httpx.Client(base_url=server.url, auth=basic("olga", PASSWORD)) as olga:
        created = olga.post("/api/v1/organizations", json={"name": "acme"})
        assert created.status_code == 201, created.text
    return server


def push_as_owner(server: TrustyardServer, olga: httpx.Client, repository: str) -> None:
    """Push with a new token of olga's: /v2 remembers a checked credential for 30 s with the
    roles it had then, and olga's password was first checked before she owned acme."""
    token = olga.post("/api/v1/tokens", json={"name": f"push {repository}"}).json()["token"]
    with session(server, "olga", token) as pusher:
        push_image(pusher, repository, "v1")


def session(server: TrustyardServer, user: str, secret: str = PASSWORD) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=basic(user, secret), timeout=60)


@pytest.fixture
def admin(api: TrustyardServer) -> Iterator[httpx.Client]:
    with session(api, "admin", ADMIN_PASSWORD) as client:
        yield client


@pytest.fixture
def olga(api: TrustyardServer) -> Iterator[httpx.Client]:
    with session(api, "olga") as client:
        yield client


@pytest.fixture
def rita(api: TrustyardServer) -> Iterator[httpx.Client]:
    with session(api, "rita") as client:
        yield client


@pytest.fixture
def mallory(api: TrustyardServer) -> Iterator[httpx.Client]:
    with session(api, "mallory") as client:
        yield client


def test_openapi_lists_every_route(api: TrustyardServer) -> None:
    document = httpx.get(f"{api.url}/api/v1/openapi.json").json()
    routes = {(method, path) for path, item in document["paths"].items() for method in item}
    assert routes == ROUTES
    docs = httpx.get(f"{api.url}/api/v1/docs")
    assert docs.status_code == 200
    assert "/api/v1/openapi.json" in docs.text


def test_anonymous_and_bad_credentials_get_401_problems(api: TrustyardServer) -> None:
    anonymous = httpx.get(f"{api.url}/api/v1/me")
    assert_problem(anonymous, 401)
    assert anonymous.headers["www-authenticate"] == 'Basic realm="trustyard"'
    wrong = httpx.get(f"{api.url}/api/v1/me", auth=basic("olga", "not the password"))
    assert_problem(wrong, 401)
    assert wrong.headers["www-authenticate"] == 'Basic realm="trustyard"'
    assert_problem(httpx.get(f"{api.url}/api/v1/users"), 401)


def test_guessing_a_password_locks_the_account_with_429(
    admin: httpx.Client, api: TrustyardServer
) -> None:
    created = admin.post("/api/v1/users", json={"username": "guessed", "password": PASSWORD})
    assert created.status_code == 201, created.text
    for attempt in range(5):
        wrong = httpx.get(f"{api.url}/api/v1/me", auth=basic("guessed", f"guess {attempt}"))
        assert_problem(wrong, 401)
    # The 5th failure locked the account for a second: even the right password waits.
    locked = httpx.get(f"{api.url}/api/v1/me", auth=basic("guessed", PASSWORD))
    assert_problem(locked, 429)
    assert int(locked.headers["retry-after"]) >= 1


def test_me_describes_the_caller(olga: httpx.Client, admin: httpx.Client) -> None:
    mine = olga.get("/api/v1/me")
    assert mine.status_code == 200
    assert mine.json() == {
        "name": "olga",
        "kind": "user",
        "is_admin": False,
        "owned_organizations": ["acme"],
        "teams": [],
    }
    assert admin.get("/api/v1/me").json()["is_admin"] is True


def test_admin_creates_users_and_pages_through_them(admin: httpx.Client) -> None:
    created = admin.post(
        "/api/v1/users",
        json={"username": "pat", "password": PASSWORD, "email": "pat@example.org"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["username"], body["email"], body["is_admin"]) == ("pat", "pat@example.org", False)
    assert "password" not in body
    assert "password_hash" not in body
    assert admin.get("/api/v1/users/pat").json()["email"] == "pat@example.org"
    everyone = admin.get("/api/v1/users", params={"limit": 500}).json()
    names = [user["username"] for user in everyone["items"]]
    assert everyone["next"] is None
    assert names == sorted(names)
    assert {"admin", "olga", "pat"} <= set(names)
    first = admin.get("/api/v1/users", params={"limit": 2})
    assert first.status_code == 200
    page = first.json()
    assert [user["username"] for user in page["items"]] == names[:2]
    assert page["next"] == names[1]
    rest = admin.get("/api/v1/users", params={"limit": 500, "after": page["next"]}).json()
    assert [user["username"] for user in rest["items"]] == names[2:]
    assert rest["next"] is None
    assert_problem(admin.get("/api/v1/users", params={"limit": 0}), 422)
    assert_problem(admin.get("/api/v1/users", params={"limit": 501}), 422)
    patched = admin.patch("/api/v1/users/pat", json={"full_name": "Pat Doe"})
    assert patched.status_code == 200
    assert patched.json()["full_name"] == "Pat Doe"
    assert admin.delete("/api/v1/users/pat").status_code == 204
    assert_problem(admin.get("/api/v1/users/pat"), 404)


def test_non_admins_cannot_manage_users(olga: httpx.Client) -> None:
    assert_problem(olga.post("/api/v1/users", json={"username": "eve", "password": PASSWORD}), 403)
    assert_problem(olga.get("/api/v1/users"), 403)
    assert_problem(olga.get("/api/v1/users/rita"), 403)
    assert_problem(olga.delete("/api/v1/users/rita"), 403)
    assert_problem(olga.patch("/api/v1/users/olga", json={"is_admin": True}), 403)
    assert olga.get("/api/v1/users/olga").json()["username"] == "olga"


def test_duplicates_conflict(admin: httpx.Client, olga: httpx.Client) -> None:
    assert_problem(admin.post("/api/v1/users", json={"username": "rita"}), 409)
    assert_problem(admin.post("/api/v1/users", json={"username": "acme"}), 409)
    assert_problem(olga.post("/api/v1/organizations", json={"name": "acme"}), 409)
    assert_problem(olga.post("/api/v1/organizations", json={"name": "rita"}), 409)
    assert olga.post("/api/v1/organizations/acme/teams", json={"name": "twice"}).status_code == 201
    assert_problem(olga.post("/api/v1/organizations/acme/teams", json={"name": "twice"}), 409)


def test_invalid_names_are_422(admin: httpx.Client) -> None:
    body = assert_problem(admin.post("/api/v1/users", json={"username": "Not Valid"}), 422)
    assert "invalid user name" in str(body["detail"])
    assert_problem(admin.post("/api/v1/users", json={}), 422)


def test_organizations_are_visible_to_owners_and_admins(
    admin: httpx.Client, olga: httpx.Client, mallory: httpx.Client
) -> None:
    assert admin.post("/api/v1/organizations", json={"name": "adminorg"}).status_code == 201
    everything = [org["name"] for org in admin.get("/api/v1/organizations").json()["items"]]
    assert {"acme", "adminorg"} <= set(everything)
    assert [org["name"] for org in olga.get("/api/v1/organizations").json()["items"]] == ["acme"]
    assert olga.get("/api/v1/organizations/acme").json()["name"] == "acme"
    assert_problem(olga.get("/api/v1/organizations/adminorg"), 404)
    assert_problem(mallory.get("/api/v1/organizations/acme"), 404)
    assert_problem(mallory.post("/api/v1/organizations/acme/teams", json={"name": "x"}), 404)


def test_owner_builds_a_team_that_can_pull(
    api: TrustyardServer, olga: httpx.Client, rita: httpx.Client
) -> None:
    push_as_owner(api, olga, "acme/app")
    assert olga.post("/api/v1/organizations/acme/teams", json={"name": "devs"}).status_code == 201
    added = olga.put("/api/v1/organizations/acme/teams/devs/members/rita")
    assert added.status_code == 204
    members = olga.get("/api/v1/organizations/acme/teams/devs/members").json()
    assert members == {"items": ["rita"], "next": None}
    teams = olga.get("/api/v1/organizations/acme/teams").json()["items"]
    assert "devs" in [team["name"] for team in teams]
    bad = olga.put(
        "/api/v1/organizations/acme/teams/devs/repositories/acme/app", json={"role": "superuser"}
    )
    assert "unknown role" in str(assert_problem(bad, 422)["detail"])
    missing = olga.put(
        "/api/v1/organizations/acme/teams/devs/repositories/acme/nothing",
        json={"role": "read-only"},
    )
    assert_problem(missing, 404)
    granted = olga.put(
        "/api/v1/organizations/acme/teams/devs/repositories/acme/app", json={"role": "read-only"}
    )
    assert granted.status_code == 204, granted.text
    # rita first logs in to /v2 now, after joining the team and getting the grant
    assert rita.get("/v2/acme/app/manifests/v1").status_code == 200
    assert rita.get("/api/v1/me").json()["teams"] == ["acme/devs"]
    assert [org["name"] for org in rita.get("/api/v1/organizations").json()["items"]] == ["acme"]
    # a member sees the organization but may not manage it
    assert_problem(rita.post("/api/v1/organizations/acme/teams", json={"name": "mine"}), 403)
    org_grant = olga.put(
        "/api/v1/organizations/acme/teams/devs/organization-grant", json={"role": "read-write"}
    )
    assert org_grant.status_code == 204


def test_personal_access_token_works_on_v2_until_revoked(
    api: TrustyardServer, olga: httpx.Client
) -> None:
    created = olga.post("/api/v1/tokens", json={"name": "laptop"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["token"].startswith("ty_")
    assert (body["kind"], body["owner"], body["revoked_at"]) == ("pat", "olga", None)
    assert httpx.get(f"{api.url}/v2/", auth=basic("olga", body["token"])).status_code == 200
    listed = olga.get("/api/v1/tokens").json()["items"]
    assert body["public_id"] in [token["public_id"] for token in listed]
    assert all("token" not in token for token in listed)
    # the token also authenticates the API itself
    with session(api, "olga", body["token"]) as by_token:
        assert by_token.get("/api/v1/me").json()["name"] == "olga"

    doomed = olga.post("/api/v1/tokens", json={"name": "doomed"}).json()
    revoked = olga.delete(f"/api/v1/tokens/{doomed['public_id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    after = httpx.get(f"{api.url}/v2/", auth=basic("olga", doomed["token"]))
    assert after.status_code == 401


def test_narrow_tokens_and_registry_tokens_cannot_manage_accounts(
    api: TrustyardServer, admin: httpx.Client
) -> None:
    narrow = admin.post(
        "/api/v1/tokens", json={"name": "ci pull", "scopes": ["repository:acme/*:pull"]}
    ).json()["token"]
    with session(api, "admin", narrow) as by_narrow_token:
        assert_problem(by_narrow_token.get("/api/v1/users"), 403)
        assert_problem(
            by_narrow_token.post(
                "/api/v1/users", json={"username": "sneaky", "password": PASSWORD}
            ),
            403,
        )
    registry_token = httpx.get(
        f"{api.url}/auth/token",
        params={"service": "trustyard", "scope": "repository:acme/app:pull"},
        auth=basic("admin", ADMIN_PASSWORD),
    ).json()["token"]
    bearer = httpx.get(
        f"{api.url}/api/v1/users", headers={"Authorization": f"Bearer {registry_token}"}
    )
    assert_problem(bearer, 401)


def test_tokens_of_others_cannot_be_revoked(olga: httpx.Client, mallory: httpx.Client) -> None:
    mine = olga.post("/api/v1/tokens", json={"name": "keep"}).json()
    assert_problem(mallory.delete(f"/api/v1/tokens/{mine['public_id']}"), 404)
    assert_problem(olga.post("/api/v1/tokens", json={"name": "x", "scopes": []}), 422)


def test_robot_tokens_are_for_owners(
    api: TrustyardServer, olga: httpx.Client, rita: httpx.Client, mallory: httpx.Client
) -> None:
    push_as_owner(api, olga, "acme/built")
    olga.post("/api/v1/organizations/acme/teams", json={"name": "builders"})  # 201, or 409
    assert olga.put("/api/v1/organizations/acme/teams/builders/members/rita").status_code == 204
    robot = olga.post("/api/v1/organizations/acme/robots", json={"name": "ci"})
    assert robot.status_code == 201, robot.text
    assert robot.json()["username"] == "acme+ci"
    assert_problem(olga.post("/api/v1/organizations/acme/robots", json={"name": "ci"}), 409)
    assert_problem(rita.post("/api/v1/organizations/acme/robots", json={"name": "cd"}), 403)
    grant = olga.put(
        "/api/v1/organizations/acme/robots/ci/repositories/acme/*", json={"role": "read-only"}
    )
    assert grant.status_code == 204, grant.text
    path = "/api/v1/organizations/acme/robots/ci/tokens"
    assert_problem(rita.post(path, json={"name": "stolen"}), 403)
    assert_problem(mallory.post(path, json={"name": "stolen"}), 404)
    created = olga.post(path, json={"name": "pipeline", "scopes": ["repository:acme/*:pull"]})
    assert created.status_code == 201, created.text
    token = created.json()
    assert (token["kind"], token["owner"]) == ("rbt", "acme+ci")
    assert token["scopes"] == ["repository:acme/*:pull"]
    pulled = httpx.get(
        f"{api.url}/v2/acme/built/manifests/v1", auth=basic("acme+ci", token["token"])
    )
    assert pulled.status_code == 200
    assert_problem(
        olga.post("/api/v1/organizations/acme/robots/nobody/tokens", json={"name": "x"}), 404
    )


def test_no_api_without_accounts(client: httpx.Client) -> None:
    assert client.get("/api/v1/me").status_code == 404
    assert client.get("/api/v1/openapi.json").status_code == 404


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/organizations", {"name": "nul", "description": "a\x00b"}),
        ("/api/v1/users", {"username": "nul", "email": "a\x00b@example.org"}),
        ("/api/v1/users", {"username": "nul", "full_name": "a\x00b"}),
        ("/api/v1/tokens", {"name": "a\x00b"}),
        ("/api/v1/organizations/acme/teams", {"name": "nul", "description": "a\x00b"}),
        ("/api/v1/organizations/acme/robots", {"name": "nul", "description": "a\x00b"}),
    ],
)
def test_nul_characters_are_refused_before_the_database(
    admin: httpx.Client, path: str, body: dict[str, str]
) -> None:
    """PostgreSQL cannot store a NUL character: a 422, not a failing query."""
    assert_problem(admin.post(path, json=body), 422)
    assert_problem(admin.get("/api/v1/users", params={"after": "a\x00"}), 422)
    assert_problem(admin.get("/api/v1/organizations", params={"after": "a\x00"}), 422)


# Found by the schemathesis fuzz (test_api_fuzz.py):


def test_a_nul_in_a_basic_username_is_refused_before_the_database(api: TrustyardServer) -> None:
    """PostgreSQL text cannot hold NUL: such credentials are malformed (401), not a 500."""
    strange = basic("ol\x00ga", PASSWORD)
    assert_problem(httpx.get(f"{api.url}/api/v1/me", auth=strange), 401)
    assert httpx.get(f"{api.url}/v2/", auth=strange).status_code == 401
    assert httpx.get(f"{api.url}/auth/token", auth=strange).status_code == 401


def test_timestamps_carry_their_time_zone(admin: httpx.Client) -> None:
    """RFC 3339 (the document's `date-time`) needs an offset; SQLite returns naive times."""
    stamps = [
        admin.get("/api/v1/organizations/acme").json()["created_at"],
        *(org["created_at"] for org in admin.get("/api/v1/organizations").json()["items"]),
        admin.get("/api/v1/users/olga").json()["created_at"],
    ]
    for stamp in stamps:
        assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0), stamp


def test_audit_paging_stops_at_the_largest_row_id(admin: httpx.Client) -> None:
    """Ids are 32-bit INTEGER columns: a larger `after` is a 422 (PostgreSQL refused it)."""
    assert admin.get("/api/v1/audit", params={"after": 2**31 - 1}).status_code == 200
    assert_problem(admin.get("/api/v1/audit", params={"after": 2**31}), 422)


def test_job_ids_stop_at_the_largest_row_id(admin: httpx.Client) -> None:
    """Ids are 32-bit INTEGER columns: a larger id is a 422 (PostgreSQL refused it: a 500)."""
    for too_large in (
        admin.get("/api/v1/jobs", params={"after": 2**31}),
        admin.get(f"/api/v1/jobs/{2**31}"),
        admin.post(f"/api/v1/jobs/{2**31}/retry"),
        admin.post(f"/api/v1/jobs/{2**31}/cancel"),
    ):
        assert_problem(too_large, 422)
    assert admin.get("/api/v1/jobs", params={"after": 2**31 - 1}).status_code == 200
    assert_problem(admin.get(f"/api/v1/jobs/{2**31 - 1}"), 404)
    assert_problem(admin.post(f"/api/v1/jobs/{2**31 - 1}/cancel"), 404)


@pytest.mark.parametrize("since", ["0.5", "1700000000", "2000-01-01", "2000-01-01T00"])
def test_audit_since_is_a_date_and_time(admin: httpx.Client, since: str) -> None:
    """Not seconds since the epoch, nor a bare date, which pydantic alone would take."""
    assert_problem(admin.get("/api/v1/audit", params={"since": since}), 422)
    naive = admin.get("/api/v1/audit", params={"since": "2000-01-01T00:00:00"})
    assert naive.status_code == 200
