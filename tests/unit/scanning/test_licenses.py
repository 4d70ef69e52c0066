"""Declared licences -> SPDX expressions: what the BOM and both exports carry."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from license_expression import get_spdx_licensing

from trustyard.scanning.licenses import any_of, spdx_expression


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("MIT", "MIT"),
        ("Apache 2.0", "Apache-2.0"),
        ("BSD License", "BSD-3-Clause"),
        ("GPL-2.0+", "GPL-2.0-or-later"),
        ("LGPL-2+", "LGPL-2.0-or-later"),
        ("LGPL-2.1+", "LGPL-2.1-or-later"),
        # Debian and npm short names inside an expression are mapped too, not passed through.
        ("BSD-3-clause or GPL-2", "BSD-3-Clause OR GPL-2.0-only"),
        ("MIT or Apache 2.0", "MIT OR Apache-2.0"),
        ("(GPL-2+ or Artistic) and MIT", "(GPL-2.0-or-later OR LicenseRef-Artistic) AND MIT"),
        ("Apache-2.0 WITH LLVM-exception", "Apache-2.0 WITH LLVM-exception"),
        ("LicenseRef-mine", "LicenseRef-mine"),
        # No version named: no version guessed.
        ("GPL", "LicenseRef-GPL"),
        ("a licence of our own", "LicenseRef-a-licence-of-our-own"),
        ("UNKNOWN", None),
        ("", None),
        (None, None),
    ],
)
def test_declared_licences_become_spdx_expressions(
    declared: str | None, expected: str | None
) -> None:
    assert spdx_expression(declared) == expected


def test_a_choice_of_licences_is_one_or_expression() -> None:
    assert any_of(["MIT", None, "MIT", "Apache-2.0 OR BSD-3-Clause"]) == (
        "MIT OR (Apache-2.0 OR BSD-3-Clause)"
    )
    assert any_of(["GPL-2.0-only OR MIT"]) == "GPL-2.0-only OR MIT"
    assert any_of([None, ""]) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_whatever_is_declared_the_result_is_a_valid_expression_or_nothing(text: str) -> None:
    result = spdx_expression(text)
    if result is None:
        return
    licensing = get_spdx_licensing()
    parsed = licensing.parse(result, validate=False)
    unknown = [
        key
        for key in licensing.license_keys(parsed)
        if not key.startswith("LicenseRef-") and licensing.validate(key).errors
    ]
    assert unknown == [], result
