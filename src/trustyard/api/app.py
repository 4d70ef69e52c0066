"""The FastAPI application of /api/v1, built once by the composition root."""

from __future__ import annotations

from fastapi import FastAPI

from trustyard.api import (
    audit,
    docs,
    errors,
    jobs,
    organizations,
    policies,
    promotions,
    repositories,
    repository_details,
    scans,
    tokens,
    triage,
    users,
    vex,
    vulndb,
    vulnerabilities,
    webhooks,
)
from trustyard.api.guard import RequestGuard
from trustyard.auth.accounts import AccountService
from trustyard.auth.gate import Accounts
from trustyard.auth.repositories import RepositoryAccessService
from trustyard.content.repositories import RepositoryService
from trustyard.vulnerabilities.triage import TriageStore

PREFIX = "/api/v1"


def create_api(accounts: Accounts) -> FastAPI:
    api = FastAPI(
        title="trustyard management API",
        version="1",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None,  # served from trustyard's own copy of Swagger UI (api/docs.py)
        redoc_url=None,
    )
    api.state.accounts = accounts
    api.state.service = AccountService()
    api.state.repositories = RepositoryService()
    api.state.repository_access = RepositoryAccessService(
        policy=accounts.policy, repositories=api.state.repositories
    )
    api.state.triage = TriageStore()
    errors.install(api)
    docs.install(api, PREFIX)
    # scans, vulnerabilities, triage, policies, promotions and repository_details before
    # repositories: their /repositories/{name:path}/... routes would otherwise be taken by GET
    # /repositories/{name:path}.
    for module in (
        users,
        organizations,
        tokens,
        scans,
        vulnerabilities,
        triage,
        vex,
        policies,
        promotions,
        repository_details,
        repositories,
        audit,
        jobs,
        webhooks,
        vulndb,
    ):
        api.include_router(module.router, prefix=PREFIX, responses=errors.COMMON)
    # DTR's /api/v0 shape of what DTR users' scripts call (the router carries its prefix).
    api.include_router(policies.dtr_router, responses=errors.COMMON)
    return api


def guarded(api: FastAPI, *, max_body: int, body_timeout: float) -> RequestGuard:
    """The API behind its guard: credentials checked and the body capped before FastAPI reads
    the body (api/guard.py)."""
    return RequestGuard(api, max_body=max_body, body_timeout=body_timeout)
