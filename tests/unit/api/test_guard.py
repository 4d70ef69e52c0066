"""api/guard.py on a small FastAPI app of its own (raw ASGI calls): bodies are capped by the
default limit or by a route's own (LIMIT_KEY), a Content-Length over the limit is refused
before the body is read, a chunked body when it passes the limit, a stalled body with 408."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from trustyard.api import errors
from trustyard.api.guard import LIMIT_KEY, RequestGuard

DEFAULT = 1024
UPLOAD = 8 * 1024

Message = dict[str, Any]


def make_guard(body_timeout: float = 30.0) -> RequestGuard:
    api = FastAPI()
    errors.install(api)

    @api.post("/small")
    def small(body: dict[str, Any]) -> int:
        return len(body)

    @api.post("/upload", openapi_extra={LIMIT_KEY: UPLOAD})
    def upload(body: dict[str, Any]) -> int:
        return len(body)

    @api.post("/stream")
    def stream() -> StreamingResponse:
        return StreamingResponse(iter([b'{"streamed": ', b"true}"]))

    return RequestGuard(api, max_body=DEFAULT, body_timeout=body_timeout)


def call(
    guard: RequestGuard,
    path: str,
    receive: Callable[[], Awaitable[Message]],
    headers: list[tuple[bytes, bytes]],
    spec_version: str = "2.4",
) -> tuple[int, dict[str, Any]]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(guard(scope, receive, send))  # type: ignore[arg-type]
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


def payload(size: int) -> bytes:
    return b'{"a": "' + b"x" * (size - 9) + b'"}'


def whole(body: bytes) -> Callable[[], Awaitable[Message]]:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


@pytest.mark.parametrize(
    ("path", "size", "status"),
    [
        ("/small", DEFAULT, 200),
        ("/small", DEFAULT + 1, 413),
        ("/upload", DEFAULT + 1, 200),  # the route allows more
        ("/upload", UPLOAD, 200),
        ("/upload", UPLOAD + 1, 413),
    ],
)
def test_each_route_has_its_limit(path: str, size: int, status: int) -> None:
    body = payload(size)
    assert len(body) == size
    length = [(b"content-length", str(size).encode())]
    answer, problem = call(make_guard(), path, whole(body), length)
    assert answer == status, problem
    if status == 413:
        assert problem["status"] == 413
        assert str(DEFAULT if path == "/small" else UPLOAD) in problem["detail"]


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    async def receive() -> Message:
        raise AssertionError("the body was read")

    status, problem = call(
        make_guard(), "/small", receive, [(b"content-length", str(10**9).encode())]
    )
    assert (status, problem["status"]) == (413, 413)


def test_a_chunked_body_is_refused_when_it_passes_the_limit() -> None:
    received = 0

    async def receive() -> Message:
        nonlocal received
        received += 1
        assert received <= DEFAULT // 100 + 1, "read on past the limit"
        return {"type": "http.request", "body": b" " * 100, "more_body": True}

    status, problem = call(make_guard(), "/small", receive, [])
    assert (status, problem["status"]) == (413, 413)


def test_a_stalled_body_is_408() -> None:
    async def receive() -> Message:
        await asyncio.Event().wait()  # never set: the client sends nothing more
        raise AssertionError("unreachable")

    status, problem = call(make_guard(body_timeout=0.05), "/small", receive, [])
    assert (status, problem["status"]) == (408, 408)
    assert "0.05 s" in problem["detail"]


def test_a_route_without_a_body_passes_receive_through() -> None:
    """Starlette (before ASGI 2.4) waits for a disconnect through `receive` while it streams a
    response: a body the route never reads is no reason to refuse, whatever its length."""
    calls = 0

    async def receive() -> Message:
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": b" " * 2000, "more_body": False}
        await asyncio.Event().wait()  # the client stays; the listener is cancelled at the end
        raise AssertionError("unreachable")

    length = [(b"content-length", b"2000")]
    status, body = call(make_guard(body_timeout=0.05), "/stream", receive, length, "2.3")
    assert (status, body) == (200, {"streamed": True})
    assert calls >= 1
