"""Everything a /v2 handler needs, wired once by the composition root."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Connection, Engine

from trustyard.auth.authorize import Authorizer
from trustyard.content.manifests import ManifestService
from trustyard.content.stores import ContentStore
from trustyard.content.uploads import UploadService
from trustyard.db.engine import write_tx
from trustyard.storage.interfaces import BlobDriver

if TYPE_CHECKING:
    from trustyard.registry.access import Accounts

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

    def location(self, path: str) -> str:
        return f"{self.url_prefix}{path}"

    async def write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one write transaction on a worker thread, so that waiting for the
        database's write lock never stalls the event loop (and the reads it serves)."""

        def run() -> T:
            with write_tx(self.engine) as conn:
                return work(conn)

        return await asyncio.to_thread(run)
