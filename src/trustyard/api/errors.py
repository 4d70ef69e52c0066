"""Every failure of /api/v1 as problem+json (RFC 9457): one mapping, in one place."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from trustyard.auth import audit
from trustyard.db.engine import write_tx
from trustyard.errors import (
    Conflict,
    Denied,
    DomainError,
    Invalid,
    NotFound,
    StateConflict,
    Throttled,
    Unauthenticated,
    Unavailable,
)
from trustyard.policies.interfaces import PolicyInvalid

PROBLEM = "application/problem+json"
CHALLENGE = {"WWW-Authenticate": 'Basic realm="trustyard"'}

# The body of every error answer, as the OpenAPI document shows it (`components/schemas`).
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An error (RFC 9457 problem details)",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
    },
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    429: {"Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route's error answers, for its OpenAPI document."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        if status in _HEADERS:
            response["headers"] = _HEADERS[status]
        documented[status] = response
    return documented


# What any route may answer: a body that is not JSON, bad or missing credentials, a token or
# role that does not allow it, invalid input, the login back-off, an LDAP directory that does
# not answer.
COMMON = problems(400, 401, 403, 422, 429, 503)


class ApiProblem(Exception):
    """A refusal decided by the API itself (authentication, permission). `denied` refusals
    (and every 403) are written to the audit log."""

    def __init__(
        self,
        status: int,
        detail: str,
        headers: dict[str, str] | None = None,
        *,
        denied: bool = False,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.denied = denied or status == 403


def unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, detail, CHALLENGE)


def forbidden(detail: str) -> ApiProblem:
    return ApiProblem(403, detail)


def hidden(kind: str, name: str) -> ApiProblem:
    """A refusal answered exactly like a missing object (a 404 with NotFound's words), so
    that it reveals nothing; unlike a missing object, it is audited as denied."""
    return ApiProblem(404, str(NotFound(kind, name)), denied=True)


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    title = HTTPStatus(status).phrase
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM)


# Each domain error's status. A class not listed answers as its nearest listed parent: a
# missing object 404, a rule broken 422, any other refusal of a domain (a bad token, a refused
# grant) 400.
STATUSES: dict[type[DomainError], int] = {
    PolicyInvalid: 400,  # a rule, expression or template refused at creation (as DTR answered)
    NotFound: 404,
    Conflict: 409,
    StateConflict: 409,
    Invalid: 422,
    Denied: 403,
    Unauthenticated: 401,
    Throttled: 429,
    Unavailable: 503,  # e.g. the LDAP directory does not answer
    DomainError: 400,
}


def refusal(error: DomainError) -> HTTPException:
    """The answer to a domain error: its status, its message, and the headers that go with
    it (the challenge of a failed login, when to retry after the login back-off)."""
    status = next(STATUSES[kind] for kind in type(error).__mro__ if kind in STATUSES)
    headers: dict[str, str] = {}
    if isinstance(error, Unauthenticated):
        headers = CHALLENGE
    elif isinstance(error, Throttled):
        headers = {"Retry-After": str(error.retry_after)}
    return HTTPException(status, error.message, headers)


async def _on_domain_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    answer = refusal(error)
    return problem(answer.status_code, answer.detail, dict(answer.headers or {}))


async def _on_api_problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiProblem)
    if error.denied:
        await _audit_denial(request)
    return problem(error.status, error.detail, error.headers)


async def _audit_denial(request: Request) -> None:
    """Record a refused request of a known caller (the change's transaction, if any, was
    rolled back: this is a transaction of its own). Anonymous refusals are not recorded."""
    actor: tuple[str, str] | None = getattr(request.state, "actor", None)
    if actor is None or not actor[0]:
        return
    route = request.scope.get("route")
    params = request.path_params
    namespace: str | None = params.get("org") or params.get("namespace")  # DTR's /api/v0
    if namespace is None and "/repositories/{name" in str(getattr(route, "path", "")):
        namespace = audit.organization_of(str(params.get("name", "")))
    event = audit.AuditEvent(
        datetime.now(UTC),
        actor[0],
        actor[1],
        str(getattr(route, "name", "") or request.method),
        "api",
        request.url.path[:512],
        "denied",
        request.client.host if request.client else None,
        namespace,
        {"method": request.method},
    )

    def write() -> None:
        with write_tx(request.app.state.accounts.engine) as conn:
            audit.record(conn, event)

    await asyncio.to_thread(write)


async def _on_validation(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    details = "; ".join(
        f"{'.'.join(str(part) for part in item.get('loc', ()))}: {item.get('msg', '')}"
        for item in error.errors()
    )
    return problem(422, details or "invalid request")


async def _on_http(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    return problem(error.status_code, str(error.detail), dict(error.headers or {}))


def _document(app: FastAPI) -> None:
    """Add the problem+json body to the components of the OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        document.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    _document(app)
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(ApiProblem, _on_api_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)
