"""Accounts on /v2 (TRUSTYARD_AUTH__ENABLED): the Docker token flow, Basic credentials, the
DTR roles, robot tokens, hidden private repositories, and real skopeo with credentials."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest

from tests.integration.clients import ClientFailed, Clients, layout_top
from tests.integration.oci_helpers import sha256
from tests.support.images import test_images_dir
from tests.support.server import TrustyardServer
from trustyard.auth import audit
from trustyard.auth.accounts import AccountService
from trustyard.db.engine import make_engine, write_tx

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "an admin password for tests"
PASSWORD = "correct horse battery staple"
ROBOT_TOKENS: dict[str, str] = {}  # server URL -> a pull-only token of robot acme+ci


@pytest.fixture(scope="module")
def secured(start_server: Callable[..., TrustyardServer]) -> TrustyardServer:
    server = start_server(
        "secured", TRUSTYARD_AUTH__ENABLED="true", TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD
    )
    url = server.database_url or f"sqlite:///{server.data_dir / 'trustyard.db'}"
    engine = make_engine(url)
    accounts = AccountService()
    with write_tx(engine) as conn:
        for name in ("olga", "reader", "outsider"):
            accounts.create_user(conn, name, PASSWORD)
        accounts.create_organization(conn, "acme", "olga")
        accounts.create_team(conn, "acme", "readers")
        accounts.add_member(conn, "acme", "readers", "reader")
        accounts.set_team_organization_grant(conn, "acme", "readers", "read-only")
        accounts.create_robot(conn, "acme", "ci")
        accounts.set_robot_grant(conn, "acme", "ci", "acme/*", "read-write")
    engine.dispose()
    ROBOT_TOKENS[server.url] = _robot_token(url)
    return server


def _robot_token(url: str) -> str:
    engine = make_engine(url)
    with write_tx(engine) as conn:
        _, text = AccountService().create_token(
            conn, "acme+ci", "pull only", ["repository:acme/*:pull"]
        )
    engine.dispose()
    return text


def basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def token(server: TrustyardServer, scope: str, user: str | None, secret: str = PASSWORD) -> dict:
    headers = basic(user, secret) if user else {}
    answer = httpx.get(
        f"{server.url}/auth/token",
        params={"service": "trustyard", "scope": scope},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def granted(server: TrustyardServer, scope: str, user: str | None, secret: str = PASSWORD) -> list:
    claims = jwt.decode(
        token(server, scope, user, secret)["token"], options={"verify_signature": False}
    )
    return [(a["name"], sorted(a["actions"])) for a in claims["access"]]


@pytest.fixture
def clients(tmp_path: Path, secured: TrustyardServer) -> Clients:
    return Clients(tmp_path / "clients", [secured.host])


def test_anonymous_callers_are_challenged_towards_the_token_endpoint(
    secured: TrustyardServer,
) -> None:
    base = httpx.get(f"{secured.url}/v2/")
    assert base.status_code == 401
    challenge = base.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'realm="{secured.url}/auth/token"' in challenge
    assert 'service="trustyard"' in challenge
    tags = httpx.get(f"{secured.url}/v2/acme/app/tags/list")
    assert tags.status_code == 401
    assert tags.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert 'scope="repository:acme/app:pull"' in tags.headers["www-authenticate"]


def test_tokens_carry_only_what_each_role_may_do(secured: TrustyardServer) -> None:
    scope = "repository:acme/app:pull,push"
    assert granted(secured, scope, "olga") == [("acme/app", ["pull", "push"])]
    assert granted(secured, scope, "reader") == [("acme/app", ["pull"])]
    assert granted(secured, scope, "outsider") == [("acme/app", [])]
    assert granted(secured, scope, None) == [("acme/app", [])]
    assert granted(secured, scope, "acme+ci", ROBOT_TOKENS[secured.url]) == [("acme/app", ["pull"])]
    wrong = httpx.get(
        f"{secured.url}/auth/token", params={"scope": scope}, headers=basic("olga", "nope")
    )
    assert wrong.status_code == 401


def test_a_bearer_token_opens_exactly_its_scope(secured: TrustyardServer) -> None:
    pull_only = token(secured, "repository:acme/app:pull", "olga")["token"]
    bearer = {"Authorization": f"Bearer {pull_only}"}
    push = httpx.post(f"{secured.url}/v2/acme/app/blobs/uploads/", headers=bearer)
    assert push.status_code == 401
    assert 'error="insufficient_scope"' in push.headers["www-authenticate"]
    both = token(secured, "repository:acme/app:pull,push", "olga")["token"]
    started = httpx.post(
        f"{secured.url}/v2/acme/app/blobs/uploads/", headers={"Authorization": f"Bearer {both}"}
    )
    assert started.status_code == 202
    forged = pull_only[:-4] + ("AAAA" if not pull_only.endswith("AAAA") else "BBBB")
    assert (
        httpx.get(f"{secured.url}/v2/", headers={"Authorization": f"Bearer {forged}"}).status_code
        == 401
    )


def test_a_private_repository_is_hidden_from_those_who_may_not_read_it(
    secured: TrustyardServer,
) -> None:
    data = b"private layer"
    upload = httpx.post(
        f"{secured.url}/v2/acme/secret/blobs/uploads/?digest={sha256(data)}",
        content=data,
        headers=basic("olga", PASSWORD),
    )
    assert upload.status_code == 201
    for repo in ("acme/secret", "acme/never-created"):
        hidden = httpx.get(
            f"{secured.url}/v2/{repo}/blobs/{sha256(data)}", headers=basic("outsider", PASSWORD)
        )
        assert hidden.status_code == 404
        assert hidden.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    seen = httpx.get(
        f"{secured.url}/v2/acme/secret/blobs/{sha256(data)}", headers=basic("reader", PASSWORD)
    )
    assert seen.content == data
    denied = httpx.post(
        f"{secured.url}/v2/acme/secret/blobs/uploads/", headers=basic("reader", PASSWORD)
    )
    assert denied.status_code == 403
    assert denied.json()["errors"][0]["code"] == "DENIED"


def test_skopeo_pushes_and_pulls_with_credentials_and_a_pull_token_cannot_push(
    secured: TrustyardServer, clients: Clients, tmp_path: Path
) -> None:
    layout = test_images_dir() / "go-binary"
    dest = f"docker://{secured.host}/acme/go:1.0"
    with pytest.raises(ClientFailed):
        clients.skopeo("copy", f"oci:{layout}:latest", dest)
    clients.skopeo("copy", "--dest-creds", f"olga:{PASSWORD}", f"oci:{layout}:latest", dest)
    pulled = tmp_path / "pulled"
    clients.skopeo("copy", "--src-creds", f"reader:{PASSWORD}", dest, f"oci:{pulled}:x")
    assert layout_top(pulled)["digest"] == layout_top(layout)["digest"]
    robot = f"acme+ci:{ROBOT_TOKENS[secured.url]}"
    clients.skopeo("copy", "--src-creds", robot, dest, f"oci:{tmp_path / 'robot'}:x")
    with pytest.raises(ClientFailed):
        clients.skopeo(
            "copy",
            "--dest-creds",
            robot,
            f"oci:{layout}:latest",
            f"docker://{secured.host}/acme/go:robot",
        )
    with pytest.raises(ClientFailed):
        clients.skopeo(
            "copy",
            "--dest-creds",
            f"reader:{PASSWORD}",
            f"oci:{layout}:latest",
            f"docker://{secured.host}/acme/go:reader",
        )


def test_the_catalog_lists_only_what_the_caller_may_pull(secured: TrustyardServer) -> None:
    data = b"catalog layer"
    for repo in ("acme/listed", "olga/own"):
        pushed = httpx.post(
            f"{secured.url}/v2/{repo}/blobs/uploads/?digest={sha256(data)}",
            content=data,
            headers=basic("olga", PASSWORD),
        )
        assert pushed.status_code == 201

    def catalog(user: str | None) -> list[str]:
        headers = basic(user, PASSWORD) if user else {}
        answer = httpx.get(f"{secured.url}/v2/_catalog", params={"n": 1}, headers=headers)
        names: list[str] = []
        while True:
            assert answer.status_code == 200
            names += answer.json()["repositories"]
            link = answer.headers.get("link")
            if not link:
                return names
            answer = httpx.get(secured.url + link.split(";")[0].strip("<>"), headers=headers)

    olga = catalog("olga")
    assert {"acme/listed", "olga/own"} <= set(olga)
    reader = catalog("reader")
    assert "acme/listed" in reader
    assert "olga/own" not in reader
    assert not {"acme/listed", "olga/own"} & set(catalog("outsider"))


def test_repeated_wrong_passwords_lock_the_account_and_are_audited(
    secured: TrustyardServer,
) -> None:
    url = f"{secured.url}/v2/victim/app/tags/list"
    engine = make_engine(secured.database_url or f"sqlite:///{secured.data_dir / 'trustyard.db'}")
    with write_tx(engine) as conn:
        AccountService().create_user(conn, "victim", PASSWORD)
    answers = [httpx.get(url, headers=basic("victim", f"guess {i}")).status_code for i in range(5)]
    assert answers == [401] * 5
    # The 5th failure locked the account for a second: even the right password waits.
    locked = httpx.get(url, headers=basic("victim", PASSWORD))
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) >= 1
    assert locked.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    denied = httpx.get(f"{secured.url}/v2/acme/app/tags/list", headers=basic("outsider", PASSWORD))
    assert denied.status_code == 404
    with write_tx(engine) as conn:
        events = audit.recent(conn, limit=50)
    engine.dispose()
    failed = [e for e in events if e.action == "login" and e.resource == "victim"]
    assert len(failed) == 5
    assert all(e.outcome == "failed" and e.address == "127.0.0.1" for e in failed)
    assert any(
        e.actor == "outsider" and e.outcome == "denied" and e.resource == "acme/app" for e in events
    )


def test_any_valid_token_logs_in_at_the_base_endpoint(secured: TrustyardServer) -> None:
    """`docker login` asks a token without scopes and probes /v2/ with it."""
    for user in ("olga", None):
        empty = token(secured, "", user)["token"]
        probe = httpx.get(f"{secured.url}/v2/", headers={"Authorization": f"Bearer {empty}"})
        assert probe.status_code == 200
        private = httpx.get(
            f"{secured.url}/v2/acme/app/tags/list", headers={"Authorization": f"Bearer {empty}"}
        )
        assert private.status_code == 401


# --- cross-repository mounts in the Docker token flow ---------------------------------------------
CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def challenge_of(response: httpx.Response) -> dict[str, str]:
    """The parameters of a `Bearer` challenge (each once)."""
    header = response.headers["www-authenticate"]
    assert header.startswith("Bearer ")
    found = CHALLENGE_PARAM.findall(header)
    assert len({key for key, _ in found}) == len(found), header
    return dict(found)


def pushed_blob(server: TrustyardServer, repository: str, data: bytes) -> str:
    digest = sha256(data)
    answer = httpx.post(
        f"{server.url}/v2/{repository}/blobs/uploads/",
        params={"digest": digest},
        content=data,
        headers=basic("olga", PASSWORD),
    )
    assert answer.status_code == 201, answer.text
    return digest


def mount(
    server: TrustyardServer, target: str, params: dict[str, str], **headers: str
) -> httpx.Response:
    return httpx.post(f"{server.url}/v2/{target}/blobs/uploads/", params=params, headers=headers)


def blob_linked(server: TrustyardServer, repository: str, digest: str) -> bool:
    head = httpx.head(
        f"{server.url}/v2/{repository}/blobs/{digest}", headers=basic("olga", PASSWORD)
    )
    return head.status_code == 200


@pytest.mark.parametrize("form", ["one scope parameter", "repeated scope parameters"])
def test_a_token_client_that_follows_the_mount_challenge_mounts(
    secured: TrustyardServer, form: str
) -> None:
    """docker, containerd and the conformance suite ask the realm for what the challenge names:
    the challenge of a mount must name pull on its source too, or the mount falls back to a
    full upload (202) even for the source's owner."""
    source, target = f"acme/src-{form[:3]}", f"acme/dst-{form[:3]}"
    digest = pushed_blob(secured, source, f"layer for {form}".encode())
    params = {"mount": digest, "from": source}
    first = mount(secured, target, params)
    assert first.status_code == 401
    challenge = challenge_of(first)
    assert challenge["scope"] == f"repository:{target}:pull,push repository:{source}:pull"
    assert challenge["realm"] == f"{secured.url}/auth/token"
    scopes = challenge["scope"]
    # docker sends the challenge's scope as it is; containers/image one parameter per scope
    separate = scopes.split(" ") if form == "repeated scope parameters" else [scopes]
    query: dict[str, str | list[str]] = {"service": challenge["service"], "scope": separate}
    issued = httpx.get(challenge["realm"], params=query, headers=basic("olga", PASSWORD))
    assert issued.status_code == 200, issued.text
    bearer = f"Bearer {issued.json()['token']}"
    mounted = mount(secured, target, params, Authorization=bearer)
    assert mounted.status_code == 201, mounted.text
    assert mounted.headers["docker-content-digest"] == digest
    assert blob_linked(secured, target, digest)


