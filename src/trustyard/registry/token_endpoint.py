"""The Docker token endpoint: GET with Basic credentials, and the OAuth2 form POST (the
`password` and `refresh_token` grants).

Clients learn its address from the `WWW-Authenticate` challenge of /v2. The token carries only
the requested actions the caller may do; an unknown caller gets a token for public pulls.

A caller with credentials who asks for offline access (GET `offline_token=true`, POST
`access_type=offline`) also gets a `refresh_token` (auth/refresh_tokens.py); exchanging it
(POST `grant_type=refresh_token` with `client_id`) answers registry tokens for whatever its
owner may do at that moment, and the same refresh token again (it is not rotated).

Refusals follow OAuth2 (RFC 6749 section 5.2): a JSON body `{"error", "error_description"}`
with `Cache-Control: no-store`; a refresh token that is malformed, unknown, revoked, expired, or
whose owner, password or originating token changed, or that was issued to another `client_id`
is 400 `invalid_grant` (the audit log says which); a missing or repeated parameter is 400
`invalid_request`, a grant other than password and refresh_token 400 `unsupported_grant_type`,
a bad scope 400 `invalid_scope`. Wrong (or missing) login credentials stay 401
(`invalid_client` on GET, `invalid_grant` on POST), and 429 with `Retry-After` while the
caller's address is throttled for that account (auth/login_throttle.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import parse_qs

from trustyard.auth import audit
from trustyard.auth.authorize import Subject
from trustyard.auth.gate import Accounts, directory_errors
from trustyard.auth.ldap_accounts import Actor
from trustyard.auth.permissions import Principal
from trustyard.auth.refresh_tokens import (
    InvalidGrant,
    RefreshToken,
    is_valid_client_id,
    issued_event,
    refused_event,
)
from trustyard.auth.registry_tokens import IssuedToken
from trustyard.auth.scopes import InvalidScope, ScopeGrant, TokenScope, parse_scopes
from trustyard.db.engine import write_tx
from trustyard.errors import LOGIN_FAILURES, DomainError, Throttled, Unavailable
from trustyard.kit.asgi import Send
from trustyard.registry.http import JSON, BodyStalled, ClientGone, Headers, Request, respond

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 64 * 1024
NO_STORE: Headers = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
GRANT_TYPES = ("password", "refresh_token")
# Parameters a client may repeat: containers/image sends one `scope` per scope.
REPEATABLE = frozenset({"scope"})


class _Refused(Exception):
    """An OAuth2 error answer."""

    def __init__(
        self, status: int, error: str, description: str, headers: Headers | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.headers = headers or []


class _StaleLogin(Exception):
    """Credentials remembered in memory no longer log in (changed a moment ago)."""


async def token_endpoint(accounts: Accounts, request: Request, send: Send) -> None:
    try:
        if request.method == "POST":
            body = await _post(accounts, request)
        elif request.method == "GET":
            body = await _get(accounts, request)
        else:
            raise _Refused(405, "invalid_request", "use GET or POST", [(b"allow", b"GET, POST")])
    except (_Refused, ClientGone) as error:
        refused = error if isinstance(error, _Refused) else _incomplete(request, error)
        answer = {"error": refused.error, "error_description": refused.description}
        headers = [JSON, *NO_STORE, *refused.headers]
        await respond(send, refused.status, headers, json.dumps(answer).encode())
        return
    await respond(send, 200, [JSON, *NO_STORE], json.dumps(body).encode())


def _incomplete(request: Request, gone: ClientGone) -> _Refused:
    """A body that broke off (cut short, a bad chunked encoding, a disconnect: 400) or
    stalled past the body timeout (408): one log line, no traceback."""
    log.info("%s /auth/token from %s: %s", request.method, request.address, gone)
    status = 408 if isinstance(gone, BodyStalled) else 400
    return _Refused(status, "invalid_request", f"the request body is incomplete: {gone}")


# --- GET (the Docker token specification) --------------------------------------------------


async def _get(accounts: Accounts, request: Request) -> dict[str, object]:
    query = parse_qs(request.scope.get("query_string", b"").decode("latin-1"))
    _check_service(accounts, query.get("service", [accounts.service])[0])
    client_id = _client_id(query.get("client_id", [None])[0])
    scopes = _scopes(query.get("scope", []))
    offline = query.get("offline_token", [""])[0].lower() == "true"
    authorization = request.header("authorization")
    try:
        subject = await accounts.authenticate(authorization, request.address)
    except LOGIN_FAILURES as error:
        raise _login_refused(error, "invalid_client") from None
    if subject.bearer:
        raise _Refused(401, "invalid_client", "log in with a password or an access token")
    credentials = _basic_credentials(authorization) if offline and subject.principal else None
    issued, refresh = await _issue(
        accounts, subject, scopes, credentials, client_id, request.address
    )
    body: dict[str, object] = {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at.astimezone(UTC).isoformat(),
    }
    if refresh is not None:
        body["refresh_token"] = refresh.text
    return body


# --- POST (OAuth2) -------------------------------------------------------------------------


async def _post(accounts: Accounts, request: Request) -> dict[str, object]:
    form, scopes = await _form(request)
    grant = form.get("grant_type")
    if grant is None:
        raise _Refused(400, "invalid_request", "grant_type is missing")
    if grant not in GRANT_TYPES:
        raise _Refused(
            400, "unsupported_grant_type", "the grant types are password and refresh_token"
        )
    _check_service(accounts, form.get("service", accounts.service))
    client_id = _client_id(form.get("client_id"))
    if grant == "password":
        issued, refresh = await _password_grant(accounts, request, form, scopes, client_id)
    else:
        issued, refresh = await _refresh_grant(accounts, request, form, scopes, client_id)
    body: dict[str, object] = {
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at.astimezone(UTC).isoformat(),
        "scope": _granted_scope(issued.access),
    }
    if refresh is not None:
        body["refresh_token"] = refresh
    return body


async def _password_grant(
    accounts: Accounts,
    request: Request,
    form: dict[str, str],
    scopes: str,
    client_id: str | None,
) -> tuple[IssuedToken, str | None]:
    # Missing credentials are wrong credentials (401 as for GET): the grant needs a login.
    username, password = form.get("username", ""), form.get("password", "")
    header = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    try:
        subject = await accounts.authenticate(header, request.address)
    except LOGIN_FAILURES as error:
        raise _login_refused(error, "invalid_grant") from None
    offline = form.get("access_type") == "offline"
    credentials = (username, password) if offline else None
    issued, refresh = await _issue(
        accounts, subject, scopes, credentials, client_id, request.address
    )
    return issued, refresh.text if refresh is not None else None


async def _refresh_grant(
    accounts: Accounts,
    request: Request,
    form: dict[str, str],
    scopes: str,
    client_id: str | None,
) -> tuple[IssuedToken, str]:
    text = form.get("refresh_token")
    if text is None:
        raise _Refused(400, "invalid_request", "the refresh_token grant needs refresh_token")
    if client_id is None:
        raise _Refused(400, "invalid_request", "client_id is missing")
    address = request.address
    ldap = accounts.authenticator.ldap

    def work() -> IssuedToken | InvalidGrant:
        try:
            with write_tx(accounts.engine) as conn:
                exchange = accounts.refresh_tokens.exchange(conn, text, client_id=client_id)
                name = exchange.principal.name
                user = accounts.authenticator.store.user(conn, name)
                if ldap is None or user is None or not ldap.handles(name, user):
                    return accounts.tokens.issue(conn, exchange.principal, scopes, exchange.scope)
            # A directory account: it may have left the directory (or its groups) since the
            # token was issued. Ask the directory outside any transaction, then decide.
            with directory_errors(name):
                identity = ldap.directory.lookup(name)
            gone = InvalidGrant(
                "its owner is no longer in the directory", public_id=exchange.public_id, owner=name
            )
            if identity is None:
                raise gone
            with write_tx(accounts.engine) as conn:
                exchange = accounts.refresh_tokens.exchange(conn, text, client_id=client_id)
                user = accounts.authenticator.store.user(conn, name)
                if user is None:
                    raise gone
                ldap.sync_teams(conn, user, identity.groups, Actor(name, "user", address))
                principal = accounts.authenticator.load_principal(conn, name)
                return accounts.tokens.issue(conn, principal, scopes, exchange.scope)
        except InvalidGrant as error:
            with write_tx(accounts.engine) as conn:
                audit.record(conn, refused_event(error, client_id, address, datetime.now(UTC)))
            return error

    try:
        outcome = await asyncio.to_thread(work)
    except LOGIN_FAILURES as error:  # the LDAP directory does not answer
        raise _login_refused(error, "invalid_grant") from None
    if isinstance(outcome, InvalidGrant):
        raise _Refused(400, "invalid_grant", "the refresh token is invalid, expired or revoked")
    return outcome, text


# --- shared --------------------------------------------------------------------------------


async def _issue(
    accounts: Accounts,
    subject: Subject,
    scopes: str,
    credentials: tuple[str, str] | None,
    client_id: str | None,
    address: str | None,
) -> tuple[IssuedToken, RefreshToken | None]:
    """A registry token for `subject`; with `credentials` (offline access), also a refresh
    token, made in the same transaction after checking them again without any cache."""
    principal = subject.principal or Principal.anonymous()
    token_scope: TokenScope | None = subject.scope

    def work() -> tuple[IssuedToken, RefreshToken | None]:
        nonlocal principal, token_scope
        # An LDAP user's password goes to the directory before the transaction, not inside it.
        answer = accounts.directory_answer(*credentials) if credentials is not None else None
        with write_tx(accounts.engine) as conn:  # the first token creates the signing key
            refresh = None
            if credentials is not None:
                offline = accounts.refresh_tokens.issue(
                    conn, *credentials, client_id, answer=answer
                )
                if offline is None:
                    raise _StaleLogin
                principal, token_scope, refresh = offline.principal, offline.scope, offline.refresh
                audit.record(conn, issued_event(offline, client_id, address, datetime.now(UTC)))
            return accounts.tokens.issue(conn, principal, scopes, token_scope), refresh

    try:
        return await asyncio.to_thread(work)
    except _StaleLogin:
        raise _Refused(401, "invalid_client", "wrong username or password") from None
    except LOGIN_FAILURES as error:  # the LDAP directory does not answer
        raise _login_refused(error, "invalid_client") from None


def _login_refused(error: DomainError, code: str) -> _Refused:
    if isinstance(error, Throttled):
        wait = error.retry_after
        headers = [(b"retry-after", str(wait).encode())] if wait else []
        return _Refused(429, code, error.message, headers)
    if isinstance(error, Unavailable):  # e.g. the LDAP directory does not answer
        return _Refused(503, "temporarily_unavailable", error.message)
    return _Refused(401, code, error.message)


def _check_service(accounts: Accounts, service: str) -> None:
    if service != accounts.service:
        raise _Refused(400, "invalid_request", f"this registry's service is {accounts.service}")


def _client_id(value: str | None) -> str | None:
    if value is not None and not is_valid_client_id(value):
        raise _Refused(400, "invalid_request", "client_id is 1 to 64 printable ASCII characters")
    return value


def _scopes(values: Sequence[str]) -> str:
    """The requested scopes as one string, checked before any credential is."""
    joined = " ".join(values)
    try:
        parse_scopes(joined)
    except InvalidScope as error:
        raise _Refused(400, "invalid_scope", str(error)) from None
    return joined


def _granted_scope(access: Sequence[ScopeGrant]) -> str:
    """The OAuth2 `scope` answer: what the access token grants, in the request grammar."""
    return " ".join(
        f"{grant.type}:{grant.name}:{','.join(grant.actions)}" for grant in access if grant.actions
    )


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, _, secret = decoded.partition(":")
    return username, secret


async def _form(request: Request) -> tuple[dict[str, str], str]:
    """The form's parameters (each at most once, empty ones count as absent, RFC 6749 3.2)
    and its scopes, joined."""
    parts: list[bytes] = []
    size = 0
    async for chunk in request.chunks():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise _Refused(413, "invalid_request", "form too large")
        parts.append(chunk)
    parsed = parse_qs(b"".join(parts).decode("utf-8", "replace"))
    for name, values in parsed.items():
        if len(values) > 1 and name not in REPEATABLE:
            raise _Refused(400, "invalid_request", f"{name[:40]} is given more than once")
    form = {name: values[0] for name, values in parsed.items() if name not in REPEATABLE}
    return form, _scopes(parsed.get("scope", []))
