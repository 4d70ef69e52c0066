"""Workers remember logins (30 s at most, until a token is revoked or a password changes) and
access decisions (until the database changes); neither may outlive a change of rights: a removed
member, a lowered grant, a deactivated account count from the very next request, on every
worker (revoked tokens and changed passwords: test_auth_abuse.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy import Engine

from tests.integration.oci_helpers import sha256
from tests.support.server import TrustyardServer
from trustyard.auth.accounts import AccountService
from trustyard.db.engine import make_engine, write_tx

pytestmark = pytest.mark.integration

PASSWORD = "a password that is long enough"
REPO = "fresh/app"
# More requests than workers: with keep-alive off, they land on every worker.
ROUNDS = 8


@pytest.fixture(scope="module")
def secured(start_server: Callable[..., TrustyardServer]) -> TrustyardServer:
    return start_server(
        "freshness", TRUSTYARD_AUTH__ENABLED="true", TRUSTYARD_ADMIN_PASSWORD=PASSWORD
    )


@pytest.fixture(scope="module")
def db(secured: TrustyardServer) -> Iterator[Engine]:
    engine = make_engine(secured.database_url or f"sqlite:///{secured.data_dir / 'trustyard.db'}")
    accounts = AccountService()
    with write_tx(engine) as conn:
        for name in ("owner", "dana"):
            accounts.create_user(conn, name, PASSWORD)
        accounts.create_organization(conn, "fresh", "owner")
        accounts.create_team(conn, "fresh", "devs")
        accounts.add_member(conn, "fresh", "devs", "dana")
        accounts.set_team_organization_grant(conn, "fresh", "devs", "read-write")
    yield engine
    engine.dispose()


def push_config(server: TrustyardServer, user: str) -> int:
    """Push a small blob monolithically as `user`; the status of the final answer."""
    data = json.dumps({"n": user}).encode()
    with httpx.Client(base_url=server.url, auth=(user, PASSWORD), timeout=30) as http:
        answer = http.post(
            f"/v2/{REPO}/blobs/uploads/",
            params={"digest": sha256(data)},
            content=data,
            headers={"content-type": "application/octet-stream"},
        )
    return answer.status_code


def statuses(server: TrustyardServer, user: str, path: str) -> set[int]:
    """Status of the same GET sent ROUNDS times on fresh connections (so on every worker)."""
    seen = set()
    for _ in range(ROUNDS):
        with httpx.Client(base_url=server.url, auth=(user, PASSWORD), timeout=30) as http:
            seen.add(http.get(path).status_code)
    return seen


def test_a_removed_member_loses_access_at_the_next_request(
    secured: TrustyardServer, db: Engine
) -> None:
    assert push_config(secured, "dana") == 201
    path = f"/v2/{REPO}/tags/list"
    assert statuses(secured, "dana", path) == {200}  # decisions now remembered on the workers

    with write_tx(db) as conn:
        AccountService().set_team_organization_grant(conn, "fresh", "devs", "read-only")
    assert push_config(secured, "dana") == 403
    assert statuses(secured, "dana", path) == {200}

    with write_tx(db) as conn:
        AccountService().remove_member(conn, "fresh", "devs", "dana")
    # A private repository she may no longer read: as if it did not exist.
    assert statuses(secured, "dana", path) == {404}

    with write_tx(db) as conn:
        AccountService().add_member(conn, "fresh", "devs", "dana")
    assert statuses(secured, "dana", path) == {200}

    with write_tx(db) as conn:
        AccountService().deactivate_user(conn, "dana")
    # Deactivation moves the credential generation: every worker checks the password again and
    # refuses it (401; 429 once this address has failed five times in a row for her).
    assert statuses(secured, "dana", path) <= {401, 429}
