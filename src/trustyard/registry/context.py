"""Everything a /v2 handler needs, wired once by the composition root."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine

from trustyard.auth import audit
from trustyard.auth.accounts import AccountService
from trustyard.auth.authorize import ANONYMOUS, Authorizer
from trustyard.content.manifests import ManifestService
from trustyard.content.stores import ContentStore
from trustyard.content.uploads import UploadService
from trustyard.db.engine import write_tx
from trustyard.db.writer import Writer
from trustyard.errors import Denied, Invalid, NotFound
from trustyard.events.model import Event, EventType
from trustyard.events.outbox import Outbox
from trustyard.events.pulls import PullRecorder
from trustyard.storage.interfaces import BlobDriver

if TYPE_CHECKING:
    from trustyard.auth.gate import Accounts
    from trustyard.registry.http import Request

T = TypeVar("T")

# Blobs up to this size are read and sent from Python; larger ones leave via pathsend.
INLINE_BLOB_BYTES = 64 * 1024


@dataclass
class RegistryContext:
    engine: Engine
    store: ContentStore
    uploads: UploadService
    manifests: ManifestService
    driver: BlobDriver
    authorize: Authorizer
    url_prefix: str = ""  # public base URL for Location headers ("" = relative)
    accounts: Accounts | None = None  # None: an open registry
    body_timeout: float = 120.0
    events: Outbox | None = None  # None: no domain events (tests of the bare registry)
    pulls: PullRecorder | None = None  # None: pull events are never recorded
    writer: Writer | None = None  # None: a transaction per write, on a worker thread

    def location(self, path: str) -> str:
        return f"{self.url_prefix}{path}"

    async def write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in a write transaction off the event loop, so that waiting for the
        database's write lock never stalls the reads it serves: through the composition
        root's writer (SQLite: group commits), else a transaction of its own on a thread."""
        if self.writer is not None:
            return await self.writer.run(work)

        def run() -> T:
            with write_tx(self.engine) as conn:
                return work(conn)

        return await asyncio.to_thread(run)

    def actor(self, req: Request) -> str | None:
        """Who made the request, as events name them (None: anonymous)."""
        return audit.actor_of(req.scope.get("trustyard.subject", ANONYMOUS))[0] or None

    def audit(
        self,
        conn: Connection,
        req: Request,
        action: str,
        repository: str,
        detail: dict[str, Any] | None = None,
        *,
        kind: str = "repository",
    ) -> None:
        """Record a change to `repository` (or to an object of `kind`) in the audit log, inside
        the change's own write transaction (one INSERT); only with accounts on: the open
        registry has no actors."""
        if self.accounts is None:
            return
        actor, actor_kind = audit.actor_of(req.scope.get("trustyard.subject", ANONYMOUS))
        event = audit.AuditEvent(
            datetime.now(UTC),
            actor,
            actor_kind,
            action,
            kind,
            repository,
            "ok",
            req.address,
            audit.organization_of(repository),
            detail,
        )
        audit.record(conn, event)

    def record(
        self,
        conn: Connection,
        req: Request,
        events: Sequence[Event],
        action: str | None = None,
        repository: str = "",
        detail: dict[str, Any] | None = None,
    ) -> None:
        """What every /v2 change does with what the content service decided, in the change's
        own write transaction: claim the namespace of a repository it created, audit, and
        publish the events (the outbox and its consumers: scanning, webhooks...)."""
        for event in events:
            if event.type is EventType.REPO_CREATED and event.repository is not None:
                self._repository_created(conn, req, event.repository)
        if action is not None:
            self.audit(conn, req, action, repository, detail)
        if self.events is not None:
            self.events.publish(conn, *events)

    def _repository_created(self, conn: Connection, req: Request, name: str) -> None:
        """What a push that created repository `name` adds: the audit record and (accounts
        on) claiming the namespace: one that is no user or organization becomes an
        organization owned by the pusher, so that nobody can create that organization later
        and read the repository."""
        if self.accounts is not None:
            creator = self.actor(req)
            try:
                if creator is None:
                    raise Invalid("an anonymous push cannot create a repository")
                claimed = AccountService(self.accounts.policy.store).claim_namespace(
                    conn, name, creator
                )
            except (Invalid, NotFound) as error:
                raise Denied(f"cannot create {name!r}: {error}") from None
            if claimed:
                namespace = name.split("/", 1)[0]
                detail = {"by": "push", "repository": name}
                self.audit(conn, req, "organization.create", namespace, detail, kind="organization")
        self.audit(conn, req, "repository.create", name, {"by": "push"})
