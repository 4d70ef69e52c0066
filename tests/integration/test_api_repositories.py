"""/api/v1/repositories on a real server with accounts on: who may create, read, change and
delete repositories, that hidden repositories answer exactly like missing ones, paging, and that
a deleted repository is gone from /v2 too (its blobs stay)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import httpx
import pytest

from tests.integration.oci_helpers import (
    OCI_INDEX,
    Image,
    assert_error,
    descriptor,
    encode,
    index_manifest,
    push_blob,
    push_image,
    put_manifest,
    sha256,
)
from tests.integration.test_api import PASSWORD, assert_problem, basic
from tests.support.server import TrustyardServer

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api-repositories")]

ADMIN_PASSWORD = "an admin password for repository tests"
REPOSITORY_FIELDS = {
    "name",
    "namespace",
    "visibility",
    "description",
    "scan_on_push",
    "immutable_tags",
    "attach_sbom",
    "created_at",
}


@dataclass
class World:
    server: TrustyardServer
    tokens: dict[str, str]  # user -> a full-scope personal access token

    def client(self, user: str | None) -> httpx.Client:
        """A client for `user` (None: anonymous). Users log in with a personal access token:
        argon2 password checks are slow, tokens are not."""
        if user is None:
            return httpx.Client(base_url=self.server.url, timeout=60)
        secret = ADMIN_PASSWORD if user == "admin" else self.tokens[user]
        return httpx.Client(base_url=self.server.url, auth=basic(user, secret), timeout=60)


@pytest.fixture(scope="module")
def world(start_server: Callable[..., TrustyardServer]) -> World:
    """acme (owner olga): team readers (rita, read-only on grants given per test), team
    writers (walt, organization-wide read-write), team keepers (kim, admin on acme/kept);
    mallory belongs nowhere; robot acme+ci."""
    server = start_server(
        "api-repositories", TRUSTYARD_AUTH__ENABLED="true", TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD
    )
    tokens: dict[str, str] = {}
    with httpx.Client(base_url=server.url, auth=basic("admin", ADMIN_PASSWORD)) as admin:
        for name in ("olga", "rita", "walt", "kim", "mallory"):
            created = admin.post("/api/v1/users", json={"username": name, "password": PASSWORD})
            assert created.status_code == 201, created.text
            with httpx.Client(base_url=server.url, auth=basic(name, PASSWORD)) as user:
                token = user.post("/api/v1/tokens", json={"name": "tests"})
                assert token.status_code == 201, token.text
                tokens[name] = token.json()["token"]
    world = World(server, tokens)
    with world.client("olga") as olga:
        assert olga.post("/api/v1/organizations", json={"name": "acme"}).status_code == 201
        for team, member in (("readers", "rita"), ("writers", "walt"), ("keepers", "kim")):
            assert olga.post("/api/v1/organizations/acme/teams", json={"name": team}).is_success
            assert olga.put(f"/api/v1/organizations/acme/teams/{team}/members/{member}").is_success
        granted = olga.put(
            "/api/v1/organizations/acme/teams/writers/organization-grant",
            json={"role": "read-write"},
        )
        assert granted.status_code == 204
        assert olga.post("/api/v1/repositories", json={"name": "acme/kept"}).status_code == 201
        kept = olga.put(
            "/api/v1/organizations/acme/teams/keepers/repositories/acme/kept",
            json={"role": "admin"},
        )
        assert kept.status_code == 204
        robot = olga.post("/api/v1/organizations/acme/robots", json={"name": "ci"})
        assert robot.status_code == 201
        robot_token = olga.post(
            "/api/v1/organizations/acme/robots/ci/tokens", json={"name": "full"}
        )
        tokens["acme+ci"] = robot_token.json()["token"]
    return world


@pytest.fixture
def olga(world: World) -> Iterator[httpx.Client]:
    with world.client("olga") as client:
        yield client


@pytest.fixture
def admin(world: World) -> Iterator[httpx.Client]:
    with world.client("admin") as client:
        yield client


def create(client: httpx.Client, name: str, **fields: object) -> httpx.Response:
    return client.post("/api/v1/repositories", json={"name": name, **fields})


def test_owners_writers_and_users_create_where_they_may(world: World) -> None:
    with world.client("olga") as olga:
        created = create(olga, "acme/app", description="the app")
        assert created.status_code == 201, created.text
        body = created.json()
        assert set(body) == REPOSITORY_FIELDS
        assert body["name"] == "acme/app"
        assert body["namespace"] == "acme"
        assert body["visibility"] == "private"
        assert body["description"] == "the app"
        assert body["scan_on_push"] is True
        assert body["immutable_tags"] is False
        assert created.headers["location"] == "/api/v1/repositories/acme/app"
        assert olga.get("/api/v1/repositories/acme/app").json() == body
    with world.client("walt") as walt:  # organization-wide read-write may create
        assert create(walt, "acme/by-walt", visibility="public").json()["visibility"] == "public"
    with world.client("mallory") as mallory:  # a personal namespace
        assert create(mallory, "mallory/tools/cli").status_code == 201
        assert_problem(create(mallory, "acme/intruder"), 403)
        assert_problem(create(mallory, "olga/intruder"), 403)
        assert_problem(create(mallory, "nobody/x"), 403)
    with world.client("rita") as rita:  # read-only membership does not create
        assert_problem(create(rita, "acme/by-rita"), 403)
    with world.client("admin") as admin:  # administrators create anywhere
        assert create(admin, "acme/by-admin").status_code == 201
        assert create(admin, "newspace/thing").status_code == 201
    with world.client("acme+ci") as robot:  # robots never create
        assert_problem(create(robot, "acme/by-robot"), 403)
    with world.client(None) as anonymous:
        assert_problem(create(anonymous, "acme/anonymous"), 401)
    with world.client("olga") as olga:
        names = {r["name"] for r in olga.get("/api/v1/repositories?namespace=acme").json()["items"]}
    assert not {"acme/intruder", "acme/by-rita", "acme/by-robot", "acme/anonymous"} & names


def test_an_existing_repository_conflicts(world: World) -> None:
    with world.client("olga") as olga:
        assert create(olga, "acme/twice").status_code == 201
        assert_problem(create(olga, "acme/twice"), 409)
    with world.client("walt") as walt:
        assert_problem(create(walt, "acme/twice"), 409)
    with world.client("mallory") as mallory:  # no right to create there: 403, not 409
        assert_problem(create(mallory, "acme/twice"), 403)
    with world.client("olga") as olga:  # pushed repositories exist too
        push_blob(olga, "acme/pushed", b"a blob that creates the repository")
        assert_problem(create(olga, "acme/pushed"), 409)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Acme/App"},
        {"name": "acme//app"},
        {"name": "acme/app/"},
        {"name": "acme/-app"},
        {"name": "acme/" + "a" * 251},
        {"name": ""},
        {},
        {"name": "acme/valid", "visibility": "secret"},
        {"name": "acme/valid", "description": 5},
        {"name": "acme/valid", "description": "x" * 10001},
        {"name": "acme/valid", "description": "nul \x00 inside"},
        {"name": "acme/\x00"},
    ],
)
def test_invalid_creations_are_422(olga: httpx.Client, body: dict[str, object]) -> None:
    assert_problem(olga.post("/api/v1/repositories", json=body), 422)
    assert_problem(olga.get("/api/v1/repositories/acme/valid"), 404)


def test_private_repositories_are_hidden_like_missing_ones(world: World) -> None:
    with world.client("olga") as olga:
        assert create(olga, "acme/secret").status_code == 201
        assert create(olga, "acme/open", visibility="public").status_code == 201
    with (
        world.client(None) as anonymous,
        world.client("rita") as rita,
        world.client("mallory") as mallory,
    ):
        for reader in (rita, mallory, anonymous):
            hidden = reader.get("/api/v1/repositories/acme/secret")
            missing = reader.get("/api/v1/repositories/acme/never-created")
            assert_problem(hidden, 404)
            assert hidden.headers["content-type"] == missing.headers["content-type"]
            assert hidden.json() == {
                **missing.json(),
                "detail": "repository 'acme/secret' does not exist",
            }
            assert missing.json()["detail"] == "repository 'acme/never-created' does not exist"
            assert reader.get("/api/v1/repositories/acme/open").json()["visibility"] == "public"
        # changing or deleting a hidden repository is refused as if it did not exist
        for method in ("PATCH", "DELETE"):
            body = {"description": "mine"} if method == "PATCH" else None
            assert_problem(
                mallory.request(method, "/api/v1/repositories/acme/secret", json=body), 404
            )
            assert_problem(
                mallory.request(method, "/api/v1/repositories/acme/never-created", json=body),
                404,
            )
        assert_problem(anonymous.delete("/api/v1/repositories/acme/secret"), 401)
        # a grant makes it visible to rita
        with world.client("olga") as olga:
            granted = olga.put(
                "/api/v1/organizations/acme/teams/readers/repositories/acme/secret",
                json={"role": "read-only"},
            )
            assert granted.status_code == 204
        assert rita.get("/api/v1/repositories/acme/secret").json()["name"] == "acme/secret"
        assert_problem(mallory.get("/api/v1/repositories/acme/secret"), 404)
        # invalid names cannot exist
        assert_problem(anonymous.get("/api/v1/repositories/Acme/Secret"), 404)


def test_listing_shows_what_the_caller_may_pull_page_by_page(world: World) -> None:
    with world.client("admin") as admin:
        assert admin.post("/api/v1/organizations", json={"name": "lister"}).status_code == 201
        assert admin.put("/api/v1/organizations/lister/owners/olga").status_code == 204
        assert admin.post("/api/v1/organizations/lister/teams", json={"name": "t"}).is_success
        assert admin.put("/api/v1/organizations/lister/teams/t/members/rita").is_success
        private = [f"lister/p{i}" for i in range(5)]
        public = [f"lister/q{i}" for i in range(3)]
        for name in private:
            assert create(admin, name).status_code == 201
        for name in public:
            assert create(admin, name, visibility="public").status_code == 201
        granted = admin.put(
            "/api/v1/organizations/lister/teams/t/repositories/lister/p3",
            json={"role": "read-only"},
        )
        assert granted.status_code == 204

    def names(user: str | None, **params: object) -> list[str]:
        with world.client(user) as client:
            answer = client.get("/api/v1/repositories", params={"namespace": "lister", **params})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert page["next"] is None
        return [item["name"] for item in page["items"]]

    everything = sorted(private + public)
    assert names("admin") == everything
    assert names("olga") == everything  # an owner
    assert names("rita") == sorted([*public, "lister/p3"])  # a team's grant
    assert names("mallory") == public
    assert names(None) == public
    # without a namespace: anonymous callers see only public repositories
    with world.client(None) as anonymous:
        page = anonymous.get("/api/v1/repositories", params={"limit": 500}).json()
    assert page["items"]
    assert {item["visibility"] for item in page["items"]} == {"public"}
    assert set(public) <= {item["name"] for item in page["items"]}
    # pages of two, for rita: the hidden ones in between do not shorten a page
    with world.client("rita") as rita:
        seen: list[str] = []
        after: str | None = None
        sizes = []
        while True:
            params: dict[str, str | int] = {"namespace": "lister", "limit": 2}
            if after is not None:
                params["after"] = after
            page = rita.get("/api/v1/repositories", params=params).json()
            sizes.append(len(page["items"]))
            seen += [item["name"] for item in page["items"]]
            after = page["next"]
            if after is None:
                break
            assert after == seen[-1]
        assert seen == sorted([*public, "lister/p3"])
        assert sizes == [2, 2]
        for bad in ({"limit": 0}, {"limit": 501}, {"after": "Not A Name"}, {"namespace": "a/b"}):
            assert_problem(rita.get("/api/v1/repositories", params=bad), 422)


def test_settings_are_changed_by_repository_admins_only(world: World) -> None:
    path = "/api/v1/repositories/acme/kept"
    with world.client("olga") as olga:
        granted = olga.put(
            "/api/v1/organizations/acme/teams/readers/repositories/acme/kept",
            json={"role": "read-only"},
        )
        assert granted.status_code == 204
    with world.client("rita") as rita:
        assert_problem(rita.patch(path, json={"description": "by rita"}), 403)
    with world.client("walt") as walt:  # read-write is not enough
        assert_problem(walt.patch(path, json={"description": "by walt"}), 403)
        assert_problem(walt.delete(path), 403)
    with world.client("kim") as kim:  # the keepers team holds admin on acme/kept
        changed = kim.patch(
            path,
            json={
                "visibility": "public",
                "description": "kept by kim",
                "scan_on_push": False,
                "immutable_tags": True,
            },
        )
        assert changed.status_code == 200, changed.text
        body = changed.json()
        assert (body["visibility"], body["description"]) == ("public", "kept by kim")
        assert (body["scan_on_push"], body["immutable_tags"]) == (False, True)
        # fields left out stay as they are
        again = kim.patch(path, json={"description": "still kim's"}).json()
        assert (again["visibility"], again["immutable_tags"]) == ("public", True)
        assert kim.patch(path, json={}).json() == again
        assert_problem(kim.patch(path, json={"visibility": "internal"}), 422)
        assert_problem(kim.patch(path, json={"scan_on_push": "maybe"}), 422)
        assert_problem(kim.patch(path, json={"description": "a\x00b"}), 422)
    # public now: anonymous callers read it, over the API and over /v2
    with world.client(None) as anonymous:
        assert anonymous.get(path).json()["description"] == "still kim's"
        assert anonymous.get("/v2/acme/kept/tags/list").status_code == 200
    with world.client("olga") as olga:
        assert olga.patch(path, json={"visibility": "private"}).json()["visibility"] == "private"
    with world.client(None) as anonymous:
        assert_problem(anonymous.get(path), 404)
        assert anonymous.get("/v2/acme/kept/tags/list").status_code == 401


def test_limited_tokens_read_within_their_scope_and_change_nothing(world: World) -> None:
    with world.client("olga") as olga:
        assert create(olga, "acme/scoped").status_code == 201
        assert create(olga, "acme/unscoped").status_code == 201
        narrow = olga.post(
            "/api/v1/tokens", json={"name": "narrow", "scopes": ["repository:acme/scoped:pull"]}
        ).json()["token"]
    with httpx.Client(base_url=world.server.url, auth=basic("olga", narrow)) as limited:
        page = limited.get("/api/v1/repositories", params={"namespace": "acme"}).json()
        assert [item["name"] for item in page["items"]] == ["acme/scoped"]
        assert limited.get("/api/v1/repositories/acme/scoped").status_code == 200
        assert_problem(limited.get("/api/v1/repositories/acme/unscoped"), 404)
        assert_problem(limited.patch("/api/v1/repositories/acme/scoped", json={}), 403)
        assert_problem(limited.delete("/api/v1/repositories/acme/scoped"), 403)
        assert_problem(create(limited, "acme/by-narrow-token"), 403)


def test_a_deleted_repository_is_gone_from_v2_but_its_blobs_stay(world: World) -> None:
    with world.client("olga") as olga:
        image = push_image(olga, "acme/doomed", "v1")
        kept = push_image(olga, "acme/survivor", "v1")
        shared = push_blob(olga, "acme/survivor", image.layers[0])  # the same layer, linked
        assert olga.get("/v2/acme/doomed/tags/list").json()["tags"] == ["v1"]
        assert olga.get("/v2/acme/doomed/manifests/v1").status_code == 200
        granted = olga.put(
            "/api/v1/organizations/acme/teams/readers/repositories/acme/doomed",
            json={"role": "read-only"},
        )
        assert granted.status_code == 204
    with world.client("rita") as rita:
        assert rita.get("/v2/acme/doomed/manifests/v1").status_code == 200
        assert_problem(rita.delete("/api/v1/repositories/acme/doomed"), 403)
    with world.client("walt") as walt:
        assert_problem(walt.delete("/api/v1/repositories/acme/doomed"), 403)
    with world.client("olga") as olga:
        deleted = olga.delete("/api/v1/repositories/acme/doomed")
        assert deleted.status_code == 204
        assert deleted.content == b""
        assert_problem(olga.get("/api/v1/repositories/acme/doomed"), 404)
        assert_problem(olga.delete("/api/v1/repositories/acme/doomed"), 404)
        assert_error(olga.get("/v2/acme/doomed/tags/list"), 404, "NAME_UNKNOWN")
        assert_error(olga.get("/v2/acme/doomed/manifests/v1"), 404, "MANIFEST_UNKNOWN")
        assert_error(olga.get(f"/v2/acme/doomed/manifests/{image.digest}"), 404, "MANIFEST_UNKNOWN")
        assert_error(olga.get(f"/v2/acme/doomed/blobs/{shared}"), 404, "BLOB_UNKNOWN")
        catalog = olga.get("/v2/_catalog").json()["repositories"]
        assert "acme/doomed" not in catalog
        assert "acme/survivor" in catalog
        # the blob itself stays: the other repository still serves it
        layer = olga.get(f"/v2/acme/survivor/blobs/{shared}")
        assert layer.status_code == 200
        assert layer.content == image.layers[0]
        assert olga.get("/v2/acme/survivor/manifests/v1").content == kept.manifest
        # the name is free again, and the old grants did not survive
        assert create(olga, "acme/doomed").status_code == 201
    with world.client("rita") as rita:
        assert_problem(rita.get("/api/v1/repositories/acme/doomed"), 404)
        assert_error(rita.get("/v2/acme/doomed/tags/list"), 404, "NAME_UNKNOWN")


def _size(image: Image) -> int:
    return len(image.manifest) + len(image.config) + sum(len(layer) for layer in image.layers)


def test_tags_are_listed_with_digest_size_platforms_push_time_and_scan_status(
    world: World,
) -> None:
    with world.client("olga") as olga:
        first = push_image(olga, "acme/tagged", "v1")
        second = push_image(olga, "acme/tagged", "v2", docker=True)
        children = [
            descriptor(
                first.media_type, first.manifest, platform={"os": "linux", "architecture": "amd64"}
            ),
            descriptor(
                second.media_type,
                second.manifest,
                platform={"os": "linux", "architecture": "arm64", "variant": "v8"},
            ),
        ]
        index = encode(index_manifest(children))
        assert put_manifest(olga, "acme/tagged", "multi", index, OCI_INDEX).status_code == 201
        page = olga.get("/api/v1/repositories/acme/tagged/tags", params={"limit": 2})
        assert page.status_code == 200, page.text
        body = page.json()
        assert [tag["name"] for tag in body["items"]] == ["multi", "v1"]
        assert body["next"] == "v1"
        multi, v1 = body["items"]
        assert v1["digest"] == first.digest
        assert v1["media_type"] == first.media_type
        assert v1["size"] == _size(first)
        assert v1["platforms"] == ["linux/amd64"]
        assert v1["scan_status"] is None  # never scanned (test_scan_api shows a scanned one)
        assert datetime.fromisoformat(v1["pushed_at"]).tzinfo is not None
        assert multi["digest"] == sha256(index)
        assert multi["size"] == len(index) + _size(first) + _size(second)
        assert multi["platforms"] == ["linux/amd64", "linux/arm64/v8"]
        assert multi["scan_status"] is None
        rest = olga.get("/api/v1/repositories/acme/tagged/tags", params={"after": "v1"}).json()
        assert [(tag["name"], tag["digest"]) for tag in rest["items"]] == [("v2", second.digest)]
        assert rest["next"] is None
        assert rest["items"][0]["platforms"] == ["linux/amd64"]
    with world.client("mallory") as mallory, world.client(None) as anonymous:
        for reader in (mallory, anonymous):
            hidden = reader.get("/api/v1/repositories/acme/tagged/tags")
            missing = reader.get("/api/v1/repositories/acme/never-tagged/tags")
            assert_problem(hidden, 404)
            assert hidden.json() == {
                **missing.json(),
                "detail": "repository 'acme/tagged' does not exist",
            }


def test_who_may_access_a_repository_is_shown_to_its_administrators(world: World) -> None:
    with world.client("olga") as olga:
        assert create(olga, "acme/guarded").status_code == 201
        granted = olga.put(
            "/api/v1/organizations/acme/teams/readers/repositories/acme/guarded",
            json={"role": "read-only"},
        )
        assert granted.status_code == 204
        robot = olga.put(
            "/api/v1/organizations/acme/robots/ci/repositories/acme/guard*",
            json={"role": "read-write"},
        )
        assert robot.status_code == 204
        answer = olga.get("/api/v1/repositories/acme/guarded/access")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "repository": "acme/guarded",
            "visibility": "private",
            "users": [
                {"name": "admin", "role": "admin", "via": ["system administrator"]},
                {"name": "olga", "role": "admin", "via": ["organization owner"]},
            ],
            "teams": [
                {"name": "readers", "role": "read-only", "via": ["repository grant"]},
                {"name": "writers", "role": "read-write", "via": ["organization grant"]},
            ],
            "robots": [
                {"name": "acme+ci", "role": "read-write", "via": ["grant on acme/guard*"]},
            ],
        }
    with world.client("admin") as admin:
        assert admin.get("/api/v1/repositories/acme/guarded/access").status_code == 200
    with world.client("walt") as walt:  # read-write through his team: not an administrator
        assert_problem(walt.get("/api/v1/repositories/acme/guarded/access"), 403)
    with world.client("mallory") as mallory:  # cannot read it: it does not exist for her
        hidden = mallory.get("/api/v1/repositories/acme/guarded/access")
        missing = mallory.get("/api/v1/repositories/acme/never-guarded/access")
        assert_problem(hidden, 404)
        assert hidden.json() == {
            **missing.json(),
            "detail": "repository 'acme/guarded' does not exist",
        }
    with world.client(None) as anonymous:
        assert_problem(anonymous.get("/api/v1/repositories/acme/guarded/access"), 401)
