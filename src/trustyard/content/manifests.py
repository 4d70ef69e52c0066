"""Manifest and tag logic: validate what is pushed, index what it references."""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import Connection

from trustyard.content.hotreads import HotReads
from trustyard.content.interfaces import ManifestRecord, Page, ReferrerRecord
from trustyard.content.stores import ContentStore
from trustyard.errors import (
    DigestMismatch,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameUnknown,
)
from trustyard.events import model as events
from trustyard.events.model import Event
from trustyard.oci import mediatypes as mt
from trustyard.oci.digest import DEFAULT_ALGORITHM, Digest, digest_bytes, parse_digest
from trustyard.oci.manifest import ParsedManifest, parse_manifest, scannable
from trustyard.oci.names import check_tag, is_valid_tag


@dataclass(frozen=True, slots=True)
class PushedManifest:
    """What a manifest push decided, with the domain events it implies (in order: the
    repository's creation, the new manifest, the tag), for the edge to publish."""

    digest: Digest
    subject: str | None
    created: bool
    repository_created: bool = False
    media_type: str = ""
    size: int = 0
    artifact_type: str | None = None
    repository_id: int = 0
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class DeletedManifest:
    """What a DELETE removed: the manifest's digest and the tags that named it (a tag delete
    removes one tag; `digest` is the manifest it named), with the events it implies."""

    digest: str
    tags: tuple[str, ...]
    events: tuple[Event, ...] = ()


# The facts a MANIFEST_PUSH event carries for consumers in the push's transaction (see
# events.model.Event.facts): the repository's id, whether the repository asks for a scan of
# every pushed image, and whether this manifest is one (an image or an index of images). A
# TAG_PUSH carries the repository's id too (the policies' trigger reads it).
FACT_REPOSITORY_ID = "repository_id"
FACT_SCAN_ON_PUSH = "scan_on_push"
FACT_SCANNABLE = "scannable"


