"""`trustyard scan PATH` as a user runs it: a subprocess, no server, on an OCI layout
directory, an oci-archive and a docker-archive; every output format; exit codes 2 (bad
input) and 3 (scan refused) with one clear line on stderr."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from tests.support.archives import image_archive
from tests.support.images import image_info, image_layout, load_truth

pytestmark = [pytest.mark.integration]

TRUSTYARD = str(Path(sys.executable).with_name("trustyard"))
KINDS = ("oci-dir", "oci-archive", "docker-archive")


def source(name: str, kind: str) -> Path:
    return image_layout(name) if kind == "oci-dir" else image_archive(name, kind)


def run(*args: str | Path, check: int | None = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [TRUSTYARD, "scan", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check is not None:
        assert result.returncode == check, result.stderr
    return result


def truth_set(name: str, platform: str | None = None) -> set[tuple[str, str, str]]:
    return set(load_truth(name, platform))


def diff_ids(name: str) -> list[str]:
    return [layer["diff_id"] for layer in image_info(name)["images"][0]["layers"]]


@pytest.mark.parametrize("kind", KINDS)
def test_json_lists_the_truth_with_each_component_in_its_layer(kind: str) -> None:
    result = run(source("python-app", kind), "--format", "json")
    document = json.loads(result.stdout)  # stdout holds the document and nothing else
    assert document["name"] == "python-app"
    (image,) = document["images"]
    assert image["platform"] == "linux/amd64"
    assert image["distro"]["id"] == "debian"
    found = {(c["ecosystem"], c["name"], c["version"]) for c in image["components"]}
    assert found == truth_set("python-app")
    base, app = diff_ids("python-app")
    assert [layer["diff_id"] for layer in image["layers"]] == [base, app]
    layers = {(c["ecosystem"], c["diff_id"]) for c in image["components"]}
    assert layers == {("deb", base), ("pypi", app)}
    # the summary goes to stderr
    assert "python-app linux/amd64: 13 components in 2 layers" in result.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_cyclonedx_output_is_valid_and_complete(kind: str) -> None:
    result = run(source("node-app", kind), "-q", "--format", "cyclonedx-json")
    assert result.stderr == ""
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(result.stdout)
    assert error is None, str(error)
    document = json.loads(result.stdout)
    assert document["metadata"]["component"]["type"] == "container"
    found = set()
    for component in document["components"]:
        props = {p["name"]: p["value"] for p in component.get("properties", [])}
        if "trustyard:ecosystem" in props:
            found.add((props["trustyard:ecosystem"], component["name"], component["version"]))
    assert found == truth_set("node-app")


@pytest.mark.parametrize("kind", KINDS)
def test_spdx_output_is_valid_and_complete(kind: str, tmp_path: Path) -> None:
    out = tmp_path / "sbom.spdx.json"
    result = run(source("python-app", kind), "--format", "spdx-json", "--output", out)
    assert result.stdout == ""
    assert validate_full_spdx_document(parse_file(str(out))) == []
    document = json.loads(out.read_text())
    packages = {
        (p["name"], p.get("versionInfo"))
        for p in document["packages"]
        if p.get("primaryPackagePurpose") == "LIBRARY"
    }
    assert packages == {(name, version) for _, name, version in truth_set("python-app")}


def test_table_shows_ecosystem_name_version_layer_licence_and_location() -> None:
    result = run(source("python-app", "oci-archive"))
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "ecosystem" in line)
    for column in ("name", "version", "layer", "licence", "location"):
        assert column in header
    django = next(line for line in lines if " Django " in line)
    app_layer = image_info("python-app")["images"][0]["layers"][1]["digest"]
    assert app_layer[7:19] in django
    assert "BSD-3-Clause" in django
    assert "Django-2.2.dist-info/METADATA" in django


def test_an_index_is_scanned_for_every_platform_and_platform_selects_one() -> None:
    archive = source("multi-arch", "oci-archive")
    document = json.loads(run(archive, "-f", "json").stdout)
    platforms = sorted(image["platform"] for image in document["images"])
    assert platforms == ["linux/amd64", "linux/arm64/v8"]
    for image in document["images"]:
        os_arch = "/".join(image["platform"].split("/")[:2])
        found = {(c["ecosystem"], c["name"], c["version"]) for c in image["components"]}
        assert found == truth_set("multi-arch", os_arch)
    one = json.loads(run(archive, "-f", "json", "--platform", "linux/arm64").stdout)
    assert [image["platform"] for image in one["images"]] == ["linux/arm64/v8"]
    cdx = run(archive, "-q", "-f", "cyclonedx-json").stdout
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(cdx) is None


def test_an_unknown_platform_is_bad_input_naming_the_platforms_there() -> None:
    result = run(source("multi-arch", "oci-dir"), "--platform", "linux/s390x", check=2)
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"trustyard scan: {image_layout('multi-arch')}: no image for platform linux/s390x "
        "(it has: linux/amd64, linux/arm64/v8)"
    ]


def test_a_missing_path_is_bad_input(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = run(missing, check=2)
    assert result.stdout == ""
    assert result.stderr.strip() == f"trustyard scan: {missing}: no such file or directory"


def test_something_that_is_not_an_image_is_bad_input(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    result = run(text, check=2)
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"trustyard scan: {text} is not a tar archive: file could not be opened successfully"
    ]
    result = run(tmp_path, check=2)
    assert result.stderr.strip().splitlines() == [
        f"trustyard scan: {tmp_path} is a directory without index.json: not an OCI layout"
    ]


def test_an_unknown_format_is_a_usage_error() -> None:
    result = run(source("go-binary", "oci-dir"), "--format", "xml", check=2)
    assert result.stdout == ""
    assert "xml" in result.stderr


def write_blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def hostile_layout(layout: Path) -> None:
    """An OCI layout whose only layer holds `../escape`: a path out of the layer."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name in ("etc/ok", "../escape"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"x\n"))
    layer = write_blob(layout, gzip.compress(raw.getvalue(), mtime=0))
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    config = write_blob(
        layout,
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            }
        ).encode(),
    )
    manifest = write_blob(
        layout,
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
            }
        ).encode(),
    )
    index = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest}],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


def test_a_hostile_layer_is_a_refused_scan(tmp_path: Path) -> None:
    hostile_layout(tmp_path / "evil")
    result = run(tmp_path / "evil", "--format", "json", check=3)
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    index = json.loads((tmp_path / "evil" / "index.json").read_text())
    manifest_hex = index["manifests"][0]["digest"].partition(":")[2]
    manifest = json.loads((tmp_path / "evil" / "blobs" / "sha256" / manifest_hex).read_text())
    assert line == (
        f"trustyard scan: scan refused: {tmp_path / 'evil'}: layer "
        f"{manifest['layers'][0]['digest']}: path '../escape' escapes the layer"
    )
