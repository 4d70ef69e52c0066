"""The `scan.image` job: scan a pushed manifest (every platform of an index) through the
registry's own storage, with the layer cache in the database, and record its BOMs.

Idempotent: a scan that already finished is left as it is; a scan whose manifest was deleted
before it ran is dropped, and its job ends quietly; a run that is interrupted or fails for a
passing reason puts its scan back to queued and runs again from the start (the layers it
finished are in the layer cache by then). A refused layer (`ScanRefused`: a bomb, a
path escaping the layer...) fails the scan for good with the reason, and the job with it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

from sqlalchemy import Engine

from trustyard.content.reads import ContentReads
from trustyard.db.engine import read_tx, write_tx
from trustyard.events import model as events
from trustyard.events.outbox import Outbox
from trustyard.jobs.housekeeping import BatchedPrune
from trustyard.jobs.interfaces import JobContext, JobInterrupted, PermanentJobError
from trustyard.jobs.scheduler import ScheduleSpec
from trustyard.kit.clock import utc_now
from trustyard.oci import mediatypes as mt
from trustyard.scanning.attach import Attachment, SbomAttacher
from trustyard.scanning.bom import ImageBom, assemble
from trustyard.scanning.compact import compact
from trustyard.scanning.cyclonedx import iter_cyclonedx
from trustyard.scanning.interfaces import Detector, Limits, check_components
from trustyard.scanning.model import LayerScan, ScanRefused
from trustyard.scanning.registry_source import RegistrySource
from trustyard.scanning.scanner import Scanner, scanner_version
from trustyard.scanning.stores import FAILED, SUCCEEDED, ScanRecord, ScanStore, pack_text
from trustyard.storage.interfaces import BlobDriver

log = logging.getLogger(__name__)


class DatabaseLayerCache:
    """The `LayerCache` of the scanner over `scan_layers`: a layer shared by many images is
    read once. With `force`, cached results are ignored (but what this scan reads is
    stored, and reused by the other platforms of the same scan)."""

    def __init__(
        self,
        engine: Engine,
        store: ScanStore | None = None,
        *,
        force: bool = False,
        version: str | None = None,
    ) -> None:
        self.engine = engine
        self.store = store or ScanStore()
        self.force = force
        # Stored with every cached layer result: a result made by other detectors is not used.
        self.version = version or scanner_version()
        self._fresh: set[str] = set()
        self._started: dict[str, float] = {}

    def get(self, digest: str) -> LayerScan | None:
        if self.force and digest not in self._fresh:
            self._started[digest] = time.monotonic()
            return None
        with read_tx(self.engine) as conn:
            found = self.store.cached_layer(conn, digest, self.version)
        if found is None:
            self._started[digest] = time.monotonic()
        return found

    def put(self, scan: LayerScan) -> None:
        began = self._started.pop(scan.digest, None)
        duration = time.monotonic() - began if began is not None else 0.0
        with write_tx(self.engine) as conn:
            self.store.put_layer(conn, scan.digest, self.version, scan=scan, duration=duration)
        self._fresh.add(scan.digest)


class _Progress:
    """Adds up the scanner's per-layer progress and writes it into the scan's row at most
    once per `every` seconds.

    Nothing is written until a layer has to be read: a scan whose layers are all in the
    cache (every image pushed again with a new tag, every multi-platform push sharing its
    layers) goes from queued to succeeded in one write, the one that stores its result.
    Its pushes, which share SQLite's one writer with it, pay for nothing else."""

    def __init__(
        self,
        engine: Engine,
        store: ScanStore,
        scan_id: int,
        sizes: dict[str, int],
        every: float,
        job: JobContext,
    ) -> None:
        self.engine = engine
        self.store = store
        self.scan_id = scan_id
        self.sizes = sizes
        self.every = every
        self.job = job
        self.began = utc_now()
        self.started = False  # the row says running
        self.done: dict[str, int] = {}
        self.finished: set[str] = set()
        self.last = 0.0

    @property
    def bytes_total(self) -> int:
        return sum(self.sizes.values())

    def update(self, layer: str, done: int, total: int) -> None:
        if self.job.should_stop():
            raise JobInterrupted("the worker is stopping")
        self.done[layer] = min(done, self.sizes.get(layer, total))
        if total and done >= total:
            self.finished.add(layer)
            if not self.started:
                return  # from the cache: no reading to report
        self.write()

    def finish(self, layers: Sequence[str]) -> None:
        for layer in layers:
            self.done[layer] = self.sizes.get(layer, 0)
            self.finished.add(layer)
        if self.started:
            self.write(force=True)

    def write(self, force: bool = False) -> None:
        moment = time.monotonic()
        if not force and moment - self.last < self.every:
            return
        self.last = moment
        with write_tx(self.engine) as conn:
            if not self.started:
                self.store.start(conn, self.scan_id, self.began, self.bytes_total, len(self.sizes))
                self.started = True
            self.store.progress(
                conn,
                self.scan_id,
                sum(self.done.values()),
                self.bytes_total,
                len(self.finished & self.sizes.keys()),
                len(self.sizes),
            )


