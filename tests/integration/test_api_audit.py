"""The audit log through GET /api/v1/audit: API and /v2 mutations leave one event each, in the
transaction of the change (a refused change leaves none); administrators read everything, an
organization owner only their organization's events. The tests run in order on one server and
build on each other's events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.integration.oci_helpers import push_image, sha256
from tests.integration.test_api import PASSWORD, assert_problem, basic
from tests.support.server import TrustyardServer
from trustyard.auth import audit
from trustyard.db.engine import make_engine, read_tx

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api-audit")]

ADMIN_PASSWORD = "an admin password for audit tests"
Event = dict[str, Any]


class World:
    def __init__(self, server: TrustyardServer, tokens: dict[str, str]) -> None:
        self.server = server
        self.tokens = tokens

    def client(self, user: str, secret: str | None = None) -> httpx.Client:
        secret = secret or (ADMIN_PASSWORD if user == "admin" else self.tokens[user])
        return httpx.Client(base_url=self.server.url, auth=basic(user, secret), timeout=60)

    def events(self, **params: str | int) -> list[Event]:
        """Every event matching `params`, newest first, read as the administrator."""
        with self.client("admin") as admin:
            answer = admin.get("/api/v1/audit", params={"limit": 500, **params})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert page["next"] is None
        items: list[Event] = page["items"]
        return items


@pytest.fixture(scope="module")
def world(start_server: Callable[..., TrustyardServer]) -> World:
    """olga owns acme (rita is in its team devs), ivan owns initech; mallory is nobody."""
    server = start_server(
        "api-audit", TRUSTYARD_AUTH__ENABLED="true", TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD
    )
    tokens: dict[str, str] = {}
    with httpx.Client(base_url=server.url, auth=basic("admin", ADMIN_PASSWORD)) as admin:
        for name in ("olga", "ivan", "rita", "mallory"):
            created = admin.post("/api/v1/users", json={"username": name, "password": PASSWORD})
            assert created.status_code == 201, created.text
            with httpx.Client(base_url=server.url, auth=basic(name, PASSWORD)) as user:
                tokens[name] = user.post("/api/v1/tokens", json={"name": "t"}).json()["token"]
    world = World(server, tokens)
    with world.client("olga") as olga:
        assert olga.post("/api/v1/organizations", json={"name": "acme"}).status_code == 201
        assert olga.post("/api/v1/organizations/acme/teams", json={"name": "devs"}).is_success
        assert olga.put("/api/v1/organizations/acme/teams/devs/members/rita").is_success
    with world.client("ivan") as ivan:
        assert ivan.post("/api/v1/organizations", json={"name": "initech"}).status_code == 201
        assert ivan.post("/api/v1/organizations/initech/teams", json={"name": "ops"}).is_success
    return world


def only(events: list[Event], **fields: object) -> Event:
    """The one event with these field values."""
    found = [e for e in events if all(e[k] == v for k, v in fields.items())]
    assert len(found) == 1, (fields, events[:20])
    return found[0]


def test_api_mutations_are_recorded_with_who_what_and_where(world: World) -> None:
    with world.client("olga") as olga:
        assert olga.post("/api/v1/repositories", json={"name": "acme/api"}).status_code == 201
        patched = olga.patch(
            "/api/v1/repositories/acme/api", json={"visibility": "public", "description": "d"}
        )
        assert patched.status_code == 200
        grant = olga.put(
            "/api/v1/organizations/acme/teams/devs/repositories/acme/api",
            json={"role": "read-write"},
        )
        assert grant.status_code == 204
        assert olga.put("/api/v1/organizations/acme/owners/ivan").status_code == 204
        team = olga.patch("/api/v1/organizations/acme/teams/devs", json={"ldap_group": "cn=x"})
        assert team.status_code == 200
        assert olga.post("/api/v1/organizations/acme/robots", json={"name": "ci"}).is_success
        robot_token = olga.post(
            "/api/v1/organizations/acme/robots/ci/tokens", json={"name": "pipeline"}
        ).json()
        assert olga.delete("/api/v1/organizations/acme/robots/ci").status_code == 204
        assert olga.delete("/api/v1/repositories/acme/api").status_code == 204
    with world.client("admin") as admin:
        assert admin.patch("/api/v1/users/mallory", json={"full_name": "M."}).status_code == 200
    events = world.events()
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, reverse=True)
    assert events[0]["action"] == "user.update"  # the newest first
    assert events[0]["detail"] == {"fields": ["full_name"]}
    mine = world.events(actor="olga", since=(datetime.now(UTC) - timedelta(minutes=5)).isoformat())
    created = only(mine, action="repository.create", resource="acme/api")
    assert created["actor_kind"] == "user"
    assert created["resource_kind"] == "repository"
    assert created["organization"] == "acme"
    assert created["outcome"] == "ok"
    assert created["address"] == "127.0.0.1"
    assert created["detail"] == {"visibility": "private"}
    updated = only(mine, action="repository.update", resource="acme/api")
    assert updated["detail"] == {"visibility": "public", "description": "d"}
    granted = only(mine, action="grant.set", resource="acme/api")
    assert granted["detail"] == {"team": "devs", "role": "read-write"}
    assert only(mine, action="owner.add")["detail"] == {"user": "ivan"}
    assert only(mine, action="team.update")["detail"] == {"ldap_group": "cn=x"}
    assert only(mine, action="robot.create")["resource"] == "acme+ci"
    token = only(mine, action="token.create", resource=robot_token["public_id"])
    assert token["organization"] == "acme"
    assert token["detail"]["owner"] == "acme+ci"
    assert robot_token["token"] not in str(events)  # secrets never reach the log
    assert only(mine, action="robot.delete")["resource"] == "acme+ci"
    assert only(mine, action="repository.delete")["resource"] == "acme/api"
    # seeding recorded too: users created by the administrator, organizations, teams, members
    assert only(world.events(action="user.create", actor="admin"), resource="rita")
    assert only(world.events(action="organization.create"), resource="initech")["actor"] == "ivan"
    assert only(world.events(action="member.add"), resource="acme/devs")["detail"] == {
        "user": "rita"
    }


def test_refused_changes_leave_no_event_but_a_denial(world: World) -> None:
    before = world.events()
    with world.client("olga") as olga:
        assert_problem(olga.post("/api/v1/organizations/acme/teams", json={"name": "devs"}), 409)
        assert_problem(olga.post("/api/v1/repositories", json={"name": "Bad Name"}), 422)
        assert_problem(olga.delete("/api/v1/organizations/acme/owners/rita"), 404)
    with world.client("rita") as rita:
        assert_problem(rita.post("/api/v1/organizations/acme/teams", json={"name": "x"}), 403)
    after = world.events()
    new = after[: len(after) - len(before)]
    assert [e["id"] for e in after[len(new) :]] == [e["id"] for e in before]
    assert len(new) == 1
    denial = new[0]
    assert (denial["actor"], denial["outcome"], denial["organization"]) == (
        "rita",
        "denied",
        "acme",
    )
    assert denial["action"] == "create_team"
    assert denial["resource"] == "/api/v1/organizations/acme/teams"


def test_reading_a_hidden_repository_is_audited_as_denied(world: World) -> None:
    with world.client("olga") as olga:
        assert olga.post("/api/v1/repositories", json={"name": "acme/private"}).is_success
    with world.client("mallory") as mallory:
        hidden = mallory.get("/api/v1/repositories/acme/private")
        missing = mallory.get("/api/v1/repositories/acme/missing")
        assert_problem(hidden, 404)
        assert_problem(missing, 404)
    # A refusal and a miss do the same work, the audit record included (issue 9, item 19):
    # otherwise the record's write would time one apart from the other.
    denied = [e for e in world.events(actor="mallory") if e["outcome"] == "denied"]
    assert sorted((e["action"], e["resource"], e["organization"]) for e in denied) == [
        ("get_repository", "/api/v1/repositories/acme/missing", "acme"),
        ("get_repository", "/api/v1/repositories/acme/private", "acme"),
    ]


def test_v2_pushes_and_deletes_are_recorded(world: World) -> None:
    with world.client("olga") as olga:
        image = push_image(olga, "acme/pushed", "v1")
        again = olga.put(
            "/v2/acme/pushed/manifests/v2",
            content=image.manifest,
            headers={"Content-Type": image.media_type},
        )
        assert again.status_code == 201
        assert olga.delete("/v2/acme/pushed/manifests/v2").status_code == 202
        config = sha256(image.config)
        assert olga.delete(f"/v2/acme/pushed/blobs/{config}").status_code == 202
        assert olga.delete(f"/v2/acme/pushed/manifests/{image.digest}").status_code == 202
    events = world.events(organization="acme", actor="olga")
    pushed = [e for e in events if e["resource"] == "acme/pushed"]
    assert [e["action"] for e in pushed] == [
        "manifest.delete",
        "blob.delete",
        "tag.delete",
        "manifest.push",
        "manifest.push",
        "repository.create",
    ]
    assert {(e["outcome"], e["actor_kind"], e["address"]) for e in pushed} == {
        ("ok", "user", "127.0.0.1")
    }
    assert pushed[-1]["detail"] == {"by": "push"}
    assert pushed[-2]["detail"] == {"digest": image.digest, "tag": "v1"}
    assert pushed[-3]["detail"] == {"digest": image.digest, "tag": "v2"}
    assert pushed[2]["detail"] == {"tag": "v2"}
    assert pushed[1]["detail"] == {"digest": config}
    assert pushed[0]["detail"] == {"digest": image.digest}


def test_owners_read_their_organization_only(world: World) -> None:
    with world.client("ivan") as ivan:
        assert ivan.post("/api/v1/repositories", json={"name": "initech/tps"}).is_success
    with world.client("olga") as olga:
        assert_problem(olga.get("/api/v1/audit"), 403)
        assert_problem(olga.get("/api/v1/audit", params={"organization": "initech"}), 403)
        assert_problem(olga.get("/api/v1/audit", params={"organization": "nowhere"}), 403)
        page = olga.get("/api/v1/audit", params={"organization": "acme", "limit": 500}).json()
        assert page["items"]
        assert {e["organization"] for e in page["items"]} == {"acme"}
        assert [e["id"] for e in page["items"]] == [
            e["id"] for e in world.events(organization="acme")
        ]
    with world.client("ivan") as ivan:  # ivan became an owner of acme in the first test
        theirs = ivan.get("/api/v1/audit", params={"organization": "initech"}).json()["items"]
        assert only(theirs, action="repository.create")["resource"] == "initech/tps"
    with world.client("rita") as rita:  # a member is no owner
        assert_problem(rita.get("/api/v1/audit", params={"organization": "acme"}), 403)
    with world.client("mallory") as mallory:
        assert_problem(mallory.get("/api/v1/audit", params={"organization": "acme"}), 403)
    with httpx.Client(base_url=world.server.url) as anonymous:
        assert_problem(anonymous.get("/api/v1/audit"), 401)


def test_the_log_is_paged_by_id_and_filtered(world: World) -> None:
    everything = world.events()
    assert len(everything) > 5
    seen: list[Event] = []
    after: str | None = None
    with world.client("admin") as admin:
        while True:
            params: dict[str, str | int] = {"limit": 3}
            if after is not None:
                params["after"] = after
            page = admin.get("/api/v1/audit", params=params).json()
            assert len(page["items"]) <= 3
            seen += page["items"]
            after = page["next"]
            if after is None:
                break
            assert after == str(seen[-1]["id"])
        for bad in ({"limit": 0}, {"after": 0}, {"after": "x"}, {"since": "yesterday"}):
            assert_problem(admin.get("/api/v1/audit", params=bad), 422)
        assert_problem(admin.get("/api/v1/audit", params={"actor": "a\x00b"}), 422)
    assert seen == everything  # reading the log changes nothing in it
    assert world.events(since=(datetime.now(UTC) + timedelta(hours=1)).isoformat()) == []
    assert world.events(since="2000-01-01T00:00:00") == everything  # naive: UTC
    newest = everything[0]["at"]
    assert world.events(since=newest) == [e for e in everything if e["at"] == newest]
    teams = world.events(action="team.create")
    assert {e["resource"] for e in teams} >= {"acme/devs", "initech/ops"}
    assert world.events(actor="nobody-at-all") == []
    assert {e["organization"] for e in world.events(organization="initech")} == {"initech"}


def test_the_open_registry_records_no_audit_events(server: TrustyardServer, repo: str) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        push_image(client, repo, "v1")
        assert client.delete(f"/v2/{repo}/manifests/v1").status_code == 202
    engine = make_engine(server.database_url or f"sqlite:///{server.data_dir / 'trustyard.db'}")
    try:
        with read_tx(engine) as conn:
            assert [e for e in audit.recent(conn, limit=1000) if e.resource == repo] == []
    finally:
        engine.dispose()
