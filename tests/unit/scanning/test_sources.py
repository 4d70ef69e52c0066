"""Image sources: OCI layout directories, oci-archive and docker-archive tarballs (read in
place), and manifests to images (indexes per platform, attestations and artifacts skipped,
foreign layers marked)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.archives import image_archive
from tests.support.images import image_info, image_layout
from tests.unit.scanning.layerkit import file, scan_bytes, tar_bytes
from trustyard.oci.mediatypes import DOCKER_LAYER
from trustyard.scanning.model import ScanRefused
from trustyard.scanning.sources import (
    DockerArchiveSource,
    ImageSource,
    LayerRef,
    OciLayoutSource,
    images_from_manifest,
    open_path,
)

SHARED = ("debian-minbase", "python-app", "node-app", "go-binary", "multi-arch", "big-layer")
ARCHIVED = ("go-binary", "python-app", "multi-arch")
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_bytes(source: ImageSource, digest: str) -> bytes:
    with source.open_blob(digest) as stream:
        return stream.read()


def expected_images(name: str) -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = image_info(name)["images"]
    return images


def platform_of(image: dict[str, Any]) -> str:
    platform = image["platform"]
    text = f"{platform['os']}/{platform['architecture']}"
    return text + (f"/{platform['variant']}" if platform.get("variant") else "")


# --- archives made with skopeo, cached ---------------------------------------------------


@pytest.fixture(scope="session")
def archives() -> dict[tuple[str, str], Path]:
    made = {}
    for name in ARCHIVED:
        made[(name, "oci")] = image_archive(name, "oci-archive")
        if name != "multi-arch":
            made[(name, "docker")] = image_archive(name, "docker-archive")
    return made


# --- OCI layout directories ------------------------------------------------------------------


@pytest.mark.parametrize("name", SHARED)
def test_a_layout_directory_lists_each_image_with_its_layers_and_diff_ids(name: str) -> None:
    source = open_path(image_layout(name))
    assert isinstance(source, OciLayoutSource)
    images = source.images()
    expected = expected_images(name)
    assert [(i.manifest_digest, i.platform, i.os) for i in images] == [
        (e["manifest"], platform_of(e), e["platform"]["os"]) for e in expected
    ]
    for image, truth in zip(images, expected, strict=True):
        assert [
            (la.digest, la.media_type, la.size, la.diff_id, la.foreign) for la in image.layers
        ] == [
            (la["digest"], la["mediaType"], la["size"], la["diff_id"], False)
            for la in truth["layers"]
        ]
        assert image.config["rootfs"]["diff_ids"] == [la["diff_id"] for la in truth["layers"]]


def test_the_multi_arch_index_expands_to_both_platforms() -> None:
    images = open_path(image_layout("multi-arch")).images()
    assert [i.platform for i in images] == ["linux/amd64", "linux/arm64/v8"]
    assert images[0].layers[0].digest != images[1].layers[0].digest


def test_a_layout_blob_is_read_whole_and_checked_for_presence() -> None:
    source = open_path(image_layout("go-binary"))
    layer = source.images()[0].layers[0]
    assert source.has_blob(layer.digest)
    assert sha256(blob_bytes(source, layer.digest)) == layer.digest
    missing = "sha256:" + "0" * 64
    assert not source.has_blob(missing)
    with pytest.raises(ScanRefused, match=f"blob {missing} is missing"):
        source.open_blob(missing)


@pytest.mark.parametrize("digest", ["sha256:../../../etc/passwd", "md5:abc", "sha256:ABC"])
def test_a_digest_that_is_not_one_never_becomes_a_path(digest: str) -> None:
    source = open_path(image_layout("go-binary"))
    with pytest.raises(ScanRefused, match="invalid digest"):
        source.open_blob(digest)
    with pytest.raises(ScanRefused, match="invalid digest"):
        source.has_blob(digest)


# --- archives -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ARCHIVED)
def test_an_oci_archive_gives_the_same_images_and_blobs_as_its_directory(
    name: str, archives: dict[tuple[str, str], Path]
) -> None:
    directory = open_path(image_layout(name))
    archive = open_path(archives[(name, "oci")])
    assert isinstance(archive, OciLayoutSource)
    images = archive.images()
    assert images == directory.images()
    for image in images:
        for layer in image.layers:
            data = blob_bytes(archive, layer.digest)
            assert sha256(data) == layer.digest
            assert len(data) == layer.size


def test_an_oci_archive_blob_is_read_in_place_in_pieces(
    archives: dict[tuple[str, str], Path],
) -> None:
    source = open_path(archives[("python-app", "oci")])
    layer = max(source.images()[0].layers, key=lambda la: la.size)
    hasher = hashlib.sha256()
    with source.open_blob(layer.digest) as stream:
        while chunk := stream.read(65536):
            hasher.update(chunk)
    assert "sha256:" + hasher.hexdigest() == layer.digest


@pytest.mark.parametrize("name", ["go-binary", "python-app"])
def test_a_docker_archive_keys_its_uncompressed_layers_by_diff_id(
    name: str, archives: dict[tuple[str, str], Path]
) -> None:
    source = open_path(archives[(name, "docker")])
    assert isinstance(source, DockerArchiveSource)
    [image] = source.images()
    [truth] = expected_images(name)
    assert image.manifest_digest == truth["config"]  # the image ID: no manifest here
    assert (image.platform, image.os) == ("linux/amd64", "linux")
    assert [(la.digest, la.diff_id, la.media_type) for la in image.layers] == [
        (la["diff_id"], la["diff_id"], DOCKER_LAYER) for la in truth["layers"]
    ]
    for layer, layer_truth in zip(image.layers, truth["layers"], strict=True):
        data = blob_bytes(source, layer.digest)
        assert sha256(data) == layer.diff_id
        assert len(data) == layer.size == layer_truth["uncompressed_size"]
    config = blob_bytes(source, image.manifest_digest)
    assert sha256(config) == truth["config"]


@pytest.mark.parametrize("name", ["go-binary", "python-app"])
def test_the_same_layer_scans_the_same_from_a_layout_and_from_a_docker_archive(
    name: str, archives: dict[tuple[str, str], Path]
) -> None:
    layout = open_path(image_layout(name))
    docker = open_path(archives[(name, "docker")])
    for oci_layer, docker_layer in zip(
        layout.images()[0].layers, docker.images()[0].layers, strict=True
    ):
        from_oci = scan_bytes(blob_bytes(layout, oci_layer.digest), media_type=OCI_LAYER)
        from_docker = scan_bytes(blob_bytes(docker, docker_layer.digest), media_type=DOCKER_LAYER)
        assert (from_oci.files, from_oci.uncompressed_bytes) == (
            from_docker.files,
            from_docker.uncompressed_bytes,
        )


def test_a_gzipped_docker_archive_is_read_too(
    archives: dict[tuple[str, str], Path], tmp_path: Path
) -> None:
    packed = tmp_path / "go-binary.tar.gz"
    with archives[("go-binary", "docker")].open("rb") as raw, gzip.open(packed, "wb") as out:
        shutil.copyfileobj(raw, out)
    source = open_path(packed)
    plain = open_path(archives[("go-binary", "docker")])
    assert source.images() == plain.images()
    layer = source.images()[0].layers[0]
    assert sha256(blob_bytes(source, layer.digest)) == layer.digest


def _tar_file(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def test_a_windows_docker_archive_marks_its_absent_foreign_layer(tmp_path: Path) -> None:
    layer = tar_bytes([file("Files/Windows/app.exe", b"MZ")])
    foreign_diff = "sha256:" + "f" * 64
    config = json.dumps(
        {
            "os": "windows",
            "architecture": "amd64",
            "rootfs": {"type": "layers", "diff_ids": [foreign_diff, sha256(layer)]},
        }
    ).encode()
    foreign = {
        "mediaType": FOREIGN,
        "size": 1234,
        "digest": "sha256:" + "e" * 64,
        "urls": ["https://example.invalid/base.tar.gz"],
    }
    manifest = [
        {
            "Config": "config.json",
            "Layers": ["base/layer.tar", "app/layer.tar"],
            "LayerSources": {foreign_diff: foreign},
        }
    ]
    path = _tar_file(
        tmp_path / "windows.tar",
        {
            "manifest.json": json.dumps(manifest).encode(),
            "config.json": config,
            "blobs/app.tar": layer,
        },
        links={"app/layer.tar": "../blobs/app.tar"},
    )
    source = open_path(path)
    [image] = source.images()
    assert (image.platform, image.os) == ("windows/amd64", "windows")
    assert image.layers == (
        LayerRef("sha256:" + "e" * 64, FOREIGN, 1234, foreign_diff, foreign=True),
        LayerRef(sha256(layer), DOCKER_LAYER, len(layer), sha256(layer), foreign=False),
    )
    assert not source.has_blob("sha256:" + "e" * 64)
    assert blob_bytes(source, sha256(layer)) == layer  # through the symlink in the archive


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"hello.txt": b"hi"}, "neither an OCI layout, an oci-archive nor a docker-archive"),
        ({"manifest.json": b"{nope"}, "manifest.json is not valid JSON"),
        ({"manifest.json": b"[{}]"}, "manifest.json has an entry without a Config"),
        ({"index.json": b"[]", "oci-layout": b"{}"}, "index.json is not a JSON object"),
    ],
)
def test_an_archive_that_is_not_an_image_is_refused(
    tmp_path: Path, members: dict[str, bytes], message: str
) -> None:
    with pytest.raises(ScanRefused, match=message):
        open_path(_tar_file(tmp_path / "thing.tar", members)).images()


def test_paths_that_are_not_images_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ScanRefused, match=r"without index\.json"):
        open_path(tmp_path)
    with pytest.raises(ScanRefused, match="does not exist"):
        open_path(tmp_path / "nothing")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01" * 5000)
    with pytest.raises(ScanRefused, match="is not a tar archive"):
        open_path(junk)


# --- manifests to images ------------------------------------------------------------------


class Blobs:
    """A content-addressed store for hand-made manifests."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def add(self, document: dict[str, Any] | bytes) -> str:
        data = document if isinstance(document, bytes) else json.dumps(document).encode()
        digest = sha256(data)
        self.data[digest] = data
        return digest

    def read(self, digest: str) -> bytes:
        if digest not in self.data:
            raise ScanRefused(f"blob {digest} is missing")
        return self.data[digest]

    def descriptor(
        self, media_type: str, document: dict[str, Any] | bytes, **extra: Any
    ) -> dict[str, Any]:
        digest = self.add(document)
        return {"mediaType": media_type, "digest": digest, "size": len(self.data[digest]), **extra}


