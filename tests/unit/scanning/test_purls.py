"""A package URL from parts that cannot make one is None, never an exception: one odd name in
a package list must not cost the layer every other finding of its detector."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustyard.scanning.purls import purl_text

TYPES = ("apk", "deb", "rpm", "npm", "pypi", "gem", "nuget", "cargo", "golang", "maven", "generic")


@pytest.mark.parametrize("purl_type", TYPES)
@pytest.mark.parametrize("name", ["/", "//", " ", "\t", "\x85", "\u2028", ""])
def test_a_name_that_normalises_to_nothing_is_no_purl(purl_type: str, name: str) -> None:
    assert purl_text(type=purl_type, name=name, version="1.0") is None


def test_parts_that_make_a_purl_make_it() -> None:
    made = purl_text(
        type="apk",
        namespace="alpine",
        name="musl",
        version="1.2.4-r2",
        qualifiers={"arch": "x86_64"},
    )
    assert made == "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64"


@given(st.sampled_from(TYPES), st.text(max_size=20), st.text(max_size=20))
def test_any_parts_give_a_purl_or_none(purl_type: str, name: str, version: str) -> None:
    made = purl_text(type=purl_type, name=name, version=version or None)
    assert made is None or made.startswith(f"pkg:{purl_type}/")