class ManifestService:
    def __init__(self, store: ContentStore, hot: HotReads) -> None:
        self.store = store
        self.hot = hot

    def get(self, repository: str, reference: str) -> ManifestRecord:
        """The manifest a tag or digest names (through the hot-read cache). A tag that breaks
        the tag grammar cannot exist, so it is unknown like any other (pushing it is 400)."""
        if ":" in reference:
            record = self.hot.manifest(repository, str(parse_digest(reference)), by_digest=True)
        elif is_valid_tag(reference):
            record = self.hot.manifest(repository, reference, by_digest=False)
        else:
            record = None
        if record is None:
            raise ManifestUnknown(reference)
        return record

    def put(
        self,
        conn: Connection,
        repository: str,
        reference: str,
        body: bytes,
        content_type: str | None,
        actor: str | None = None,
    ) -> PushedManifest:
        """Store a manifest (and its tag), checking what it references; `actor` is who the
        events name (None: anonymous)."""
        tag: str | None = None
        if ":" in reference:
            claimed = parse_digest(reference)
            digest = digest_bytes(body, claimed.algorithm)
            if digest != claimed:
                raise DigestMismatch(f"manifest body has digest {digest}, not {claimed}")
        else:
            tag = check_tag(reference)
            digest = digest_bytes(body, DEFAULT_ALGORITHM)
        parsed = parse_manifest(body, content_type)
        repository_id, repository_created, scan_on_push = self.store.push_target(conn, repository)
        manifest_id = self.store.manifest_id(conn, repository_id, str(digest))
        created = manifest_id is None
        if manifest_id is None:
            self._check_references(conn, repository_id, parsed)
            record = ManifestRecord(
                str(digest),
                parsed.media_type,
                body,
                str(parsed.subject.digest) if parsed.subject else None,
            )
            references = [("blob", str(d.digest)) for d in parsed.blobs if not d.foreign]
            references += [("manifest", str(d.digest)) for d in parsed.children]
            manifest_id = self.store.insert_manifest(
                conn, repository_id, record, parsed.artifact_type, parsed.annotations, references
            )
        if tag is not None:
            self.store.set_tag(conn, repository_id, tag, manifest_id)
        subject = str(parsed.subject.digest) if parsed.subject else None
        happened: list[Event] = []
        if repository_created:
            happened.append(events.repository_created(repository, "private", "push", actor))
        if created:
            facts = {
                FACT_REPOSITORY_ID: repository_id,
                FACT_SCAN_ON_PUSH: scan_on_push,
                FACT_SCANNABLE: scannable(parsed),
            }
            happened.append(
                events.manifest_pushed(
                    repository,
                    str(digest),
                    parsed.media_type,
                    len(body),
                    actor,
                    artifact_type=parsed.artifact_type,
                    subject=subject,
                    facts=facts,
                )
            )
        if tag is not None:
            tagged = events.tag_pushed(repository, tag, str(digest), parsed.media_type, actor)
            happened.append(replace(tagged, facts={FACT_REPOSITORY_ID: repository_id}))
        return PushedManifest(
            digest,
            subject,
            created,
            repository_created,
            parsed.media_type,
            len(body),
            parsed.artifact_type,
            repository_id,
            tuple(happened),
        )

    def _check_references(
        self, conn: Connection, repository_id: int, parsed: ParsedManifest
    ) -> None:
        wanted = [d for d in parsed.blobs if not d.foreign]
        sizes = self.store.linked_blob_sizes(conn, repository_id, [str(d.digest) for d in wanted])
        for descriptor in wanted:
            size = sizes.get(str(descriptor.digest))
            if size is None:
                raise ManifestBlobUnknown(
                    str(descriptor.digest),
                    f"blob {descriptor.digest} is not in this repository; push it first",
                )
            if size != descriptor.size:
                raise ManifestInvalid(
                    f"descriptor of {descriptor.digest} says {descriptor.size} bytes,"
                    f" the blob has {size}",
                )
        children = [str(d.digest) for d in parsed.children]
        missing = self.store.missing_manifests(conn, repository_id, children)
        if missing:
            raise ManifestBlobUnknown(
                missing[0], f"manifest {missing[0]} is not in this repository; push it first"
            )

    def delete(
        self, conn: Connection, repository: str, reference: str, actor: str | None = None
    ) -> DeletedManifest:
        """Delete a manifest (by digest, with every tag naming it) or one tag."""
        if ":" in reference:
            digest = str(parse_digest(reference))
            tags = self.store.manifest_tags(conn, repository, digest)
            deleted = self.store.delete_manifest(conn, repository, digest)
        else:
            tag = check_tag(reference)
            named = self.store.resolve_tag(conn, repository, tag)
            digest, tags = (named.digest if named else ""), [tag]
            deleted = self.store.delete_tag(conn, repository, tag)
        if not deleted:
            raise ManifestUnknown(reference)
        happened = [events.tag_deleted(repository, tag, digest, actor) for tag in tags]
        if ":" in reference:
            happened.append(events.manifest_deleted(repository, digest, tags, actor))
        return DeletedManifest(digest, tuple(tags), tuple(happened))

    def tags(self, repository: str, limit: int | None, last: str | None) -> Page:
        """A page of tags (through the hot-read cache); n=0 still checks the repository."""
        page = self.hot.tag_page(repository, limit, last)
        if page is None:
            raise NameUnknown(repository)
        return page

    def referrers(
        self, conn: Connection, repository: str, digest: str, artifact_type: str | None
    ) -> list[ReferrerRecord]:
        parse_digest(digest)
        found = self.store.referrers(conn, repository, digest)
        if artifact_type is not None:
            found = [r for r in found if r.artifact_type == artifact_type]
        return found


def acceptable(media_type: str, accept: list[str]) -> bool:
    """Whether a stored manifest may be served to a client sending these Accept types."""
    if not accept or media_type not in mt.MANIFEST_TYPES:
        return True
    return any(a in ("*/*", "application/*", media_type) for a in accept)
