"""The npm detector: installed packages, lock files, their merging, and the node-app image."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.images import image_info, image_layout, load_truth
from tests.unit.scanning.detectors.langkit import (
    LANGUAGE_DETECTORS,
    detect,
    scan_image,
    wanted,
)
from trustyard.scanning.detectors.npm import DETECTOR, installed_position
from trustyard.scanning.model import Component


def pkg(name: str, version: str, **extra: Any) -> bytes:
    return json.dumps({"name": name, "version": version, **extra}).encode()


def summary(found: list[Component]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.name, c.version, c.locations) for c in found]


def test_installed_packages_plain_scoped_and_nested() -> None:
    files = {
        "app/package.json": pkg("my-app", "1.0.0", private=True),
        "app/node_modules/lodash/package.json": pkg("lodash", "4.17.15", license="MIT"),
        "app/node_modules/@babel/core/package.json": pkg("@babel/core", "7.0.0"),
        "app/node_modules/a/node_modules/b/package.json": pkg("b", "2.0.0"),
        "app/node_modules/a/package.json": pkg("a", "1.0.0"),
        # Not installed packages: files inside a package, and npm's own folders.
        "app/node_modules/a/test/fixtures/package.json": pkg("fixture", "0.0.1"),
        "app/node_modules/a/lib/package.json": pkg("a-lib", "1.0.0"),
        "app/node_modules/.bin/package.json": pkg("bin", "1.0.0"),
        "app/node_modules/@babel/package.json": pkg("scope-only", "1.0.0"),
    }
    found = detect(DETECTOR, files)
    assert summary(found) == [
        ("@babel/core", "7.0.0", ("app/node_modules/@babel/core/package.json",)),
        ("a", "1.0.0", ("app/node_modules/a/package.json",)),
        ("b", "2.0.0", ("app/node_modules/a/node_modules/b/package.json",)),
        ("lodash", "4.17.15", ("app/node_modules/lodash/package.json",)),
    ]
    purls = {c.name: c.purl for c in found}
    assert purls["@babel/core"] == "pkg:npm/%40babel/core@7.0.0"
    assert purls["lodash"] == "pkg:npm/lodash@4.17.15"
    assert {c.detector for c in found} == {"npm"}


def test_installed_position_rules() -> None:
    assert installed_position("node_modules/x/package.json")
    assert installed_position("usr/lib/node_modules/npm/node_modules/abbrev/package.json")
    assert installed_position("node_modules/@s/x/package.json")
    assert not installed_position("package.json")
    assert not installed_position("app/package.json")
    assert not installed_position("node_modules/@s/package.json")
    assert not installed_position("node_modules/x/y/package.json")
    assert not installed_position("node_modules/@s/x/y/package.json")
    assert not installed_position("node_modules/.pnpm/package.json")


def test_license_declarations() -> None:
    files = {
        "node_modules/s/package.json": pkg("s", "1.0.0", license="Apache 2.0"),
        "node_modules/o/package.json": pkg("o", "1.0.0", license={"type": "ISC"}),
        "node_modules/l/package.json": pkg(
            "l", "1.0.0", licenses=[{"type": "MIT"}, {"type": "GPL-2.0-only"}]
        ),
        "node_modules/e/package.json": pkg("e", "1.0.0", license="(MIT OR Apache-2.0)"),
        "node_modules/n/package.json": pkg("n", "1.0.0"),
        "node_modules/p/package.json": pkg("p", "1.0.0", license="()"),
    }
    licences = {c.name: c.licenses for c in detect(DETECTOR, files)}
    assert licences == {
        "s": "Apache-2.0",
        "o": "ISC",
        "l": "MIT OR GPL-2.0-only",
        "e": "MIT OR Apache-2.0",
        "n": None,
        "p": "LicenseRef-unknown",
    }


LOCK_V3 = {
    "name": "my-app",
    "version": "1.0.0",
    "lockfileVersion": 3,
    "packages": {
        "": {"name": "my-app", "version": "1.0.0", "dependencies": {"a": "^1"}},
        "node_modules/a": {"version": "1.0.0", "license": "MIT"},
        "node_modules/a/node_modules/b": {"version": "2.0.0"},
        "node_modules/@s/c": {"version": "3.0.0"},
        "node_modules/devtool": {"version": "9.0.0", "dev": True},
        "node_modules/alias": {"name": "real-name", "version": "4.0.0"},
        "node_modules/linked": {"resolved": "packages/linked", "link": True},
        "packages/linked": {"name": "linked", "version": "0.1.0"},
        "node_modules/local": {"version": "file:../local"},
    },
}


def test_lock_only_project_reports_its_lock_entries() -> None:
    files = {
        "srv/package.json": pkg("my-app", "1.0.0"),
        "srv/package-lock.json": json_bytes(LOCK_V3),
    }
    found = detect(DETECTOR, files)
    assert summary(found) == [
        ("@s/c", "3.0.0", ("srv/package-lock.json",)),
        ("a", "1.0.0", ("srv/package-lock.json",)),
        ("b", "2.0.0", ("srv/package-lock.json",)),
        ("real-name", "4.0.0", ("srv/package-lock.json",)),
    ]
    assert {c.name: c.licenses for c in found}["a"] == "MIT"


def test_installed_and_locked_is_one_component_with_installed_first() -> None:
    hidden = {k: v for k, v in LOCK_V3.items() if k != "name"}
    files = {
        "app/package-lock.json": json_bytes(LOCK_V3),
        "app/node_modules/.package-lock.json": json_bytes(hidden),
        "app/node_modules/a/package.json": pkg("a", "1.0.0"),
        "app/node_modules/a/node_modules/b/package.json": pkg("b", "2.0.0"),
    }
    found = detect(DETECTOR, files)
    # `@s/c` and `real-name` are in the lock but not installed (optional packages of
    # another platform...): with node_modules present, the installed tree is the truth.
    assert summary(found) == [
        (
            "a",
            "1.0.0",
            (
                "app/node_modules/a/package.json",
                "app/node_modules/.package-lock.json",
                "app/package-lock.json",
            ),
        ),
        (
            "b",
            "2.0.0",
            (
                "app/node_modules/a/node_modules/b/package.json",
                "app/node_modules/.package-lock.json",
                "app/package-lock.json",
            ),
        ),
    ]
    assert found[0].licenses == "MIT"  # from the lock, the package.json declares none


def test_one_version_installed_twice_is_one_component() -> None:
    files = {
        "app/node_modules/x/node_modules/ms/package.json": pkg("ms", "2.1.3"),
        "app/node_modules/ms/package.json": pkg("ms", "2.1.3"),
        "app/node_modules/y/node_modules/ms/package.json": pkg("ms", "2.0.0"),
    }
    assert summary(detect(DETECTOR, files)) == [
        ("ms", "2.0.0", ("app/node_modules/y/node_modules/ms/package.json",)),
        (
            "ms",
            "2.1.3",
            (
                "app/node_modules/ms/package.json",
                "app/node_modules/x/node_modules/ms/package.json",
            ),
        ),
    ]


def test_lockfile_v1_nested_dependencies() -> None:
    lock = {
        "name": "old",
        "lockfileVersion": 1,
        "dependencies": {
            "a": {"version": "1.0.0", "dependencies": {"b": {"version": "2.0.0"}}},
            "@s/c": {"version": "3.0.0"},
            "mocha": {"version": "5.0.0", "dev": True, "dependencies": {"d": {"version": "1.1.1"}}},
        },
    }
    found = detect(DETECTOR, {"old/package-lock.json": json_bytes(lock)})
    # v1 marks each dev-only package `dev` itself: `d` is not marked, so it counts.
    assert [(c.name, c.version) for c in found] == [
        ("@s/c", "3.0.0"),
        ("a", "1.0.0"),
        ("b", "2.0.0"),
        ("d", "1.1.1"),
    ]


def test_locks_inside_installed_packages_are_ignored() -> None:
    files = {
        "app/node_modules/a/package.json": pkg("a", "1.0.0"),
        "app/node_modules/a/package-lock.json": json_bytes(LOCK_V3),
        "app/node_modules/a/yarn.lock": b'b@^2:\n  version "2.0.0"\n',
        "app/node_modules/a/node_modules/.package-lock.json": json_bytes(LOCK_V3),
    }
    assert [(c.name, c.version) for c in detect(DETECTOR, files)] == [("a", "1.0.0")]


YARN_V1 = b"""# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.
# yarn lockfile v1


