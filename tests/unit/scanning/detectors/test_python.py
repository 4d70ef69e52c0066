"""The Python detector: dist-info, egg-info directories and files, and the python-app image."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.images import image_info, image_layout, load_truth
from tests.unit.scanning.detectors.langkit import (
    LANGUAGE_DETECTORS,
    detect,
    scan_image,
    wanted,
)
from trustyard.scanning.detectors.python import DETECTOR, parse_headers

SITE = "usr/local/lib/python3.11/site-packages"


def metadata(*headers: str, body: str = "") -> bytes:
    text = "\n".join(headers) + "\n"
    if body:
        text += "\n" + body
    return text.encode()


def test_dist_info_is_named_as_its_metadata_says() -> None:
    files = {
        f"{SITE}/pyyaml-5.3.dist-info/METADATA": metadata(
            "Metadata-Version: 2.1", "Name: PyYAML", "Version: 5.3", "License: MIT"
        )
    }
    [found] = detect(DETECTOR, files)
    assert (found.ecosystem, found.name, found.version) == ("pypi", "PyYAML", "5.3")
    assert found.purl == "pkg:pypi/pyyaml@5.3"
    assert found.licenses == "MIT"
    assert found.locations == (f"{SITE}/pyyaml-5.3.dist-info/METADATA",)
    assert found.detector == "python"


def test_purl_name_is_normalised_as_pep_503_says() -> None:
    files = {
        f"{SITE}/zope.interface-6.0.dist-info/METADATA": metadata(
            "Name: zope.interface", "Version: 6.0"
        ),
        f"{SITE}/Foo_Bar-1.0.dist-info/METADATA": metadata("Name: Foo__Bar", "Version: 1.0"),
    }
    purls = {c.name: c.purl for c in detect(DETECTOR, files)}
    assert purls == {
        "zope.interface": "pkg:pypi/zope-interface@6.0",
        "Foo__Bar": "pkg:pypi/foo-bar@1.0",
    }


def test_the_description_body_is_not_read_as_headers() -> None:
    body = "Name: not-this\nVersion: 9.9\nLicense: GPL-3.0-only\n"
    files = {
        f"{SITE}/real-1.0.dist-info/METADATA": metadata(
            "Name: real", "Version: 1.0", "Description-Content-Type: text/markdown", body=body
        )
    }
    [found] = detect(DETECTOR, files)
    assert (found.name, found.version, found.licenses) == ("real", "1.0", None)


def test_crlf_metadata_is_parsed() -> None:
    data = b"Name: crlf\r\nVersion: 2.0\r\nLicense: BSD\r\n\r\nName: body\r\n"
    [found] = detect(DETECTOR, {f"{SITE}/crlf-2.0.dist-info/METADATA": data})
    assert (found.name, found.version, found.licenses) == ("crlf", "2.0", "BSD-3-Clause")


def test_license_expression_wins_over_license_and_classifiers() -> None:
    files = {
        f"{SITE}/x-1.dist-info/METADATA": metadata(
            "Name: x",
            "Version: 1",
            "License-Expression: MIT OR Apache-2.0",
            "License: whatever",
            "Classifier: License :: OSI Approved :: BSD License",
        )
    }
    assert detect(DETECTOR, files)[0].licenses == "MIT OR Apache-2.0"


def test_classifiers_name_the_licence_when_license_is_a_whole_text() -> None:
    files = {
        f"{SITE}/one-1.dist-info/METADATA": metadata(
            "Name: one",
            "Version: 1",
            "License: Copyright (c) someone",
            "        Permission is hereby granted, free of charge, to any person",
            "Classifier: Programming Language :: Python :: 3",
            "Classifier: License :: OSI Approved :: MIT License",
        ),
        f"{SITE}/two-1.dist-info/METADATA": metadata(
            "Name: two",
            "Version: 1",
            "Classifier: License :: OSI Approved :: Apache Software License",
            "Classifier: License :: OSI Approved :: BSD License",
        ),
        f"{SITE}/three-1.dist-info/METADATA": metadata(
            "Name: three",
            "Version: 1",
            "License: UNKNOWN",
            "Classifier: License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)",
        ),
        f"{SITE}/four-1.dist-info/METADATA": metadata(
            "Name: four",
            "Version: 1",
            "License: BSD-like",
            "Classifier: License :: OSI Approved :: BSD License",
        ),
        f"{SITE}/five-1.dist-info/METADATA": metadata(
            "Name: five", "Version: 1", "License: Custom terms"
        ),
    }
    licences = {c.name: c.licenses for c in detect(DETECTOR, files)}
    assert licences == {
        "one": "MIT",
        "two": "Apache-2.0 OR BSD-3-Clause",
        "three": "MPL-2.0",
        "four": "BSD-3-Clause",
        "five": "LicenseRef-Custom-terms",
    }


def test_record_lists_the_installed_files_after_the_evidence() -> None:
    dist = f"{SITE}/Django-2.2.dist-info"
    record = (
        b"django/__init__.py,sha256=abc,800\n"
        b"django/__pycache__/__init__.cpython-311.pyc,,\n"
        b'"django/a,b.py",sha256=def,10\n'
        b"../../../bin/django-admin,sha256=ghi,300\n"
        b"Django-2.2.dist-info/METADATA,sha256=jkl,100\n"
        b"Django-2.2.dist-info/RECORD,,\n"
        b"/etc/absolute.conf,,\n"
        b"../../../../../../../escape,,\n"
    )
    # RECORD comes first in this layer: the order of files must not matter.
    files = {
        f"{dist}/RECORD": record,
        f"{dist}/METADATA": metadata("Name: Django", "Version: 2.2"),
    }
    [found] = detect(DETECTOR, files)
    assert found.locations == (
        f"{dist}/METADATA",
        f"{dist}/RECORD",
        f"{SITE}/django/__init__.py",
        f"{SITE}/django/a,b.py",
        "usr/local/bin/django-admin",
        "etc/absolute.conf",
    )


def test_egg_info_directory_and_its_installed_files() -> None:
    egg = "usr/lib/python3/dist-packages/six-1.16.0.egg-info"
    files = {
        f"{egg}/PKG-INFO": metadata(
            "Metadata-Version: 1.1",
            "Name: six",
            "Version: 1.16.0",
            "License: MIT",
            "Description: Six is a Python 2 and 3 compatibility library",
            "        Name: not-a-header",
        ),
        f"{egg}/SOURCES.txt": b"six.py\n",
        f"{egg}/installed-files.txt": (
            b"../six.py\n../__pycache__/six.cpython-311.pyc\n./PKG-INFO\n"
        ),
    }
    [found] = detect(DETECTOR, files)
    assert (found.name, found.version, found.licenses) == ("six", "1.16.0", "MIT")
    assert found.locations == (
        f"{egg}/PKG-INFO",
        f"{egg}/installed-files.txt",
        "usr/lib/python3/dist-packages/six.py",
    )


def test_old_pkg_info_classifiers_after_a_multiline_description() -> None:
    data = (
        b"Metadata-Version: 1.1\nName: old\nVersion: 0.9\nLicense: UNKNOWN\n"
        b"Description: First paragraph.\n        \n        Second paragraph.\n"
        b"Platform: UNKNOWN\nClassifier: License :: OSI Approved :: ISC License (ISCL)\n"
    )
    [found] = detect(DETECTOR, {f"{SITE}/old-0.9.egg-info/PKG-INFO": data})
    assert (found.name, found.version, found.licenses) == ("old", "0.9", "ISC")


def test_egg_info_file_is_one_distribution() -> None:
    path = "usr/lib/python3/dist-packages/distro_info-1.5.egg-info"
    files = {path: metadata("Metadata-Version: 1.2", "Name: distro-info", "Version: 1.5")}
    [found] = detect(DETECTOR, files)
    assert (found.name, found.version, found.evidence) == ("distro-info", "1.5", path)
    assert found.purl == "pkg:pypi/distro-info@1.5"


def test_incomplete_distributions_are_not_components() -> None:
    files = {
        f"{SITE}/noversion-1.dist-info/METADATA": metadata("Name: noversion"),
        f"{SITE}/noname-1.dist-info/METADATA": metadata("Version: 1"),
        f"{SITE}/onlyrecord-1.dist-info/RECORD": b"onlyrecord/__init__.py,,\n",
        f"{SITE}/empty-1.dist-info/METADATA": b"",
    }
    assert detect(DETECTOR, files) == []


def test_only_metadata_files_are_wanted() -> None:
    assert wanted(DETECTOR, f"{SITE}/a-1.dist-info/METADATA")
    assert wanted(DETECTOR, f"{SITE}/a-1.dist-info/RECORD")
    assert wanted(DETECTOR, f"{SITE}/a-1.egg-info/PKG-INFO")
    assert wanted(DETECTOR, f"{SITE}/a-1.egg-info")
    assert wanted(DETECTOR, f"{SITE}/a-1.egg/EGG-INFO/PKG-INFO")
    assert not wanted(DETECTOR, f"{SITE}/a/METADATA")
    assert not wanted(DETECTOR, f"{SITE}/a-1.dist-info/METADATA.orig")
    assert not wanted(DETECTOR, f"{SITE}/a-1.dist-info/WHEEL")
    assert not wanted(DETECTOR, f"{SITE}/a-1.egg-info/SOURCES.txt")


def test_parse_headers_joins_continuation_lines() -> None:
    fields = parse_headers(b"Name: a\nLicense: line one\n  line two\nClassifier: X\n\nbody")
    assert fields == {"name": ["a"], "license": ["line one\nline two"], "classifier": ["X"]}


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2048), text=st.text(max_size=1024))
def test_malformed_metadata_never_raises(data: bytes, text: str) -> None:
    dist = f"{SITE}/x-1.dist-info"
    files = {f"{dist}/METADATA": data, f"{dist}/RECORD": text.encode()}
    files[f"{SITE}/y.egg-info"] = text.encode()
    files[f"{SITE}/z.egg-info/PKG-INFO"] = b"Name: z\nVersion: " + data
    files[f"{SITE}/z.egg-info/installed-files.txt"] = data
    for component in detect(DETECTOR, files):
        assert component.name
        assert component.version
        assert component.purl.startswith("pkg:pypi/")


def test_python_app_image_matches_its_ground_truth() -> None:
    """Every pypi package of the image, no more, each found in the pip layer."""
    truth = {(eco, name, version) for eco, name, version in load_truth("python-app")}
    expected = {row for row in truth if row[0] == "pypi"}
    pip_layer = image_info("python-app")["images"][0]["layers"][-1]["digest"]
    found: dict[tuple[str, str, str], list[str]] = {}
    for scan in scan_image(image_layout("python-app"), LANGUAGE_DETECTORS):
        assert not [note for note in scan.notes if " failed: " in note]
        for component in scan.components:
            key = (component.ecosystem, component.name, component.version)
            found.setdefault(key, []).append(scan.digest)
    assert set(found) == expected
    assert all(layers == [pip_layer] for layers in found.values())
