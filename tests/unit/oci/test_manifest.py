"""Manifest parsing: what a pushed manifest references, and how malformed ones are refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustyard.errors import DomainError
from trustyard.oci import mediatypes as mt
from trustyard.oci.digest import digest_bytes
from trustyard.oci.manifest import ParsedManifest, parse_manifest, scannable
from trustyard.registry.errors import ErrorCode, OciError, oci_error

PROPERTY = settings(derandomize=True, max_examples=100, deadline=None, database=None)

CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


def desc(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "digest": str(digest_bytes(data)),
        "size": len(data),
        **extra,
    }


def image(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": desc(CONFIG, b"{}"),
        "layers": [desc(LAYER, b"layer-1"), desc(LAYER, b"layer-2")],
    }
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not None}


def index(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            desc(mt.OCI_MANIFEST, b"amd64", platform={"os": "linux", "architecture": "amd64"}),
            desc(mt.OCI_MANIFEST, b"arm64", platform={"os": "linux", "architecture": "arm64"}),
        ],
    }
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not None}


def parse(doc: Any, content_type: str | None = None) -> ParsedManifest:
    return parse_manifest(json.dumps(doc).encode(), content_type)


def refused(body: bytes, content_type: str | None = None) -> OciError:
    with pytest.raises(DomainError) as caught:
        parse_manifest(body, content_type)
    error = oci_error(caught.value)
    assert error.code is ErrorCode.MANIFEST_INVALID
    return error


# --- what valid manifests reference -----------------------------------------------------------


def test_image_manifest_references_config_then_layers_in_order() -> None:
    parsed = parse(image())
    assert parsed.media_type == mt.OCI_MANIFEST
    assert not parsed.is_index
    assert [str(d.digest) for d in parsed.blobs] == [
        str(digest_bytes(b"{}")),
        str(digest_bytes(b"layer-1")),
        str(digest_bytes(b"layer-2")),
    ]
    assert [d.size for d in parsed.blobs] == [2, 7, 7]
    assert [d.media_type for d in parsed.blobs] == [CONFIG, LAYER, LAYER]
    assert parsed.children == []
    assert parsed.subject is None


def test_index_references_child_manifests_with_platforms() -> None:
    parsed = parse(index())
    assert parsed.is_index
    assert parsed.blobs == []
    assert [str(d.digest) for d in parsed.children] == [
        str(digest_bytes(b"amd64")),
        str(digest_bytes(b"arm64")),
    ]
    assert parsed.children[1].platform == {"os": "linux", "architecture": "arm64"}
    assert parsed.artifact_type is None


def test_docker_manifest_list_is_an_index() -> None:
    doc = index(mediaType=mt.DOCKER_MANIFEST_LIST)
    parsed = parse(doc, mt.DOCKER_MANIFEST_LIST)
    assert parsed.is_index
    assert len(parsed.children) == 2


def test_docker_manifest_has_no_artifact_type() -> None:
    doc = image(
        mediaType=mt.DOCKER_MANIFEST,
        config=desc(DOCKER_CONFIG, b"{}"),
        layers=[desc(DOCKER_LAYER, b"l")],
    )
    parsed = parse(doc, mt.DOCKER_MANIFEST)
    assert parsed.media_type == mt.DOCKER_MANIFEST
    assert parsed.artifact_type is None


def test_artifact_type_is_kept_when_declared() -> None:
    parsed = parse(image(artifactType="application/vnd.example.sbom"))
    assert parsed.artifact_type == "application/vnd.example.sbom"


@pytest.mark.parametrize("declared", [None, ""])
def test_missing_artifact_type_is_the_config_media_type(declared: str | None) -> None:
    # distribution-spec, listing referrers: "If the artifactType is empty or missing in the
    # image manifest, the value of artifactType MUST be set to the config descriptor mediaType".
    assert parse(image(artifactType=declared)).artifact_type == CONFIG
    empty_config = image(artifactType=declared, config=desc(mt.OCI_EMPTY_JSON, b"{}"))
    assert parse(empty_config).artifact_type == mt.OCI_EMPTY_JSON


def test_subject_and_annotations_are_read() -> None:
    subject = desc(mt.OCI_MANIFEST, b"the image")
    parsed = parse(image(subject=subject, annotations={"org.example.k": "v"}))
    assert parsed.subject is not None
    assert str(parsed.subject.digest) == subject["digest"]
    assert parsed.subject.size == subject["size"]
    assert parsed.annotations == {"org.example.k": "v"}


def test_subject_null_means_no_subject() -> None:
    assert parse(image(subject=None)).subject is None


def test_foreign_layers_with_urls_are_marked_foreign() -> None:
    foreign = desc(FOREIGN, b"windows base", urls=["https://example.invalid/layer"])
    not_really = desc(FOREIGN, b"no urls")
    parsed = parse(image(layers=[foreign, not_really, desc(LAYER, b"x")]))
    assert [d.foreign for d in parsed.blobs] == [False, True, False, False]


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (mt.OCI_MANIFEST, mt.OCI_MANIFEST),
        (f"{mt.OCI_MANIFEST}; charset=utf-8", mt.OCI_MANIFEST),
        (mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST),
        (None, mt.OCI_MANIFEST),  # no mediaType anywhere: a config means an image manifest
    ],
)
def test_media_type_from_content_type_when_the_body_has_none(
    content_type: str | None, expected: str
) -> None:
    assert parse(image(mediaType=None), content_type).media_type == expected


def test_a_non_manifest_content_type_for_a_body_without_media_type_is_refused() -> None:
    error = refused(json.dumps(image(mediaType=None)).encode(), "application/json")
    assert "unsupported manifest media type 'application/json'" in error.message


def test_index_without_media_type_is_recognised_by_its_manifests() -> None:
    assert parse(index(mediaType=None)).media_type == mt.OCI_INDEX


def test_body_media_type_wins_over_a_non_manifest_content_type() -> None:
    assert parse(image(), "application/octet-stream").media_type == mt.OCI_MANIFEST


# --- refusals ---------------------------------------------------------------------------------


def test_content_type_contradicting_the_body_is_refused() -> None:
    error = refused(json.dumps(image()).encode(), mt.DOCKER_MANIFEST)
    assert "does not match" in error.message


def test_oversized_manifest_is_refused_with_413() -> None:
    body = json.dumps(image(annotations={"pad": "x" * mt.MAX_MANIFEST_BYTES})).encode()
    error = refused(body, mt.OCI_MANIFEST)
    assert error.status == 413


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00garbage",
        b"[]",
        b"null",
        b'"manifest"',
        b"[" * 100_000,  # deeper than the JSON parser recurses
    ],
)
def test_bodies_that_are_not_json_objects_are_refused(body: bytes) -> None:
    refused(body)


@pytest.mark.parametrize(
    "doc",
    [
        image(schemaVersion=1),
        image(schemaVersion="2"),
        image(schemaVersion=None),
        image(mediaType="application/vnd.oci.image.config.v1+json"),
        image(mediaType=7),
        image(config=None),
        image(layers=None),
        image(layers={}),
        image(artifactType=3),
        image(annotations={"k": 1}),
        image(annotations=["k"]),
        image(subject="sha256:abc"),
        index(manifests=None),
        index(manifests="all"),
        {"schemaVersion": 2},
    ],
)
def test_structurally_invalid_manifests_are_refused(doc: dict[str, Any]) -> None:
    refused(json.dumps(doc).encode())


@pytest.mark.parametrize(
    "broken",
    [
        {"digest": str(digest_bytes(b"x")), "size": 1},  # no mediaType
        {"mediaType": LAYER, "size": 1},  # no digest
        {"mediaType": LAYER, "digest": "sha256:1234", "size": 1},
        {"mediaType": LAYER, "digest": "md5:" + "a" * 32, "size": 1},
        {"mediaType": LAYER, "digest": str(digest_bytes(b"x")), "size": -1},
        {"mediaType": LAYER, "digest": str(digest_bytes(b"x")), "size": 1.5},
        {"mediaType": LAYER, "digest": str(digest_bytes(b"x")), "size": True},
        {"mediaType": LAYER, "digest": str(digest_bytes(b"x")), "size": "1"},
        {"mediaType": LAYER, "digest": str(digest_bytes(b"x"))},  # no size
        {"mediaType": LAYER, "digest": str(digest_bytes(b"x")), "size": 1, "platform": "linux"},
        {"mediaType": LAYER, "digest": str(digest_bytes(b"x")), "size": 1, "artifactType": 1},
        "sha256:abc",
        None,
    ],
)
def test_malformed_descriptors_are_refused_wherever_they_appear(broken: Any) -> None:
    for doc in (
        image(layers=[desc(LAYER, b"ok"), broken]),
        image(config=broken) if broken is not None else image(config=[]),
        index(manifests=[broken]),
        image(subject=broken) if broken is not None else image(subject=[]),
    ):
        refused(json.dumps(doc).encode())


# --- properties -------------------------------------------------------------------------------


def _outcome(body: bytes, content_type: str | None) -> None:
    """Parsing either succeeds or raises MANIFEST_INVALID; nothing else escapes."""
    parsed: ParsedManifest | None = None
    failure: OciError | None = None
    try:
        parsed = parse_manifest(body, content_type)
    except DomainError as error:
        failure = oci_error(error)
    if failure is not None:
        assert failure.code is ErrorCode.MANIFEST_INVALID
        assert failure.status in (400, 413)
    else:
        assert parsed is not None
        assert parsed.media_type in mt.MANIFEST_TYPES
        assert all(d.size >= 0 for d in [*parsed.blobs, *parsed.children])


CONTENT_TYPES = st.one_of(
    st.none(), st.sampled_from(sorted(mt.MANIFEST_TYPES)), st.text(max_size=30)
)

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(
        [2, mt.OCI_MANIFEST, mt.OCI_INDEX, LAYER, FOREIGN, str(digest_bytes(b"x")), "sha256:"]
    ),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "schemaVersion",
                    "mediaType",
                    "config",
                    "layers",
                    "manifests",
                    "subject",
                    "digest",
                    "size",
                    "urls",
                    "annotations",
                    "artifactType",
                    "platform",
                ]
            )
            | st.text(max_size=8),
            inner,
            max_size=6,
        )
    ),
    max_leaves=30,
)


@PROPERTY
@given(body=st.binary(max_size=300), content_type=CONTENT_TYPES)
def test_arbitrary_bytes_parse_or_raise_manifest_invalid(
    body: bytes, content_type: str | None
) -> None:
    _outcome(body, content_type)


@PROPERTY
@given(doc=JSON_VALUES, content_type=CONTENT_TYPES)
def test_arbitrary_json_parses_or_raises_manifest_invalid(
    doc: Any, content_type: str | None
) -> None:
    _outcome(json.dumps(doc).encode(), content_type)


@PROPERTY
@given(
    field=st.sampled_from(
        ["schemaVersion", "mediaType", "config", "layers", "subject", "annotations", "artifactType"]
    ),
    value=JSON_VALUES,
    base=st.sampled_from(["image", "index"]),
    content_type=CONTENT_TYPES,
)
def test_valid_manifest_with_one_field_replaced_parses_or_raises_manifest_invalid(
    field: str, value: Any, base: str, content_type: str | None
) -> None:
    doc = image() if base == "image" else index()
    doc[field] = value
    _outcome(json.dumps(doc).encode(), content_type)


@PROPERTY
@given(
    layers=st.lists(st.binary(max_size=16), max_size=6),
    algorithm=st.sampled_from(["sha256", "sha512"]),
)
def test_every_generated_layer_is_referenced_with_its_digest_and_size(
    layers: list[bytes], algorithm: str
) -> None:
    descriptors = [
        {"mediaType": LAYER, "digest": str(digest_bytes(data, algorithm)), "size": len(data)}
        for data in layers
    ]
    parsed = parse(image(layers=descriptors))
    assert [(d.digest, d.size) for d in parsed.blobs[1:]] == [
        (digest_bytes(data, algorithm), len(data)) for data in layers
    ]


# --- which manifests are images to scan ------------------------------------------------------

OCI_MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def manifest_with(config_type: str, layer_types: list[str], **extra: Any) -> bytes:
    blob = {"digest": "sha256:" + "1" * 64, "size": 1}
    document = {
        "schemaVersion": 2,
        "config": {"mediaType": config_type, **blob},
        "layers": [{"mediaType": media_type, **blob} for media_type in layer_types],
        **extra,
    }
    return json.dumps(document).encode()


OCI_TAR_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (manifest_with(CONFIG, [OCI_TAR_GZ]), OCI_MANIFEST_TYPE, True),
        (manifest_with(CONFIG, ["application/vnd.oci.image.layer.v1.tar+zstd"]), None, True),
        (
            manifest_with(
                "application/vnd.docker.container.image.v1+json",
                ["application/vnd.docker.image.rootfs.diff.tar.gzip"],
                mediaType="application/vnd.docker.distribution.manifest.v2+json",
            ),
            None,
            True,
        ),
        (manifest_with(CONFIG, []), None, False),  # no layer: nothing to scan
        # a cosign signature: an image config, but its layer is no filesystem
        (manifest_with(CONFIG, ["application/vnd.dev.cosign.simplesigning.v1+json"]), None, False),
        (
            manifest_with(
                "application/vnd.oci.empty.v1+json",
                ["application/spdx+json"],
                artifactType="application/spdx+json",
            ),
            None,
            False,
        ),
        (manifest_with(CONFIG, [OCI_TAR_GZ], artifactType="application/x-thing"), None, False),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": [
                        {
                            "mediaType": OCI_MANIFEST_TYPE,
                            "digest": "sha256:" + "2" * 64,
                            "size": 3,
                        }
                    ],
                }
            ).encode(),
            None,
            True,
        ),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": [],
                }
            ).encode(),
            None,
            False,
        ),
    ],
)
def test_only_images_and_indexes_of_images_are_scannable(
    body: bytes, content_type: str | None, expected: bool
) -> None:
    assert scannable(parse_manifest(body, content_type)) is expected