"@babel/code-frame@^7.0.0", "@babel/code-frame@^7.10.4":
  version "7.12.13"
  resolved "https://example.invalid/@babel/code-frame-7.12.13.tgz"
  dependencies:
    "@babel/highlight" "^7.12.13"

lodash@^4.17.15:
  version "4.17.21"
"""

YARN_BERRY = b"""__metadata:
  version: 6
  cacheKey: 8

"lodash@npm:^4.17.15":
  version: 4.17.21
  resolution: "lodash@npm:4.17.21"

"my-app@workspace:.":
  version: 0.0.0-use.local
  resolution: "my-app@workspace:."
"""


def test_yarn_locks_v1_and_berry() -> None:
    v1 = detect(DETECTOR, {"a/yarn.lock": YARN_V1})
    assert [(c.name, c.version, c.purl) for c in v1] == [
        ("@babel/code-frame", "7.12.13", "pkg:npm/%40babel/code-frame@7.12.13"),
        ("lodash", "4.17.21", "pkg:npm/lodash@4.17.21"),
    ]
    berry = detect(DETECTOR, {"b/yarn.lock": YARN_BERRY})
    assert [(c.name, c.version) for c in berry] == [("lodash", "4.17.21")]


PNPM_V6 = b"""lockfileVersion: '6.0'

