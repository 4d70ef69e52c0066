"""Scanning as the registry offers it: scans requested on push, on request and as rescans,
their status, the bills of materials they produced, a layer's own result and the component
search. Every method takes the caller's connection and never commits.

A scan belongs to a manifest of a repository (an index is scanned whole: one BOM per
platform); its job (`scan.image`) is enqueued in the transaction that asks for it, with one
live job per manifest (the dedupe key), and the scan row names its job, so the handler finds
its scan by job id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from trustyard.content.manifests import FACT_REPOSITORY_ID, FACT_SCAN_ON_PUSH, FACT_SCANNABLE
from trustyard.content.reads import ContentReads
from trustyard.content.stores import ContentStore
from trustyard.errors import DomainError, NotFound, StateConflict
from trustyard.events.model import Event, EventType
from trustyard.jobs.queue import SqlJobQueue
from trustyard.oci.digest import parse_digest
from trustyard.oci.manifest import parse_manifest, scannable
from trustyard.oci.names import check_tag
from trustyard.scanning.model import LayerScan
from trustyard.scanning.stores import ComponentRow, ScanRecord, ScanStore

SCAN_KIND = "scan.image"
TRIGGERS = ("push", "request", "rescan")


class ScanError(DomainError):
    """Base of the scanning service's refusals. Each is also a generic domain error (a
    missing object, a state that does not allow the request), which is how the edges answer
    it: they do not know these classes."""


class ManifestNotFound(ScanError, NotFound):
    def __init__(self, repository: str, reference: str) -> None:
        message = f"manifest {reference[:200]!r} not found in repository {repository!r}"
        super().__init__("manifest", reference[:200], message)


class NotAnImage(ScanError, StateConflict):
    """The manifest is an artifact (a signature, an SBOM...), not an image or index."""


class ScanningDisabled(ScanError, StateConflict):
    """Scanning is turned off on this registry."""


class NoScan(ScanError, NotFound):
    """The manifest was never scanned."""

    def __init__(self, message: str) -> None:
        super().__init__("scan", "", message)


class ScanNotReady(ScanError, StateConflict):
    """The manifest's scan is queued, running or failed: no bill of materials."""


@dataclass(frozen=True, slots=True)
class Target:
    """A manifest of a repository, as a scan names it."""

    repository: str
    repository_id: int
    digest: str
    media_type: str
    payload: bytes


def dedupe_key(repository_id: int, digest: str) -> str:
    return f"{SCAN_KIND}:{repository_id}:{digest}"


