"""Hostile requests to /api/v1 and /auth/token on a real server (raw sockets where httpx would
not send them): credentials are checked before a body is read, bodies are capped (413), a
stalled body is 408, a broken or cut-short one 400 with one log line and no traceback, a bearer
token whose times overflow is 401, and a private repository answers like a missing one after
the same work (the audit of the refusal included)."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import jwt
import pytest

from tests.integration.test_api import PROBLEM, assert_problem
from tests.integration.webhook_helpers import eventually
from tests.support.ports import LOOPBACK
from tests.support.server import TrustyardServer
from trustyard.auth.signing import SigningKeys
from trustyard.db.engine import make_engine, write_tx

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "an admin password for abuse tests"
PASSWORD = "bob's long and honest password"
LIMIT = 1024 * 1024  # server.api_body_limit's default
STALL = 2  # server.body_timeout of this server, in seconds
ORGS = "/api/v1/organizations"


@dataclass
class World:
    server: TrustyardServer

    def client(self, login: tuple[str, str] | None = None) -> httpx.Client:
        auth = httpx.BasicAuth(*login) if login else None
        return httpx.Client(base_url=self.server.url, auth=auth, timeout=60)


ADMIN = ("admin", ADMIN_PASSWORD)
BOB = ("bob", PASSWORD)


@pytest.fixture(scope="module")
def world(start_server: Callable[..., TrustyardServer]) -> World:
    """bob, a user; admin/secret, a private repository bob may not read."""
    server = start_server(
        "api-abuse",
        TRUSTYARD_AUTH__ENABLED="true",
        TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD,
        TRUSTYARD_SERVER__BODY_TIMEOUT=str(STALL),
    )
    world = World(server)
    with world.client(ADMIN) as admin:
        made = admin.post("/api/v1/users", json={"username": "bob", "password": PASSWORD})
        assert made.status_code == 201, made.text
        made = admin.post(
            "/api/v1/repositories", json={"name": "admin/secret", "visibility": "private"}
        )
        assert made.status_code == 201, made.text
    return world


def basic(login: tuple[str, str]) -> bytes:
    return b"Basic " + base64.b64encode(":".join(login).encode())


def exchange(server: TrustyardServer, request: bytes, *, half_close: bool = True) -> bytes:
    """Send raw bytes, half-close unless told not to, and read the whole answer (the server
    closes the connection or the answer's Content-Length ends it)."""
    with socket.create_connection((LOOPBACK, server.port)) as sock:
        sock.settimeout(30)  # a safety net only: every case is answered long before
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            head, _, body = answer.partition(b"\r\n\r\n")
            if _ and len(body) >= _length(head):
                return answer
            part = sock.recv(65536)
            if not part:
                return answer
            answer += part


def _length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 62


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> dict[str, object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: " + PROBLEM.encode() in head.lower() or b"json" in head.lower(), head
    parsed: dict[str, object] = json.loads(body)
    return parsed


def post_head(path: str, *headers: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1".encode(), b"Host: registry", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


# --- 14: credentials before the body, bodies capped -------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, basic(("admin", "a wrong password")), b"Bearer not.a.token"],
    ids=["anonymous", "wrong-password", "bad-bearer"],
)
def test_a_caller_without_valid_credentials_is_refused_before_the_body(
    world: World, authorization: bytes | None
) -> None:
    """The server answers 401 while the client has sent none of its 30 MB body."""
    headers = [b"Content-Type: application/json", b"Content-Length: 30000000"]
    if authorization is not None:
        headers.append(b"Authorization: " + authorization)
    answer = exchange(world.server, post_head(ORGS, *headers), half_close=False)
    assert status_of(answer) == 401, answer[:300]
    assert body_of(answer)["status"] == 401
    assert b"www-authenticate: basic" in answer.lower()


def test_a_declared_length_over_the_limit_is_413_before_the_body(world: World) -> None:
    headers = [
        b"Authorization: " + basic(ADMIN),
        b"Content-Type: application/json",
        f"Content-Length: {LIMIT + 1}".encode(),
    ]
    answer = exchange(world.server, post_head(ORGS, *headers), half_close=False)
    assert status_of(answer) == 413, answer[:300]
    problem = body_of(answer)
    assert problem["status"] == 413
    assert str(LIMIT) in str(problem["detail"])


def test_a_chunked_body_over_the_limit_is_413(world: World) -> None:
    piece = b" " * 65536

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "chunky"'
        for _ in range(LIMIT // len(piece) + 1):
            yield piece
        yield b"}"

    with world.client(ADMIN) as admin:
        answer = admin.post(ORGS, content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in answer.request.headers
    assert str(LIMIT) in str(assert_problem(answer, 413)["detail"])


def test_a_body_under_the_limit_is_read(world: World) -> None:
    """Padding up to the limit is no reason to refuse (the body is JSON with spaces)."""
    body = b'{"name": "padded"' + b" " * (LIMIT - 100) + b"}"
    with world.client(ADMIN) as admin:
        answer = admin.post(ORGS, content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 201, answer.text


# --- 18: malformed, stalled and overflowing input ---------------------------------------------

TOKEN_FORM = [b"Content-Type: application/x-www-form-urlencoded"]
FORM = b"grant_type=password&username=admin&password=x"


@pytest.mark.parametrize(
    ("request_bytes", "words"),
    [
        (
            post_head("/auth/token", *TOKEN_FORM, b"Transfer-Encoding: chunked")
            + b"ZZZ\r\nabc\r\n0\r\n\r\n",
            "bad-chunk",
        ),
        (post_head("/auth/token", *TOKEN_FORM, b"Content-Length: 100") + FORM, "cut-short"),
    ],
    ids=["bad-chunked-encoding", "cut-short"],
)
def test_a_broken_token_request_body_is_400_with_one_log_line(
    world: World, request_bytes: bytes, words: str
) -> None:
    before = world.server.log()
    answer = exchange(world.server, request_bytes)
    assert status_of(answer) == 400, answer[:300]
    assert body_of(answer)["error"] == "invalid_request"

    def logged() -> list[str]:
        added = world.server.log()[len(before) :]
        return [line for line in added.splitlines() if "/auth/token from" in line]

    assert len(eventually(logged, timeout=10, what=f"the log line of {words}")) == 1
    assert "Traceback" not in world.server.log()[len(before) :]


def test_a_stalled_token_request_body_is_408(world: World) -> None:
    request = post_head("/auth/token", *TOKEN_FORM, b"Content-Length: 100") + FORM[:10]
    answer = exchange(world.server, request, half_close=False)
    assert status_of(answer) == 408, answer[:300]
    assert body_of(answer)["error"] == "invalid_request"


def test_a_stalled_api_body_is_408_after_the_body_timeout(world: World) -> None:
    before = world.server.log()
    headers = [b"Authorization: " + basic(ADMIN), b"Content-Length: 100"]
    answer = exchange(
        world.server,
        post_head(ORGS, *headers, b"Content-Type: application/json") + b'{"name": ',
        half_close=False,
    )
    assert status_of(answer) == 408, answer[:300]
    assert f"{STALL} s" in str(body_of(answer)["detail"])
    added = world.server.log()[len(before) :]
    assert "Traceback" not in added
    assert len([line for line in added.splitlines() if "the body stalled" in line]) == 1


def forged_token(server: TrustyardServer, **claims: object) -> str:
    """A registry token signed with the server's own key."""
    assert httpx.get(f"{server.url}/auth/token", params={"service": "trustyard"}).is_success
    passphrase = (server.data_dir / "signing.passphrase").read_text().strip()
    engine = make_engine(server.database_url or f"sqlite:///{server.data_dir / 'trustyard.db'}")
    try:
        with write_tx(engine) as conn:
            signer = SigningKeys(passphrase).current(conn)
            token = signer.issue("admin", "trustyard", [], timedelta(minutes=5))
    finally:
        engine.dispose()
    payload = jwt.decode(token, options={"verify_signature": False})
    payload.update(claims)
    pem = signer.private_pem()
    return jwt.encode(payload, pem, algorithm="ES256", headers={"kid": signer.kid})


@pytest.mark.parametrize("exp", [10**30, 1e30, 2**63], ids=["10**30", "1e30", "2**63"])
def test_a_bearer_token_whose_expiry_overflows_is_401(world: World, exp: object) -> None:
    token = forged_token(world.server, exp=exp)
    bearer = {"authorization": f"Bearer {token}"}
    with world.client() as anonymous:
        registry = anonymous.get("/v2/", headers=bearer)
        assert registry.status_code == 401, registry.text
        assert_problem(anonymous.get("/api/v1/users/me", headers=bearer), 401)


# --- 19: a private repository answers like a missing one, after the same work -----------------

SUFFIXES = ["", "/manifests/latest/scan", "/manifests/latest/bom"]


def comparable(answer: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted((k, v) for k, v in answer.headers.items() if k != "date")
    return answer.status_code, headers, answer.content.replace(b"absent", b"secret")


@pytest.mark.parametrize("suffix", SUFFIXES, ids=["repository", "scan", "bom"])
def test_a_private_repository_answers_byte_for_byte_like_a_missing_one(
    world: World, suffix: str
) -> None:
    with world.client(BOB) as bob:
        private = bob.get(f"/api/v1/repositories/admin/secret{suffix}")
        missing = bob.get(f"/api/v1/repositories/admin/absent{suffix}")  # same length
    assert_problem(private, 404)
    assert comparable(private) == comparable(missing)


@pytest.mark.parametrize("suffix", SUFFIXES, ids=["repository", "scan", "bom"])
def test_reading_a_missing_repository_does_the_work_of_a_refusal(world: World, suffix: str) -> None:
    """The refusal of a private repository is audited; reading a missing one writes the very
    same record, so the two cost the same (bench/api_abuse.py existence measures the time)."""
    name = f"admin/gone{len(suffix)}"
    with world.client(BOB) as bob:
        assert bob.get(f"/api/v1/repositories/{name}{suffix}").status_code == 404
    with world.client(ADMIN) as admin:
        events = admin.get("/api/v1/audit", params={"actor": "bob", "limit": 50}).json()
    denied = [e["resource"] for e in events["items"] if e["outcome"] == "denied"]
    assert any(name in resource for resource in denied), events["items"][:3]
