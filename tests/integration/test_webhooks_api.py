"""/api/v1/webhooks on a real server: who manages which subscriptions (repository
administrators, organization owners, a user for their own namespace, system administrators
for the registry), hidden scopes answered like missing webhooks, SSRF refusals when a
subscription is made or its URL changes, validation, listing and deletion."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from tests.integration.oci_helpers import brief
from tests.integration.test_api import assert_problem
from tests.integration.webhook_helpers import ADMIN_PASSWORD, FAST, PASSWORD
from tests.support.server import TrustyardServer
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("webhooks-api")]

ORG = "hooks"
REPO = f"{ORG}/app"  # private; team keepers (kim) admin, team readers (rita) read-only
PUBLIC = f"{ORG}/pub"
FIELDS = {
    "id",
    "scope",
    "repository",
    "namespace",
    "url",
    "events",
    "format",
    "tls_verify",
    "ca_bundle",
    "description",
    "active",
    "inactive_reason",
    "inactive_since",
    "failing_since",
    "last_success_at",
    "last_failure_at",
    "created_by",
    "created_at",
    "updated_at",
    "secret",
}


@dataclass
class World:
    server: TrustyardServer
    tokens: dict[str, str]
    url: str  # a destination the server may reach (nothing listens there)

    def client(self, user: str | None) -> httpx.Client:
        if user is None:
            return httpx.Client(base_url=self.server.url, timeout=60)
        secret = ADMIN_PASSWORD if user == "admin" else self.tokens[user]
        return httpx.Client(
            base_url=self.server.url, auth=httpx.BasicAuth(user, secret), timeout=60
        )

    def create(self, user: str | None, **fields: object) -> httpx.Response:
        body = {"url": self.url, "events": ["TAG_PUSH"], **fields}
        with self.client(user) as client:
            return client.post("/api/v1/webhooks", json=body)


@pytest.fixture(scope="module")
def world(start_server: Callable[..., TrustyardServer]) -> World:
    """hooks (owner olga): team keepers (kim: admin on hooks/app), team readers (rita:
    read-only on hooks/app); mallory belongs nowhere."""
    server = start_server("webhooks-api", **FAST)
    tokens: dict[str, str] = {}
    with httpx.Client(
        base_url=server.url, auth=httpx.BasicAuth("admin", ADMIN_PASSWORD), timeout=60
    ) as admin:
        for name in ("olga", "kim", "rita", "mallory"):
            created = admin.post("/api/v1/users", json={"username": name, "password": PASSWORD})
            assert created.status_code == 201, brief(created)
            with httpx.Client(
                base_url=server.url, auth=httpx.BasicAuth(name, PASSWORD), timeout=60
            ) as user:
                token = user.post("/api/v1/tokens", json={"name": "tests"})
                assert token.status_code == 201, brief(token)
                tokens[name] = token.json()["token"]
    with WebhookReceiver() as receiver:  # only for a URL that passes the checks
        world = World(server, tokens, receiver.url("/unused"))
    with world.client("olga") as olga:
        assert olga.post("/api/v1/organizations", json={"name": ORG}).status_code == 201
        for repository, visibility in ((REPO, "private"), (PUBLIC, "public")):
            made = olga.post(
                "/api/v1/repositories", json={"name": repository, "visibility": visibility}
            )
            assert made.status_code == 201
        for team, member, role in (("keepers", "kim", "admin"), ("readers", "rita", "read-only")):
            assert olga.post(f"/api/v1/organizations/{ORG}/teams", json={"name": team}).is_success
            added = olga.put(f"/api/v1/organizations/{ORG}/teams/{team}/members/{member}")
            assert added.is_success
            granted = olga.put(
                f"/api/v1/organizations/{ORG}/teams/{team}/repositories/{REPO}",
                json={"role": role},
            )
            assert granted.status_code == 204
    return world


def test_who_may_subscribe_to_what(world: World) -> None:
    allowed = [
        ("kim", {"repository": REPO}),  # repository admin
        ("olga", {"repository": REPO}),  # organization owner
        ("olga", {"namespace": ORG}),
        ("mallory", {"namespace": "mallory"}),  # her own namespace
        ("admin", {"namespace": ORG}),
        ("admin", {"registry": True}),
    ]
    for user, scope in allowed:
        answer = world.create(user, **scope)
        assert answer.status_code == 201, (user, scope, brief(answer))
        body = answer.json()
        assert set(body) == FIELDS
        assert body["id"].startswith("wh_")
        assert answer.headers["location"] == f"/api/v1/webhooks/{body['id']}"
        assert body["secret"].startswith("whsec_")
        assert body["created_by"] == user
        assert body["active"] is True
        assert body["events"] == ["TAG_PUSH"]
        assert body["format"] == "dtr"
    refused = [
        ("rita", {"repository": REPO}, 403),  # may read it, may not administer it
        ("mallory", {"repository": REPO}, 404),  # may not know it exists
        ("mallory", {"repository": PUBLIC}, 403),  # public: she may know it
        ("kim", {"namespace": ORG}, 403),  # a member is no owner
        ("mallory", {"namespace": ORG}, 404),
        ("mallory", {"namespace": "olga"}, 404),  # another user's namespace: like a missing one
        ("olga", {"registry": True}, 403),
        (None, {"namespace": ORG}, 401),
    ]
    for user, scope, status in refused:
        assert_problem(world.create(user, **scope), status)
    hidden = world.create("mallory", repository=REPO).json()["detail"]
    missing = world.create("mallory", repository=f"{ORG}/nothing").json()["detail"]
    assert hidden.replace(REPO, f"{ORG}/nothing") == missing
    assert_problem(world.create("admin", repository=f"{ORG}/nothing"), 404)


def test_another_users_namespace_answers_like_a_missing_one(world: World) -> None:
    """Status, headers and body (the name aside) are the same for a user's namespace, a
    missing name and an organization the caller cannot see: none of them tells what exists."""

    def answer(namespace: str) -> tuple[int, list[tuple[str, str]], str]:
        got = world.create("mallory", namespace=namespace)
        headers = sorted((k, v) for k, v in got.headers.items() if k != "date")
        return got.status_code, headers, got.text.replace(namespace, "NAME")

    user, missing = answer("olga"), answer("nemo")  # names of one length
    assert user[0] == 404
    assert user == missing
    unseen, missing = answer(ORG), answer("nobod")
    assert unseen == missing
    assert unseen[2] == user[2]


def test_managing_a_subscription_follows_its_scope(world: World) -> None:
    on_repo = world.create("olga", repository=REPO).json()["id"]
    on_org = world.create("olga", namespace=ORG).json()["id"]
    with world.client("kim") as kim:
        assert kim.get(f"/api/v1/webhooks/{on_repo}").status_code == 200
        changed = kim.patch(f"/api/v1/webhooks/{on_repo}", json={"description": "kim's"})
        assert changed.status_code == 200
        assert changed.json()["description"] == "kim's"
        assert changed.json()["secret"] is None
        assert_problem(kim.get(f"/api/v1/webhooks/{on_org}"), 403)
        listed = {item["id"] for item in kim.get("/api/v1/webhooks").json()["items"]}
        assert on_repo in listed
        assert on_org not in listed
    with world.client("rita") as rita:
        assert_problem(rita.get(f"/api/v1/webhooks/{on_repo}"), 403)
        assert_problem(rita.post(f"/api/v1/webhooks/{on_repo}/test"), 403)
        assert rita.get("/api/v1/webhooks").json()["items"] == []
    with world.client("mallory") as mallory:
        for path in (f"/api/v1/webhooks/{on_repo}", f"/api/v1/webhooks/{on_org}"):
            hidden = mallory.get(path)
            missing = mallory.get("/api/v1/webhooks/wh_0000000000000000")
            assert_problem(hidden, 404)
            assert hidden.json()["detail"].replace(path.rsplit("/", 1)[1], "X") == missing.json()[
                "detail"
            ].replace("wh_0000000000000000", "X")
        assert_problem(mallory.delete(f"/api/v1/webhooks/{on_repo}"), 404)
        assert_problem(mallory.get(f"/api/v1/webhooks/{on_repo}/deliveries"), 404)
    with world.client("olga") as olga:
        assert olga.delete(f"/api/v1/webhooks/{on_repo}").status_code == 204
        assert_problem(olga.get(f"/api/v1/webhooks/{on_repo}"), 404)
        listed = [item["id"] for item in olga.get("/api/v1/webhooks").json()["items"]]
        assert on_org in listed
        assert on_repo not in listed
    with world.client("admin") as admin:
        assert admin.get(f"/api/v1/webhooks/{on_org}").status_code == 200


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://10.1.2.3/hook", "10.1.2.3, a non-global address"),
        ("http://192.168.0.7:8080/", "192.168.0.7, a non-global address"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254, a non-global address"),
        ("http://127.0.0.2/", "127.0.0.2, a non-global address"),  # 127.0.0.1/32 only
        ("http://[::1]:8080/", "::1, a non-global address"),
        ("http://[::ffff:10.0.0.1]/", "a non-global address"),
        ("http://0.0.0.0:9/", "0.0.0.0, a non-global address"),
        ("http://100.64.0.1/", "100.64.0.1, a non-global address"),
        ("http://[::127.0.0.1]/", "::7f00:1, a non-global address"),
        ("http://[::ffff:0:7f00:1]/", "::ffff:0:7f00:1, a non-global address"),
        ("http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1, a non-global address"),
        ("http://[2002:7f00:1::1]/", "2002:7f00:1::1, a non-global address"),
        ("http://[::a9fe:a9fe]/", "::a9fe:a9fe, a non-global address"),
        ("http://[fec0::1]/", "fec0::1, a non-global address"),
        ("ftp://127.0.0.1/hook", "starts with http:// or https://"),
        ("http://someone:secret@127.0.0.1:9/", "carries no credentials"),
        ("http:///path-only", "names a host"),
        ("http://127.0.0.1:9/a b", "no spaces"),
    ],
)
def test_destinations_that_are_refused(world: World, url: str, words: str) -> None:
    answer = world.create("admin", namespace=ORG, url=url)
    body = assert_problem(answer, 422)
    assert words in str(body["detail"])


def test_a_url_change_is_checked_too(world: World) -> None:
    created = world.create("olga", namespace=ORG).json()
    with world.client("olga") as olga:
        moved = olga.patch(
            f"/api/v1/webhooks/{created['id']}", json={"url": "http://10.0.0.1/hook"}
        )
        assert_problem(moved, 422)
        assert olga.get(f"/api/v1/webhooks/{created['id']}").json()["url"] == world.url


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"namespace": ORG, "repository": REPO}, "exactly one of"),
        ({}, "exactly one of"),
        ({"namespace": ORG, "events": []}, "events"),
        ({"namespace": ORG, "events": ["NOT_A_TYPE"]}, "events"),
        ({"namespace": ORG, "format": "xml"}, "format"),
        ({"namespace": ORG, "secret": "short"}, "secret"),
        ({"repository": "Not A Name"}, "invalid repository name"),
    ],
)
def test_invalid_subscriptions_are_422(world: World, fields: dict[str, object], where: str) -> None:
    body = assert_problem(world.create("admin", **fields), 422)
    assert where in str(body["detail"])


def test_a_chosen_secret_and_the_listing_pages(world: World) -> None:
    secret = "a secret the receiver already knows"
    mark = "paging "
    made = world.create("mallory", namespace="mallory", secret=secret, description=mark + "first")
    assert made.json()["secret"] == secret
    for index in range(4):
        assert world.create("mallory", namespace="mallory", description=f"{mark}{index}").is_success
    with world.client("mallory") as mallory:
        seen: list[str] = []
        after: str | None = None
        while True:
            params = {"limit": "2", **({"after": after} if after else {})}
            page = mallory.get("/api/v1/webhooks", params=params).json()
            assert len(page["items"]) <= 2
            assert all(item["secret"] is None for item in page["items"])
            seen += [item["description"] for item in page["items"]]
            after = page["next"]
            if after is None:
                break
        assert [text for text in seen if text.startswith(mark)] == [
            f"{mark}{suffix}" for suffix in ("first", "0", "1", "2", "3")
        ]
        mine = mallory.get("/api/v1/webhooks", params={"namespace": "mallory"}).json()
        assert {item["description"] for item in mine["items"]} >= {mark + "first", mark + "3"}
        assert {item["namespace"] for item in mine["items"]} == {"mallory"}
        assert mallory.get("/api/v1/webhooks", params={"repository": REPO}).json()["items"] == []
