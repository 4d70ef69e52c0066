"""Abuse resistance of logins (issue 9, items 15 and 16), on a server of 2 workers.

15: wrong passwords slow down the address they come from, never the account's owner elsewhere;
bogus tokens lock nobody out; X-Forwarded-For counts only from a trusted proxy.
16: a revoked token, an old password, a refresh token of a reactivated user or presented by
another client are refused from the very next request, on every worker.

Requests go out from several loopback addresses (127.0.0.2 is an attacker, 127.0.0.3 the
owner...), each on a fresh connection so that they land on both workers.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy import Engine

from tests.support.server import TrustyardServer
from trustyard.auth import audit
from trustyard.auth.accounts import AccountService
from trustyard.db.engine import make_engine, read_tx, write_tx

pytestmark = pytest.mark.integration

PASSWORD = "a password that is long enough"
NEW_PASSWORD = "a new password that is long enough"
ATTACKER, OWNER, SHARED, SPRAYER, PROXY, OUTSIDER = (
    "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.6", "127.0.0.5", "127.0.0.8",
)  # fmt: skip
# More requests than workers, on fresh connections: they land on every worker.
ROUNDS = 8


@pytest.fixture(scope="module")
def secured(start_server: Callable[..., TrustyardServer]) -> TrustyardServer:
    return start_server(
        "abuse",
        TRUSTYARD_AUTH__ENABLED="true",
        TRUSTYARD_ADMIN_PASSWORD=PASSWORD,
        TRUSTYARD_SERVER__TRUSTED_PROXIES=f"{PROXY}/32",
        # Locks long enough that a loaded machine cannot outlast one between two requests
        # that assert it is in force (1 s by default).
        TRUSTYARD_AUTH__LOGIN_FIRST_LOCK_SECONDS="120",
    )


@pytest.fixture(scope="module")
def db(secured: TrustyardServer) -> Iterator[Engine]:
    engine = make_engine(secured.database_url or f"sqlite:///{secured.data_dir / 'trustyard.db'}")
    accounts = AccountService()
    with write_tx(engine) as conn:
        for name in ("victim", "bob", "carol", "dave", "erin", "frank", "gina", "hana", "proxied"):
            accounts.create_user(conn, name, PASSWORD)
    yield engine
    engine.dispose()


def basic(user: str, secret: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def get(
    server: TrustyardServer, path: str, source: str = "127.0.0.1", **headers: str
) -> httpx.Response:
    """One GET on a connection of its own, from `source`."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=server.url, transport=transport, timeout=60) as http:
        return http.get(path, headers=headers)


def v2(server: TrustyardServer, user: str, secret: str, source: str = "127.0.0.1") -> int:
    return get(server, "/v2/", source, **basic(user, secret)).status_code


def guess_until_throttled(server: TrustyardServer, user: str, source: str, **headers: str) -> None:
    """Wrong passwords from `source` until one is answered 429 (the 5th failure locks the pair
    for `login_first_lock_seconds`; a request during a lock is refused at once)."""
    for attempt in range(40):
        answer = get(server, "/v2/", source, **basic(user, f"guess {attempt}"), **headers)
        if answer.status_code == 429:
            assert answer.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
            assert int(answer.headers["retry-after"]) >= 1
            return
        assert answer.status_code == 401
    pytest.fail(f"{source} was never throttled")


def throttles(db: Engine) -> list[audit.AuditEvent]:
    with read_tx(db) as conn:
        return audit.search(conn, action="login.throttle", limit=500)


def api(server: TrustyardServer, user: str, secret: str = PASSWORD) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(user, secret), timeout=60)


# --- 15: throttling --------------------------------------------------------------------------