def image_manifest(
    blobs: Blobs,
    arch: str,
    *,
    media_type: str = OCI_MANIFEST,
    config_type: str = OCI_CONFIG,
    layers: list[dict[str, Any]] | None = None,
    variant: str | None = None,
) -> dict[str, Any]:
    if layers is None:
        layers = [{"mediaType": OCI_LAYER, "digest": sha256(arch.encode()), "size": 10}]
    config: dict[str, Any] = {
        "os": "linux",
        "architecture": arch,
        "rootfs": {
            "type": "layers",
            "diff_ids": [sha256(b"diff-" + arch.encode()) for _ in layers],
        },
    }
    if variant:
        config["variant"] = variant
    return {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": blobs.descriptor(config_type, config),
        "layers": layers,
    }


def test_a_docker_manifest_list_with_a_nested_index_and_attestations() -> None:
    blobs = Blobs()
    amd = image_manifest(blobs, "amd64", media_type=DOCKER_MANIFEST, config_type=DOCKER_CONFIG)
    arm = image_manifest(blobs, "arm64", variant="v8")
    s390 = image_manifest(blobs, "s390x")
    attestation = image_manifest(blobs, "unknown", config_type=OCI_CONFIG)
    nested = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            blobs.descriptor(OCI_MANIFEST, s390, platform={"os": "linux", "architecture": "s390x"})
        ],
    }
    sbom = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json"}
    top = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            blobs.descriptor(
                DOCKER_MANIFEST, amd, platform={"os": "linux", "architecture": "amd64"}
            ),
            blobs.descriptor(
                OCI_MANIFEST,
                arm,
                platform={"os": "linux", "architecture": "arm64", "variant": "v8"},
            ),
            blobs.descriptor(
                OCI_MANIFEST, attestation, platform={"os": "unknown", "architecture": "unknown"}
            ),
            blobs.descriptor(
                OCI_MANIFEST,
                attestation,
                annotations={"vnd.docker.reference.type": "attestation-manifest"},
            ),
            blobs.descriptor(OCI_INDEX, nested),
            blobs.descriptor("application/spdx+json", sbom),
        ],
    }
    digest = blobs.add(top)
    images = images_from_manifest(blobs.read, digest, blobs.data[digest])
    assert [i.platform for i in images] == ["linux/amd64", "linux/arm64/v8", "linux/s390x"]
    assert images[0].manifest_digest == sha256(json.dumps(amd).encode())
    assert images[0].layers == (
        LayerRef(sha256(b"amd64"), OCI_LAYER, 10, sha256(b"diff-amd64"), foreign=False),
    )


