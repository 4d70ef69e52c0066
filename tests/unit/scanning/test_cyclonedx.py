"""CycloneDX 1.6 export: valid under the strict schema validator, and says what we found."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.scanning.bom_samples import (
    AMD64,
    APP,
    APP_DIFF,
    ARM64,
    BASE,
    BASE_DIFF,
    SITE,
    empty_bom,
    image_bom,
)
from trustyard.scanning.bom import EXPORTED_LOCATIONS, BomComponent, ImageBom
from trustyard.scanning.cyclonedx import to_cyclonedx
from trustyard.scanning.licenses import spdx_expression
from trustyard.scanning.model import Component

VALIDATOR = JsonStrictValidator(SchemaVersion.V1_6)


def export(boms: list[ImageBom], name: str = "python-app", **kw: Any) -> dict[str, Any]:
    text = to_cyclonedx(boms, name, **kw)
    error = VALIDATOR.validate_str(text)
    assert error is None, str(error)
    document: dict[str, Any] = json.loads(text)
    return document


def props(component: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for prop in component.get("properties", []):
        out.setdefault(prop["name"], []).append(prop["value"])
    return out


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in document["components"]}


def test_one_image_is_the_metadata_component_and_every_component_is_listed() -> None:
    doc = export([image_bom()])
    assert doc["bomFormat"] == "CycloneDX"
    assert doc["specVersion"] == "1.6"
    assert doc["serialNumber"].startswith("urn:uuid:")
    root = doc["metadata"]["component"]
    assert root["type"] == "container"
    assert root["name"] == "python-app"
    assert root["version"] == AMD64
    assert root["purl"] == f"pkg:oci/python-app@{AMD64}?arch=amd64"
    tools = doc["metadata"]["tools"]["components"]
    assert [(t["name"], t["type"]) for t in tools] == [("trustyard", "application")]
    names = sorted(c["name"] for c in doc["components"])
    assert names == sorted(
        ["busybox-static", "Django", "@types/node", "github.com/google/uuid", "openssl", "debian"]
    )


def test_components_carry_purl_licence_layer_and_locations() -> None:
    components = by_name(export([image_bom()]))
    busybox = components["busybox-static"]
    assert busybox["type"] == "library"
    assert busybox["version"] == "1:1.35.0-4+deb12u1+b1"
    assert busybox["purl"] == (
        "pkg:deb/debian/busybox-static@1:1.35.0-4%2Bdeb12u1%2Bb1?arch=amd64&distro=debian-12"
    )
    assert busybox["licenses"] == [{"expression": "GPL-2.0-only"}]
    assert props(busybox) == {
        "trustyard:arch": ["amd64"],
        "trustyard:detector": ["dpkg"],
        "trustyard:diff_id": [BASE_DIFF],
        "trustyard:ecosystem": ["deb"],
        "trustyard:evidence": ["var/lib/dpkg/status"],
        "trustyard:image": [AMD64],
        "trustyard:layer": [BASE],
        "trustyard:location": ["bin/busybox", "var/lib/dpkg/status"],
        "trustyard:platform": ["linux/amd64"],
        "trustyard:source": ["busybox"],
    }
    django = components["Django"]
    assert django["licenses"] == [{"expression": "BSD-3-Clause AND LicenseRef-Django-extra"}]
    assert props(django)["trustyard:layer"] == [APP]
    assert props(django)["trustyard:diff_id"] == [APP_DIFF]
    assert sorted(props(django)["trustyard:location"]) == [
        f"{SITE}/Django-2.2.dist-info/METADATA",
        f"{SITE}/Django-2.2.dist-info/RECORD",
    ]
    assert components["@types/node"]["purl"] == "pkg:npm/%40types/node@20.1.0"
    assert components["github.com/google/uuid"]["purl"] == (
        "pkg:golang/github.com/google/uuid@v1.3.0"
    )


def test_a_purl_that_does_not_parse_is_kept_as_a_property_and_licence_text_as_is() -> None:
    openssl = by_name(export([image_bom()]))["openssl"]
    assert "purl" not in openssl
    assert openssl["type"] == "application"  # a binary fingerprint
    assert props(openssl)["trustyard:purl"] == ["not a purl"]
    assert openssl["licenses"] == [{"expression": "this is not (an expression"}]


def test_a_component_with_thousands_of_files_lists_the_first_and_counts_the_rest() -> None:
    bom = image_bom()
    django = bom.components[1].component
    files = tuple(f"{SITE}/django/f{n:04}.py" for n in range(2000))
    bom.components[1].component = dataclasses.replace(django, locations=django.locations + files)
    props = by_name(export([bom]))["Django"]["properties"]
    locations = [p["value"] for p in props if p["name"] == "trustyard:location"]
    assert len(locations) == EXPORTED_LOCATIONS
    assert f"{SITE}/Django-2.2.dist-info/METADATA" in locations
    assert {"name": "trustyard:evidence", "value": f"{SITE}/Django-2.2.dist-info/METADATA"} in props
    assert {"name": "trustyard:locations_not_listed", "value": "1986"} in props


def test_the_distribution_is_an_operating_system_component() -> None:
    debian = by_name(export([image_bom()]))["debian"]
    assert debian["type"] == "operating-system"
    assert debian["version"] == "12"
    assert debian["description"] == "Debian GNU/Linux 12 (bookworm)"


def test_the_root_depends_on_every_component_of_a_single_image() -> None:
    doc = export([image_bom()])
    refs = [c["bom-ref"] for c in doc["components"]]
    assert len(set(refs)) == len(refs)
    graph = {d["ref"]: d.get("dependsOn", []) for d in doc["dependencies"]}
    assert sorted(graph[doc["metadata"]["component"]["bom-ref"]]) == sorted(refs)


def test_an_index_lists_each_platform_image_and_its_components_once_per_platform() -> None:
    amd, arm = image_bom(), image_bom("linux/arm64/v8", ARM64)
    index = "sha256:" + "9" * 64
    doc = export([amd, arm], "multi-arch", index_digest=index)
    root = doc["metadata"]["component"]
    assert (root["type"], root["name"], root["version"]) == ("container", "multi-arch", index)
    containers = [c for c in doc["components"] if c["type"] == "container"]
    assert sorted((c["version"], props(c)["trustyard:platform"][0]) for c in containers) == [
        (AMD64, "linux/amd64"),
        (ARM64, "linux/arm64/v8"),
    ]
    django = [c for c in doc["components"] if c["name"] == "Django"]
    assert sorted(props(c)["trustyard:platform"][0] for c in django) == [
        "linux/amd64",
        "linux/arm64/v8",
    ]
    refs = [c["bom-ref"] for c in doc["components"]]
    assert len(set(refs)) == len(refs)
    graph = {d["ref"]: set(d.get("dependsOn", [])) for d in doc["dependencies"]}
    assert graph[root["bom-ref"]] == {c["bom-ref"] for c in containers}
    for container in containers:
        platform = props(container)["trustyard:platform"][0]
        mine = {
            c["bom-ref"]
            for c in doc["components"]
            if c["type"] != "container" and props(c)["trustyard:platform"] == [platform]
        }
        assert len(mine) == 6
        assert graph[container["bom-ref"]] == mine


def test_an_image_without_components_is_still_a_valid_document() -> None:
    doc = export([empty_bom()])
    assert doc.get("components", []) == []
    assert doc["metadata"]["component"]["version"] == empty_bom().manifest_digest


texts = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["deb", "pypi", "npm", "golang", "binary"]),
            texts,
            texts,
            st.one_of(st.none(), texts),
            st.lists(texts, min_size=1, max_size=3),
        ),
        max_size=8,
    )
)
def test_any_components_make_a_valid_document_with_unique_refs(
    rows: list[tuple[str, str, str, str | None, list[str]]],
) -> None:
    items = [
        BomComponent(
            Component(
                ecosystem,
                name,
                version,
                f"pkg:generic/{n}@{n}",
                tuple(locations),
                "test",
                spdx_expression(licence),
            ),
            APP,
            None,
        )
        for n, (ecosystem, name, version, licence, locations) in enumerate(rows)
    ]
    bom = ImageBom(AMD64, "linux/amd64", None, components=items)
    doc = export([bom, ImageBom(ARM64, "linux/arm64", None, components=items)], "x/y:z")
    refs = [c["bom-ref"] for c in doc.get("components", [])]
    assert len(refs) == len(set(refs)) == 2 * len(items) + 2
