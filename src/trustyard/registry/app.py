"""The /v2 ASGI application: route, authorize, call the handler, map errors once."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy.exc import OperationalError

from trustyard.auth import audit
from trustyard.auth.authorize import ANONYMOUS, Action, Resource, Subject
from trustyard.errors import LOGIN_FAILURES, DomainError
from trustyard.kit.asgi import ROUTE_KEY, Message, Receive, Scope, Send
from trustyard.oci.names import check_name
from trustyard.registry.context import RegistryContext
from trustyard.registry.errors import (
    ErrorCode,
    OciError,
    answered,
    oci_error,
    oci_headers,
)
from trustyard.registry.http import (
    ClientGone,
    Headers,
    Request,
    header_list,
    public_base,
    respond_error,
)
from trustyard.registry.routes import match
from trustyard.registry.uploads import mount_source

log = logging.getLogger(__name__)


class RegistryApp:
    def __init__(self, ctx: RegistryContext) -> None:
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, self.ctx.body_timeout)
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self._dispatch(request, tracking_send)
        except OciError as error:
            if not started:
                await respond_error(send, error)
        except DomainError as error:
            if not answered(error):  # as unexpected as any other exception
                log.exception("unexpected failure in %s %s", request.method, scope["path"])
            if not started:
                await respond_error(send, oci_error(error), oci_headers(error))
        except OperationalError:
            log.exception("database unavailable during %s %s", request.method, scope["path"])
            if not started:
                busy = OciError(ErrorCode.UNAVAILABLE, "the metadata database is busy; retry")
                await respond_error(send, busy, [(b"retry-after", b"1")])
        except ClientGone as gone:
            log.info("%s %s aborted: %s", request.method, scope["path"], gone)
            if not started:
                aborted = OciError(ErrorCode.BLOB_UPLOAD_INVALID, f"upload aborted: {gone}")
                await respond_error(send, aborted)
        except Exception:
            log.exception("unexpected failure in %s %s", request.method, scope["path"])
            if not started:
                await respond_error(send, OciError(ErrorCode.UNKNOWN, "internal error"))

    def _challenge(
        self,
        request: Request,
        resource: Resource | None,
        action: Action,
        error: str = "",
        source: str | None = None,
    ) -> Headers:
        """WWW-Authenticate for the Docker token flow: where to get a token for what. A mount
        also asks for pull on its `source`, in the same scope parameter (space-separated, as
        the reference registry does), so that the token a client fetches can mount."""
        accounts = self.ctx.accounts
        if accounts is None:
            return []
        base = self.ctx.url_prefix or public_base(request)
        parts = [f'realm="{base}/auth/token"', f'service="{accounts.service}"']
        if resource is not None and resource.kind == "repository":
            wanted = {Action.PUSH: "pull,push", Action.DELETE: "delete"}.get(action, "pull")
            scopes = [f"repository:{resource.name}:{wanted}"]
            if source is not None:
                scopes.append(f"repository:{source}:pull")
            parts.append(f'scope="{" ".join(scopes)}"')
        elif resource is not None:
            parts.append('scope="registry:catalog:*"')
        if error:
            parts.append(f'error="{error}"')
        return [(b"www-authenticate", ("Bearer " + ",".join(parts)).encode())]

    async def _deny(
        self,
        request: Request,
        send: Send,
        subject: Subject,
        resource: Resource,
        action: Action,
        source: str | None = None,
    ) -> None:
        """Anonymous and token-bearing callers are challenged; others learn nothing about a
        repository they may not even read."""
        if subject.anonymous or subject.bearer:
            error = "insufficient_scope" if subject.bearer else ""
            challenge = self._challenge(request, resource, action, error, source)
            await respond_error(send, OciError(ErrorCode.UNAUTHORIZED), challenge)
            return
        await self._audit_denial(request, subject, resource, action)
        if resource.kind == "repository" and not self.ctx.authorize(subject, Action.PULL, resource):
            hidden = OciError(ErrorCode.NAME_UNKNOWN, detail={"name": resource.name})
            await respond_error(send, hidden)
            return
        await respond_error(send, OciError(ErrorCode.DENIED))

    def _unasked_source(self, subject: Subject, source: str) -> bool:
        """A registry token that says nothing about a mount's source (neither grants nor
        refuses pull on it): it was fetched for another request."""
        if not subject.bearer or subject.scope is None:
            return False
        return not subject.scope.answered(source)

    async def _audit_denial(
        self, request: Request, subject: Subject, resource: Resource, action: Action
    ) -> None:
        principal = subject.principal
        event = audit.AuditEvent(
            datetime.now(UTC),
            subject.name or "",
            principal.kind if principal is not None else "anonymous",
            action.value,
            resource.kind,
            resource.name,
            "denied",
            request.address,
            audit.organization_of(resource.name) if resource.kind == "repository" else None,
            {"method": request.method, "path": str(request.scope["path"])[:300]},
        )
        await self.ctx.write(lambda conn: audit.record(conn, event))

    async def _dispatch(self, request: Request, send: Send) -> None:
        path: str = request.scope["path"]
        found = match(path)
        if found is None:
            raise OciError(ErrorCode.NAME_UNKNOWN, "no such endpoint", status=404)
        route, params = found
        request.scope[ROUTE_KEY] = route.name
        handler = route.handlers.get(request.method)
        if handler is None:
            allow = ", ".join(sorted(route.handlers))
            error = OciError(
                ErrorCode.UNSUPPORTED, f"{request.method} is not allowed here", status=405
            )
            await respond_error(send, error, header_list([("allow", allow)]))
            return
        if route.has_repository:
            name = check_name(params.pop("name"))
            resource = Resource("repository", name)
        else:
            name = None
            resource = Resource("registry", "catalog")
        action = route.actions[request.method]
        source = mount_source(request, name) if route.name == "upload_start" else None
        accounts = self.ctx.accounts
        try:
            subject = (
                await accounts.authenticate(request.header("authorization"), request.address)
                if accounts is not None
                else ANONYMOUS
            )
        except LOGIN_FAILURES as error:
            headers = self._challenge(request, resource, action, source=source)
            await respond_error(send, oci_error(error), headers + oci_headers(error))
            return
        request.scope["trustyard.subject"] = subject
        if accounts is not None and route.name == "base":
            # `docker login` and friends probe /v2/ to learn where to get a token; any valid
            # credential (a token with no access at all included) is a successful login.
            if subject.anonymous and not subject.bearer:
                await respond_error(
                    send, OciError(ErrorCode.UNAUTHORIZED), self._challenge(request, None, action)
                )
                return
        elif not self.ctx.authorize(subject, action, resource):
            await self._deny(request, send, subject, resource, action, source)
            return
        elif source is not None and self._unasked_source(subject, source):
            # A token that never asked about the mount's source: challenge once more, for
            # both scopes. A token that asked and was refused goes on to a plain upload.
            challenge = self._challenge(request, resource, action, "insufficient_scope", source)
            await respond_error(send, OciError(ErrorCode.UNAUTHORIZED), challenge)
            return
        args = [name, *params.values()] if name is not None else list(params.values())
        await handler(self.ctx, request, send, *args)