def test_wrong_passwords_from_one_address_never_lock_the_owner_out_elsewhere(
    secured: TrustyardServer, db: Engine
) -> None:
    guess_until_throttled(secured, "victim", ATTACKER)
    # The account was locked for every address before: now only the attacker's pair is.
    assert v2(secured, "victim", PASSWORD, OWNER) == 200
    assert v2(secured, "victim", PASSWORD, ATTACKER) == 429
    token = get(secured, "/auth/token", OWNER, **basic("victim", PASSWORD))
    assert token.status_code == 200
    locks = [e for e in throttles(db) if e.resource == "victim"]
    assert locks
    assert {(e.address, e.resource_kind, e.outcome) for e in locks} == {
        (ATTACKER, "user", "denied")
    }
    assert {e.detail["throttle"] for e in locks if e.detail} == {"pair"}


def test_a_password_remembered_for_the_owner_does_not_pass_a_locked_address(
    secured: TrustyardServer, db: Engine
) -> None:
    # The owner's login is remembered by every worker; a locked address presenting the same
    # (right) password must still be refused unchecked, or it could tell right from wrong.
    assert [v2(secured, "hana", PASSWORD, OWNER) for _ in range(ROUNDS)] == [200] * ROUNDS
    guess_until_throttled(secured, "hana", ATTACKER)
    assert [v2(secured, "hana", PASSWORD, ATTACKER) for _ in range(ROUNDS)] == [429] * ROUNDS
    assert v2(secured, "hana", PASSWORD, OWNER) == 200


def test_the_admin_cannot_be_locked_out_either(secured: TrustyardServer) -> None:
    guess_until_throttled(secured, "admin", ATTACKER)
    assert v2(secured, "admin", PASSWORD, OWNER) == 200


def test_bogus_tokens_from_a_shared_address_lock_nobody_out(
    secured: TrustyardServer, db: Engine
) -> None:
    bogus = "ty_pat_aaaaaaaaaaaaaaaaaaaaaaaaaa_" + "A" * 43
    for _ in range(60):  # more than an address's free failures
        assert get(secured, "/v2/", SHARED, authorization=f"Bearer {bogus}").status_code == 401
        assert get(secured, "/v2/", SHARED, **basic("bob", bogus)).status_code == 401
    assert v2(secured, "bob", PASSWORD, SHARED) == 200
    assert not [e for e in throttles(db) if e.address == SHARED]


def test_an_address_guessing_many_accounts_is_throttled_for_all_of_them(
    secured: TrustyardServer, db: Engine
) -> None:
    for n in range(50):  # an address's free failures, over as many (unknown) accounts
        assert v2(secured, f"nobody{n}", "guess", SPRAYER) == 401
    guess_until_throttled(secured, "nobody-else", SPRAYER)
    assert v2(secured, "carol", PASSWORD, SPRAYER) == 429  # an address with recent failures
    assert v2(secured, "carol", PASSWORD, OWNER) == 200
    locks = [e for e in throttles(db) if e.resource_kind == "address"]
    assert [e.resource for e in locks][-1:] == [SPRAYER]


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(
    secured: TrustyardServer, db: Engine
) -> None:
    # Through the proxy: the forwarded client is the one throttled, not the proxy.
    forwarded = {"x-forwarded-for": "203.0.113.50, 198.51.100.7"}
    guess_until_throttled(secured, "proxied", PROXY, **forwarded)
    other = {"x-forwarded-for": "198.51.100.8"}
    assert get(secured, "/v2/", PROXY, **basic("proxied", PASSWORD), **other).status_code == 200
    assert get(secured, "/v2/", PROXY, **basic("proxied", PASSWORD), **forwarded).status_code == 429
    # From anyone else the header is the client's own claim: ignored.
    spoofed = {"x-forwarded-for": "198.51.100.9"}
    assert get(secured, "/v2/", OUTSIDER, **basic("proxied", "wrong"), **spoofed).status_code == 401
    with read_tx(db) as conn:
        failed = audit.search(conn, action="login", actor="proxied", limit=100)
    addresses = {e.address for e in failed}
    assert "198.51.100.7" in addresses
    assert OUTSIDER in addresses
    assert not addresses & {PROXY, "203.0.113.50", "198.51.100.9"}


# --- 16: freshness ---------------------------------------------------------------------------


