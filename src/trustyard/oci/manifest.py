"""Parsing and structural validation of image manifests and indexes.

The registry stores manifests byte for byte; this module only reads them to learn what they
reference (blobs, child manifests, a subject) so the content service can check and index them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from trustyard.errors import DigestInvalid, ManifestInvalid, ManifestTooLarge
from trustyard.oci import mediatypes as mt
from trustyard.oci.digest import Digest, parse_digest
from trustyard.oci.walk import is_foreign


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    platform: dict[str, Any] | None = None
    foreign: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        return out


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    blobs: list[Descriptor] = field(default_factory=list)  # config + layers
    children: list[Descriptor] = field(default_factory=list)  # manifests of an index
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEXES


# RFC 6838 section 4.2 (type "/" subtype), which the image spec requires of every media type
# and artifactType. It also keeps control characters (NUL above all) out of stored columns.
_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE_RE = re.compile(rf"{_NAME}/{_NAME}")


def _invalid(message: str) -> ManifestInvalid:
    return ManifestInvalid(message)


def _type_field(value: Any, where: str) -> str | None:
    if value is None or value == "":  # the spec treats an empty artifactType as a missing one
        return None
    if not isinstance(value, str) or not _MEDIA_TYPE_RE.fullmatch(value):
        raise _invalid(f"{where} must be a media type such as application/vnd.example+json")
    return value


def _descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise _invalid(f"{where}: a descriptor must be a JSON object")
    media_type = _type_field(raw.get("mediaType"), f"{where}: mediaType")
    if media_type is None:
        raise _invalid(f"{where}: mediaType is missing")
    digest_text = raw.get("digest")
    if not isinstance(digest_text, str):
        raise _invalid(f"{where}: digest is missing")
    try:
        digest = parse_digest(digest_text)
    except DigestInvalid as exc:
        raise _invalid(f"{where}: {exc.message}") from None
    size = raw.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{where}: size must be a non-negative integer")
    artifact_type = _type_field(raw.get("artifactType"), f"{where}: artifactType")
    annotations = _annotations(raw.get("annotations"), where)
    platform = raw.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise _invalid(f"{where}: platform must be an object")
    # A foreign layer lives elsewhere (its descriptor carries `urls`): it is not required here.
    foreign = is_foreign(media_type, raw.get("urls"))
    return Descriptor(media_type, digest, size, artifact_type, annotations, platform, foreign)


def _annotations(raw: Any, where: str) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise _invalid(f"{where}: annotations must map strings to strings")
    return raw


def _media_type(doc: dict[str, Any], content_type: str | None) -> str:
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    header = (content_type or "").split(";")[0].strip() or None
    if declared and header and header in mt.MANIFEST_TYPES and declared != header:
        raise _invalid(f"Content-Type {header} does not match the manifest's mediaType {declared}")
    media_type = declared or header
    if media_type is None or media_type not in mt.MANIFEST_TYPES:
        if media_type is None and "manifests" in doc:
            return mt.OCI_INDEX
        if media_type is None and "config" in doc:
            return mt.OCI_MANIFEST
        raise ManifestInvalid(
            f"unsupported manifest media type {media_type!r}; accepted: "
            + ", ".join(sorted(mt.MANIFEST_TYPES)),
        )
    return media_type


def parse_manifest(body: bytes, content_type: str | None) -> ParsedManifest:
    """Validate the structure of a manifest and return what it references."""
    if len(body) > mt.MAX_MANIFEST_BYTES:
        raise ManifestTooLarge(f"manifest is larger than {mt.MAX_MANIFEST_BYTES} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise _invalid("manifest is not valid JSON") from None
    if not isinstance(doc, dict):
        raise _invalid("manifest must be a JSON object")
    if doc.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2 (schema 1 manifests are not supported)")
    media_type = _media_type(doc, content_type)
    subject = _descriptor(doc["subject"], "subject") if doc.get("subject") is not None else None
    artifact_type = _type_field(doc.get("artifactType"), "artifactType")
    annotations = _annotations(doc.get("annotations"), "manifest")
    if media_type in mt.INDEXES:
        raw_children = doc.get("manifests")
        if not isinstance(raw_children, list):
            raise _invalid("an index needs a 'manifests' list")
        children = [_descriptor(c, f"manifests[{i}]") for i, c in enumerate(raw_children)]
        return ParsedManifest(media_type, [], children, subject, artifact_type, annotations)
    config = doc.get("config")
    if config is None:
        raise _invalid("an image manifest needs a config descriptor")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise _invalid("an image manifest needs a 'layers' list")
    blobs = [_descriptor(config, "config")]
    blobs += [_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(layers)]
    if not artifact_type:
        # distribution-spec, listing referrers: when an image manifest's artifactType is empty
        # or missing, report the config descriptor's mediaType (the empty JSON type included).
        artifact_type = blobs[0].media_type if media_type == mt.OCI_MANIFEST else None
    return ParsedManifest(media_type, blobs, [], subject, artifact_type, annotations)


def scannable(parsed: ParsedManifest) -> bool:
    """Whether a manifest is a container image (with filesystem layers) or an index of them;
    not an artifact (a cosign signature has an image config but no filesystem layer)."""
    if parsed.is_index:
        return parsed.artifact_type is None and bool(parsed.children)
    if len(parsed.blobs) < 2 or parsed.blobs[0].media_type not in mt.IMAGE_CONFIGS:
        return False
    if parsed.artifact_type is not None and parsed.artifact_type not in mt.IMAGE_CONFIGS:
        return False
    return all(layer.media_type.startswith(mt.LAYER_PREFIXES) for layer in parsed.blobs[1:])
