"""Measure issue 9, items 15 and 16, against a real server: lock-outs and stale credentials.

Starts `trustyard serve` (accounts on, 2 workers, SQLite or --database-url) from the source
folder given (--source, e.g. ../before/src for the code before the fixes; default: the
installed trustyard), runs the probes below, prints one line per figure, and stops the server
by PID. Requests go out on fresh connections (so they reach both workers) from several loopback
addresses (127.0.0.2 is the attacker, 127.0.0.3 the account's owner...).

Item 15 (lock-outs):
  admin        5 wrong passwords for `admin` from 127.0.0.2, the right one from 127.0.0.3
  lockout      5 wrong passwords for `victim` from 127.0.0.2, then the right one from 127.0.0.3
               (the owner elsewhere) and from 127.0.0.2 (the attacker's address)
  renew        after the first lock ran out, one more failure from 127.0.0.2 each time: does the
               owner at 127.0.0.3 stay locked out?
  bogus        60 bogus access tokens from 127.0.0.4, then `bob`'s right password from there
Item 16 (stale credentials):
  revoke       `carol`'s access token used on 8 connections (both workers remember it), revoked
               through the API, then used to ask for registry tokens (GET /auth/token) until
               it is refused everywhere (10 refusals in a row): how many were handed out, and
               after how many seconds it was refused
  password     the same with `dave`'s old password after a password change
  refresh      a refresh token issued to client_id a, exchanged as client_id b; then after the
               owner is deactivated and reactivated, exchanged as client_id a

Example:
  PYTHONPATH= .venv/bin/python bench/auth_abuse.py --source ../before/src
  .venv/bin/python bench/auth_abuse.py
"""

from __future__ import annotations

import argparse
import base64
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.server import TrustyardServer  # noqa: E402

ADMIN_PASSWORD = "an admin password that is long enough"
PASSWORD = "a victim password that is long enough"
NEW_PASSWORD = "another victim password long enough"
BOB_PASSWORD = "a password of bob that is long enough"
ATTACKER, OWNER, SHARED = "127.0.0.2", "127.0.0.3", "127.0.0.4"


@contextmanager
def serving(source: str | None, database_url: str | None) -> Iterator[str]:
    environment = {
        "TRUSTYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "TRUSTYARD_SCANNING__ENABLED": "false",
        "TRUSTYARD_AUTH__ENABLED": "true",
    }
    if source:
        environment["PYTHONPATH"] = source
    data = Path(tempfile.mkdtemp(prefix="auth-abuse-")) / "data"
    server = TrustyardServer(data, database_url, workers=2, extra_env=environment).start()
    try:
        yield server.url
    finally:
        server.stop()


def call(
    url: str,
    method: str,
    path: str,
    *,
    source: str = "127.0.0.1",
    auth: tuple[str, str] | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: object,
) -> httpx.Response:
    """One request on a connection of its own, from `source`."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=url, transport=transport, timeout=60) as http:
        return http.request(method, path, auth=auth, headers=headers, **kwargs)  # type: ignore[arg-type]


def basic(user: str, secret: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def token_status(url: str, user: str, secret: str, source: str) -> int:
    return call(url, "GET", "/auth/token", source=source, auth=(user, secret)).status_code


def report(name: str, value: object) -> None:
    print(f"{name:<58} {value}", flush=True)


def admin_lockout(url: str) -> None:
    """First of all: the admin's password is not remembered by any worker yet."""
    admin = [token_status(url, "admin", "wrong", ATTACKER) for _ in range(5)]
    report("15 admin: 5 wrong passwords from 127.0.0.2", admin)
    report("15 admin: right password from 127.0.0.3",
           token_status(url, "admin", ADMIN_PASSWORD, OWNER))  # fmt: skip
    while token_status(url, "admin", ADMIN_PASSWORD, "127.0.0.1") == 429:
        time.sleep(0.5)  # the old code's lock: wait it out before setting up


def setup(url: str) -> None:
    admin = ("admin", ADMIN_PASSWORD)
    users = {"victim": PASSWORD, "bob": BOB_PASSWORD, "carol": PASSWORD, "dave": PASSWORD}
    for name, password in users.items():
        answer = call(url, "POST", "/api/v1/users", auth=admin,
                      json={"username": name, "password": password})  # fmt: skip
        answer.raise_for_status()


def lockout(url: str) -> None:
    statuses = [token_status(url, "victim", "wrong password", ATTACKER) for _ in range(5)]
    report("15 lockout: 5 wrong passwords from 127.0.0.2", statuses)
    report("15 lockout: right password from 127.0.0.3 (owner)",
           token_status(url, "victim", PASSWORD, OWNER))  # fmt: skip
    while statuses[-1] != 429 and len(statuses) < 40:
        statuses.append(token_status(url, "victim", "wrong password", ATTACKER))
    report("15 lockout: wrong passwords from 127.0.0.2 until a 429", statuses)
    report("15 lockout: then the right password from 127.0.0.3 (owner)",
           token_status(url, "victim", PASSWORD, OWNER))  # fmt: skip
    report("15 lockout: then the right password from 127.0.0.2",
           token_status(url, "victim", PASSWORD, ATTACKER))  # fmt: skip


