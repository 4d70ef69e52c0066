"""How API clients present credentials, and what a stolen session or token cannot do.

- An access token may be sent as `Authorization: Bearer ty_pat_...` (the usual API habit) as
  well as inside Basic credentials, on /api/v1 and on /v2; a wrong one is refused with 401.
- Changing one's own password needs the current one: a leaked access token must not be enough
  to take the account over. Administrators reset other users' passwords without it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import httpx
import pytest

from tests.support.server import TrustyardServer

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "an admin password for credentials"
PASSWORD = "a password that is long enough"
NEW_PASSWORD = "a brand new password, long enough"


@pytest.fixture(scope="module")
def server(start_server: Callable[..., TrustyardServer]) -> TrustyardServer:
    started = start_server(
        "credentials", TRUSTYARD_AUTH__ENABLED="true", TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD
    )
    with httpx.Client(base_url=started.url, auth=("admin", ADMIN_PASSWORD)) as admin:
        for name in ("tess", "uma", "vera"):
            made = admin.post("/api/v1/users", json={"username": name, "password": PASSWORD})
            assert made.status_code == 201, made.text
    return started


def new_token(server: TrustyardServer, user: str, password: str = PASSWORD) -> str:
    with httpx.Client(base_url=server.url, auth=(user, password)) as http:
        made = http.post("/api/v1/tokens", json={"name": "for the test"})
    assert made.status_code == 201, made.text
    token: str = made.json()["token"]
    return token


def test_an_access_token_works_as_a_bearer_token(server: TrustyardServer) -> None:
    token = new_token(server, "tess")
    bearer = {"authorization": f"Bearer {token}"}
    me = httpx.get(f"{server.url}/api/v1/me", headers=bearer)
    assert me.status_code == 200, me.text
    assert me.json()["name"] == "tess"
    # tess owns her namespace: the same header pushes there over /v2.
    data = b"a blob pushed with a bearer access token"
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    pushed = httpx.post(
        f"{server.url}/v2/tess/app/blobs/uploads/",
        params={"digest": digest},
        content=data,
        headers={**bearer, "content-type": "application/octet-stream"},
    )
    assert pushed.status_code == 201, pushed.text

    wrong = {"authorization": f"Bearer {token[:-4]}xxxx"}
    refused = httpx.get(f"{server.url}/api/v1/me", headers=wrong)
    assert refused.status_code == 401
    assert token[-12:] not in refused.text
    assert httpx.get(f"{server.url}/v2/tess/app/tags/list", headers=wrong).status_code == 401


def test_changing_ones_own_password_needs_the_current_one(server: TrustyardServer) -> None:
    token = new_token(server, "uma")
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"}) as stolen:
        missing = stolen.patch("/api/v1/users/uma", json={"password": NEW_PASSWORD})
        assert missing.status_code == 403
        assert "current_password" in missing.json()["detail"]
        wrong = stolen.patch(
            "/api/v1/users/uma",
            json={"password": NEW_PASSWORD, "current_password": "not her password at all"},
        )
        assert wrong.status_code == 403
        assert wrong.json()["detail"] == "current_password is wrong"
        # Other fields need no password.
        assert stolen.patch("/api/v1/users/uma", json={"full_name": "Uma"}).status_code == 200
        right = stolen.patch(
            "/api/v1/users/uma", json={"password": NEW_PASSWORD, "current_password": PASSWORD}
        )
        assert right.status_code == 200, right.text
    assert httpx.get(f"{server.url}/api/v1/me", auth=("uma", NEW_PASSWORD)).status_code == 200


def test_an_administrator_resets_another_users_password_without_it(
    server: TrustyardServer,
) -> None:
    with httpx.Client(base_url=server.url, auth=("admin", ADMIN_PASSWORD)) as admin:
        reset = admin.patch("/api/v1/users/vera", json={"password": NEW_PASSWORD})
        assert reset.status_code == 200, reset.text
    assert httpx.get(f"{server.url}/api/v1/me", auth=("vera", NEW_PASSWORD)).status_code == 200
