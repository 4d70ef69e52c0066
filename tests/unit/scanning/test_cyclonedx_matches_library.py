"""The plain JSON CycloneDX writer says what cyclonedx-python-lib said, in chunks.

Each document must pass the strict 1.6 schema validator and, once the serial number and the
timestamp are set aside and arrays put in one order, equal the library's document for the
same BOMs (tests/unit/scanning/cyclonedx_library.py keeps the library-based export).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.scanning.bom_samples import AMD64, APP, APP_DIFF, ARM64, empty_bom, image_bom
from tests.unit.scanning.cyclonedx_library import library_cyclonedx
from trustyard.scanning.bom import BomComponent, ImageBom
from trustyard.scanning.cyclonedx import CHUNK, iter_cyclonedx, to_cyclonedx
from trustyard.scanning.licenses import spdx_expression
from trustyard.scanning.model import Component, Distro

VALIDATOR = JsonStrictValidator(SchemaVersion.V1_6)
INDEX = "sha256:" + "9" * 64
S390X = "sha256:" + "c" * 64


def normal(document: dict[str, Any]) -> dict[str, Any]:
    """`document` without what differs on every export, its arrays in one order."""
    out = json.loads(json.dumps(document))
    assert out.pop("serialNumber").startswith("urn:uuid:")
    assert out["metadata"].pop("timestamp")
    for component in [*out.get("components", []), out["metadata"]["component"]]:
        if "properties" in component:
            component["properties"].sort(key=lambda p: (p["name"], p["value"]))
    if "components" in out:
        out["components"].sort(key=lambda c: c["bom-ref"])
    for dependency in out["dependencies"]:
        dependency.get("dependsOn", []).sort()
    out["dependencies"].sort(key=lambda d: d["ref"])
    return out


def same_as_library(boms: list[ImageBom], name: str, index: str | None = None) -> dict[str, Any]:
    text = to_cyclonedx(boms, name, index_digest=index)
    error = VALIDATOR.validate_str(text)
    assert error is None, str(error)
    ours = normal(json.loads(text))
    theirs = normal(json.loads(library_cyclonedx(boms, name, index_digest=index)))
    assert ours == theirs
    return ours


def multi_licence_bom(platform: str, digest: str) -> ImageBom:
    bom = image_bom(platform, digest)
    extra = [
        Component(
            "pypi",
            "dual",
            "1.0",
            "pkg:pypi/dual@1.0",
            ("app/dual/METADATA", "app/dual/METADATA", "app/dual/__init__.py"),
            "python",
            "(MIT OR Apache-2.0) AND LicenseRef-Vendor-EULA WITH Classpath-exception-2.0",
            (("note", "a"), ("note", "a"), ("note", "b")),
        ),
        Component(  # no purl, no version, no locations: the name makes the bom-ref
            "binary", "dual", "", "", (), "fingerprints", "LicenseRef-Proprietary"
        ),
        Component(  # the same purl twice on one platform: the second bom-ref gets "#2"
            "pypi", "dual", "1.0", "pkg:pypi/dual@1.0", ("other/METADATA",), "python"
        ),
    ]
    bom.components += [BomComponent(c, APP, None) for c in extra]
    return bom


@pytest.mark.parametrize(
    ("boms", "name", "index"),
    [
        ([image_bom()], "python-app", None),
        ([empty_bom()], "héllo/wörld", None),
        ([image_bom(), image_bom("linux/arm64/v8", ARM64)], "multi-arch", INDEX),
        ([image_bom(), image_bom("linux/arm64/v8", ARM64)], "no/index:digest", None),
        (
            [
                multi_licence_bom("linux/amd64", AMD64),
                multi_licence_bom("linux/arm64/v8", ARM64),
                dataclasses.replace(empty_bom(), manifest_digest=S390X, platform="linux/s390x"),
            ],
            "org/three",
            INDEX,
        ),
        ([multi_licence_bom("", AMD64)], "no-platform", None),
    ],
    ids=["one-image", "empty", "index", "index-without-digest", "licences", "no-platform"],
)
def test_the_document_is_valid_and_says_what_the_library_said(
    boms: list[ImageBom], name: str, index: str | None
) -> None:
    same_as_library(boms, name, index)


def test_licence_expressions_and_license_refs_are_kept_as_declared() -> None:
    doc = same_as_library([multi_licence_bom("linux/amd64", AMD64)], "app")
    licences = {c["bom-ref"]: c["licenses"] for c in doc["components"] if "licenses" in c}
    expression = "(MIT OR Apache-2.0) AND LicenseRef-Vendor-EULA WITH Classpath-exception-2.0"
    assert licences["pkg:pypi/dual@1.0:linux/amd64"] == [{"expression": expression}]
    assert licences["dual:linux/amd64"] == [{"expression": "LicenseRef-Proprietary"}]
    assert "licenses" not in next(c for c in doc["components"] if c["bom-ref"].endswith("#2"))


def test_the_document_comes_in_bounded_chunks_that_join_into_valid_json() -> None:
    bom = image_bom()
    django = bom.components[1]
    bom.components = [
        BomComponent(dataclasses.replace(django.component, name=f"pkg-{n}"), APP, APP_DIFF)
        for n in range(3000)
    ]
    chunks = list(iter_cyclonedx([bom], "big"))
    assert len(chunks) > 10
    assert max(len(c) for c in chunks) < 2 * CHUNK
    doc = json.loads(b"".join(chunks))
    assert len(doc["components"]) == 3001  # and the distribution
    assert len(doc["dependencies"]) == 3002


texts = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=20
)
maybe = st.one_of(st.just(""), texts)
purls = st.one_of(
    st.just(""),
    texts,
    st.builds(
        "pkg:{}/{}@{}?arch=amd64".format,
        st.sampled_from(["deb/debian", "pypi", "npm", "golang/github.com/x"]),
        texts,
        texts,
    ),
)
licences = st.one_of(
    st.none(),
    st.sampled_from(
        ["MIT", "GPL-2.0-only OR LicenseRef-Extra", "(MIT AND BSD-3-Clause) OR Apache-2.0"]
    ),
    texts.map(spdx_expression),
)
components = st.builds(
    Component,
    st.sampled_from(["deb", "pypi", "npm", "golang", "binary"]),
    texts,
    maybe,
    purls,
    st.lists(texts, max_size=4).map(tuple),
    maybe,
    licences,
    st.lists(st.tuples(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), maybe), max_size=3).map(
        tuple
    ),
)
items = st.builds(BomComponent, components, st.just(APP), st.one_of(st.none(), st.just(APP_DIFF)))
distros = st.one_of(st.none(), st.builds(Distro, texts, maybe, maybe))


@st.composite
def image_boms(draw: st.DrawFn) -> list[ImageBom]:
    platforms = draw(
        st.lists(
            st.sampled_from(["linux/amd64", "linux/arm64/v8", "linux/s390x", ""]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    digests = [AMD64, ARM64, S390X]
    return [
        ImageBom(digests[n], platform, draw(distros), components=draw(st.lists(items, max_size=6)))
        for n, platform in enumerate(platforms)
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(image_boms(), texts, st.one_of(st.none(), st.just(INDEX)))
def test_any_bom_makes_a_valid_document_that_says_what_the_library_said(
    boms: list[ImageBom], name: str, index: str | None
) -> None:
    same_as_library(boms, name, index)
