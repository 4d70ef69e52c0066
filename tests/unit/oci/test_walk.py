"""oci/walk.py: a manifest walked down to the image manifests it stands for (documents read
from a dict here), and what it refuses with ManifestInvalid."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trustyard.errors import ManifestInvalid
from trustyard.oci import mediatypes as mt
from trustyard.oci.digest import digest_bytes
from trustyard.oci.walk import (
    ImageManifest,
    LayerEntry,
    index_entries,
    is_attestation,
    is_foreign,
    walk,
    walk_entries,
)

LIMIT = 1 << 20
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


class Documents(dict[str, bytes]):
    def add(self, document: Any) -> str:
        data = json.dumps(document).encode()
        digest = str(digest_bytes(data))
        self[digest] = data
        return digest

    def entry(self, document: Any, media_type: str, **extra: Any) -> dict[str, Any]:
        digest = self.add(document)
        return {"mediaType": media_type, "digest": digest, "size": len(self[digest]), **extra}

    def walk(self, digest: str) -> list[ImageManifest]:
        return list(walk(self.__getitem__, digest, self[digest], max_bytes=LIMIT))


def image(documents: Documents, name: str, config_type: str = mt.OCI_CONFIG) -> dict[str, Any]:
    config = documents.entry({"os": "linux", "architecture": name}, config_type)
    layer = {"mediaType": LAYER, "digest": str(digest_bytes(name.encode())), "size": 3}
    return {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config, "layers": [layer]}


def test_an_index_stands_for_its_images_with_their_platforms() -> None:
    documents = Documents()
    amd, arm, helm = image(documents, "amd64"), image(documents, "arm64"), image(documents, "x")
    helm["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json"
    nested = {"mediaType": mt.OCI_INDEX, "manifests": [documents.entry(arm, mt.OCI_MANIFEST)]}
    top = {
        "mediaType": mt.DOCKER_MANIFEST_LIST,
        "manifests": [
            documents.entry(
                amd, mt.OCI_MANIFEST, platform={"os": "linux", "architecture": "amd64"}
            ),
            documents.entry(amd, mt.OCI_MANIFEST, platform={"os": "unknown"}),  # attestation
            documents.entry(helm, mt.OCI_MANIFEST),  # an artifact: no image
            documents.entry({"spdx": 1}, "application/spdx+json"),  # not a manifest
            documents.entry(nested, mt.OCI_INDEX),
            "not a descriptor",
        ],
    }
    found = documents.walk(documents.add(top))
    assert [(m.digest, m.platform) for m in found] == [
        (str(digest_bytes(json.dumps(amd).encode())), {"os": "linux", "architecture": "amd64"}),
        (str(digest_bytes(json.dumps(arm).encode())), None),
    ]
    assert found[0].config_digest == amd["config"]["digest"]
    assert found[0].layers() == (LayerEntry(amd["layers"][0]["digest"], LAYER, 3, False),)
    assert len(index_entries(top)) == 5  # every object listed, attestations included
    assert [is_attestation(e) for e in index_entries(top)] == [False, True, False, False, False]


def test_layers_are_read_leniently_and_foreign_ones_marked() -> None:
    documents = Documents()
    manifest = image(documents, "amd64")
    manifest["layers"] = [
        {"mediaType": FOREIGN, "digest": "sha256:" + "1" * 64, "size": -1, "urls": ["https://x"]},
        {"mediaType": FOREIGN, "digest": "sha256:" + "2" * 64, "size": "9"},
        {"digest": "sha256:" + "3" * 64},
    ]
    [found] = documents.walk(documents.add(manifest))
    assert found.layers() == (
        LayerEntry("sha256:" + "1" * 64, FOREIGN, 0, True),
        LayerEntry("sha256:" + "2" * 64, FOREIGN, 0, False),
        LayerEntry("sha256:" + "3" * 64, "", 0, False),
    )
    assert is_foreign(FOREIGN, ["https://x"])
    assert not is_foreign(FOREIGN, [])
    assert not is_foreign(LAYER, ["https://x"])


def test_the_entries_of_a_layouts_index_walk_like_an_index() -> None:
    documents = Documents()
    entries = [documents.entry(image(documents, "s390x"), mt.OCI_MANIFEST)] * 2
    found = list(walk_entries(documents.__getitem__, entries, "layout", max_bytes=LIMIT))
    assert [m.digest for m in found] == [entries[0]["digest"]] * 2  # the caller dedupes


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"not json", "is not valid JSON"),
        (b"[" * 100_000, "is not valid JSON"),
        (b"[1, 2]", "is not a JSON object"),
        (b'{"mediaType": "text/plain"}', "unsupported media type 'text/plain'"),
        (json.dumps({"mediaType": mt.OCI_INDEX}).encode(), "has no manifests list"),
        (json.dumps({"mediaType": mt.OCI_MANIFEST}).encode(), "has no config"),
        (b" " * (LIMIT + 1), "is larger than"),
        (
            json.dumps(
                {"manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": "sha256:x"}]}
            ).encode(),
            "invalid digest 'sha256:x'",
        ),
        (
            json.dumps({"manifests": [{"mediaType": mt.OCI_MANIFEST}]}).encode(),
            "a descriptor has no digest",
        ),
    ],
)
def test_what_cannot_be_walked_is_refused_naming_the_document(
    document: bytes, message: str
) -> None:
    documents = Documents()
    digest = str(digest_bytes(document))
    documents[digest] = document
    with pytest.raises(ManifestInvalid, match=message):
        documents.walk(digest)


def test_a_layer_that_is_no_descriptor_is_refused_when_the_layers_are_read() -> None:
    documents = Documents()
    manifest = image(documents, "amd64")
    manifest["layers"] = ["x"]
    [found] = documents.walk(documents.add(manifest))
    with pytest.raises(ManifestInvalid, match="layer 0 is not a descriptor"):
        found.layers()
    del manifest["layers"]
    [found] = documents.walk(documents.add(manifest))
    with pytest.raises(ManifestInvalid, match="has no layers list"):
        found.layers()


def test_indexes_nested_deeper_than_the_limit_are_refused() -> None:
    documents = Documents()
    inner: dict[str, Any] = image(documents, "amd64")
    media_type = mt.OCI_MANIFEST
    for _ in range(8):
        inner = {"mediaType": mt.OCI_INDEX, "manifests": [documents.entry(inner, media_type)]}
        media_type = mt.OCI_INDEX
    assert len(documents.walk(documents.add(inner))) == 1
    deeper = {"mediaType": mt.OCI_INDEX, "manifests": [documents.entry(inner, mt.OCI_INDEX)]}
    with pytest.raises(ManifestInvalid, match="nests indexes deeper than 8"):
        documents.walk(documents.add(deeper))
