"""FilesystemDriver's own behaviour (what every driver does is tests/contract/
test_blob_driver.py): its documented folder layout, a restart that finds what was stored,
stray files that are not blobs, uploads that were never acknowledged, and no fsync when told."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from trustyard.oci.digest import Digest, digest_bytes
from trustyard.storage.filesystem import FilesystemDriver
from trustyard.storage.interfaces import UploadBusy


def store(driver: FilesystemDriver, data: bytes, algorithm: str = "sha256") -> Digest:
    digest = digest_bytes(data, algorithm)
    upload_id = uuid.uuid4().hex
    writer = driver.open_upload(upload_id, 0)
    try:
        writer.write(data)
        writer.sync()
    finally:
        writer.close()
    driver.commit_upload(upload_id, len(data), digest)
    return digest


def test_blobs_and_uploads_live_where_the_layout_says(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path)
    digest = store(driver, b"layout")
    expected = tmp_path / "blobs" / "sha256" / digest.hex[:2] / digest.hex
    assert driver.blob_path(digest) == driver.local_path(digest) == expected
    assert expected.read_bytes() == b"layout"
    upload_id = uuid.uuid4().hex
    driver.open_upload(upload_id, 0).close()
    assert (tmp_path / "uploads" / upload_id).is_file()
    assert set(os.listdir(tmp_path)) == {"blobs", "uploads"}


def test_a_restarted_driver_finds_what_was_stored(tmp_path: Path) -> None:
    first = FilesystemDriver(tmp_path)
    digests = {store(first, b"one"), store(first, b"two", "sha512")}
    upload_id = uuid.uuid4().hex
    writer = first.open_upload(upload_id, 0)
    writer.write(b"partial")
    writer.close()
    again = FilesystemDriver(tmp_path)
    assert set(again.iter_blobs()) == digests
    assert list(again.iter_uploads()) == [upload_id]
    assert again.upload_size(upload_id) == len(b"partial")


def test_stray_files_in_the_blob_folders_are_not_blobs(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path)
    digest = store(driver, b"real")
    folder = driver.blob_path(digest).parent
    (folder / "not-a-digest").write_bytes(b"x")
    (folder / f"{digest.hex}.tmp").write_bytes(b"x")
    wrong_prefix = tmp_path / "blobs" / "sha256" / "zz"
    wrong_prefix.mkdir()
    (wrong_prefix / digest.hex).write_bytes(b"misplaced")
    (tmp_path / "blobs" / "README").write_text("a file where algorithms are")
    (tmp_path / "uploads" / "notes.txt").write_text("not an upload id")
    assert list(driver.iter_blobs()) == [digest]
    assert list(driver.iter_uploads()) == []


def test_an_unacknowledged_tail_is_cut_when_the_upload_is_reopened(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path)
    upload_id = uuid.uuid4().hex
    writer = driver.open_upload(upload_id, 0)
    writer.write(b"acknowledged|lost")
    writer.close()
    writer = driver.open_upload(upload_id, len(b"acknowledged"))
    writer.write(b"!")
    writer.close()
    assert (tmp_path / "uploads" / upload_id).read_bytes() == b"acknowledged!"


def test_a_held_upload_is_busy_for_another_driver_on_the_same_folder(tmp_path: Path) -> None:
    holder = FilesystemDriver(tmp_path)
    other = FilesystemDriver(tmp_path, lock_patience=0.0)
    upload_id = uuid.uuid4().hex
    writer = holder.open_upload(upload_id, 0)
    try:
        with pytest.raises(UploadBusy):
            other.open_upload(upload_id, 0)
    finally:
        writer.close()
    other.open_upload(upload_id, 0).close()


def test_without_fsync_blobs_are_stored_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    quiet = FilesystemDriver(tmp_path / "quiet", fsync=False)
    digest = store(quiet, b"no sync")
    assert synced == []
    assert b"".join(quiet.read(digest)) == b"no sync"
    careful = FilesystemDriver(tmp_path / "careful")
    store(careful, b"synced")
    assert len(synced) >= 3  # the upload, the blob before its rename, its folder after
