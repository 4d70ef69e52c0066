"""What the policy engine reads of stored images: the manifests some (or all) tags of a
repository name, or one manifest by digest, with what a pull of each may download, its
platforms, every tag naming it, and what its image config says (created time, labels).

In few queries whatever the number of tags: one for the tags with their manifests, one for
the children of indexes, one for the blob totals, one for the other tags of the manifests
when only some tags were asked for. Config blobs are read from the BlobDriver, at most 1 MiB
each, once per config digest (a config never changes), and only their platform, `created`
and labels are kept. Functions take the caller's connection; none commits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy import Connection, select

from trustyard.content.stores import ContentStore
from trustyard.db.tables import manifests, tags
from trustyard.errors import DigestInvalid
from trustyard.kit.clock import utc
from trustyard.oci import mediatypes as mt
from trustyard.oci.digest import parse_digest
from trustyard.oci.imageconfig import UNKNOWN_OS, json_object, parse_platform
from trustyard.oci.walk import index_entries, is_attestation
from trustyard.storage.interfaces import BlobDriver, ContentMissing

MAX_CONFIG_BYTES = 1 << 20  # a larger config is not read
MAX_LABELS = 256  # labels kept of one config (the first, by name)
MAX_LABEL_CHARS = 4096  # of a label's key or value
_MEMO_LIMIT = 4096
_CHUNK = 500  # names or digests per IN (...)
_FRACTION = re.compile(r"(\.\d{6})\d+")


@dataclass(frozen=True, slots=True)
class StoredImage:
    """A manifest as a tag (or its digest) names it: `pushed_at` is when the tag was last
    pushed, or for a manifest asked for by digest when it was stored."""

    repository_id: int
    tag: str | None
    digest: str
    media_type: str
    manifest_id: int
    manifest_size: int
    payload: bytes
    pushed_at: datetime


@dataclass(frozen=True, slots=True)
class ConfigFacts:
    """What an image config says that rules read."""

    platform: str | None = None
    created: datetime | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ImageDetails:
    size: int  # manifest, config and layers; an index's children present, with theirs
    platforms: tuple[str, ...]  # os/arch[/variant], sorted
    tags: tuple[str, ...]  # every tag naming the manifest, sorted
    config: ConfigFacts  # an image's; an index's first platform image's (when asked)


def _chunks(items: Iterable[str], size: int = _CHUNK) -> Iterable[list[str]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _platform_text(value: object) -> str | None:
    platform = parse_platform(value)
    if platform.os is None or platform.architecture is None or platform.os == UNKNOWN_OS:
        return None
    parts = [platform.os, platform.architecture] + ([platform.variant] if platform.variant else [])
    return "/".join(parts)


def _created(value: object) -> datetime | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", value.replace("Z", "+00:00")))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _labels(config: object) -> dict[str, str]:
    found = config.get("Labels") if isinstance(config, dict) else None
    if not isinstance(found, dict):
        return {}
    kept = sorted(
        (key, value)
        for key, value in found.items()
        if isinstance(key, str)
        and isinstance(value, str)
        and len(key) <= MAX_LABEL_CHARS
        and len(value) <= MAX_LABEL_CHARS
    )
    return dict(kept[:MAX_LABELS])


def config_facts(document: Mapping[str, Any]) -> ConfigFacts:
    """The platform, `created` and labels (`config.Labels`) of a decoded image config."""
    return ConfigFacts(
        _platform_text(document),
        _created(document.get("created")),
        _labels(document.get("config")),
    )


_COLUMNS = (
    tags.c.repository_id,
    tags.c.name,
    tags.c.updated_at,
    manifests.c.id,
    manifests.c.digest,
    manifests.c.media_type,
    manifests.c.size,
    manifests.c.payload,
)
_TAGGED = select(*_COLUMNS).select_from(tags.join(manifests, manifests.c.id == tags.c.manifest_id))


def _stored(row: Any) -> StoredImage:
    return StoredImage(
        row.repository_id,
        row.name,
        row.digest,
        row.media_type,
        row.id,
        row.size,
        bytes(row.payload),
        utc(row.updated_at),
    )


class ImageReads:
    """Reads of stored images for the policy engine (see the module's docstring). Holds a
    small memo of config facts by config digest."""

    def __init__(self, driver: BlobDriver, store: ContentStore | None = None) -> None:
        self.driver = driver
        self.store = store or ContentStore()
        self._configs: dict[str, ConfigFacts] = {}

    # --- which manifests ---------------------------------------------------------------------
    def tagged(
        self, conn: Connection, repository_id: int, names: Sequence[str] | None = None
    ) -> list[StoredImage]:
        """The repository's tags named `names` (every tag when None) with their manifests, in
        the order the tags were last pushed (oldest first); unknown names are left out."""
        query = _TAGGED.where(tags.c.repository_id == repository_id)
        if names is None:
            found = [_stored(row) for row in conn.execute(query)]
        else:
            found = [
                _stored(row)
                for chunk in _chunks(sorted(set(names)))
                for row in conn.execute(query.where(tags.c.name.in_(chunk)))
            ]
        return sorted(found, key=lambda image: (image.pushed_at, image.tag or ""))

    def tag_list(self, conn: Connection, repository_id: int) -> list[str]:
        """Every tag of the repository (names only), in name order."""
        query = select(tags.c.name).where(tags.c.repository_id == repository_id)
        return sorted(conn.scalars(query))

    def by_digest(self, conn: Connection, repository_id: int, digest: str) -> StoredImage | None:
        row = conn.execute(
            select(
                manifests.c.id,
                manifests.c.digest,
                manifests.c.media_type,
                manifests.c.size,
                manifests.c.payload,
                manifests.c.created_at,
            ).where(manifests.c.repository_id == repository_id, manifests.c.digest == digest)
        ).first()
        if row is None:
            return None
        return StoredImage(
            repository_id,
            None,
            row.digest,
            row.media_type,
            row.id,
            row.size,
            bytes(row.payload),
            utc(row.created_at),
        )

    def tag_names(self, conn: Connection, repository_id: int, digest: str) -> list[str]:
        """The tags naming the manifest `digest` of the repository, in name order."""
        return sorted(self._tags(conn, repository_id, [digest]).get(digest, ()))

    # --- what they are -----------------------------------------------------------------------
    def details(
        self,
        conn: Connection,
        images: Sequence[StoredImage],
        *,
        config: bool,
        all_tags_listed: bool = False,
    ) -> dict[str, ImageDetails]:
        """Size, platforms, tags and (with `config`, for indexes too) config facts of each
        image's manifest, by digest. `all_tags_listed`: `images` are every tag of their
        repository, so the tags need no query. All of one repository."""
        if not images:
            return {}
        repository_id = images[0].repository_id
        documents = {image.digest: json_object(image.payload) or {} for image in images}
        kinds = {image.digest: image.media_type for image in images}
        children = {
            digest: [
                entry for entry in index_entries(documents[digest]) if not is_attestation(entry)
            ]
            for digest, kind in kinds.items()
            if kind in mt.INDEXES
        }
        child_digests = {
            entry["digest"]
            for entries in children.values()
            for entry in entries
            if isinstance(entry.get("digest"), str)
        }
        present = self.store.manifests_by_digest(conn, repository_id, child_digests)
        ids = {image.manifest_id for image in images} | {found[0] for found in present.values()}
        totals = self.store.blob_totals(conn, ids)
        if all_tags_listed:
            named: dict[str, list[str]] = {}
            for image in images:
                if image.tag is not None:
                    named.setdefault(image.digest, []).append(image.tag)
        else:
            named = self._tags(conn, repository_id, list(documents))
        first_children = {
            digest: next(
                (e["digest"] for e in entries if e.get("digest") in present),
                None,
            )
            for digest, entries in children.items()
        }
        child_documents = (
            self._payloads(conn, repository_id, [d for d in first_children.values() if d])
            if config
            else {}
        )
        result: dict[str, ImageDetails] = {}
        for image in images:
            if image.digest in result:
                continue
            size = image.manifest_size + totals.get(image.manifest_id, 0)
            document = documents[image.digest]
            facts = ConfigFacts()
            if image.digest in children:
                for child in {e.get("digest") for e in children[image.digest]}:
                    if isinstance(child, str) and child in present:
                        child_id, child_size = present[child]
                        size += child_size + totals.get(child_id, 0)
                listed = (_platform_text(e.get("platform")) for e in children[image.digest])
                platforms = tuple(sorted({p for p in listed if p is not None}))
                first = first_children[image.digest]
                if config and first is not None and first in child_documents:
                    facts = self._config(child_documents[first])
            else:
                facts = self._config(document)
                platforms = (facts.platform,) if facts.platform else ()
            result[image.digest] = ImageDetails(
                size=size,
                platforms=platforms,
                tags=tuple(sorted(named.get(image.digest, ()))),
                config=facts if config or image.digest not in children else ConfigFacts(),
            )
        return result

    def _tags(
        self, conn: Connection, repository_id: int, digests: Sequence[str]
    ) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for chunk in _chunks(sorted(set(digests))):
            rows = conn.execute(
                select(manifests.c.digest, tags.c.name)
                .select_from(tags.join(manifests, manifests.c.id == tags.c.manifest_id))
                .where(tags.c.repository_id == repository_id, manifests.c.digest.in_(chunk))
            )
            for row in rows:
                found.setdefault(row.digest, []).append(row.name)
        return found

    def _payloads(
        self, conn: Connection, repository_id: int, digests: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(sorted(set(digests))):
            rows = conn.execute(
                select(manifests.c.digest, manifests.c.payload).where(
                    manifests.c.repository_id == repository_id, manifests.c.digest.in_(chunk)
                )
            )
            found.update((row.digest, json_object(bytes(row.payload)) or {}) for row in rows)
        return found

    def _config(self, document: Mapping[str, Any]) -> ConfigFacts:
        """The config facts of an image manifest's config blob (empty when it has none that
        can be read: an artifact, a config too large or missing)."""
        config = document.get("config")
        if not isinstance(config, dict) or config.get("mediaType") not in mt.IMAGE_CONFIGS:
            return ConfigFacts()
        digest, size = config.get("digest"), config.get("size")
        if not isinstance(digest, str) or not isinstance(size, int) or size > MAX_CONFIG_BYTES:
            return ConfigFacts()
        known = self._configs.get(digest)
        if known is not None:
            return known
        try:
            data = b"".join(self.driver.read(parse_digest(digest), 0, MAX_CONFIG_BYTES))
        except (DigestInvalid, ContentMissing, OSError):
            return ConfigFacts()
        facts = config_facts(json_object(data) or {})
        if len(self._configs) >= _MEMO_LIMIT:
            self._configs.clear()
        self._configs[digest] = facts
        return facts
