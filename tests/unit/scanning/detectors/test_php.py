"""The PHP detector: Composer's vendor/composer/installed.json, versions 1 and 2."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.scanning.detectors.langkit import detect, wanted
from trustyard.scanning.detectors.php import DETECTOR

INSTALLED = "var/www/html/vendor/composer/installed.json"


def doc(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_composer_2_installed_json() -> None:
    data = doc(
        {
            "packages": [
                {
                    "name": "symfony/console",
                    "version": "v5.4.0",
                    "version_normalized": "5.4.0.0",
                    "license": ["MIT"],
                    "install-path": "../symfony/console",
                },
                {
                    "name": "monolog/monolog",
                    "version": "2.3.5",
                    "license": ["MIT", "GPL-2.0-or-later"],
                    "install-path": "../monolog/monolog",
                },
                {"name": "nolicense/pkg", "version": "dev-main"},
            ],
            "dev": True,
            "dev-package-names": [],
        }
    )
    found = detect(DETECTOR, {INSTALLED: data})
    assert [(c.ecosystem, c.name, c.version, c.purl, c.licenses, c.locations) for c in found] == [
        (
            "composer",
            "monolog/monolog",
            "2.3.5",
            "pkg:composer/monolog/monolog@2.3.5",
            "MIT OR GPL-2.0-or-later",
            (INSTALLED, "var/www/html/vendor/monolog/monolog"),
        ),
        (
            "composer",
            "nolicense/pkg",
            "dev-main",
            "pkg:composer/nolicense/pkg@dev-main",
            None,
            (INSTALLED,),
        ),
        (
            "composer",
            "symfony/console",
            "v5.4.0",
            "pkg:composer/symfony/console@v5.4.0",
            "MIT",
            (INSTALLED, "var/www/html/vendor/symfony/console"),
        ),
    ]
    assert {c.detector for c in found} == {"php"}


def test_composer_1_installed_json_is_a_list() -> None:
    data = doc(
        [
            {"name": "guzzlehttp/guzzle", "version": "6.5.5", "license": "MIT"},
            {"name": "broken"},
            "not a package",
            {"name": "a/b", "version": 7},
        ]
    )
    found = detect(DETECTOR, {"app/vendor/composer/installed.json": data})
    assert [(c.name, c.version, c.licenses) for c in found] == [
        ("guzzlehttp/guzzle", "6.5.5", "MIT")
    ]


def test_an_install_path_outside_the_image_is_not_a_location() -> None:
    data = doc(
        {"packages": [{"name": "a/b", "version": "1.0", "install-path": "../../../../../../x"}]}
    )
    [found] = detect(DETECTOR, {"vendor/composer/installed.json": data})
    assert found.locations == ("vendor/composer/installed.json",)


def test_wanted_files() -> None:
    assert wanted(DETECTOR, INSTALLED)
    assert wanted(DETECTOR, "vendor/composer/installed.json")
    assert not wanted(DETECTOR, "myvendor/composer/installed.json")
    assert not wanted(DETECTOR, "app/composer.json")
    assert not wanted(DETECTOR, "vendor/composer/installed.php")


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=1024),
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(["packages", "name", "version", "license", "install-path"]), inner
            )
        ),
        max_leaves=20,
    ),
)
def test_malformed_installed_json_never_raises(data: bytes, value: Any) -> None:
    files = {
        "a/vendor/composer/installed.json": data,
        "b/vendor/composer/installed.json": doc(value),
    }
    for component in detect(DETECTOR, files):
        assert component.purl.startswith("pkg:composer/")
