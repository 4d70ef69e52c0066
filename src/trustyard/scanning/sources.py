"""Where images to scan come from: an OCI image layout directory, an oci-archive tarball or a
docker-archive tarball (`docker save`), and, through `images_from_manifest`, a registry.

An index expands to one image per platform, walked by `oci.walk` (attestation manifests and
artifacts are skipped); the platform is read by `oci.imageconfig`. Blobs of an
archive are read in place through the outer tar's member offsets: nothing is extracted.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol, cast

from trustyard.errors import ManifestInvalid
from trustyard.oci import mediatypes as mt
from trustyard.oci.imageconfig import ImageConfig, Platform, parse_image_config, parse_platform
from trustyard.oci.walk import (
    ImageManifest,
    checked_digest,
    descriptor_digest,
    document_object,
    is_foreign,
    walk,
    walk_entries,
)
from trustyard.scanning.model import ScanRefused

MAX_DOCUMENT_BYTES: Final = 16 << 20  # a manifest, index or image config
_READ: Final = 1 << 20


@dataclass(frozen=True)
class LayerRef:
    digest: str
    media_type: str
    size: int
    diff_id: str | None = None
    foreign: bool = False  # non-distributable, with urls, and no blob here


@dataclass(frozen=True)
class ImageRef:
    manifest_digest: str
    platform: str  # "linux/amd64", "linux/arm64/v8", "windows/amd64"
    os: str
    layers: tuple[LayerRef, ...]
    config: dict[str, Any] = field(default_factory=dict, hash=False)


class ImageSource(Protocol):
    def images(self) -> list[ImageRef]: ...

    def open_blob(self, digest: str) -> BinaryIO:
        """The blob's bytes; ScanRefused when it is not there."""
        ...

    def has_blob(self, digest: str) -> bool: ...


# --- manifests ---------------------------------------------------------------------------


@contextmanager
def _refusing() -> Iterator[None]:
    """What the walk cannot read, refused as a scan (with the walk's message)."""
    try:
        yield
    except ManifestInvalid as exc:
        raise ScanRefused(exc.message) from None


def _json(data: bytes, what: str) -> dict[str, Any]:
    with _refusing():
        return document_object(data, what)


def _digest_field(descriptor: dict[str, Any], where: str) -> str:
    with _refusing():
        return descriptor_digest(descriptor, where)


def _checked_digest(value: str) -> str:
    with _refusing():
        return checked_digest(value)


def _platform_text(platform: Platform) -> tuple[str, str]:
    """How a scan names a platform: a missing os or architecture is "unknown" (a tag listing
    shows no platform instead)."""
    os_name = platform.os or "unknown"
    text = f"{os_name}/{platform.architecture or 'unknown'}"
    if platform.variant:
        text += f"/{platform.variant}"
    return text, os_name


def _diff_ids(config: ImageConfig, count: int) -> tuple[str, ...] | None:
    """The config's diff ids when there is one per layer."""
    ids = config.diff_ids
    return ids if ids is not None and len(ids) == count else None


def images_from_manifest(
    read_blob: Callable[[str], bytes],
    digest: str,
    data: bytes,
    *,
    has_blob: Callable[[str], bool] | None = None,
) -> list[ImageRef]:
    """The images a manifest (OCI or Docker v2 schema 2) or an index (OCI index or Docker
    manifest list, nested ones too) stands for: one per platform. An artifact manifest
    (its config is not an image config) stands for none. `read_blob` reads a manifest or a
    config by digest; `has_blob`, when given, tells whether a foreign layer's blob is here
    (then it is scanned like any other layer)."""
    with _refusing():
        found = walk(read_blob, digest, data, max_bytes=MAX_DOCUMENT_BYTES)
        return _unique([_image(read_blob, manifest, has_blob) for manifest in found])


def _unique(images: list[ImageRef]) -> list[ImageRef]:
    """Each (manifest, platform) once, in the order first found."""
    seen: set[tuple[str, str]] = set()
    unique: list[ImageRef] = []
    for image in images:
        key = (image.manifest_digest, image.platform)
        if key not in seen:
            seen.add(key)
            unique.append(image)
    return unique


def _image(
    read_blob: Callable[[str], bytes],
    manifest: ImageManifest,
    has_blob: Callable[[str], bool] | None,
) -> ImageRef:
    digest = manifest.digest
    config_data = read_blob(manifest.config_digest)
    if len(config_data) > MAX_DOCUMENT_BYTES:
        raise ScanRefused(f"the config of {digest} is larger than {MAX_DOCUMENT_BYTES} bytes")
    config = _json(config_data, f"the config of {digest}")
    entries = manifest.layers()
    parsed = parse_image_config(config)
    diff_ids = _diff_ids(parsed, len(entries))
    layers: list[LayerRef] = []
    for index, entry in enumerate(entries):
        foreign = entry.foreign
        if foreign and has_blob is not None and has_blob(entry.digest):
            foreign = False
        layers.append(
            LayerRef(
                digest=entry.digest,
                media_type=entry.media_type,
                size=entry.size,
                diff_id=diff_ids[index] if diff_ids else None,
                foreign=foreign,
            )
        )
    platform = parse_platform(manifest.platform) if manifest.platform else parsed.platform
    text, os_name = _platform_text(platform)
    return ImageRef(
        manifest_digest=digest, platform=text, os=os_name, layers=tuple(layers), config=config
    )


