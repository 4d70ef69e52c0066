"""The /api/v1 edge's one mapping of domain errors onto problem+json (api/errors.py), on a
small FastAPI app of its own whose routes raise them."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from trustyard import errors
from trustyard.api.errors import CHALLENGE, PROBLEM, install, refusal
from trustyard.auth.accounts import LastOwner
from trustyard.auth.passwords import WeakPassword
from trustyard.auth.refresh_tokens import InvalidGrant
from trustyard.jobs.interfaces import InvalidJob, JobNotFound, JobStateConflict
from trustyard.scanning.service import (
    ManifestNotFound,
    NoScan,
    NotAnImage,
    ScanningDisabled,
    ScanNotReady,
)

CASES: list[tuple[errors.DomainError, int, dict[str, str]]] = [
    (errors.NotFound("user", "alice"), 404, {}),
    (errors.Conflict("team", "devs"), 409, {}),
    (LastOwner("the organization would have no owner"), 409, {}),  # an Invalid, yet 409
    (errors.Invalid("a rule is broken"), 422, {}),
    (WeakPassword("the password is empty"), 422, {}),
    (errors.Denied("not yours"), 403, {}),
    (errors.Unauthenticated("wrong username or password"), 401, CHALLENGE),
    (errors.Throttled("retry in 7 s", 7), 429, {"Retry-After": "7"}),
    (errors.Unavailable("the LDAP directory does not answer"), 503, {}),
    (InvalidGrant("expired"), 400, {}),  # any other refusal of a domain
    (errors.ManifestUnknown("latest"), 404, {}),  # a content error answers as its parent
    (errors.DigestInvalid("bad digest"), 422, {}),
    # the scanning and job families answer as their generic parents
    (ManifestNotFound("acme/app", "v1"), 404, {}),
    (NoScan("acme/app@sha256:ab has not been scanned"), 404, {}),
    (NotAnImage("acme/app@sha256:ab is an artifact"), 409, {}),  # a StateConflict
    (ScanningDisabled("scanning is turned off"), 409, {}),
    (ScanNotReady("the scan of acme/app@sha256:ab is queued"), 409, {}),
    (JobNotFound(7), 404, {}),
    (JobStateConflict("job 7 is queued: only failed or dead jobs are retried"), 409, {}),
    (InvalidJob("a dedupe key has 1 to 255 characters"), 422, {}),
]


@pytest.mark.parametrize(("error", "status", "headers"), CASES, ids=lambda c: type(c).__name__)
def test_each_domain_error_has_its_status_and_headers(
    error: errors.DomainError, status: int, headers: dict[str, str]
) -> None:
    answer = refusal(error)
    assert answer.status_code == status
    assert answer.detail == error.message
    assert dict(answer.headers or {}) == headers


@pytest.fixture(scope="module")
def api() -> FastAPI:
    app = FastAPI()
    install(app)

    @app.get("/raise/{index}")
    def raise_case(index: int) -> None:
        raise CASES[index][0]

    return app


async def _get(api: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


@pytest.mark.parametrize("index", range(len(CASES)))
def test_a_raised_domain_error_is_a_problem_document(api: FastAPI, index: int) -> None:
    error, status, headers = CASES[index]
    response = asyncio.run(_get(api, f"/raise/{index}"))
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    assert response.json() == {
        "type": "about:blank",
        "title": response.reason_phrase,
        "status": status,
        "detail": str(error),
    }
    for name, value in headers.items():
        assert response.headers[name] == value
