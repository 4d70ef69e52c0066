"""Walking a manifest down to the images it stands for.

An image manifest (OCI or Docker v2 schema 2) is one image; an index (OCI index or Docker
manifest list, nested ones too) stands for the images of the manifests it lists, attestation
manifests and artifacts left out; an image manifest whose config is not an image config is an
artifact (a signature, an SBOM, a Helm chart...) and stands for none.

Pure: documents are read through the caller's function, which raises what it likes for one
that is missing. Unlike `manifest.parse_manifest`, which judges what a client pushes, the walk
reads documents already stored or handed over (an image layout, an archive) and asks only what
it needs; what it cannot walk raises `ManifestInvalid`, its message naming the document.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from trustyard.errors import DigestInvalid, ManifestInvalid
from trustyard.oci import mediatypes as mt
from trustyard.oci.digest import parse_digest
from trustyard.oci.imageconfig import UNKNOWN_OS

ATTESTATION: Final = "attestation-manifest"  # vnd.docker.reference.type of BuildKit's
MAX_INDEX_DEPTH: Final = 8

Read = Callable[[str], bytes]


@dataclass(frozen=True, slots=True)
class LayerEntry:
    """A layer descriptor as listed: a size that is not a non-negative integer reads as 0."""

    digest: str
    media_type: str
    size: int
    foreign: bool  # a foreign or non-distributable layer listed with its urls


@dataclass(frozen=True, slots=True)
class ImageManifest:
    """An image manifest reached by the walk, with the platform of the index entry that
    listed it (None for a manifest walked on its own, or listed without one)."""

    digest: str
    platform: dict[str, Any] | None
    config_digest: str
    document: dict[str, Any]

    def layers(self) -> tuple[LayerEntry, ...]:
        raw_layers = self.document.get("layers")
        if not isinstance(raw_layers, list):
            raise ManifestInvalid(f"manifest {self.digest} has no layers list")
        layers = []
        for index, raw in enumerate(raw_layers):
            if not isinstance(raw, dict):
                raise ManifestInvalid(f"manifest {self.digest}: layer {index} is not a descriptor")
            layer_digest = descriptor_digest(raw, f"manifest {self.digest}")
            media_type = str(raw.get("mediaType") or "")
            size = raw.get("size")
            layers.append(
                LayerEntry(
                    layer_digest,
                    media_type,
                    size if isinstance(size, int) and size >= 0 else 0,
                    is_foreign(media_type, raw.get("urls")),
                )
            )
        return tuple(layers)


def is_foreign(media_type: str, urls: object) -> bool:
    """Whether a layer lives elsewhere: a foreign (or non-distributable) type, with `urls`."""
    return media_type in mt.FOREIGN_LAYERS and isinstance(urls, list) and bool(urls)


def is_attestation(descriptor: dict[str, Any]) -> bool:
    """An index entry for an attestation manifest (BuildKit's provenance and SBOMs)."""
    platform = descriptor.get("platform")
    if isinstance(platform, dict) and platform.get("os") == UNKNOWN_OS:
        return True
    annotations = descriptor.get("annotations")
    return isinstance(annotations, dict) and (
        annotations.get("vnd.docker.reference.type") == ATTESTATION
    )


def index_entries(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The descriptor objects an index lists, as listed (anything else in the list is left)."""
    found = document.get("manifests")
    return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []


def descriptor_digest(descriptor: dict[str, Any], where: str) -> str:
    value = descriptor.get("digest")
    if not isinstance(value, str):
        raise ManifestInvalid(f"{where}: a descriptor has no digest")
    return checked_digest(value)


def checked_digest(value: str) -> str:
    try:
        return str(parse_digest(value))
    except DigestInvalid as exc:
        raise ManifestInvalid(f"invalid digest {value[:80]!r}: {exc.message}") from None


def document_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise ManifestInvalid(f"{what} is not valid JSON") from None
    if not isinstance(document, dict):
        raise ManifestInvalid(f"{what} is not a JSON object")
    return document


def walk(read: Read, digest: str, data: bytes, *, max_bytes: int) -> Iterator[ImageManifest]:
    """The image manifests `data` (the document `digest` names) stands for, in the order its
    indexes list them; a manifest listed twice comes twice. Each document is at most
    `max_bytes`."""
    return _walk(read, digest, data, None, 0, max_bytes)


def walk_entries(
    read: Read, entries: list[Any], where: str, *, max_bytes: int
) -> Iterator[ImageManifest]:
    """The image manifests of an index's entries, such as an image layout's index.json."""
    return _entries(read, entries, where, 0, max_bytes)


def _walk(
    read: Read,
    digest: str,
    data: bytes,
    platform: dict[str, Any] | None,
    depth: int,
    max_bytes: int,
) -> Iterator[ImageManifest]:
    if len(data) > max_bytes:
        raise ManifestInvalid(f"manifest {digest} is larger than {max_bytes} bytes")
    document = document_object(data, f"manifest {digest}")
    media_type = document.get("mediaType")
    if media_type is None:
        media_type = mt.OCI_INDEX if "manifests" in document else mt.OCI_MANIFEST
    if media_type in mt.INDEXES:
        if depth >= MAX_INDEX_DEPTH:
            raise ManifestInvalid(f"index {digest} nests indexes deeper than {MAX_INDEX_DEPTH}")
        children = document.get("manifests")
        if not isinstance(children, list):
            raise ManifestInvalid(f"index {digest} has no manifests list")
        yield from _entries(read, children, f"index {digest}", depth + 1, max_bytes)
        return
    if media_type not in mt.IMAGE_MANIFESTS:
        raise ManifestInvalid(f"manifest {digest} has an unsupported media type {media_type!r}")
    config = document.get("config")
    if not isinstance(config, dict):
        raise ManifestInvalid(f"manifest {digest} has no config")
    if config.get("mediaType") not in mt.IMAGE_CONFIGS:
        return  # an artifact
    config_digest = descriptor_digest(config, f"manifest {digest}")
    yield ImageManifest(digest, platform, config_digest, document)


def _entries(
    read: Read, entries: list[Any], where: str, depth: int, max_bytes: int
) -> Iterator[ImageManifest]:
    for entry in entries:
        if not isinstance(entry, dict) or is_attestation(entry):
            continue
        if entry.get("mediaType") not in mt.MANIFEST_TYPES:
            continue  # an artifact listed in the index
        child = descriptor_digest(entry, where)
        platform = entry.get("platform")
        yield from _walk(
            read,
            child,
            read(child),
            platform if isinstance(platform, dict) else None,
            depth,
            max_bytes,
        )
