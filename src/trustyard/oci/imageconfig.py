"""An image config and a platform object, read for what they say, never refused.

Clients push config blobs and index descriptors; the registry reads them for display (the tag
listing's platforms) and for scans (the platform of each image, the diff ids of its layers).
Nothing here raises: a field that is missing or not of its JSON type reads as None. How an
unknown platform shows is the caller's choice: a tag listing leaves it out, a scan calls it
"unknown". Sizes are bounded before the bytes get here (a tag listing reads at most 1 MiB of a
config, a scan 16 MiB).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# The `os` that BuildKit gives the attestation manifests of an index (they are no platform).
UNKNOWN_OS = "unknown"


@dataclass(frozen=True, slots=True)
class Platform:
    """`os`, `architecture` and `variant`, each a string as given or None."""

    os: str | None = None
    architecture: str | None = None
    variant: str | None = None


@dataclass(frozen=True, slots=True)
class ImageConfig:
    platform: Platform
    # rootfs.diff_ids: one per layer, uncompressed; None unless a list of strings.
    diff_ids: tuple[str, ...] | None = None


def json_object(data: bytes) -> dict[str, Any] | None:
    """The JSON object `data` holds; None when it holds anything else, is not JSON, or nests
    deeper than the decoder goes."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def parse_platform(value: object) -> Platform:
    """The platform fields of a descriptor's `platform` object or of an image config (both
    name them alike); anything but an object is no platform."""
    if not isinstance(value, dict):
        return Platform()
    return Platform(
        _text(value.get("os")), _text(value.get("architecture")), _text(value.get("variant"))
    )


def parse_image_config(document: object) -> ImageConfig:
    """What the registry reads of a decoded image config."""
    if not isinstance(document, dict):
        return ImageConfig(Platform())
    rootfs = document.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    diff_ids = (
        tuple(ids) if isinstance(ids, list) and all(isinstance(i, str) for i in ids) else None
    )
    return ImageConfig(parse_platform(document), diff_ids)