def test_a_token_that_never_asked_for_the_source_is_challenged_for_it(
    secured: TrustyardServer,
) -> None:
    """A token fetched for an earlier request (push on the target only) says nothing about the
    source: the mount answers 401 insufficient_scope naming both scopes, so the client asks
    again instead of uploading the whole layer."""
    source, target = "acme/src-again", "acme/dst-again"
    digest = pushed_blob(secured, source, b"a layer mounted after a second challenge")
    push_only = token(secured, f"repository:{target}:pull,push", "olga")["token"]
    params = {"mount": digest, "from": source}
    again = mount(secured, target, params, Authorization=f"Bearer {push_only}")
    assert again.status_code == 401
    assert again.json()["errors"][0]["code"] == "UNAUTHORIZED"
    challenge = challenge_of(again)
    assert challenge["error"] == "insufficient_scope"
    assert challenge["scope"] == f"repository:{target}:pull,push repository:{source}:pull"
    assert not blob_linked(secured, target, digest)
    both = token(secured, challenge["scope"], "olga")["token"]
    assert mount(secured, target, params, Authorization=f"Bearer {both}").status_code == 201


def test_a_token_refused_the_source_gets_a_plain_upload_not_a_loop(
    secured: TrustyardServer,
) -> None:
    """outsider may push to their own namespace but not read acme's: the token they get for
    the challenge's scopes holds nothing on the source, and the mount falls back to 202."""
    source, target = "acme/src-private", "outsider/copy"
    digest = pushed_blob(secured, source, b"a layer outsider may not read")
    params = {"mount": digest, "from": source}
    challenge = challenge_of(mount(secured, target, params))
    assert granted(secured, challenge["scope"], "outsider") == [
        (target, ["pull", "push"]),
        (source, []),
    ]
    refused = token(secured, challenge["scope"], "outsider")["token"]
    fallback = mount(secured, target, params, Authorization=f"Bearer {refused}")
    assert fallback.status_code == 202, fallback.text
    assert "docker-content-digest" not in fallback.headers
    assert f"/v2/{target}/blobs/uploads/" in fallback.headers["location"]
    with_basic = mount(secured, target, params, **basic("outsider", PASSWORD))
    assert with_basic.status_code == 202, with_basic.text
    assert not blob_linked(secured, target, digest)