# --- files of a layout or an archive --------------------------------------------------------


class _Files(Protocol):
    label: str

    def has(self, name: str) -> bool: ...

    def open(self, name: str) -> BinaryIO: ...


def _read_all(files: _Files, name: str, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    with files.open(name) as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise ScanRefused(f"{files.label}: {name} is larger than {limit} bytes")
    return data


class _DirFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.label = str(root)

    def has(self, name: str) -> bool:
        return (self.root / name).is_file()

    def open(self, name: str) -> BinaryIO:
        try:
            return (self.root / name).open("rb")
        except OSError as exc:
            raise ScanRefused(f"{self.label}: cannot read {name}: {exc.strerror}") from None


class _Slice(io.RawIOBase):
    """`size` bytes of a file from `offset`, on a file handle of its own."""

    def __init__(self, path: Path, offset: int, size: int) -> None:
        super().__init__()
        self._file = path.open("rb")
        self._file.seek(offset)
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._left)
        if want <= 0:
            return 0
        got = self._file.readinto(view[:want])
        if not got:
            raise ScanRefused("the archive is truncated")
        self._left -= got
        return got

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


def _member_name(name: str) -> str:
    name = posixpath.normpath("/" + name).lstrip("/")
    return name


class _TarFiles:
    """The members of an archive, read in place (plain tar) or through tarfile (a
    compressed archive: seeking there means decompressing again, but it works)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = str(path)
        self._compressed = not _looks_like_tar(path)
        try:
            self._tar = tarfile.open(path, "r:*" if self._compressed else "r:")  # noqa: SIM115
            self._members = {_member_name(m.name): m for m in self._tar.getmembers()}
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ScanRefused(f"{path} is not a tar archive: {exc}") from None
        if not self._compressed:
            self._tar.close()

    def _member(self, name: str) -> tarfile.TarInfo:
        member = self._members.get(name)
        for _ in range(8):
            if member is None or not (member.issym() or member.islnk()):
                break
            if member.issym():
                target = posixpath.join(posixpath.dirname(name), member.linkname)
            else:
                target = member.linkname
            name = _member_name(target)
            member = self._members.get(name)
        if member is None or not member.isfile():
            raise ScanRefused(f"{self.label}: {name} is not in the archive")
        return member

    def size(self, name: str) -> int:
        return self._member(name).size

    def has(self, name: str) -> bool:
        try:
            self._member(name)
        except ScanRefused:
            return False
        return True

    def open(self, name: str) -> BinaryIO:
        member = self._member(name)
        if self._compressed:
            stream = self._tar.extractfile(member)
            if stream is None:  # pragma: no cover - _member only returns files
                raise ScanRefused(f"{self.label}: {name} is not a file")
            return cast(BinaryIO, stream)
        return io.BufferedReader(_Slice(self.path, member.offset_data, member.size), _READ)


def _looks_like_tar(path: Path) -> bool:
    with path.open("rb") as probe:
        header = probe.read(512)
    return len(header) == 512 and header[257:262] == b"ustar"


def _blob_path(digest: str) -> str:
    algorithm, _, encoded = _checked_digest(digest).partition(":")
    return f"blobs/{algorithm}/{encoded}"


# --- the sources ---------------------------------------------------------------------------


class OciLayoutSource:
    """An OCI image layout: a directory, or the same as a tar (oci-archive)."""

    def __init__(self, files: _Files) -> None:
        self._files = files

    def has_blob(self, digest: str) -> bool:
        return self._files.has(_blob_path(digest))

    def open_blob(self, digest: str) -> BinaryIO:
        path = _blob_path(digest)
        if not self._files.has(path):
            raise ScanRefused(f"{self._files.label}: blob {digest} is missing")
        return self._files.open(path)

    def _read_blob(self, digest: str) -> bytes:
        if not self.has_blob(digest):
            raise ScanRefused(f"{self._files.label}: blob {digest} is missing")
        return _read_all(self._files, _blob_path(digest))

    def images(self) -> list[ImageRef]:
        index = _json(_read_all(self._files, "index.json"), f"{self._files.label}: index.json")
        descriptors = index.get("manifests")
        if not isinstance(descriptors, list):
            raise ScanRefused(f"{self._files.label}: index.json has no manifests list")
        where = f"{self._files.label}: index.json"
        with _refusing():
            found = walk_entries(self._read_blob, descriptors, where, max_bytes=MAX_DOCUMENT_BYTES)
            return _unique([_image(self._read_blob, image, self.has_blob) for image in found])


class DockerArchiveSource:
    """A `docker save` tarball: manifest.json names each image's config and layer files;
    layers are keyed by their diff ids (or by their blob digest in newer archives)."""

    def __init__(self, files: _TarFiles) -> None:
        self._files = files
        self._paths: dict[str, str] = {}  # digest -> member
        self._images: list[ImageRef] | None = None

    def has_blob(self, digest: str) -> bool:
        self.images()
        path = self._paths.get(digest)
        return path is not None and self._files.has(path)

    def open_blob(self, digest: str) -> BinaryIO:
        self.images()
        path = self._paths.get(digest)
        if path is None or not self._files.has(path):
            raise ScanRefused(f"{self._files.label}: blob {digest} is missing")
        return self._files.open(path)

    def images(self) -> list[ImageRef]:
        if self._images is None:
            self._images = self._load()
        return self._images

    def _load(self) -> list[ImageRef]:
        label = self._files.label
        try:
            entries = json.loads(_read_all(self._files, "manifest.json"))
        except (ValueError, RecursionError):
            raise ScanRefused(f"{label}: manifest.json is not valid JSON") from None
        if not isinstance(entries, list):
            raise ScanRefused(f"{label}: manifest.json is not a list")
        images: list[ImageRef] = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
                raise ScanRefused(f"{label}: manifest.json has an entry without a Config")
            config_path = _member_name(entry["Config"])
            config_data = _read_all(self._files, config_path)
            config_digest = "sha256:" + hashlib.sha256(config_data).hexdigest()
            self._paths[config_digest] = config_path
            config = _json(config_data, f"{label}: {config_path}")
            layer_paths = entry.get("Layers")
            if not isinstance(layer_paths, list) or not all(
                isinstance(p, str) for p in layer_paths
            ):
                raise ScanRefused(f"{label}: manifest.json has an entry without Layers")
            sources = entry.get("LayerSources")
            parsed = parse_image_config(config)
            diff_ids = _diff_ids(parsed, len(layer_paths))
            layers = [
                self._layer(_member_name(path), diff_ids[i] if diff_ids else None, sources)
                for i, path in enumerate(layer_paths)
            ]
            text, os_name = _platform_text(parsed.platform)
            images.append(ImageRef(config_digest, text, os_name, tuple(layers), config))
        return images

    def _layer(self, path: str, diff_id: str | None, sources: Any) -> LayerRef:
        source = sources.get(diff_id) if isinstance(sources, dict) and diff_id else None
        present = self._files.has(path)
        if not present and isinstance(source, dict):
            media_type = str(source.get("mediaType") or "")
            digest = _digest_field(source, self._files.label)
            size = source.get("size")
            foreign = is_foreign(media_type, source.get("urls"))
            return LayerRef(
                digest, media_type, size if isinstance(size, int) else 0, diff_id, foreign
            )
        if not present:
            raise ScanRefused(f"{self._files.label}: layer {path} is missing")
        with self._files.open(path) as stream:
            head = stream.read(4)
        media_type = mt.DOCKER_LAYER_GZIP if head.startswith(b"\x1f\x8b") else mt.DOCKER_LAYER
        parts = path.split("/")
        if len(parts) == 3 and parts[0] == "blobs":
            digest = _checked_digest(f"{parts[1]}:{parts[2]}")
        elif diff_id is not None and media_type == mt.DOCKER_LAYER:
            digest = _checked_digest(diff_id)
        else:
            digest = self._hash(path)
        self._paths[digest] = path
        size = self._files.size(path)
        return LayerRef(digest, media_type, size, diff_id, False)

    def _hash(self, path: str) -> str:
        hasher = hashlib.sha256()
        with self._files.open(path) as stream:
            while chunk := stream.read(_READ):
                hasher.update(chunk)
        return "sha256:" + hasher.hexdigest()


def open_path(path: Path) -> ImageSource:
    """The image source at `path`: an OCI image layout directory, an oci-archive or a
    docker-archive tarball (told apart by what they hold)."""
    if path.is_dir():
        if not (path / "index.json").is_file():
            raise ScanRefused(f"{path} is a directory without index.json: not an OCI layout")
        return OciLayoutSource(_DirFiles(path))
    if not path.is_file():
        raise ScanRefused(f"{path} does not exist")
    files = _TarFiles(path)
    if files.has("index.json") and files.has("oci-layout"):
        return OciLayoutSource(files)
    if files.has("manifest.json"):
        return DockerArchiveSource(files)
    if files.has("index.json"):
        return OciLayoutSource(files)
    raise ScanRefused(
        f"{path} is neither an OCI layout, an oci-archive nor a docker-archive "
        f"(no index.json or manifest.json in it)"
    )
