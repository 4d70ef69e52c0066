"""Refresh tokens at the Docker token endpoint, on a real server: handed out for offline access
(GET `offline_token=true`, POST `access_type=offline`), exchanged with the OAuth2
`refresh_token` grant for what the owner may do now, and refused (400 `invalid_grant`) once
revoked, expired, or cut off by a password change or a deactivation. Real clients: podman logs
in as before, and skopeo pulls with a refresh token (`identitytoken`) in its auth file."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import Engine, select, update

from tests.integration.clients import ClientFailed, Clients, layout_top
from tests.integration.oci_helpers import sha256
from tests.support.images import test_images_dir
from tests.support.server import TrustyardServer
from trustyard.auth.accounts import AccountService
from trustyard.db.engine import make_engine, read_tx, write_tx
from trustyard.db.tables import access_tokens, audit_events

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("token-refresh")]

ADMIN_PASSWORD = "an admin password for refresh tests"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new horse battery"
REFRESH_TTL = 7200  # seconds; the default is 30 days
OAUTH_ERROR_KEYS = {"error", "error_description"}


@pytest.fixture(scope="module")
def registry(start_server: Callable[..., TrustyardServer]) -> TrustyardServer:
    server = start_server(
        "refresh",
        TRUSTYARD_AUTH__ENABLED="true",
        TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD,
        TRUSTYARD_AUTH__REFRESH_TOKEN_TTL_SECONDS=str(REFRESH_TTL),
    )
    engine = make_engine(database_url(server))
    accounts = AccountService()
    with write_tx(engine) as conn:
        for name in ("olga", "reader", "carol", "dave", "erin", "frank"):
            accounts.create_user(conn, name, PASSWORD)
        accounts.create_organization(conn, "acme", "olga")
        accounts.create_team(conn, "acme", "readers")
        accounts.add_member(conn, "acme", "readers", "reader")
        accounts.set_team_organization_grant(conn, "acme", "readers", "read-only")
        accounts.create_robot(conn, "acme", "ci")
        accounts.set_robot_grant(conn, "acme", "ci", "acme/*", "read-write")
    engine.dispose()
    return server


@pytest.fixture(scope="module")
def db(registry: TrustyardServer) -> Iterator[Engine]:
    engine = make_engine(database_url(registry))
    yield engine
    engine.dispose()


@pytest.fixture
def http(registry: TrustyardServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        yield client


def database_url(server: TrustyardServer) -> str:
    return server.database_url or f"sqlite:///{server.data_dir / 'trustyard.db'}"


def basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def offline_get(http: httpx.Client, user: str, secret: str = PASSWORD, scope: str = "") -> str:
    """A refresh token from GET /auth/token?offline_token=true (docker's fallback)."""
    answer = http.get(
        "/auth/token",
        params={
            "service": "trustyard",
            "offline_token": "true",
            "client_id": "docker",
            "scope": scope,
        },
        headers=basic(user, secret),
    )
    assert answer.status_code == 200, answer.text
    text: str = answer.json()["refresh_token"]
    return text


def offline_post(
    http: httpx.Client, user: str, secret: str = PASSWORD, client_id: str = "docker"
) -> dict[str, Any]:
    """The OAuth2 password grant with access_type=offline (docker login)."""
    answer = http.post(
        "/auth/token",
        data={
            "grant_type": "password",
            "username": user,
            "password": secret,
            "service": "trustyard",
            "client_id": client_id,
            "access_type": "offline",
        },
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def exchange(
    http: httpx.Client, refresh_token: str, scope: str | list[str] = "", **extra: str
) -> httpx.Response:
    form: dict[str, Any] = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "service": "trustyard",
        "client_id": "docker",  # the client the refresh tokens here were issued to
        "scope": scope,
        **extra,
    }
    return http.post("/auth/token", data={k: v for k, v in form.items() if v != ""})


def access(response: httpx.Response) -> list[tuple[str, str, list[str]]]:
    """The `access` claim of a successful exchange's access token."""
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    return [(a["type"], a["name"], sorted(a["actions"])) for a in claims["access"]]


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> str:
    """An OAuth2 error answer (RFC 6749 5.2): exactly `error` and a description, not cached."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == OAUTH_ERROR_KEYS
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    description: str = body["error_description"]
    return description


def public_id(refresh_token: str) -> str:
    return refresh_token.split("_")[2]


def events(db: Engine, action: str, resource: str) -> list[tuple[str, str, str, str | None, Any]]:
    with read_tx(db) as conn:
        rows = conn.execute(
            select(audit_events)
            .where(audit_events.c.action == action, audit_events.c.resource == resource)
            .order_by(audit_events.c.id)
        ).all()
    return [
        (r.actor, r.actor_kind, r.outcome, r.address, json.loads(r.detail) if r.detail else None)
        for r in rows
    ]


# --- handing refresh tokens out -------------------------------------------------------------


def test_get_with_offline_token_adds_a_refresh_token_and_only_then(
    http: httpx.Client, db: Engine
) -> None:
    online = http.get(
        "/auth/token", params={"service": "trustyard"}, headers=basic("olga", PASSWORD)
    )
    assert online.status_code == 200
    assert "refresh_token" not in online.json()
    answer = http.get(
        "/auth/token",
        params={"service": "trustyard", "offline_token": "true", "client_id": "docker"},
        headers=basic("olga", PASSWORD),
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at", "refresh_token"}
    token = body["refresh_token"]
    assert token.startswith("ty_rft_")
    assert len(token) == len("ty_rft_") + 12 + 1 + 43
    with read_tx(db) as conn:
        row = conn.execute(
            select(access_tokens).where(access_tokens.c.public_id == public_id(token))
        ).one()
    assert row.kind == "rft"
    assert row.name == "refresh token (docker)"
    assert token.split("_", 3)[3] not in row.secret_hash  # the secret may itself hold "_"
    assert row.expires_at - row.created_at == timedelta(seconds=REFRESH_TTL)
    assert events(db, "refresh_token.create", public_id(token)) == [
        ("olga", "user", "ok", "127.0.0.1", {"client_id": "docker", "obtained_with": "password"})
    ]


def test_anonymous_and_bearer_callers_get_no_refresh_token(http: httpx.Client) -> None:
    anonymous = http.get("/auth/token", params={"offline_token": "true"})
    assert anonymous.status_code == 200
    assert "refresh_token" not in anonymous.json()
    bearer = anonymous.json()["token"]
    refused = http.get(
        "/auth/token",
        params={"offline_token": "true"},
        headers={"Authorization": f"Bearer {bearer}"},
    )
    assert_oauth_error(refused, 401, "invalid_client")
    wrong = http.get(
        "/auth/token", params={"offline_token": "true"}, headers=basic("olga", "not it at all")
    )
    assert_oauth_error(wrong, 401, "invalid_client")


def test_the_password_grant_with_access_type_offline_adds_a_refresh_token(
    http: httpx.Client,
) -> None:
    body = offline_post(http, "olga")
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "issued_at",
        "scope",
        "refresh_token",
    }
    assert body["token_type"] == "Bearer"
    assert body["scope"] == ""
    assert body["refresh_token"].startswith("ty_rft_")
    online = http.post(
        "/auth/token",
        data={"grant_type": "password", "username": "olga", "password": PASSWORD},
    )
    assert online.status_code == 200
    assert "refresh_token" not in online.json()


def test_the_password_grant_answers_the_granted_scope(http: httpx.Client) -> None:
    answer = http.post(
        "/auth/token",
        data={
            "grant_type": "password",
            "username": "reader",
            "password": PASSWORD,
            "service": "trustyard",
            "client_id": "docker",
            "scope": "repository:acme/app:pull,push repository:olga/own:pull",
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == "repository:acme/app:pull"


# --- exchanging them ------------------------------------------------------------------------


def test_a_refresh_token_buys_access_tokens_for_the_granted_subset(http: httpx.Client) -> None:
    olga = offline_post(http, "olga")["refresh_token"]
    answer = exchange(http, olga, "repository:acme/app:pull,push")
    assert access(answer) == [("repository", "acme/app", ["pull", "push"])]
    body = answer.json()
    assert body["refresh_token"] == olga  # the same one: no rotation
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "repository:acme/app:pull,push"
    assert 30 <= body["expires_in"] <= 3600
    assert answer.headers["cache-control"] == "no-store"
    started = http.post(
        "/v2/acme/app/blobs/uploads/",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert started.status_code == 202
    reader = offline_get(http, "reader")
    assert access(exchange(http, reader, "repository:acme/app:pull,push")) == [
        ("repository", "acme/app", ["pull"])
    ]
    # containers/image sends one `scope` parameter per scope.
    both = exchange(http, reader, ["repository:acme/app:pull", "repository:olga/own:pull"])
    assert access(both) == [
        ("repository", "acme/app", ["pull"]),
        ("repository", "olga/own", []),
    ]
    assert both.json()["scope"] == "repository:acme/app:pull"
    empty = exchange(http, reader)
    assert access(empty) == []
    probe = http.get("/v2/", headers={"Authorization": f"Bearer {empty.json()['access_token']}"})
    assert probe.status_code == 200  # what a client's login check does


def test_each_exchange_follows_the_owners_current_roles(
    http: httpx.Client, registry: TrustyardServer, db: Engine
) -> None:
    accounts = AccountService()
    with write_tx(db) as conn:
        accounts.create_team(conn, "acme", "builders")
        accounts.add_member(conn, "acme", "builders", "erin")
    token = offline_get(http, "erin")
    scope = "repository:acme/tool:pull,push"
    assert access(exchange(http, token, scope)) == [("repository", "acme/tool", [])]
    with write_tx(db) as conn:
        accounts.set_team_organization_grant(conn, "acme", "builders", "read-write")
    assert access(exchange(http, token, scope)) == [("repository", "acme/tool", ["pull", "push"])]
    with write_tx(db) as conn:
        accounts.remove_member(conn, "acme", "builders", "erin")
    assert access(exchange(http, token, scope)) == [("repository", "acme/tool", [])]


def test_a_refresh_token_from_a_robot_token_never_exceeds_that_token(
    http: httpx.Client, db: Engine
) -> None:
    with write_tx(db) as conn:
        _, robot = AccountService().create_token(
            conn, "acme+ci", "pull only", ["repository:acme/*:pull"]
        )
    token = offline_get(http, "acme+ci", robot)
    scope = "repository:acme/app:pull,push"
    assert access(exchange(http, token, scope)) == [("repository", "acme/app", ["pull"])]
    assert events(db, "refresh_token.create", public_id(token))[0][:3] == ("acme+ci", "robot", "ok")
    with write_tx(db) as conn:
        AccountService().revoke_token(conn, robot.split("_")[2])
    assert_oauth_error(exchange(http, token, scope), 400, "invalid_grant")


# --- invalidation ---------------------------------------------------------------------------


def test_a_password_change_invalidates_refresh_tokens_and_is_audited(
    http: httpx.Client, db: Engine
) -> None:
    token = offline_post(http, "dave")["refresh_token"]
    assert exchange(http, token).status_code == 200
    with write_tx(db) as conn:
        AccountService().change_password(conn, "dave", NEW_PASSWORD)
    assert_oauth_error(exchange(http, token), 400, "invalid_grant")
    assert events(db, "refresh_token.exchange", public_id(token)) == [
        (
            "dave",
            "user",
            "failed",
            "127.0.0.1",
            {
                "client_id": "docker",
                "reason": "the password it was obtained with has changed",
            },
        )
    ]
    # The old password, maybe still remembered by a worker, gets no new refresh token.
    stale = http.post(
        "/auth/token",
        data={
            "grant_type": "password",
            "username": "dave",
            "password": PASSWORD,
            "access_type": "offline",
        },
    )
    assert stale.status_code == 401
    assert stale.json()["error"] in {"invalid_grant", "invalid_client"}
    assert (
        exchange(http, offline_post(http, "dave", NEW_PASSWORD)["refresh_token"]).status_code == 200
    )


def test_deactivating_a_user_stops_their_refresh_tokens(http: httpx.Client, db: Engine) -> None:
    token = offline_get(http, "carol")
    assert exchange(http, token).status_code == 200
    with write_tx(db) as conn:
        AccountService().deactivate_user(conn, "carol")
    assert_oauth_error(exchange(http, token), 400, "invalid_grant")
    reason = events(db, "refresh_token.exchange", public_id(token))[-1][4]["reason"]
    assert reason == "revoked refresh token"  # deactivation revokes them for good
    with write_tx(db) as conn:
        AccountService().delete_user(conn, "carol")
    assert_oauth_error(exchange(http, token), 400, "invalid_grant")


def test_a_refresh_token_is_listed_and_revoked_with_the_owners_tokens(http: httpx.Client) -> None:
    token = offline_post(http, "frank")["refresh_token"]
    listed = http.get("/api/v1/tokens", auth=("frank", PASSWORD))
    assert listed.status_code == 200, listed.text
    mine = [t for t in listed.json()["items"] if t["public_id"] == public_id(token)]
    assert len(mine) == 1
    assert mine[0]["kind"] == "rft"
    assert mine[0]["name"] == "refresh token (docker)"
    assert mine[0]["revoked_at"] is None
    assert token not in listed.text
    revoked = http.delete(f"/api/v1/tokens/{public_id(token)}", auth=("frank", PASSWORD))
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert_oauth_error(exchange(http, token), 400, "invalid_grant")


def test_an_expired_refresh_token_is_refused(http: httpx.Client, db: Engine) -> None:
    token = offline_get(http, "olga")
    with write_tx(db) as conn:
        conn.execute(
            update(access_tokens)
            .where(access_tokens.c.public_id == public_id(token))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert_oauth_error(exchange(http, token), 400, "invalid_grant")
    assert events(db, "refresh_token.exchange", public_id(token))[-1][4] == {
        "client_id": "docker",
        "reason": "expired refresh token",
    }


def test_refresh_tokens_and_access_tokens_do_not_stand_in_for_each_other(
    http: httpx.Client, db: Engine
) -> None:
    token = offline_get(http, "olga")
    as_password = http.get("/v2/", headers=basic("olga", token))
    assert as_password.status_code == 401
    with write_tx(db) as conn:
        _, pat = AccountService().create_token(conn, "olga", "laptop")
    assert_oauth_error(exchange(http, pat), 400, "invalid_grant")
    forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    assert_oauth_error(exchange(http, forged), 400, "invalid_grant")
    assert_oauth_error(exchange(http, "not a token at all"), 400, "invalid_grant")
    assert events(db, "refresh_token.exchange", public_id(token))[-1][:3] == (
        "olga",
        "user",
        "failed",
    )


# --- OAuth2 errors --------------------------------------------------------------------------


def test_malformed_requests_get_the_oauth2_error_codes(http: httpx.Client) -> None:
    token = offline_get(http, "olga")

    def post(**form: str | list[str]) -> httpx.Response:
        return http.post("/auth/token", data=form)

    assert_oauth_error(post(refresh_token=token, client_id="x"), 400, "invalid_request")
    unsupported = post(grant_type="client_credentials", client_id="x")
    assert_oauth_error(unsupported, 400, "unsupported_grant_type")
    assert_oauth_error(post(grant_type="refresh_token", client_id="x"), 400, "invalid_request")
    assert_oauth_error(
        post(grant_type="refresh_token", refresh_token=token), 400, "invalid_request"
    )
    twice = post(grant_type="refresh_token", refresh_token=[token, token], client_id="x")
    assert_oauth_error(twice, 400, "invalid_request")
    assert_oauth_error(exchange(http, token, service="elsewhere"), 400, "invalid_request")
    assert_oauth_error(exchange(http, token, client_id="\u00e9t\u00e9"), 400, "invalid_request")
    assert_oauth_error(exchange(http, token, "repository:ACME:pull"), 400, "invalid_scope")
    assert_oauth_error(post(grant_type="password", username="olga"), 401, "invalid_grant")
    put = http.put("/auth/token")
    assert_oauth_error(put, 405, "invalid_request")
    assert put.headers["allow"] == "GET, POST"
    assert exchange(http, token).status_code == 200  # none of that harmed the token


# --- real clients ---------------------------------------------------------------------------


@pytest.fixture
def clients(tmp_path: Path, registry: TrustyardServer) -> Clients:
    return Clients(tmp_path / "clients", [registry.host])


def test_podman_logs_in_and_pulls_and_skopeo_pulls_with_a_refresh_token(
    registry: TrustyardServer, clients: Clients, http: httpx.Client, db: Engine, tmp_path: Path
) -> None:
    layout = test_images_dir() / "go-binary"
    image = f"{registry.host}/acme/go:1.0"
    clients.skopeo(
        "copy", "--dest-creds", f"olga:{PASSWORD}", f"oci:{layout}:latest", f"docker://{image}"
    )
    authfile = tmp_path / "podman-auth.json"
    clients.podman(
        "login",
        "--authfile",
        str(authfile),
        "--username",
        "reader",
        "--password",
        PASSWORD,
        registry.host,
    )
    assert json.loads(authfile.read_text())["auths"][registry.host]["auth"]
    clients.podman("pull", "--authfile", str(authfile), image)
    with pytest.raises(ClientFailed):
        clients.podman(
            "login",
            "--authfile",
            str(tmp_path / "x.json"),
            "--username",
            "reader",
            "--password",
            "wrong password here",
            registry.host,
        )

    # A refresh token in the auth file (`identitytoken`, as docker login stores it) makes
    # containers/image use the OAuth2 refresh grant instead of a password. A refresh token is
    # bound to the client it was issued to: containers/image exchanges as "containers/image".
    token = offline_post(http, "reader", client_id="containers/image")["refresh_token"]
    identity = tmp_path / "identity.json"
    entry = {"auth": base64.b64encode(b"reader:").decode(), "identitytoken": token}
    identity.write_text(json.dumps({"auths": {registry.host: entry}}))
    pulled = tmp_path / "pulled"
    clients.skopeo("copy", "--authfile", str(identity), f"docker://{image}", f"oci:{pulled}:x")
    assert layout_top(pulled)["digest"] == layout_top(layout)["digest"]
    with read_tx(db) as conn:
        used = conn.scalar(
            select(access_tokens.c.last_used_at).where(
                access_tokens.c.public_id == public_id(token)
            )
        )
    assert used is not None  # skopeo did exchange the refresh token
    with pytest.raises(ClientFailed):  # reader may pull, not push
        clients.skopeo(
            "copy",
            "--authfile",
            str(identity),
            f"oci:{layout}:latest",
            f"docker://{registry.host}/acme/go:reader",
        )
    revoked = http.delete(f"/api/v1/tokens/{public_id(token)}", auth=("reader", PASSWORD))
    assert revoked.status_code == 200
    with pytest.raises(ClientFailed):
        clients.skopeo(
            "copy", "--authfile", str(identity), f"docker://{image}", f"oci:{tmp_path / 'no'}:x"
        )


def test_a_blob_pushed_with_a_refreshed_token_is_there(http: httpx.Client) -> None:
    token = offline_get(http, "olga")
    data = b"pushed with a refreshed token"
    bearer = exchange(http, token, "repository:olga/own:pull,push").json()["access_token"]
    pushed = http.post(
        f"/v2/olga/own/blobs/uploads/?digest={sha256(data)}",
        content=data,
        headers={"Authorization": f"Bearer {bearer}"},
    )
    assert pushed.status_code == 201, pushed.text
    read = exchange(http, token, "repository:olga/own:pull").json()["access_token"]
    fetched = http.get(
        f"/v2/olga/own/blobs/{sha256(data)}", headers={"Authorization": f"Bearer {read}"}
    )
    assert fetched.content == data