importers:
  .:
    dependencies:
      lodash:
        specifier: ^4.17.15
        version: 4.17.21

packages:

  /@babel/core@7.0.0(supports-color@5.5.0):
    resolution: {integrity: sha512-x}
    dev: false

  /lodash@4.17.21:
    resolution: {integrity: sha512-y}
"""

PNPM_V9 = b"""lockfileVersion: '9.0'

packages:

  '@s/x@1.2.3':
    resolution: {integrity: sha512-z}

  ms@2.1.3:
    resolution: {integrity: sha512-w}

snapshots:

  ms@2.1.3: {}
"""


def test_pnpm_locks() -> None:
    v6 = detect(DETECTOR, {"p/pnpm-lock.yaml": PNPM_V6})
    assert [(c.name, c.version) for c in v6] == [("@babel/core", "7.0.0"), ("lodash", "4.17.21")]
    v9 = detect(DETECTOR, {"q/pnpm-lock.yaml": PNPM_V9})
    assert [(c.name, c.version) for c in v9] == [("@s/x", "1.2.3"), ("ms", "2.1.3")]


def test_wanted_files() -> None:
    assert wanted(DETECTOR, "app/node_modules/a/package.json")
    assert wanted(DETECTOR, "app/package-lock.json")
    assert wanted(DETECTOR, "app/yarn.lock")
    assert wanted(DETECTOR, "app/pnpm-lock.yaml")
    assert wanted(DETECTOR, "app/node_modules/.package-lock.json")
    assert not wanted(DETECTOR, "app/package.json")
    assert not wanted(DETECTOR, "app/node_modules/a/index.js")


def test_invalid_package_json_is_skipped() -> None:
    files = {
        "node_modules/a/package.json": b"{not json",
        "node_modules/b/package.json": b'["a list"]',
        "node_modules/c/package.json": b'{"name": "c"}',
        "node_modules/d/package.json": b'{"name": 5, "version": "1"}',
        "node_modules/e/package.json": b"[" * 100_000,
        "node_modules/f/package.json": pkg("f", "1.0.0"),
    }
    assert [c.name for c in detect(DETECTOR, files)] == ["f"]


def json_bytes(doc: Any) -> bytes:
    return json.dumps(doc).encode()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["", "node_modules/a", "version", "name", "dependencies", "packages"])
            | st.text(max_size=8),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=1024), doc=_JSON, text=st.text(max_size=512))
def test_malformed_inputs_never_raise(data: bytes, doc: Any, text: str) -> None:
    files = {
        "app/node_modules/a/package.json": data,
        "app/node_modules/b/package.json": json_bytes(doc),
        "app/package-lock.json": json_bytes(doc),
        "app/node_modules/.package-lock.json": data,
        "lone/package-lock.json": json_bytes({"packages": doc, "dependencies": doc}),
        "y/yarn.lock": text.encode(),
        "z/pnpm-lock.yaml": b"packages:\n" + text.encode(),
    }
    for component in detect(DETECTOR, files):
        assert component.purl.startswith("pkg:npm/")
        assert component.locations


def test_node_app_image_matches_its_ground_truth() -> None:
    """Every npm package of the image, no more (not the app itself), in the npm layer."""
    truth = {(eco, name, version) for eco, name, version in load_truth("node-app")}
    expected = {row for row in truth if row[0] == "npm"}
    npm_layer = image_info("node-app")["images"][0]["layers"][-1]["digest"]
    found: dict[tuple[str, str, str], list[str]] = {}
    for scan in scan_image(image_layout("node-app"), LANGUAGE_DETECTORS):
        assert not [note for note in scan.notes if " failed: " in note]
        for component in scan.components:
            key = (component.ecosystem, component.name, component.version)
            found.setdefault(key, []).append(scan.digest)
    assert set(found) == expected
    assert all(layers == [npm_layer] for layers in found.values())