def test_a_mount_without_from_is_a_plain_upload_with_a_token_and_with_basic(
    secured: TrustyardServer,
) -> None:
    """With accounts on, a mount without `from` never mounts, whatever the credential (a token
    cannot name a source it was never told): both answer 202 (was 201 with Basic only)."""
    source, target = "acme/src-auto", "acme/dst-auto"
    digest = pushed_blob(secured, source, b"a layer nobody names the source of")
    params = {"mount": digest}
    challenge = challenge_of(mount(secured, target, params))
    assert challenge["scope"] == f"repository:{target}:pull,push"
    bearer = f"Bearer {token(secured, f'repository:{target}:pull,push', 'olga')['token']}"
    for headers in ({"Authorization": bearer}, basic("olga", PASSWORD)):
        answer = mount(secured, target, params, **headers)
        assert answer.status_code == 202, answer.text
        assert "docker-content-digest" not in answer.headers
    assert not blob_linked(secured, target, digest)


# --- the realm never echoes a hostile Host header -------------------------------------------------
@pytest.mark.parametrize(
    "host",
    [
        'evil.com",error="x',
        "evil.com, other.com",
        'evil.com:5000",scope="registry:catalog:*',
        "evil.com/path",
        "user@evil.com",
        "",
    ],
)
def test_the_realm_ignores_a_host_header_that_is_not_a_plain_host(
    secured: TrustyardServer, host: str
) -> None:
    answer = httpx.get(f"{secured.url}/v2/acme/app/tags/list", headers={"Host": host})
    assert answer.status_code == 401
    challenge = challenge_of(answer)
    assert set(challenge) == {"realm", "service", "scope"}
    assert challenge["realm"] == f"{secured.url}/auth/token"
    assert "evil" not in answer.headers["www-authenticate"]


@pytest.mark.parametrize("host", ["registry.example.com", "registry.example.com:5000", "[::1]:80"])
def test_the_realm_follows_a_plain_host_header(secured: TrustyardServer, host: str) -> None:
    answer = httpx.get(f"{secured.url}/v2/", headers={"Host": host})
    assert answer.status_code == 401
    assert challenge_of(answer)["realm"] == f"http://{host}/auth/token"
