"""What the policy engine reads of stored BOMs (scanning/policy_facts.py): the five fields of
each component, once over an index's platforms, licences as the identifiers of their SPDX
expression, and a malformed document read as no BOM (never an error out of a policy run)."""

from __future__ import annotations

import json

from trustyard.scanning.policy_facts import as_tuple, bom_components, decode_boms, license_ids


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
    found = bom_components(decode_boms(json.dumps(boms).encode()), as_tuple)
    assert found == [
        ("pypi", "django", "4.2.7", ("BSD-3-Clause",), "pkg:pypi/django@4.2.7"),
        ("pypi", "six", "1.0", ("MIT", "Apache-2.0", "GPL-2.0-only"), "pkg:pypi/six@1.0"),
        ("pypi", "bare", "1.0", (), "pkg:pypi/bare@1.0"),
    ]


def test_an_index_lists_a_component_its_platforms_share_once() -> None:
    shared, arm_only = component("requests", "2.31.0"), component("armlib")
    boms = [{"components": [shared]}, {"components": [shared, arm_only]}]
    found = bom_components(decode_boms(json.dumps(boms).encode()), as_tuple)
    assert [name for _, name, *_ in found] == ["requests", "armlib"]


def test_a_malformed_document_reads_as_no_bom() -> None:
    for data in (b"not json", b"{}", b'[{"components": [{"name": 7}]}]', b"[1]"):
        assert decode_boms(data) == []
    assert decode_boms(b"[]") == []
    assert license_ids("") == license_ids(None) == ()
