"""Gathering `ImageFacts`: of one tag, of one manifest by digest, or of many tags of a
repository at once, in a few queries whatever their number, loading only the fact groups the
policy needs.

Manifests, tags, sizes, platforms and config facts come from content (`content.images`);
components from a `ComponentSource` (scanning's latest succeeded scan) when the policy needs
the scan; counts after triage from a `CountSource` (vulnerabilities) when it needs them. A
source the registry does not have (scanning or matching turned off) leaves its group None, so
rules that need it stay pending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection

from trustyard.content.images import ImageReads, StoredImage
from trustyard.content.interfaces import Repository
from trustyard.kit.clock import utc_now
from trustyard.policies.interfaces import (
    ComponentFact,
    ComponentSource,
    CountSource,
    ImageFacts,
    Need,
    VulnCounts,
)


class FactsLoader:
    def __init__(
        self,
        images: ImageReads,
        components: ComponentSource | None = None,
        counts: CountSource | None = None,
    ) -> None:
        self.images = images
        self.components = components
        self.counts = counts

    def tag(
        self,
        conn: Connection,
        repository: Repository,
        tag: str,
        needs: frozenset[Need],
        now: datetime | None = None,
    ) -> ImageFacts | None:
        """The facts of the image `tag` names now (None: no such tag)."""
        found = self.tags(conn, repository, needs, [tag], now)
        return found[0] if found else None

    def digest(
        self,
        conn: Connection,
        repository: Repository,
        digest: str,
        needs: frozenset[Need],
        now: datetime | None = None,
    ) -> ImageFacts | None:
        """The facts of a manifest judged by digest (no tag under evaluation)."""
        image = self.images.by_digest(conn, repository.id, digest)
        if image is None:
            return None
        return self._facts(conn, repository, [image], needs, now, all_tags=False)[0]

    def tags(
        self,
        conn: Connection,
        repository: Repository,
        needs: frozenset[Need],
        names: Sequence[str] | None = None,
        now: datetime | None = None,
    ) -> list[ImageFacts]:
        """The facts of the tags `names` (every tag of the repository when None), the
        least recently pushed first; unknown names are left out."""
        images = self.images.tagged(conn, repository.id, names)
        return self._facts(conn, repository, images, needs, now, all_tags=names is None)

    def _facts(
        self,
        conn: Connection,
        repository: Repository,
        images: Sequence[StoredImage],
        needs: frozenset[Need],
        now: datetime | None,
        *,
        all_tags: bool,
    ) -> list[ImageFacts]:
        if not images:
            return []
        details = self.images.details(
            conn, images, config=Need.CONFIG in needs, all_tags_listed=all_tags
        )
        digests = sorted(details)
        components: Mapping[str, Sequence[ComponentFact]] = {}
        if Need.SCAN in needs and self.components is not None:
            components = self.components.components(conn, repository.id, digests)
        counts: Mapping[str, VulnCounts] = {}
        if Need.VULNERABILITIES in needs and self.counts is not None:
            counts = self.counts.counts(
                conn, repository.id, repository.namespace, digests, now or utc_now()
            )
        result = []
        for image in images:
            detail = details[image.digest]
            found = components.get(image.digest)
            result.append(
                ImageFacts(
                    repository=repository.name,
                    digest=image.digest,
                    media_type=image.media_type,
                    tag=image.tag,
                    tags=detail.tags,
                    size=detail.size,
                    pushed_at=image.pushed_at,
                    created_at=detail.config.created,
                    labels=detail.config.labels,
                    platforms=detail.platforms,
                    components=tuple(found) if found is not None else None,
                    vulnerabilities=counts.get(image.digest),
                )
            )
        return result
