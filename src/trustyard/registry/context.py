"""Everything a /v2 handler needs, wired once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from trustyard.auth.authorize import Authorizer
from trustyard.content.manifests import ManifestService
from trustyard.content.stores import ContentStore
from trustyard.content.uploads import UploadService
from trustyard.storage.interfaces import BlobDriver

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
    body_timeout: float = 120.0

    def location(self, path: str) -> str:
        return f"{self.url_prefix}{path}"
