"""Every failure of /api/v1 as problem+json (RFC 9457): one mapping, in one place."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from trustyard.auth.interfaces import AccessError, Conflict, Invalid, NotFound
from trustyard.oci.errors import ErrorCode, OciError

PROBLEM = "application/problem+json"
CHALLENGE = {"WWW-Authenticate": 'Basic realm="trustyard"'}


class ApiProblem(Exception):
    """A refusal decided by the API itself (authentication, permission)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, detail, CHALLENGE)


def forbidden(detail: str) -> ApiProblem:
    return ApiProblem(403, detail)


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    title = HTTPStatus(status).phrase
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM)


def _access_status(error: AccessError) -> int:
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, Conflict):
        return 409
    if isinstance(error, Invalid):
        return 422
    return 400


async def _on_access_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, AccessError)
    return problem(_access_status(error), str(error))


async def _on_api_problem(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiProblem)
    return problem(error.status, error.detail, error.headers)


async def _on_oci_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, OciError)  # only credential failures reach the API
    if error.code is ErrorCode.TOOMANYREQUESTS and isinstance(error.detail, dict):
        retry = {"Retry-After": str(error.detail["retryAfter"])}
        return problem(429, error.message, retry)
    return problem(401, error.message, CHALLENGE)


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


def install(app: FastAPI) -> None:
    app.add_exception_handler(AccessError, _on_access_error)
    app.add_exception_handler(ApiProblem, _on_api_problem)
    app.add_exception_handler(OciError, _on_oci_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)