def statuses(server: TrustyardServer, user: str, secret: str) -> list[int]:
    return [v2(server, user, secret) for _ in range(ROUNDS)]


def test_a_revoked_token_is_refused_at_the_next_request_on_every_worker(
    secured: TrustyardServer, db: Engine
) -> None:
    with api(secured, "dave") as dave:
        made = dave.post("/api/v1/tokens", json={"name": "laptop"}).json()
        text = made["token"]
        assert statuses(secured, "dave", text) == [200] * ROUNDS  # remembered on both workers
        bearer = {"authorization": f"Bearer {text}"}
        assert {get(secured, "/v2/", **bearer).status_code for _ in range(ROUNDS)} == {200}
        assert dave.delete(f"/api/v1/tokens/{made['public_id']}").status_code == 200
    assert statuses(secured, "dave", text) == [401] * ROUNDS
    assert {get(secured, "/v2/", **bearer).status_code for _ in range(ROUNDS)} == {401}
    assert get(secured, "/auth/token", **basic("dave", text)).status_code == 401  # no new tokens


@pytest.mark.usefixtures("db")  # its users exist only once `db` made them
def test_an_old_password_is_refused_at_the_next_request_on_every_worker(
    secured: TrustyardServer,
) -> None:
    assert statuses(secured, "erin", PASSWORD) == [200] * ROUNDS
    with api(secured, "erin") as erin:
        changed = erin.patch(
            "/api/v1/users/erin", json={"password": NEW_PASSWORD, "current_password": PASSWORD}
        )
        assert changed.status_code == 200, changed.text
    after = statuses(secured, "erin", PASSWORD)
    # Now a wrong password: 401, and 429 once this address has failed five times in a row.
    assert after[0] == 401
    assert set(after) <= {401, 429}
    assert get(secured, "/auth/token", **basic("erin", PASSWORD)).status_code in (401, 429)
    fresh = [v2(secured, "erin", NEW_PASSWORD, OWNER) for _ in range(ROUNDS)]
    assert fresh == [200] * ROUNDS


def refresh_token(server: TrustyardServer, user: str, client_id: str) -> str:
    form = {
        "grant_type": "password",
        "username": user,
        "password": PASSWORD,
        "access_type": "offline",
        "client_id": client_id,
        "service": "trustyard",
    }
    answer = httpx.post(f"{server.url}/auth/token", data=form)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["refresh_token"])


def exchange(server: TrustyardServer, text: str, client_id: str) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": text,
        "client_id": client_id,
        "service": "trustyard",
    }
    return httpx.post(f"{server.url}/auth/token", data=form)


def test_a_refresh_token_is_bound_to_its_client_id(secured: TrustyardServer, db: Engine) -> None:
    text = refresh_token(secured, "frank", "docker")
    other = exchange(secured, text, "containerd")
    assert other.status_code == 400
    assert other.json()["error"] == "invalid_grant"
    assert exchange(secured, text, "docker").status_code == 200
    with read_tx(db) as conn:
        [refused] = audit.search(conn, action="refresh_token.exchange", actor="frank")
    assert refused.detail is not None
    assert refused.detail["reason"] == "the refresh token was issued to another client"
    assert refused.detail["client_id"] == "containerd"


@pytest.mark.usefixtures("db")  # its users exist only once `db` made them
def test_a_reactivated_user_gets_no_old_refresh_token_back(secured: TrustyardServer) -> None:
    text = refresh_token(secured, "gina", "docker")
    assert exchange(secured, text, "docker").status_code == 200
    with api(secured, "admin") as admin:
        for active in (False, True):
            answer = admin.patch("/api/v1/users/gina", json={"is_active": active})
            assert answer.status_code == 200, answer.text
    dead = exchange(secured, text, "docker")
    assert dead.status_code == 400
    assert dead.json()["error"] == "invalid_grant"
    assert v2(secured, "gina", PASSWORD) == 200  # the account itself is back
    assert exchange(secured, refresh_token(secured, "gina", "docker"), "docker").status_code == 200
