"""SPDX 2.3 export: valid under spdx-tools' validator, and says what we found."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from tests.unit.scanning.bom_samples import (
    AMD64,
    APP,
    APP_DIFF,
    ARM64,
    SITE,
    empty_bom,
    image_bom,
)
from trustyard import __version__
from trustyard.scanning.bom import BomComponent, ImageBom
from trustyard.scanning.licenses import spdx_expression
from trustyard.scanning.model import Component
from trustyard.scanning.spdx import to_spdx

SPDX_ID = re.compile(r"SPDXRef-[A-Za-z0-9.-]+")


def validate(text: str, folder: Path) -> dict[str, Any]:
    path = folder / "sbom.spdx.json"
    path.write_text(text, encoding="utf-8")
    messages = validate_full_spdx_document(parse_file(str(path)), "SPDX-2.3")
    assert [m.validation_message for m in messages] == []
    document: dict[str, Any] = json.loads(text)
    return document


def packages(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in document["packages"]}


def relations(document: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"])
        for r in document["relationships"]
    }


def test_one_image_document_describes_the_image_which_contains_every_package(
    tmp_path: Path,
) -> None:
    when = datetime(2026, 11, 28, 7, 0, 5, 123, tzinfo=UTC)
    doc = validate(to_spdx([image_bom()], "python-app", created=when), tmp_path)
    assert doc["spdxVersion"] == "SPDX-2.3"
    assert doc["dataLicense"] == "CC0-1.0"
    assert doc["name"] == "python-app"
    assert doc["creationInfo"] == {
        "created": "2026-11-28T07:00:05Z",
        "creators": [f"Tool: trustyard-{__version__}"],
    }
    by_name = packages(doc)
    image = by_name["python-app"]
    assert image["versionInfo"] == AMD64
    assert image["primaryPackagePurpose"] == "CONTAINER"
    assert doc["documentDescribes"] == [image["SPDXID"]]
    others = [p for p in doc["packages"] if p is not image]
    assert sorted(p["name"] for p in others) == sorted(
        ["busybox-static", "Django", "@types/node", "github.com/google/uuid", "openssl", "debian"]
    )
    assert relations(doc) == {("SPDXRef-DOCUMENT", "DESCRIBES", image["SPDXID"])} | {
        (image["SPDXID"], "CONTAINS", p["SPDXID"]) for p in others
    }
    ids = [p["SPDXID"] for p in doc["packages"]]
    assert len(set(ids)) == len(ids)
    assert all(SPDX_ID.fullmatch(i) for i in ids)


def test_packages_carry_version_purl_licence_and_where_they_were_found(tmp_path: Path) -> None:
    by_name = packages(validate(to_spdx([image_bom()], "python-app"), tmp_path))
    django = by_name["Django"]
    assert django["versionInfo"] == "2.2"
    assert django["downloadLocation"] == "NOASSERTION"
    assert django["licenseConcluded"] == "NOASSERTION"
    assert django["licenseDeclared"] == "BSD-3-Clause AND LicenseRef-Django-extra"
    assert django["externalRefs"] == [
        {
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": "pkg:pypi/django@2.2",
        }
    ]
    assert APP in django["sourceInfo"]
    assert APP_DIFF in django["sourceInfo"]
    assert f"{SITE}/Django-2.2.dist-info/METADATA" in django["sourceInfo"]
    assert by_name["debian"]["primaryPackagePurpose"] == "OPERATING-SYSTEM"
    assert by_name["debian"]["versionInfo"] == "12"
    assert by_name["openssl"]["primaryPackagePurpose"] == "APPLICATION"
    assert by_name["busybox-static"]["licenseDeclared"] == "GPL-2.0-only"


def test_source_info_lists_the_first_files_and_counts_the_rest(tmp_path: Path) -> None:
    bom = image_bom()
    django = bom.components[1].component
    files = tuple(f"{SITE}/django/f{n:04}.py" for n in range(100))
    bom.components[1].component = dataclasses.replace(django, locations=django.locations + files)
    info = packages(validate(to_spdx([bom], "python-app"), tmp_path))["Django"]["sourceInfo"]
    assert info.endswith(f"{SITE}/django/f0013.py and 86 more files")


def test_licence_refs_are_declared_and_a_broken_expression_becomes_noassertion(
    tmp_path: Path,
) -> None:
    doc = validate(to_spdx([image_bom()], "python-app"), tmp_path)
    assert [info["licenseId"] for info in doc["hasExtractedLicensingInfos"]] == [
        "LicenseRef-Django-extra"
    ]
    assert packages(doc)["openssl"]["licenseDeclared"] == "NOASSERTION"


def test_each_document_has_its_own_namespace(tmp_path: Path) -> None:
    first = validate(to_spdx([image_bom()], "python-app"), tmp_path)
    second = validate(to_spdx([image_bom()], "python-app"), tmp_path)
    assert first["documentNamespace"] != second["documentNamespace"]


def test_an_index_document_describes_the_index_which_contains_each_platform(
    tmp_path: Path,
) -> None:
    amd, arm = image_bom(), image_bom("linux/arm64/v8", ARM64)
    doc = validate(to_spdx([amd, arm], "multi-arch"), tmp_path)
    by_id = {p["SPDXID"]: p for p in doc["packages"]}
    (root,) = doc["documentDescribes"]
    assert by_id[root]["name"] == "multi-arch"
    links = relations(doc)
    images = sorted(b for a, kind, b in links if a == root and kind == "CONTAINS")
    assert sorted(by_id[i]["versionInfo"] for i in images) == [AMD64, ARM64]
    for image in images:
        contained = [b for a, kind, b in links if a == image and kind == "CONTAINS"]
        assert sorted(by_id[c]["name"] for c in contained) == sorted(
            [
                "busybox-static",
                "Django",
                "@types/node",
                "github.com/google/uuid",
                "openssl",
                "debian",
            ]
        )


def test_an_image_without_components_is_still_a_valid_document(tmp_path: Path) -> None:
    doc = validate(to_spdx([empty_bom()], "scratch"), tmp_path)
    assert len(doc["packages"]) == 1
    assert "hasExtractedLicensingInfos" not in doc


texts = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["deb", "pypi", "npm", "golang", "binary"]),
            texts,
            texts,
            st.one_of(st.none(), texts, st.sampled_from(["GPL-2+ or Artistic", "Apache 2.0"])),
        ),
        max_size=8,
    )
)
def test_any_components_make_a_valid_document(
    tmp_path: Path, rows: list[tuple[str, str, str, str | None]]
) -> None:
    items = [
        BomComponent(
            Component(eco, name, version, "", ("x",), "test", spdx_expression(licence)), APP, None
        )
        for eco, name, version, licence in rows
    ]
    doc = validate(
        to_spdx([ImageBom(AMD64, "linux/amd64", None, components=items)], "a b"), tmp_path
    )
    assert len(doc["packages"]) == len(items) + 1
