"""The /v2 ASGI application: route, authorize, call the handler, map errors once."""

from __future__ import annotations

import logging

from sqlalchemy.exc import OperationalError

from trustyard.auth.authorize import ANONYMOUS, Resource
from trustyard.kit.asgi import Message, Receive, Scope, Send
from trustyard.oci.errors import ErrorCode, OciError
from trustyard.oci.names import check_name
from trustyard.registry.context import RegistryContext
from trustyard.registry.http import ClientGone, Request, header_list, respond_error
from trustyard.registry.routes import match

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

    async def _dispatch(self, request: Request, send: Send) -> None:
        path: str = request.scope["path"]
        found = match(path)
        if found is None:
            raise OciError(ErrorCode.NAME_UNKNOWN, "no such endpoint", status=404)
        route, params = found
        handler = route.handlers.get(request.method)
        if handler is None:
            allow = ", ".join(sorted(route.handlers))
            error = OciError(
                ErrorCode.UNSUPPORTED, f"{request.method} is not allowed here", status=405
            )
            await respond_error(send, error, header_list([("allow", allow)]))
            return
        subject = ANONYMOUS
        request.scope["trustyard.subject"] = subject
        if route.has_repository:
            name = check_name(params.pop("name"))
            resource = Resource("repository", name)
        else:
            name = None
            resource = Resource("registry", "catalog")
        if not self.ctx.authorize(subject, route.actions[request.method], resource):
            code = ErrorCode.UNAUTHORIZED if subject.anonymous else ErrorCode.DENIED
            raise OciError(code)
        args = [name, *params.values()] if name is not None else list(params.values())
        await handler(self.ctx, request, send, *args)