def test_a_manifest_without_a_platform_takes_it_from_its_config() -> None:
    blobs = Blobs()
    digest = blobs.add(image_manifest(blobs, "arm", variant="v7"))
    [image] = images_from_manifest(blobs.read, digest, blobs.data[digest])
    assert (image.platform, image.os) == ("linux/arm/v7", "linux")


def test_an_artifact_manifest_stands_for_no_image() -> None:
    blobs = Blobs()
    helm = image_manifest(blobs, "amd64", config_type="application/vnd.cncf.helm.config.v1+json")
    digest = blobs.add(helm)
    assert images_from_manifest(blobs.read, digest, blobs.data[digest]) == []


def test_foreign_layers_are_marked_unless_their_blob_is_here() -> None:
    blobs = Blobs()
    layers = [
        {
            "mediaType": FOREIGN,
            "digest": "sha256:" + "1" * 64,
            "size": 100,
            "urls": ["https://example.invalid/a"],
        },
        {"mediaType": FOREIGN, "digest": "sha256:" + "2" * 64, "size": 100},  # no urls
        {
            "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            "digest": "sha256:" + "3" * 64,
            "size": 100,
            "urls": ["https://example.invalid/c"],
        },
        {"mediaType": OCI_LAYER, "digest": "sha256:" + "4" * 64, "size": 100},
    ]
    digest = blobs.add(image_manifest(blobs, "amd64", layers=layers))
    [image] = images_from_manifest(blobs.read, digest, blobs.data[digest])
    assert [la.foreign for la in image.layers] == [True, False, True, False]
    [here] = images_from_manifest(
        blobs.read, digest, blobs.data[digest], has_blob=lambda d: d.endswith("3" * 64)
    )
    assert [la.foreign for la in here.layers] == [True, False, False, False]


