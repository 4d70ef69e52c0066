"""What the policy engine reads of stored BOMs (scanning/compact.py): the five fields of each
component, once over an index's platforms, licences as the identifiers of their SPDX
expression, the same from the compact list a scan stores as from its BOMs, and a malformed
document read as no BOM (never an error out of a policy run)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from trustyard.scanning.compact import (
    compact,
    compact_boms,
    decode_boms,
    license_ids,
    read_compact,
)


def bom_components(data: bytes) -> list[tuple[str, str, str, tuple[str, ...], str]]:
    return read_compact(compact_boms(data))


def component(name: str, version: str = "1.0", **extra: object) -> dict[str, object]:
    return {
        "ecosystem": "pypi",
        "name": name,
        "version": version,
        "purl": f"pkg:pypi/{name}@{version}",
        "locations": ["usr/lib/python3/site-packages/x/METADATA"],
        "detector": "python",
        "layer": "sha256:" + "a" * 64,
        **extra,
    }


def test_each_component_is_read_with_its_licences_and_other_fields_are_skipped() -> None:
    boms = [
        {
            "platform": "linux/amd64",
            "layers": [{"digest": "sha256:" + "b" * 64, "components": [component("ignored")]}],
            "components": [
                component("django", "4.2.7", licenses="BSD-3-Clause"),
                component("six", licenses="MIT OR (Apache-2.0 AND GPL-2.0-only WITH Classpath)"),
                component("bare"),
            ],
        }
    ]
    found = bom_components(json.dumps(boms).encode())
    assert found == [
        ("pypi", "django", "4.2.7", ("BSD-3-Clause",), "pkg:pypi/django@4.2.7"),
        ("pypi", "six", "1.0", ("MIT", "Apache-2.0", "GPL-2.0-only"), "pkg:pypi/six@1.0"),
        ("pypi", "bare", "1.0", (), "pkg:pypi/bare@1.0"),
    ]


def test_an_index_lists_a_component_its_platforms_share_once() -> None:
    shared, arm_only = component("requests", "2.31.0"), component("armlib")
    boms = [{"components": [shared]}, {"components": [shared, arm_only]}]
    found = bom_components(json.dumps(boms).encode())
    assert [name for _, name, *_ in found] == ["requests", "armlib"]


def test_a_malformed_document_reads_as_no_bom() -> None:
    for data in (b"not json", b"{}", b'[{"components": [{"name": 7}]}]', b"[1]"):
        assert decode_boms(data) == []
    assert decode_boms(b"[]") == []
    assert license_ids("") == license_ids(None) == ()
    for data in (b"", b"\x91\x01", b"\xff", b"\x90"):
        assert read_compact(data) == []


TEXT = st.text(max_size=12)
ITEM = st.tuples(TEXT, TEXT, TEXT, st.none() | st.sampled_from(["MIT", "MIT OR Apache-2.0"]), TEXT)


@given(st.lists(ITEM, max_size=20))
def test_the_compact_list_reads_back_what_the_boms_say(items: list[tuple]) -> None:
    """A scan's stored list and its BOMs give policies the same components in the same
    order (the list is what a scan stores; the BOMs are the fallback for older scans)."""
    boms = [
        {
            "components": [
                component(name, version, ecosystem=eco, purl=purl, licenses=lic)
                for eco, name, version, lic, purl in items
            ]
        }
    ]
    from_list = read_compact(compact(items))
    assert from_list == bom_components(json.dumps(boms).encode())
    assert len(from_list) == len({(e, n, v, license_ids(lic), p) for e, n, v, lic, p in items})