def renew(url: str) -> None:
    """One failure per lock period keeps the lock going (the first locks are 1, 2, 4 s)."""
    owner = []
    for wait in (1.1, 2.1, 4.1):
        time.sleep(wait)  # the lock of the previous failure runs out
        token_status(url, "victim", "wrong password", ATTACKER)
        owner.append(token_status(url, "victim", PASSWORD, OWNER))
    report("15 renew: owner at 127.0.0.3 after each renewing failure", owner)


def bogus(url: str) -> None:
    bad = "Bearer ty_pat_aaaaaaaaaaaaaaaaaaaaaaaaaa_" + "A" * 43
    statuses = [
        call(url, "GET", "/v2/", source=SHARED, headers={"authorization": bad}).status_code
        for _ in range(60)
    ]
    report("15 bogus: 60 bogus tokens from 127.0.0.4 (last 3)", statuses[-3:])
    report("15 bogus: bob's right password from 127.0.0.4",
           token_status(url, "bob", BOB_PASSWORD, SHARED))  # fmt: skip


def until_refused(url: str, headers: dict[str, str], began: float) -> tuple[list[int], int, float]:
    """Registry tokens asked for (GET /auth/token) with stale credentials: the statuses of the
    first 8, how many were handed out, and the seconds until 10 refusals (401 or 429) in a
    row."""
    first: list[int] = []
    minted = streak = 0
    while time.monotonic() - began < 60:
        status = call(url, "GET", "/auth/token", headers=headers).status_code
        if len(first) < 8:
            first.append(status)
        minted += status == 200
        streak = streak + 1 if status != 200 else 0
        if streak >= 10 and len(first) >= 8:
            break
    return first, minted, time.monotonic() - began


def revoke(url: str) -> None:
    carol = ("carol", PASSWORD)
    made = call(url, "POST", "/api/v1/tokens", auth=carol, json={"name": "laptop"}).json()
    headers = basic("carol", made["token"])
    warm = [call(url, "GET", "/auth/token", headers=headers).status_code for _ in range(8)]
    report("16 revoke: GET /auth/token with the token before (8)", warm)
    began = time.monotonic()
    answer = call(url, "DELETE", f"/api/v1/tokens/{made['public_id']}", auth=carol)
    report("16 revoke: DELETE /api/v1/tokens/{id}", answer.status_code)
    first, minted, seconds = until_refused(url, headers, began)
    report("16 revoke: GET /auth/token with it after (first 8)", first)
    report("16 revoke: registry tokens minted with it after", minted)
    report("16 revoke: seconds until refused on every worker", f"{seconds:.1f}")


def password(url: str) -> None:
    headers = basic("dave", PASSWORD)
    warm = [call(url, "GET", "/auth/token", headers=headers).status_code for _ in range(8)]
    report("16 password: GET /auth/token before the change (8)", warm)
    began = time.monotonic()
    answer = call(url, "PATCH", "/api/v1/users/dave", headers=headers,
                  json={"password": NEW_PASSWORD, "current_password": PASSWORD})  # fmt: skip
    report("16 password: PATCH /api/v1/users/dave", answer.status_code)
    first, minted, seconds = until_refused(url, headers, began)
    report("16 password: GET /auth/token with the old one (first 8)", first)
    report("16 password: registry tokens minted with it after", minted)
    report("16 password: seconds until refused on every worker", f"{seconds:.1f}")


def refresh(url: str) -> None:
    def exchange(text: str, client: str) -> int:
        form = {"grant_type": "refresh_token", "refresh_token": text, "client_id": client,
                "service": "trustyard"}  # fmt: skip
        return call(url, "POST", "/auth/token", data=form).status_code

    form = {"grant_type": "password", "username": "bob", "password": BOB_PASSWORD,
            "access_type": "offline", "client_id": "a", "service": "trustyard"}  # fmt: skip
    text = call(url, "POST", "/auth/token", data=form).json()["refresh_token"]
    report("16 refresh: exchanged by its own client_id a", exchange(text, "a"))
    report("16 refresh: exchanged by client_id b", exchange(text, "b"))
    admin = ("admin", ADMIN_PASSWORD)
    for active in (False, True):
        call(url, "PATCH", "/api/v1/users/bob", auth=admin, json={"is_active": active})
    report("16 refresh: client a, after bob was deactivated+reactivated", exchange(text, "a"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="PYTHONPATH of the server (e.g. ../before/src)")
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    args = parser.parse_args()
    with serving(args.source, args.database_url) as url:
        report("server", f"{url} source={args.source or 'installed'}")
        admin_lockout(url)
        setup(url)
        lockout(url)
        renew(url)
        bogus(url)
        revoke(url)
        password(url)
        refresh(url)


if __name__ == "__main__":
    main()