def test_diff_ids_are_left_out_when_the_config_does_not_match_the_layers() -> None:
    blobs = Blobs()
    manifest = image_manifest(blobs, "amd64")
    manifest["layers"] = manifest["layers"] * 2
    digest = blobs.add(manifest)
    [image] = images_from_manifest(blobs.read, digest, blobs.data[digest])
    assert [la.diff_id for la in image.layers] == [None, None]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"not json", "is not valid JSON"),
        (b"[1, 2]", "is not a JSON object"),
        (json.dumps({"mediaType": "text/plain"}).encode(), "unsupported media type 'text/plain'"),
        (json.dumps({"mediaType": OCI_INDEX}).encode(), "has no manifests list"),
        (json.dumps({"mediaType": OCI_MANIFEST}).encode(), "has no config"),
    ],
)
def test_a_broken_manifest_is_refused(document: bytes, message: str) -> None:
    with pytest.raises(ScanRefused, match=message):
        images_from_manifest(Blobs().read, sha256(document), document)


def test_an_index_that_nests_itself_is_refused() -> None:
    # A digest cannot name itself, but an index may name a chain deeper than anyone needs.
    blobs = Blobs()
    inner: dict[str, Any] = image_manifest(blobs, "amd64")
    media_type = OCI_MANIFEST
    for _ in range(10):
        inner = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [blobs.descriptor(media_type, inner)],
        }
        media_type = OCI_INDEX
    digest = blobs.add(inner)
    with pytest.raises(ScanRefused, match="nests indexes deeper than 8"):
        images_from_manifest(blobs.read, digest, blobs.data[digest])


def test_a_layer_of_a_docker_archive_scans_like_any_layer(
    archives: dict[tuple[str, str], Path],
) -> None:
    source = open_path(archives[("go-binary", "docker")])
    layer = source.images()[0].layers[0]
    scan = scan_bytes(blob_bytes(source, layer.digest), media_type=layer.media_type)
    assert scan.files == 1
    assert scan.notes == []  # a plain tar, as its media type says


def test_a_layout_lists_an_image_tagged_twice_once(tmp_path: Path) -> None:
    blobs = Blobs()
    manifest = image_manifest(blobs, "amd64")
    digest = blobs.add(manifest)
    top = [
        {
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": len(blobs.data[digest]),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }
        for tag in ("latest", "v1")
    ]
    (tmp_path / "blobs" / "sha256").mkdir(parents=True)
    for blob_digest, data in blobs.data.items():
        (tmp_path / "blobs" / "sha256" / blob_digest.removeprefix("sha256:")).write_bytes(data)
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": top}))
    images = open_path(tmp_path).images()
    assert [(i.manifest_digest, i.platform) for i in images] == [(digest, "linux/amd64")]


@pytest.mark.parametrize(
    ("fields", "platform"),
    [
        ({}, "unknown/unknown"),
        ({"os": "", "architecture": None, "variant": ""}, "unknown/unknown"),
        ({"os": "linux"}, "linux/unknown"),
        ({"architecture": "arm", "variant": "v7"}, "unknown/arm/v7"),
    ],
)
def test_a_scan_names_a_platform_its_config_leaves_out_unknown(
    fields: dict[str, Any], platform: str
) -> None:
    # A scan's choice (the tag listing shows no platform for these instead).
    blobs = Blobs()
    manifest = image_manifest(blobs, "amd64")
    config = {"rootfs": {"type": "layers", "diff_ids": []}, **fields}
    manifest["config"] = blobs.descriptor(OCI_CONFIG, config)
    digest = blobs.add(manifest)
    [image] = images_from_manifest(blobs.read, digest, blobs.data[digest])
    assert (image.platform, image.os) == (platform, platform.partition("/")[0])
