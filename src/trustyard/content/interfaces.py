"""Records the content domain hands to the edges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    digest: str
    media_type: str
    payload: bytes
    subject_digest: str | None = None


@dataclass(frozen=True, slots=True)
class ReferrerRecord:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class UploadRecord:
    id: str
    repository: str
    offset: int


@dataclass(frozen=True, slots=True)
class Page:
    items: list[str]
    more: bool  # a next page exists


@dataclass(frozen=True, slots=True)
class TagRow:
    """A tag with the manifest it points at, as stored."""

    name: str
    manifest_id: int
    digest: str
    media_type: str
    manifest_size: int
    payload: bytes
    pushed_at: datetime


@dataclass(frozen=True, slots=True)
class Repository:
    """An OCI repository as a managed object: its settings (its tags, manifests and blob links
    are rows of their own)."""

    id: int
    name: str
    visibility: str  # "private" | "public"
    description: str
    scan_on_push: bool
    immutable_tags: bool
    created_at: datetime
    attach_sbom: bool = False  # push each scan's SBOM as a referrer of the image

    @property
    def namespace(self) -> str:
        """The user or organization the repository belongs to: its first path component."""
        return self.name.split("/", 1)[0]