class ScanService:
    def __init__(
        self,
        queue: SqlJobQueue,
        store: ScanStore | None = None,
        content: ContentStore | None = None,
        *,
        enabled: bool = True,
    ) -> None:
        self.queue = queue
        self.store = store or ScanStore()
        self.content = content or ContentStore()
        self.reads = ContentReads()
        self.enabled = enabled

    # --- requesting scans --------------------------------------------------------------------
    def consume(self, conn: Connection, events: Sequence[Event]) -> None:
        """Scan on push, as a consumer of the outbox in the push's own transaction: queue a
        scan of every new image or index whose repository asks for it (one cheap INSERT pair,
        from the facts the push already read; nothing for artifacts)."""
        if not self.enabled:
            return
        for event in events:
            facts = event.facts
            if (
                event.type is EventType.MANIFEST_PUSH
                and facts.get(FACT_SCANNABLE)
                and facts.get(FACT_SCAN_ON_PUSH)
            ):
                digest = str(event.contents["digest"])
                repository_id = int(facts[FACT_REPOSITORY_ID])
                self._enqueue(conn, repository_id, digest, "push", False, event.actor)

    def request(
        self,
        conn: Connection,
        target: Target,
        *,
        force: bool = False,
        requested_by: str | None = None,
    ) -> ScanRecord:
        """Queue a scan of `target` (a rescan when it was scanned before); the scan already
        queued or running for it, if any. `force` re-reads every layer instead of using the
        layer cache."""
        if not self.enabled:
            raise ScanningDisabled("scanning is turned off on this registry (scanning.enabled)")
        previous = self.store.latest(conn, target.repository_id, target.digest)
        trigger = "rescan" if previous is not None else "request"
        scan_id = self._enqueue(
            conn, target.repository_id, target.digest, trigger, force, requested_by
        )
        scan = self.store.get(conn, scan_id)
        assert scan is not None
        return scan

    def enqueue_scan(
        self, conn: Connection, repository_id: int, digest: str, *, requested_by: str | None
    ) -> int:
        """Queue a scan of a stored manifest the caller knows is an image or index (a policy
        that needs its components); the live scan's id when one is queued or running."""
        return self._enqueue(conn, repository_id, digest, "request", False, requested_by)

    def _enqueue(
        self,
        conn: Connection,
        repository_id: int,
        digest: str,
        trigger: str,
        force: bool,
        requested_by: str | None,
    ) -> int:
        payload = {"repository_id": repository_id, "digest": digest}
        job = self.queue.enqueue(
            conn, SCAN_KIND, payload, dedupe_key=dedupe_key(repository_id, digest)
        )
        if not job.created:
            live = self.store.by_job(conn, job.id)
            if live is not None:
                return live.id
        return self.store.create_scan(
            conn,
            repository_id,
            digest,
            job_id=job.id,
            trigger=trigger,
            force=force,
            requested_by=requested_by,
        )

    # --- reading -----------------------------------------------------------------------------
    def target(self, conn: Connection, repository: str, reference: str) -> Target:
        """The manifest a tag or digest names in `repository`."""
        if ":" in reference:
            try:
                digest = str(parse_digest(reference))
            except Exception:
                raise ManifestNotFound(repository, reference) from None
            record = self.content.get_manifest(conn, repository, digest)
        else:
            try:
                check_tag(reference)
            except Exception:
                raise ManifestNotFound(repository, reference) from None
            record = self.content.resolve_tag(conn, repository, reference)
        repository_id = self.content.repository_id(conn, repository)
        if record is None or repository_id is None:
            raise ManifestNotFound(repository, reference)
        return Target(repository, repository_id, record.digest, record.media_type, record.payload)

    def check_scannable(self, target: Target) -> None:
        try:
            parsed = parse_manifest(target.payload, target.media_type)
        except Exception:
            parsed = None
        if parsed is None or not scannable(parsed):
            raise NotAnImage(
                f"{target.digest} is not a container image or an index of images "
                "(an artifact such as a signature or an SBOM): nothing to scan"
            )

    def latest(self, conn: Connection, target: Target) -> ScanRecord:
        scan = self.store.latest(conn, target.repository_id, target.digest)
        if scan is None:
            raise NoScan(f"{target.repository}@{target.digest} has not been scanned")
        return scan

    def boms(self, conn: Connection, target: Target) -> tuple[ScanRecord, list[dict[str, Any]]]:
        """The image BOMs (as JSON, one per platform) of the manifest's latest succeeded
        scan."""
        scan = self.finished_scan(conn, target)
        return scan, self.store.boms(conn, scan.id)

    def packed_boms(self, conn: Connection, target: Target) -> tuple[ScanRecord, bytes | None]:
        """`boms` as stored (a zlib-compressed JSON list), to be sent without parsing."""
        scan = self.finished_scan(conn, target)
        return scan, self.store.packed_boms(conn, scan.id)

    def finished_scan(self, conn: Connection, target: Target) -> ScanRecord:
        """The manifest's latest succeeded scan; `NoScan` or `ScanNotReady` say why not."""
        scan = self.store.latest(conn, target.repository_id, target.digest, succeeded=True)
        if scan is None:
            latest = self.store.latest(conn, target.repository_id, target.digest)
            where = f"{target.repository}@{target.digest}"
            if latest is None:
                raise NoScan(f"{where} has not been scanned: start a scan first")
            if latest.status == "failed":
                raise ScanNotReady(f"the scan of {where} failed: {latest.error}")
            raise ScanNotReady(f"the scan of {where} is {latest.status}: no bill of materials yet")
        return scan

    def layer(self, conn: Connection, repository: str, digest: str) -> LayerScan | None:
        """A layer's own result, if the layer belongs to `repository` and was scanned."""
        if self.content.repository_blob_size(conn, repository, digest) is None:
            return None
        row = self.store.layer_row(conn, digest)
        if row is None or row.status != "succeeded":
            return None
        return self.store.cached_layer(conn, digest, row.scanner_version)

    def search(
        self,
        conn: Connection,
        may_read: Callable[[str], bool],
        *,
        name: str | None,
        version: str | None,
        ecosystem: str | None,
        purl: str | None,
        after: int,
        limit: int,
    ) -> tuple[list[tuple[ComponentRow, list[str]]], int | None]:
        """Up to `limit` matches in repositories `may_read` allows, each with the tags of its
        manifest, and the cursor of the next page (None at the end)."""
        found: list[ComponentRow] = []
        allowed: dict[str, bool] = {}
        cursor, batch = after, max(limit * 2, 100)
        more = True
        while len(found) <= limit and more:
            rows = self.store.search(
                conn,
                name=name,
                version=version,
                ecosystem=ecosystem,
                purl=purl,
                after=cursor,
                limit=batch,
            )
            more = len(rows) == batch
            for row in rows:
                cursor = row.id
                if row.repository not in allowed:
                    allowed[row.repository] = may_read(row.repository)
                if allowed[row.repository]:
                    found.append(row)
                    if len(found) > limit:
                        break
        shown = found[:limit]
        tags = self.reads.manifest_tags(conn, {(r.repository_id, r.manifest_digest) for r in shown})
        page = [(row, tags[(row.repository_id, row.manifest_digest)]) for row in shown]
        following = shown[-1].id if len(found) > limit else None
        return page, following
