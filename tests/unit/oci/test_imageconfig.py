"""oci/imageconfig.py: an image config and a platform object read leniently. Whatever a client
put in a config (fields missing, of the wrong type, huge), the parser answers typed values and
never raises; which of them names a platform is the callers' choice."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from trustyard.oci.imageconfig import (
    ImageConfig,
    Platform,
    json_object,
    parse_image_config,
    parse_platform,
)

HUGE = 10**400

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-HUGE, max_value=HUGE),
    st.floats(allow_nan=False),
    st.text(max_size=2000),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
fields = st.one_of(st.sampled_from(["linux", "unknown", "", "arm64", "v8"]), json_values)
configs = st.fixed_dictionaries(
    {},
    optional={
        "os": fields,
        "architecture": fields,
        "variant": fields,
        "created": fields,
        "rootfs": st.one_of(
            json_values,
            st.fixed_dictionaries({}, optional={"diff_ids": st.lists(fields, max_size=4)}),
        ),
    },
)


def expected_text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def test_a_config_names_its_platform_and_diff_ids() -> None:
    config = {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
        "created": "2024-01-01T00:00:00Z",
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64, "sha256:" + "b" * 64]},
    }
    assert parse_image_config(config) == ImageConfig(
        Platform("linux", "arm64", "v8"), ("sha256:" + "a" * 64, "sha256:" + "b" * 64)
    )


def test_missing_or_mistyped_fields_read_as_none() -> None:
    assert parse_image_config({}) == ImageConfig(Platform())
    assert parse_image_config([1, 2]) == ImageConfig(Platform())
    assert parse_platform({"os": 5, "architecture": ["amd64"], "variant": None}) == Platform()
    assert parse_platform("linux/amd64") == Platform()
    # An empty string is a string: which platform it names is the caller's choice.
    assert parse_platform({"os": "", "architecture": "amd64"}) == Platform("", "amd64")
    assert parse_image_config({"rootfs": {"diff_ids": ["sha256:" + "a" * 64, 7]}}).diff_ids is None
    assert parse_image_config({"rootfs": ["diff_ids"]}).diff_ids is None
    assert parse_image_config({"rootfs": {"diff_ids": []}}).diff_ids == ()


@settings(max_examples=400)
@given(configs)
def test_any_config_parses_to_typed_fields_copied_from_strings_only(config: dict[str, Any]) -> None:
    parsed = parse_image_config(config)
    platform = parsed.platform
    assert platform == parse_platform(config)
    assert platform.os == expected_text(config.get("os"))
    assert platform.architecture == expected_text(config.get("architecture"))
    assert platform.variant == expected_text(config.get("variant"))
    rootfs = config.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if isinstance(ids, list) and all(isinstance(i, str) for i in ids):
        assert parsed.diff_ids == tuple(ids)
    else:
        assert parsed.diff_ids is None


@settings(max_examples=200)
@given(json_values)
def test_any_json_document_parses_without_raising(document: Any) -> None:
    parsed = parse_image_config(document)
    assert isinstance(parsed.platform, Platform)
    assert json_object(json.dumps(document).encode()) == (
        document if isinstance(document, dict) else None
    )


@settings(max_examples=200)
@given(st.binary(max_size=512))
def test_any_bytes_are_a_json_object_or_none(data: bytes) -> None:
    found = json_object(data)
    assert found is None or isinstance(found, dict)


def test_a_document_nested_past_the_decoders_depth_is_no_object() -> None:
    assert json_object(b"[" * 100_000) is None
    assert json_object(b'{"os": ' + b"[" * 100_000 + b"]" * 100_000 + b"}") is None
    assert json_object(b"\xff\xfe") is None
    assert json_object(b'{"os": "linux"}') == {"os": "linux"}
