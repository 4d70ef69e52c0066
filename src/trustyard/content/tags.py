"""A repository's tags as people browse them: the manifest each names, its total size, its
platforms and when the tag was last pushed.

Sizes are what a pull of the tag may download: the manifest, plus its config and layers (an
image) or its platforms' manifests with theirs (an index; children missing from the repository
count for nothing). Platforms come from an index's descriptors, or from an image's config blob
(read once per config digest: blobs never change).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from trustyard.content.interfaces import TagRow
from trustyard.content.stores import ContentStore
from trustyard.errors import DigestInvalid
from trustyard.oci import mediatypes as mt
from trustyard.oci.digest import parse_digest
from trustyard.oci.imageconfig import UNKNOWN_OS, json_object, parse_platform
from trustyard.oci.walk import index_entries
from trustyard.storage.interfaces import BlobDriver, ContentMissing

# Image configs are a few KiB; a larger one is not read for its platform.
MAX_CONFIG_BYTES = 1 << 20
_MEMO_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class TagDetail:
    name: str
    digest: str
    media_type: str
    size: int
    platforms: tuple[str, ...]
    pushed_at: datetime


def _document(payload: bytes) -> dict[str, Any]:
    return json_object(payload) or {}


def _platform(value: object) -> str | None:
    """`os/architecture[/variant]` of a platform object or config; None when it names no
    platform: a field missing, or the unknown os of attestations."""
    platform = parse_platform(value)
    os_name, arch, variant = platform.os, platform.architecture, platform.variant
    if os_name is None or arch is None or os_name == UNKNOWN_OS:
        return None
    return f"{os_name}/{arch}/{variant}" if variant else f"{os_name}/{arch}"


class TagService:
    def __init__(self, store: ContentStore, driver: BlobDriver) -> None:
        self.store = store
        self.driver = driver
        self._config_platforms: dict[str, str | None] = {}

    def page(
        self, conn: Connection, repository_id: int, limit: int, after: str | None
    ) -> list[TagDetail]:
        """Up to `limit` tags in byte order after `after`, with their details."""
        rows = self.store.tag_rows(conn, repository_id, limit, after)
        documents = {row.digest: _document(row.payload) for row in rows}
        children = {
            row.digest: [
                item["digest"]
                for item in index_entries(documents[row.digest])
                if isinstance(item.get("digest"), str)
            ]
            for row in rows
            if row.media_type in mt.INDEXES
        }
        present = self.store.manifests_by_digest(
            conn, repository_id, (digest for listed in children.values() for digest in listed)
        )
        totals = self.store.blob_totals(
            conn, [row.manifest_id for row in rows] + [found[0] for found in present.values()]
        )
        return [self._detail(row, documents[row.digest], children, present, totals) for row in rows]

    def _detail(
        self,
        row: TagRow,
        document: dict[str, Any],
        children: dict[str, list[str]],
        present: dict[str, tuple[int, int]],
        totals: dict[int, int],
    ) -> TagDetail:
        size = row.manifest_size + totals.get(row.manifest_id, 0)
        platforms: Iterable[str | None] = ()
        if row.digest in children:
            for child in set(children[row.digest]):
                if child in present:
                    child_id, child_size = present[child]
                    size += child_size + totals.get(child_id, 0)
            platforms = (_platform(item.get("platform")) for item in index_entries(document))
        elif row.media_type in mt.IMAGE_MANIFESTS:
            platforms = (self._image_platform(document),)
        shown = tuple(sorted({platform for platform in platforms if platform is not None}))
        return TagDetail(row.name, row.digest, row.media_type, size, shown, row.pushed_at)

    def _image_platform(self, document: dict[str, Any]) -> str | None:
        config = document.get("config")
        if not isinstance(config, dict) or config.get("mediaType") not in mt.IMAGE_CONFIGS:
            return None
        digest, size = config.get("digest"), config.get("size")
        if not isinstance(digest, str) or not isinstance(size, int) or size > MAX_CONFIG_BYTES:
            return None
        if digest in self._config_platforms:
            return self._config_platforms[digest]
        try:
            data = b"".join(self.driver.read(parse_digest(digest), 0, MAX_CONFIG_BYTES))
        except (DigestInvalid, ContentMissing, OSError):  # listed without a platform
            return None
        found = _platform(_document(data))
        if len(self._config_platforms) >= _MEMO_LIMIT:
            self._config_platforms.clear()
        self._config_platforms[digest] = found
        return found
