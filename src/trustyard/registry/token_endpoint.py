"""The Docker token endpoint: GET with Basic credentials, and the OAuth2 password grant (POST).

Clients learn its address from the `WWW-Authenticate` challenge of /v2. The token carries only
the requested actions the caller may do; an unknown caller gets a token for public pulls.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC
from urllib.parse import parse_qs

from trustyard.auth.authorize import Subject
from trustyard.auth.permissions import Principal
from trustyard.auth.registry_tokens import IssuedToken
from trustyard.auth.scopes import InvalidScope
from trustyard.db.engine import write_tx
from trustyard.kit.asgi import Send
from trustyard.oci.errors import ErrorCode, OciError
from trustyard.registry.access import Accounts
from trustyard.registry.http import JSON, Request, respond

MAX_FORM_BYTES = 64 * 1024


async def _refuse(send: Send, status: int, error: str, description: str) -> None:
    body = json.dumps({"error": error, "error_description": description}).encode()
    headers = [JSON, (b"cache-control", b"no-store")]
    await respond(send, status, headers, body)


async def _issue(accounts: Accounts, subject: Subject, scopes: str) -> IssuedToken:
    principal = subject.principal or Principal.anonymous()

    def work() -> IssuedToken:
        with write_tx(accounts.engine) as conn:  # the first token creates the signing key
            return accounts.tokens.issue(conn, principal, scopes, subject.scope)

    return await asyncio.to_thread(work)


async def token_endpoint(accounts: Accounts, request: Request, send: Send) -> None:
    if request.method == "POST":
        await _password_grant(accounts, request, send)
        return
    if request.method != "GET":
        await _refuse(send, 405, "invalid_request", "use GET or POST")
        return
    query = parse_qs(request.scope.get("query_string", b"").decode("latin-1"))
    service = query.get("service", [accounts.service])[0]
    if service != accounts.service:
        await _refuse(
            send, 400, "invalid_request", f"this registry's service is {accounts.service}"
        )
        return
    try:
        subject = await accounts.authenticate(request.header("authorization"), request.address)
    except OciError as error:
        status = 429 if error.code is ErrorCode.TOOMANYREQUESTS else 401
        await _refuse(send, status, "invalid_client", error.message)
        return
    if subject.bearer:
        await _refuse(send, 401, "invalid_client", "log in with a password or an access token")
        return
    try:
        issued = await _issue(accounts, subject, " ".join(query.get("scope", [])))
    except InvalidScope as error:
        await _refuse(send, 400, "invalid_scope", str(error))
        return
    body = {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at.astimezone(UTC).isoformat(),
    }
    await respond(send, 200, [JSON, (b"cache-control", b"no-store")], json.dumps(body).encode())


async def _password_grant(accounts: Accounts, request: Request, send: Send) -> None:
    raw = await _form_body(request)
    if raw is None:
        await _refuse(send, 413, "invalid_request", "form too large")
        return
    form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    if form.get("grant_type") != "password":
        await _refuse(send, 400, "unsupported_grant_type", "only the password grant is supported")
        return
    if form.get("service", accounts.service) != accounts.service:
        await _refuse(
            send, 400, "invalid_request", f"this registry's service is {accounts.service}"
        )
        return
    credentials = f"{form.get('username', '')}:{form.get('password', '')}".encode()
    header = "Basic " + base64.b64encode(credentials).decode()
    try:
        subject = await accounts.authenticate(header, request.address)
        issued = await _issue(accounts, subject, form.get("scope", ""))
    except OciError as error:
        await _refuse(send, 401, "invalid_grant", error.message)
        return
    except InvalidScope as error:
        await _refuse(send, 400, "invalid_scope", str(error))
        return
    body = {
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at.astimezone(UTC).isoformat(),
        "scope": form.get("scope", ""),
    }
    await respond(send, 200, [JSON, (b"cache-control", b"no-store")], json.dumps(body).encode())


async def _form_body(request: Request) -> bytes | None:
    parts: list[bytes] = []
    size = 0
    async for chunk in request.chunks():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        parts.append(chunk)
    return b"".join(parts)
