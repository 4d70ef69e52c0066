"""The attached SBOM is stored as the CycloneDX writer yields it, hashed on the way."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from tests.unit.scanning.bom_samples import AMD64, image_bom
from trustyard.oci import mediatypes as mt
from trustyard.oci.digest import parse_digest
from trustyard.scanning.attach import SbomAttacher
from trustyard.scanning.cyclonedx import iter_cyclonedx
from trustyard.storage.filesystem import FilesystemDriver


@pytest.fixture
def driver(tmp_path: Path) -> FilesystemDriver:
    return FilesystemDriver(tmp_path / "blobs", fsync=False)


def attacher(driver: FilesystemDriver) -> SbomAttacher:
    return SbomAttacher(create_engine("sqlite://"), driver)  # prepare() never queries


def test_the_document_is_stored_from_its_chunks_with_their_digest_and_size(
    driver: FilesystemDriver,
) -> None:
    sent: list[bytes] = []

    def chunks() -> Iterator[bytes]:
        for chunk in iter_cyclonedx([image_bom()], "app"):
            sent.append(chunk)
            yield chunk

    attachment = attacher(driver).prepare(chunks(), AMD64, mt.OCI_MANIFEST, 1234, 7)
    body = b"".join(sent)
    manifest = json.loads(attachment.manifest)
    [layer] = manifest["layers"]
    assert layer["digest"] == "sha256:" + hashlib.sha256(body).hexdigest()
    assert layer["size"] == len(body)
    assert driver.blob_path(parse_digest(layer["digest"])).read_bytes() == body
    assert (layer["digest"], len(body)) in attachment.blobs
    assert json.loads(body)["metadata"]["component"]["version"] == AMD64
    assert list(driver.iter_uploads()) == []


def test_a_document_that_fails_while_written_leaves_no_upload_behind(
    driver: FilesystemDriver,
) -> None:
    def broken() -> Iterator[bytes]:
        yield b'{"bomFormat": "CycloneDX",'
        raise RuntimeError("the export failed")

    with pytest.raises(RuntimeError, match="the export failed"):
        attacher(driver).prepare(broken(), AMD64, mt.OCI_MANIFEST, 1234, 7)
    assert list(driver.iter_uploads()) == []
