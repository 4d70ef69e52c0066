"""What an /api/v1 request passes before FastAPI reads its body.

FastAPI reads and parses a request's whole body before it solves the dependencies that check
credentials, so an anonymous client could make a worker parse any amount of JSON. This raw
ASGI wrapper hands FastAPI a `receive` that, when the route asks for the body for the first
time (FastAPI has chosen the route by then: `scope["route"]`), first

- checks the credentials when the route needs a caller (it depends on `get_caller`) or reads
  as an optional one (`get_reader`), and refuses anonymous, bearer or wrong ones with the very
  answer the dependency gives, before a byte of the body is read; the subject it found stays
  in the scope, so the dependency does not check the credentials a second time;
- refuses a Content-Length above the route's limit with 413: `server.api_body_limit` (1 MiB by
  default), or the route's own, for uploads that need more: `openapi_extra={LIMIT_KEY: n}`
  (the OpenAPI document then shows it). Not FastAPI's `max_body_size`: it answers its 413
  in plain text, before this guard sees the body.

Then it counts the body as it arrives (a chunked one has no Content-Length) and refuses it
with 413 past the limit, and with 408 (one log line) when it stalls for `server.body_timeout`
seconds. Refusals are raised as HTTPException, which FastAPI lets through from a body read
and errors.py answers as problem+json. Routes without a body parameter never read a body
(Starlette may still call `receive` to wait for a disconnect): theirs is passed through.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from starlette.exceptions import HTTPException

from trustyard.api.deps import Need, authenticate, get_caller, get_reader, vet
from trustyard.api.errors import ApiProblem, refusal
from trustyard.errors import LOGIN_FAILURES
from trustyard.kit.asgi import Message, Receive, Scope, Send

log = logging.getLogger(__name__)

# The OpenAPI extension a route declares its own body limit with (bytes).
LIMIT_KEY = "x-max-body-bytes"


def needs(dependant: Dependant) -> Need | None:
    """What a route's dependencies ask of the caller: "caller" (credentials), "reader"
    (credentials optional) or nothing."""
    found: Need | None = None
    for dependency in dependant.dependencies:
        if dependency.call is get_caller:
            return "caller"
        if dependency.call is get_reader:
            found = "reader"
        deeper = needs(dependency)
        if deeper == "caller":
            return deeper
        found = found or deeper
    return found


class RequestGuard:
    def __init__(self, api: FastAPI, *, max_body: int, body_timeout: float) -> None:
        self.api = api
        self.max_body = max_body
        self.body_timeout = body_timeout
        self._routes: dict[int, tuple[bool, Need | None, int]] = {}  # by id(route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        await self.api(scope, _Body(self, scope, receive), send)

    def route_terms(self, scope: Scope) -> tuple[bool, Need | None, int]:
        """Whether the route FastAPI chose takes a body, what it needs of the caller, and its
        body limit."""
        route = scope.get("route")
        if route is None:
            return False, None, self.max_body
        known = self._routes.get(id(route))
        if known is None:
            dependant = getattr(route, "dependant", None)
            need = needs(dependant) if isinstance(dependant, Dependant) else None
            extra = getattr(route, "openapi_extra", None) or {}
            own = extra.get(LIMIT_KEY)
            limit = own if isinstance(own, int) else self.max_body
            # A route that declares its own limit reads its body itself (an upload streamed
            # to a file: no body parameter), and is guarded like any other.
            takes_body = getattr(route, "body_field", None) is not None or isinstance(own, int)
            known = self._routes[id(route)] = (takes_body, need, limit)
        return known


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            if not value.isdigit():
                raise HTTPException(400, "Content-Length is not a number")
            return int(value)
    return None


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the request body is larger than {limit} bytes (this route's limit)")


class _Body:
    """The request's `receive`: admits the request at its first call, then counts the body
    against the limit and times each wait."""

    def __init__(self, guard: RequestGuard, scope: Scope, receive: Receive) -> None:
        self.guard = guard
        self.scope = scope
        self.receive = receive
        self.admitted = False
        self.limit = guard.max_body
        self.size = 0
        self.complete = False

    async def _admit(self) -> None:
        takes_body, need, self.limit = self.guard.route_terms(self.scope)
        if not takes_body:
            self.complete = True  # nothing reads this body: pass `receive` through
            return
        if need is not None:
            try:
                vet(await authenticate(self.guard.api.state.accounts, self.scope), need)
            except ApiProblem as refused:
                raise HTTPException(refused.status, refused.detail, refused.headers) from None
            except LOGIN_FAILURES as error:  # wrong credentials, the login back-off, LDAP down
                raise refusal(error) from None
        declared = _content_length(self.scope)
        if declared is not None and declared > self.limit:
            raise _too_large(self.limit)

    async def __call__(self) -> Message:
        if not self.admitted:
            self.admitted = True
            await self._admit()
        if self.complete:  # after the body (Starlette waits for a disconnect this way)
            return await self.receive()
        try:
            async with asyncio.timeout(self.guard.body_timeout):
                message = await self.receive()
        except TimeoutError:
            client = self.scope.get("client")
            seconds = self.guard.body_timeout
            log.info(
                "%s %s from %s: the body stalled for %g s",
                self.scope["method"],
                self.scope["path"],
                client[0] if client else None,
                seconds,
            )
            raise HTTPException(408, f"the request body stalled for {seconds:g} s") from None
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if self.size > self.limit:
                raise _too_large(self.limit)
            self.complete = not message.get("more_body", False)
        else:
            self.complete = True
        return message
