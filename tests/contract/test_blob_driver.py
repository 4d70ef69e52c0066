"""The BlobDriver contract (trustyard.storage.interfaces): one suite every driver passes.

To run the suite against a new driver, add a factory to DRIVERS: it gets the pytest request
(to use fixtures such as an object-store server, or to register a finalizer) and a fresh
folder, and returns an empty driver.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustyard.oci.digest import Digest, digest_bytes
from trustyard.storage.filesystem import FilesystemDriver
from trustyard.storage.interfaces import BlobDriver, ContentMissing, UploadBusy, UploadMissing

DriverFactory = Callable[[pytest.FixtureRequest, Path], BlobDriver]


def _filesystem(_request: pytest.FixtureRequest, folder: Path) -> BlobDriver:
    return FilesystemDriver(folder / "root", fsync=True, lock_patience=0.2)


DRIVERS: dict[str, DriverFactory] = {
    "filesystem": _filesystem,
}

PROPERTY = settings(
    derandomize=True,
    max_examples=60,
    deadline=None,
    database=None,
    # Each example only reads a blob the test stored once: sharing the driver is intended.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(params=sorted(DRIVERS))
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> BlobDriver:
    return DRIVERS[request.param](request, tmp_path)


def new_id() -> str:
    return uuid.uuid4().hex


def write_upload(driver: BlobDriver, upload_id: str, offset: int, data: bytes) -> int:
    writer = driver.open_upload(upload_id, offset)
    try:
        assert writer.size == offset
        writer.write(data)
        writer.sync()
        return writer.size
    finally:
        writer.close()


def read_all(
    driver: BlobDriver, digest: Digest, offset: int = 0, length: int | None = None
) -> bytes:
    return b"".join(driver.read(digest, offset, length))


def upload_bytes(driver: BlobDriver, upload_id: str, length: int) -> bytes:
    return b"".join(driver.read_upload(upload_id, length))


def put_blob(driver: BlobDriver, data: bytes, algorithm: str = "sha256") -> Digest:
    digest = digest_bytes(data, algorithm)
    upload_id = new_id()
    write_upload(driver, upload_id, 0, data)
    driver.commit_upload(upload_id, len(data), digest)
    return digest


# --- blobs ------------------------------------------------------------------------------------


def test_an_empty_driver_has_no_blobs_and_no_uploads(driver: BlobDriver) -> None:
    assert list(driver.iter_blobs()) == []
    assert list(driver.iter_uploads()) == []
    assert driver.stat(digest_bytes(b"anything")) is None


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
@pytest.mark.parametrize("data", [b"", b"x", b"hello blob" * 1000], ids=["empty", "1", "10k"])
def test_stored_blob_has_its_size_and_bytes(
    driver: BlobDriver, data: bytes, algorithm: str
) -> None:
    digest = put_blob(driver, data, algorithm)
    assert driver.stat(digest) == len(data)
    assert read_all(driver, digest) == data
    assert list(driver.iter_blobs()) == [digest]


def test_read_streams_in_chunks_of_at_most_the_requested_size(driver: BlobDriver) -> None:
    data = bytes(range(256)) * 40
    digest = put_blob(driver, data)
    pieces = list(driver.read(digest, 100, 5000, chunk=1024))
    assert b"".join(pieces) == data[100:5100]
    assert all(0 < len(piece) <= 1024 for piece in pieces)


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, None), (0, 0), (0, 1), (3, 4), (9, None), (9, 1), (9, 100), (10, None), (10, 5), (50, 5)],
)
def test_read_with_offset_and_length_is_a_slice(
    driver: BlobDriver, offset: int, length: int | None
) -> None:
    data = b"0123456789"
    digest = put_blob(driver, data)
    end = None if length is None else offset + length
    assert read_all(driver, digest, offset, length) == data[offset:end]


@PROPERTY
@given(
    offset=st.integers(0, 3000),
    length=st.one_of(st.none(), st.integers(0, 3000)),
    chunk=st.integers(1, 4096),
)
def test_any_read_window_is_the_python_slice(
    driver: BlobDriver, offset: int, length: int | None, chunk: int
) -> None:
    data = bytes(i * 7 % 256 for i in range(2500))
    digest = put_blob(driver, data)  # identical content each example: stored once
    end = None if length is None else offset + length
    assert b"".join(driver.read(digest, offset, length, chunk=chunk)) == data[offset:end]


def test_reading_an_absent_blob_raises_content_missing(driver: BlobDriver) -> None:
    with pytest.raises(ContentMissing):
        read_all(driver, digest_bytes(b"never stored"))


def test_local_path_when_offered_holds_the_blob(driver: BlobDriver) -> None:
    data = b"zero-copy me"
    digest = put_blob(driver, data)
    path = driver.local_path(digest)
    if path is not None:
        assert path.read_bytes() == data


def test_delete_removes_a_blob_once(driver: BlobDriver) -> None:
    keep = put_blob(driver, b"keep")
    gone = put_blob(driver, b"gone")
    assert driver.delete(gone) is True
    assert driver.stat(gone) is None
    with pytest.raises(ContentMissing):
        read_all(driver, gone)
    assert list(driver.iter_blobs()) == [keep]
    assert driver.delete(gone) is False
    assert read_all(driver, keep) == b"keep"


def test_iter_blobs_lists_every_stored_blob_of_every_algorithm(driver: BlobDriver) -> None:
    stored = {put_blob(driver, f"blob {i}".encode()) for i in range(5)}
    stored |= {put_blob(driver, f"long blob {i}".encode(), "sha512") for i in range(2)}
    listed = list(driver.iter_blobs())
    assert len(listed) == len(stored)
    assert set(listed) == stored


# --- uploads ----------------------------------------------------------------------------------


def test_open_at_zero_creates_an_upload(driver: BlobDriver) -> None:
    upload_id = new_id()
    assert driver.upload_size(upload_id) is None
    assert write_upload(driver, upload_id, 0, b"first") == 5
    assert driver.upload_size(upload_id) == 5
    assert upload_bytes(driver, upload_id, 5) == b"first"
    assert list(driver.iter_uploads()) == [upload_id]


def test_appends_across_open_close_cycles(driver: BlobDriver) -> None:
    upload_id = new_id()
    chunks = [b"alpha-", b"", b"beta-", b"gamma" * 1000]
    offset = 0
    for chunk in chunks:
        offset = write_upload(driver, upload_id, offset, chunk)
    whole = b"".join(chunks)
    assert offset == len(whole)
    assert driver.upload_size(upload_id) == len(whole)
    assert upload_bytes(driver, upload_id, len(whole)) == whole
    assert upload_bytes(driver, upload_id, 6) == b"alpha-"


def test_writer_size_counts_what_was_written(driver: BlobDriver) -> None:
    writer = driver.open_upload(new_id(), 0)
    try:
        writer.write(b"abc")
        assert writer.size == 3
        writer.write(b"de")
        assert writer.size == 5
    finally:
        writer.close()


def test_reopening_at_a_smaller_offset_drops_the_unacknowledged_tail(driver: BlobDriver) -> None:
    # A crash mid-chunk: bytes reached storage but the offset was never recorded.
    upload_id = new_id()
    write_upload(driver, upload_id, 0, b"acked|")
    write_upload(driver, upload_id, 6, b"half-written chunk")
    writer = driver.open_upload(upload_id, 6)
    try:
        assert writer.size == 6
        assert driver.upload_size(upload_id) == 6
        writer.write(b"retry")
        writer.sync()
    finally:
        writer.close()
    assert driver.upload_size(upload_id) == 11
    assert upload_bytes(driver, upload_id, 11) == b"acked|retry"


def test_reopening_at_zero_restarts_the_upload(driver: BlobDriver) -> None:
    upload_id = new_id()
    write_upload(driver, upload_id, 0, b"old content")
    write_upload(driver, upload_id, 0, b"new")
    assert driver.upload_size(upload_id) == 3
    assert upload_bytes(driver, upload_id, 3) == b"new"


def test_reopening_beyond_the_stored_size_raises_upload_missing(driver: BlobDriver) -> None:
    upload_id = new_id()
    write_upload(driver, upload_id, 0, b"12345")
    with pytest.raises(UploadMissing):
        driver.open_upload(upload_id, 6)
    assert driver.upload_size(upload_id) == 5  # what was stored is untouched
    assert write_upload(driver, upload_id, 5, b"6") == 6  # and the upload is usable


def test_opening_an_unknown_upload_past_zero_raises_upload_missing(driver: BlobDriver) -> None:
    upload_id = new_id()
    with pytest.raises(UploadMissing):
        driver.open_upload(upload_id, 1)
    assert driver.upload_size(upload_id) is None
    assert list(driver.iter_uploads()) == []


def test_upload_missing_is_content_missing() -> None:
    assert issubclass(UploadMissing, ContentMissing)


def test_a_second_writer_is_refused_while_the_first_holds_the_upload(driver: BlobDriver) -> None:
    upload_id = new_id()
    write_upload(driver, upload_id, 0, b"base")
    first = driver.open_upload(upload_id, 4)
    try:
        for offset in (4, 0, 2):
            with pytest.raises(UploadBusy):
                driver.open_upload(upload_id, offset)
        first.write(b"+more")
        first.sync()
    finally:
        first.close()
    assert upload_bytes(driver, upload_id, 9) == b"base+more"  # the refused opens truncated nothing
    assert write_upload(driver, upload_id, 9, b"!") == 10  # free again once closed


def test_a_writer_waits_for_a_lock_released_within_the_drivers_patience(
    driver: BlobDriver,
) -> None:
    # A request that hung up holds the lock for a moment; the next one must not see "busy".
    upload_id = new_id()
    write_upload(driver, upload_id, 0, b"base")
    first = driver.open_upload(upload_id, 4)
    releaser = threading.Timer(0.05, first.close)
    releaser.start()
    try:
        assert write_upload(driver, upload_id, 4, b"+next") == 9
    finally:
        releaser.join()
    assert upload_bytes(driver, upload_id, 9) == b"base+next"


def test_commit_publishes_the_blob_only_when_complete(driver: BlobDriver) -> None:
    data = b"layer bytes " * 500
    digest = digest_bytes(data)
    upload_id = new_id()
    write_upload(driver, upload_id, 0, data[:1000])
    assert driver.stat(digest) is None
    write_upload(driver, upload_id, 1000, data[1000:])
    assert driver.stat(digest) is None
    assert list(driver.iter_blobs()) == []

    driver.commit_upload(upload_id, len(data), digest)
    assert driver.stat(digest) == len(data)
    assert read_all(driver, digest) == data
    assert list(driver.iter_blobs()) == [digest]
    assert driver.upload_size(upload_id) is None
    assert list(driver.iter_uploads()) == []


def test_commit_publishes_only_the_first_length_bytes(driver: BlobDriver) -> None:
    upload_id = new_id()
    write_upload(driver, upload_id, 0, b"verified|unacknowledged tail")
    digest = digest_bytes(b"verified")
    driver.commit_upload(upload_id, 8, digest)
    assert driver.stat(digest) == 8
    assert read_all(driver, digest) == b"verified"


def test_committing_the_same_content_twice_deduplicates(driver: BlobDriver) -> None:
    data = b"same layer pushed by two clients"
    digest = digest_bytes(data)
    first, second = new_id(), new_id()
    write_upload(driver, first, 0, data)
    write_upload(driver, second, 0, data)
    driver.commit_upload(first, len(data), digest)
    driver.commit_upload(second, len(data), digest)
    assert list(driver.iter_blobs()) == [digest]
    assert read_all(driver, digest) == data
    assert driver.upload_size(first) is None
    assert driver.upload_size(second) is None
    assert list(driver.iter_uploads()) == []


def test_committing_more_bytes_than_stored_raises_upload_missing(driver: BlobDriver) -> None:
    upload_id = new_id()
    write_upload(driver, upload_id, 0, b"short")
    digest = digest_bytes(b"short\x00\x00")
    with pytest.raises(UploadMissing):
        driver.commit_upload(upload_id, 7, digest)
    assert driver.stat(digest) is None
    assert list(driver.iter_blobs()) == []


def test_committing_an_unknown_upload_raises_upload_missing(driver: BlobDriver) -> None:
    digest = digest_bytes(b"")
    with pytest.raises(UploadMissing):
        driver.commit_upload(new_id(), 0, digest)
    assert driver.stat(digest) is None


def test_delete_upload_discards_its_data(driver: BlobDriver) -> None:
    keep, drop = new_id(), new_id()
    write_upload(driver, keep, 0, b"keep")
    write_upload(driver, drop, 0, b"drop")
    driver.delete_upload(drop)
    assert driver.upload_size(drop) is None
    with pytest.raises(UploadMissing):
        driver.open_upload(drop, 4)
    assert list(driver.iter_uploads()) == [keep]
    driver.delete_upload(drop)  # deleting twice is fine
    driver.delete_upload(new_id())  # and so is deleting what never existed


def test_reading_an_absent_upload_raises_content_missing(driver: BlobDriver) -> None:
    with pytest.raises(ContentMissing):
        upload_bytes(driver, new_id(), 1)


def test_iter_uploads_lists_exactly_the_open_uploads(driver: BlobDriver) -> None:
    ids = {new_id() for _ in range(4)}
    for upload_id in ids:
        write_upload(driver, upload_id, 0, upload_id.encode())
    committed = sorted(ids)[0]
    driver.commit_upload(committed, 32, digest_bytes(committed.encode()))
    assert set(driver.iter_uploads()) == ids - {committed}


# --- upload ids never escape the driver's storage ---------------------------------------------


def _tricks(victim: Path) -> list[str]:
    hex_id = new_id()
    return [
        "../x",
        "..",
        ".",
        "",
        "a/b",
        f"../{hex_id}",
        f"{hex_id}/../{hex_id}",
        f"../blobs/{hex_id}",
        f"{hex_id}\n",
        str(victim),  # absolute path
        f"../../{victim.name}",
        f"../../../{victim.parent.name}/{victim.name}",
    ]


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_path_tricks_in_upload_ids_are_refused(driver: BlobDriver, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"not yours")
    blob = put_blob(driver, b"a stored blob")
    before = _files(tmp_path)
    for upload_id in _tricks(victim):
        with pytest.raises(UploadMissing):
            driver.open_upload(upload_id, 0)
        with pytest.raises(UploadMissing):
            driver.open_upload(upload_id, len(b"not yours"))
        assert driver.upload_size(upload_id) is None
        with pytest.raises(ContentMissing):
            upload_bytes(driver, upload_id, 9)
        with pytest.raises(UploadMissing):
            driver.commit_upload(upload_id, 9, digest_bytes(b"not yours"))
        driver.delete_upload(upload_id)
        assert _files(tmp_path) == before, f"upload id {upload_id!r} touched a file"
    assert list(driver.iter_uploads()) == []
    assert list(driver.iter_blobs()) == [blob]
    assert driver.stat(digest_bytes(b"not yours")) is None