ScannerFactory = Callable[[DatabaseLayerCache], Scanner]


def default_scanner(detectors: Sequence[Detector] | None, limits: Limits) -> ScannerFactory:
    def make(cache: DatabaseLayerCache) -> Scanner:
        return Scanner(detectors=detectors, limits=limits, cache=cache)

    return make


class ScanImage:
    """The handler of `scan.image` jobs."""

    def __init__(
        self,
        engine: Engine,
        driver: BlobDriver,
        outbox: Outbox | None,
        *,
        limits: Limits | None = None,
        detectors: Sequence[Detector] | None = None,
        max_concurrent: int = 2,
        progress_seconds: float = 1.0,
        store: ScanStore | None = None,
        scanner: ScannerFactory | None = None,
        attach: bool = True,
    ) -> None:
        self.engine = engine
        self.driver = driver
        self.outbox = outbox
        self.store = store or ScanStore()
        self.content = ContentReads()
        self.progress_seconds = progress_seconds
        self.limits = limits or Limits()
        self.make_scanner = scanner or default_scanner(detectors, self.limits)
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self.attacher = SbomAttacher(engine, driver) if attach else None

    def __call__(self, job: JobContext) -> None:
        with read_tx(self.engine) as conn:
            scan = self.store.by_job(conn, job.id)
        if scan is None or scan.status in (SUCCEEDED, FAILED):
            return  # deleted with its repository, or finished by an earlier run
        while not self._slots.acquire(timeout=0.5):
            if job.should_stop():
                raise JobInterrupted("the worker is stopping")
        try:
            self._run(job, scan)
        finally:
            self._slots.release()

    def _run(self, job: JobContext, scan: ScanRecord) -> None:
        with read_tx(self.engine) as conn:
            payload = self.content.manifest_payload(conn, scan.repository_id, scan.manifest_digest)
        if payload is None:
            with write_tx(self.engine) as conn:
                self.store.remove(conn, scan.id)
            # A normal outcome (the MANIFEST_DELETED event says it): nothing to scan, no failure.
            log.debug(
                "scan %d of %s@%s dropped: the manifest was deleted before it ran",
                scan.id,
                scan.repository,
                scan.manifest_digest,
            )
            return
        try:
            boms, progress = self._scan(job, scan, payload)
            documents = self._documents(boms)
            attachment = self._attachment(scan, payload, boms)
            self._succeed(scan, boms, documents, attachment, progress)
        except ScanRefused as refused:
            message = str(refused) or type(refused).__name__
            self._fail(scan, message)
            raise PermanentJobError(f"scan refused: {message}") from None
        except JobInterrupted:
            with write_tx(self.engine) as conn:
                self.store.requeue(conn, scan.id, None)
            raise
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            if job.attempt >= job.max_attempts:
                self._fail(scan, f"gave up after {job.attempt} attempts: {message}")
            else:
                with write_tx(self.engine) as conn:
                    self.store.requeue(conn, scan.id, f"attempt {job.attempt} failed: {message}")
            raise

    def _scan(
        self, job: JobContext, scan: ScanRecord, payload: bytes
    ) -> tuple[list[ImageBom], _Progress]:
        source = RegistrySource(
            self.engine,
            self.driver,
            scan.repository_id,
            scan.manifest_digest,
            payload,
            self.content,
        )
        images = source.images()
        sizes: dict[str, int] = {}
        for image in images:
            for layer in image.layers:
                sizes[layer.digest] = layer.size
        progress = _Progress(self.engine, self.store, scan.id, sizes, self.progress_seconds, job)
        cache = DatabaseLayerCache(self.engine, self.store, force=scan.force)
        scanner = self.make_scanner(cache)
        boms = []
        for image in images:
            layer_scans = scanner.scan_image(source, image, progress=progress.update)
            bom = assemble(image, layer_scans)
            del layer_scans
            check_components(
                len(bom.components),
                self.limits.max_image_components,
                f"the image {bom.platform}",
                "max_image_components",
            )
            boms.append(bom)
            progress.finish([layer.digest for layer in image.layers])
        return boms, progress

    def _documents(self, boms: Sequence[ImageBom]) -> bytes:
        """The BOMs as stored (`pack`ed), refused past `max_bom_bytes` of JSON."""
        text = json.dumps([bom.to_json() for bom in boms], separators=(",", ":"))
        size = len(text)  # ASCII (json.dumps escapes the rest): characters are bytes
        limit = self.limits.max_bom_bytes
        if size > limit:
            raise ScanRefused(
                f"the scan's BOM is {size} bytes, more than {limit} (the max_bom_bytes limit)"
            )
        return pack_text(text)

    def _attachment(
        self, scan: ScanRecord, payload: bytes, boms: Sequence[ImageBom]
    ) -> Attachment | None:
        """The CycloneDX SBOM as an artifact to attach, when the repository asks for it (its
        blobs already stored)."""
        if self.attacher is None:
            return None
        with read_tx(self.engine) as conn:
            wanted = self.content.attach_sbom(conn, scan.repository_id)
            media_type = self.content.manifest_media_type(
                conn, scan.repository_id, scan.manifest_digest
            )
        if not wanted or media_type is None:
            return None
        index = scan.manifest_digest if media_type in mt.INDEXES else None
        document = iter_cyclonedx(boms, scan.repository, index_digest=index)
        return self.attacher.prepare(
            document, scan.manifest_digest, media_type, len(payload), scan.id
        )

    def _succeed(
        self,
        scan: ScanRecord,
        boms: Sequence[ImageBom],
        documents: bytes,
        attachment: Attachment | None,
        progress: _Progress,
    ) -> None:
        components = (
            {
                "platform": bom.platform,
                "ecosystem": item.component.ecosystem,
                "name": item.component.name,
                "version": item.component.version,
                "purl": item.component.purl,
                "layer_digest": item.layer,
                "location": item.component.evidence,
            }
            for bom in boms
            for item in bom.components
        )
        with write_tx(self.engine) as conn:
            stored = self.store.succeed(
                conn,
                scan,
                documents,
                components,
                listed=compact(
                    (part.ecosystem, part.name, part.version, part.licenses, part.purl)
                    for bom in boms
                    for part in (item.component for item in bom.components)
                ),
                started_at=progress.began,
                bytes_total=progress.bytes_total,
                layers_total=len(progress.sizes),
            )
            if not stored:
                return  # the repository was deleted (with its scans) while this one ran
            happened: list[events.Event] = []
            if attachment is not None and self.attacher is not None:
                pushed = self.attacher.record(conn, scan.repository, attachment)
                if pushed.created:
                    happened.append(
                        events.manifest_pushed(
                            scan.repository,
                            str(pushed.digest),
                            pushed.media_type,
                            pushed.size,
                            None,
                            artifact_type=pushed.artifact_type,
                            subject=pushed.subject,
                        )
                    )
            if self.outbox is not None:
                platforms = [bom.platform for bom in boms]
                done = events.scan_completed(
                    scan.repository,
                    scan.manifest_digest,
                    platforms,
                    sum(len(bom.components) for bom in boms),
                    scan.requested_by,
                    facts={"scan_id": scan.id},
                )
                self.outbox.publish(conn, *happened, done)

    def _fail(self, scan: ScanRecord, message: str) -> None:
        log.info(
            "scan %d of %s@%s failed: %s", scan.id, scan.repository, scan.manifest_digest, message
        )
        with write_tx(self.engine) as conn:
            self.store.fail(conn, scan.id, message)
            if self.outbox is not None:
                failed = events.scan_failed(
                    scan.repository, scan.manifest_digest, message, scan.requested_by
                )
                self.outbox.publish(conn, failed)


PRUNE_KIND = "scans.prune"
PRUNE_SCHEDULE = ScheduleSpec("scans.prune", "53 3 * * *", PRUNE_KIND)  # daily, 03:53 UTC


def prune_scans(
    engine: Engine, retention: timedelta, store: ScanStore | None = None
) -> BatchedPrune:
    """Superseded scans older than `retention`, and cached layer results of other scanner
    versions (each upgrade of the detectors leaves the previous ones unread)."""
    found = store or ScanStore()
    return BatchedPrune(
        engine, retention, lambda conn, cutoff: found.prune(conn, cutoff, scanner_version())
    )
