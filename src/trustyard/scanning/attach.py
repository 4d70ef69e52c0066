"""Attach a scan's SBOM to the scanned image: the CycloneDX document pushed into the same
repository as an OCI artifact whose subject is the image (a referrer: `GET
/v2/NAME/referrers/DIGEST?artifactType=application/vnd.cyclonedx+json` finds it).

It goes through the content layer, not HTTP: the two blobs (the empty config and the
document) are written to storage first (content-addressed: writing them twice is harmless),
then, in the transaction that records the scan's success, linked into the repository and the
manifest stored with `ManifestService.put` (so it is validated and indexed like any push).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from trustyard.content.hotreads import StoreHotReads
from trustyard.content.manifests import ManifestService, PushedManifest
from trustyard.content.stores import ContentStore
from trustyard.content.uploads import HashStates, UploadService
from trustyard.oci import mediatypes as mt
from trustyard.oci.digest import Digest, digest_bytes
from trustyard.storage.interfaces import BlobDriver

ARTIFACT_TYPE = "application/vnd.cyclonedx+json"
EMPTY_CONFIG = b"{}"
SCAN_ANNOTATION = "dev.trustyard.scan.id"


@dataclass(frozen=True, slots=True)
class Attachment:
    """An SBOM artifact whose blobs are stored, ready to be recorded."""

    manifest: bytes
    blobs: tuple[tuple[str, int], ...]  # (digest, size) of the config and the document

    @property
    def digest(self) -> str:
        return str(digest_bytes(self.manifest))


class SbomAttacher:
    def __init__(self, engine: Engine, driver: BlobDriver) -> None:
        self.driver = driver
        self.content = ContentStore()
        # The blobs are written through content's one write path; no upload session is kept.
        self.uploads = UploadService(self.content, driver, HashStates(capacity=0))
        self.manifests = ManifestService(self.content, StoreHotReads(engine, self.content))

    def prepare(
        self,
        document: Iterable[bytes],
        subject_digest: str,
        subject_media_type: str,
        subject_size: int,
        scan_id: int,
    ) -> Attachment:
        """Store the blobs of the artifact (blocking I/O, outside any transaction); the
        document is written as its chunks come (a 50,000-component SBOM is 90 MB)."""
        config_digest = self._store(EMPTY_CONFIG)
        body_digest, body_size = self.uploads.write_blob(document)
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "artifactType": ARTIFACT_TYPE,
            "config": {
                "mediaType": mt.OCI_EMPTY_JSON,
                "digest": str(config_digest),
                "size": len(EMPTY_CONFIG),
            },
            "layers": [{"mediaType": ARTIFACT_TYPE, "digest": str(body_digest), "size": body_size}],
            "subject": {
                "mediaType": subject_media_type,
                "digest": subject_digest,
                "size": subject_size,
            },
            "annotations": {SCAN_ANNOTATION: str(scan_id)},
        }
        encoded = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
        blobs = ((str(config_digest), len(EMPTY_CONFIG)), (str(body_digest), body_size))
        return Attachment(encoded, blobs)

    def record(self, conn: Connection, repository: str, attachment: Attachment) -> PushedManifest:
        """Link the blobs and store the manifest (by digest), in the caller's transaction."""
        repository_id = self.content.ensure_repository(conn, repository)
        for digest, size in attachment.blobs:
            self.content.record_blob(conn, digest, size)
            self.content.link_blob(conn, repository_id, digest)
        return self.manifests.put(
            conn, repository, attachment.digest, attachment.manifest, mt.OCI_MANIFEST
        )

    def _store(self, data: bytes) -> Digest:
        digest = digest_bytes(data)
        if self.driver.stat(digest) is None:
            self.uploads.write_blob([data])
        return digest
