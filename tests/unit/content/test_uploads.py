"""UploadService and HashStates on a real migrated SQLite database and a filesystem driver."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from trustyard.content.interfaces import UploadRecord
from trustyard.content.stores import ContentStore
from trustyard.content.uploads import HashStates, UploadService
from trustyard.db.engine import make_engine, read_tx, write_tx
from trustyard.db.migrate import upgrade
from trustyard.errors import DomainError
from trustyard.oci.digest import Digest, digest_bytes, new_hasher
from trustyard.registry.errors import ErrorCode, OciError
from trustyard.registry.errors import oci_error as wire
from trustyard.storage.filesystem import FilesystemDriver

REPO = "team/app"

PROPERTY = settings(
    derandomize=True,
    max_examples=40,
    deadline=None,
    database=None,
    # Every example works on an upload session of its own in the shared database and folder.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@dataclass
class Registry:
    """What one registry process holds: the shared database and storage, its own hash memory."""

    engine: Engine
    driver: FilesystemDriver
    store: ContentStore

    def process(self, hashes: HashStates | None = None) -> UploadService:
        """A fresh process (after a restart, or another replica): no hash state in memory."""
        return UploadService(self.store, self.driver, hashes or HashStates())

    def start(self, service: UploadService, repository: str = REPO) -> UploadRecord:
        with write_tx(self.engine) as conn:
            return service.start(conn, repository)

    def get(self, service: UploadService, upload_id: str, repository: str = REPO) -> UploadRecord:
        with read_tx(self.engine) as conn:
            return service.get(conn, repository, upload_id)

    def patch(self, service: UploadService, upload: UploadRecord, data: bytes) -> UploadRecord:
        """One PATCH: open at the recorded offset, append, sync, record the new offset."""
        chunk = service.open_chunk(upload, upload.offset)
        try:
            for piece in (data[: len(data) // 2], data[len(data) // 2 :]):
                chunk.write(piece)
            chunk.writer.sync()
            with write_tx(self.engine) as conn:
                return service.record_chunk(conn, chunk)
        finally:
            chunk.writer.close()

    def put(
        self, service: UploadService, upload: UploadRecord, last: bytes, digest: Digest
    ) -> None:
        """The closing PUT: optional last chunk, verify, publish, record."""
        chunk = service.open_chunk(upload, upload.offset if last else None, digest.algorithm)
        try:
            chunk.write(last)
            service.verify(chunk, digest)
        except BaseException:
            chunk.writer.close()
            raise
        service.publish(chunk, digest)
        with write_tx(self.engine) as conn:
            service.complete(conn, upload, digest, chunk.size)

    def blob_in_repository(self, digest: Digest, repository: str = REPO) -> int | None:
        with read_tx(self.engine) as conn:
            return self.store.repository_blob_size(conn, repository, str(digest))

    def upload_row(self, upload_id: str) -> UploadRecord | None:
        with read_tx(self.engine) as conn:
            return self.store.get_upload(conn, upload_id)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    engine = make_engine(f"sqlite:///{tmp_path / 'meta.db'}")
    upgrade(engine)
    try:
        yield Registry(engine, FilesystemDriver(tmp_path / "storage", fsync=False), ContentStore())
    finally:
        engine.dispose()


class Caught:
    """The /v2 answer of the domain error a block raised (set when the block ends)."""

    value: OciError


@contextmanager
def oci_error(code: ErrorCode) -> Iterator[Caught]:
    """Expect the block to raise a domain error that /v2 answers with `code`."""
    caught = Caught()
    with pytest.raises(DomainError) as raised:
        yield caught
    caught.value = wire(raised.value)
    assert caught.value.code is code


# --- HashStates -------------------------------------------------------------------------------


def test_hash_state_is_handed_out_once_for_the_same_offset_and_algorithm() -> None:
    states = HashStates()
    hasher = new_hasher()
    hasher.update(b"abc")
    states.keep("u1", 3, "sha256", hasher)
    assert states.take("u1", 3, "sha256") is hasher
    assert states.take("u1", 3, "sha256") is None  # taken: a second request must rebuild


@pytest.mark.parametrize(("offset", "algorithm"), [(2, "sha256"), (4, "sha256"), (3, "sha512")])
def test_hash_state_for_another_offset_or_algorithm_is_not_used(
    offset: int, algorithm: str
) -> None:
    states = HashStates()
    states.keep("u1", 3, "sha256", new_hasher())
    assert states.take("u1", offset, algorithm) is None
    assert states.take("u1", 3, "sha256") is None  # a stale state is dropped, not kept


def test_hash_states_forget_and_evict_the_oldest() -> None:
    states = HashStates(capacity=2)
    for name in ("a", "b", "c"):
        states.keep(name, 1, "sha256", new_hasher())
    assert states.take("a", 1, "sha256") is None  # evicted
    assert states.take("c", 1, "sha256") is not None
    states.forget("b")
    assert states.take("b", 1, "sha256") is None


# --- sessions ---------------------------------------------------------------------------------


def test_start_creates_a_session_at_offset_zero(registry: Registry) -> None:
    service = registry.process()
    upload = registry.start(service)
    assert upload.offset == 0
    assert upload.repository == REPO
    assert len(upload.id) == 32
    assert registry.get(service, upload.id) == upload
    assert registry.get(registry.process(), upload.id) == upload  # any process finds it


@pytest.mark.parametrize("repository", ["team/other", "team"])
def test_session_is_unknown_under_another_repository(registry: Registry, repository: str) -> None:
    service = registry.process()
    upload = registry.start(service)
    with oci_error(ErrorCode.BLOB_UPLOAD_UNKNOWN) as caught:
        registry.get(service, upload.id, repository)
    assert caught.value.status == 404
    assert caught.value.detail == {"uuid": upload.id}


def test_unknown_session_is_blob_upload_unknown(registry: Registry) -> None:
    with oci_error(ErrorCode.BLOB_UPLOAD_UNKNOWN):
        registry.get(registry.process(), "0" * 32)


def test_monolithic_upload_publishes_and_links_the_blob(registry: Registry) -> None:
    service = registry.process()
    data = b"a whole layer in one request"
    digest = digest_bytes(data)
    upload = registry.start(service)
    registry.put(service, upload, data, digest)
    assert registry.driver.stat(digest) == len(data)
    assert b"".join(registry.driver.read(digest)) == data
    assert registry.blob_in_repository(digest) == len(data)
    assert registry.upload_row(upload.id) is None
    assert list(registry.driver.iter_uploads()) == []
    with oci_error(ErrorCode.BLOB_UPLOAD_UNKNOWN):
        registry.get(service, upload.id)


def test_chunks_advance_the_recorded_offset(registry: Registry) -> None:
    service = registry.process()
    upload = registry.start(service)
    upload = registry.patch(service, upload, b"12345")
    assert upload.offset == 5
    assert registry.upload_row(upload.id) == upload
    upload = registry.patch(service, upload, b"678")
    assert registry.upload_row(upload.id) == UploadRecord(upload.id, REPO, 8)


def test_same_content_in_two_repositories_is_stored_once_and_linked_twice(
    registry: Registry,
) -> None:
    service = registry.process()
    data = b"shared base layer"
    digest = digest_bytes(data)
    for repository in ("team/a", "team/b"):
        upload = registry.start(service, repository)
        registry.put(service, upload, data, digest)
    assert list(registry.driver.iter_blobs()) == [digest]
    assert registry.blob_in_repository(digest, "team/a") == len(data)
    assert registry.blob_in_repository(digest, "team/b") == len(data)


def test_chunk_at_the_wrong_offset_is_range_invalid(registry: Registry) -> None:
    service = registry.process()
    upload = registry.patch(service, registry.start(service), b"abc")
    for start in (0, 2, 4):
        with oci_error(ErrorCode.RANGE_INVALID) as caught:
            service.open_chunk(upload, start)
        assert caught.value.status == 416
        assert caught.value.detail == {"offset": 3}
    assert registry.driver.upload_size(upload.id) == 3


def test_second_concurrent_chunk_is_range_invalid(registry: Registry) -> None:
    service = registry.process()
    upload = registry.start(service)
    first = service.open_chunk(upload, 0)
    try:
        with oci_error(ErrorCode.RANGE_INVALID):
            registry.process().open_chunk(upload, 0)
    finally:
        first.writer.close()


def test_a_request_that_waited_behind_another_cannot_overwrite_acknowledged_bytes(
    registry: Registry,
) -> None:
    """Request A read the session at offset 3, then B appended and was acknowledged: A's
    chunk must be refused before it touches the stored bytes (it would truncate them)."""
    service = registry.process()
    stale = registry.patch(service, registry.start(service), b"abc")
    current = registry.patch(registry.process(), stale, b"defg")

    def confirm() -> bool:
        with read_tx(registry.engine) as conn:
            return service.still_at(conn, stale)

    with oci_error(ErrorCode.RANGE_INVALID) as caught:
        service.open_chunk(stale, None, confirm=confirm)
    assert caught.value.status == 416
    assert registry.driver.upload_size(stale.id) == current.offset == 7
    assert b"".join(registry.driver.read_upload(stale.id, 7)) == b"abcdefg"


def test_lost_upload_data_is_blob_upload_unknown(registry: Registry) -> None:
    service = registry.process()
    upload = registry.patch(service, registry.start(service), b"abc")
    registry.driver.delete_upload(upload.id)
    with oci_error(ErrorCode.BLOB_UPLOAD_UNKNOWN):
        registry.process().open_chunk(upload, 3)


def test_recording_a_chunk_twice_is_range_invalid(registry: Registry) -> None:
    service = registry.process()
    upload = registry.start(service)
    chunk = service.open_chunk(upload, 0)
    try:
        chunk.write(b"abc")
        with write_tx(registry.engine) as conn:
            assert service.record_chunk(conn, chunk).offset == 3
        with write_tx(registry.engine) as conn, oci_error(ErrorCode.RANGE_INVALID):
            service.record_chunk(conn, chunk)
    finally:
        chunk.writer.close()
    assert registry.upload_row(upload.id) == UploadRecord(upload.id, REPO, 3)


def test_wrong_digest_is_digest_invalid_and_publishes_nothing(registry: Registry) -> None:
    service = registry.process()
    upload = registry.patch(service, registry.start(service), b"actual bytes")
    claimed = digest_bytes(b"other bytes")
    with oci_error(ErrorCode.DIGEST_INVALID) as caught:
        registry.put(service, upload, b"", claimed)
    assert caught.value.detail == {
        "expected": str(claimed),
        "actual": str(digest_bytes(b"actual bytes")),
    }
    assert registry.driver.stat(claimed) is None
    assert registry.blob_in_repository(claimed) is None
    # The session is intact: the client may still finish it correctly.
    right = digest_bytes(b"actual bytes")
    registry.put(service, registry.get(service, upload.id), b"", right)
    assert registry.blob_in_repository(right) == len(b"actual bytes")


def test_crash_mid_chunk_keeps_only_recorded_bytes(registry: Registry) -> None:
    service = registry.process()
    upload = registry.patch(service, registry.start(service), b"recorded|")
    chunk = service.open_chunk(upload, upload.offset)
    chunk.write(b"written but never recorded")
    chunk.writer.sync()
    chunk.writer.close()  # the process dies before record_chunk

    restarted = registry.process()
    upload = registry.get(restarted, upload.id)
    assert upload.offset == 9
    upload = registry.patch(restarted, upload, b"retried")
    digest = digest_bytes(b"recorded|retried")
    registry.put(restarted, upload, b"", digest)
    assert b"".join(registry.driver.read(digest)) == b"recorded|retried"


def test_cancel_removes_the_session_and_its_data(registry: Registry) -> None:
    service = registry.process()
    upload = registry.patch(service, registry.start(service), b"abandoned")
    with write_tx(registry.engine) as conn:
        service.cancel(conn, upload)
    assert registry.upload_row(upload.id) is None
    assert registry.driver.upload_size(upload.id) is None
    with oci_error(ErrorCode.BLOB_UPLOAD_UNKNOWN):
        registry.get(service, upload.id)


# --- properties: any chunking, any restarts, same digest ----------------------------------------


@st.composite
def chunked(draw: st.DrawFn) -> tuple[bytes, list[bytes], list[bool], bytes]:
    """Bytes, the PATCH chunks, whether a restart precedes each, and the PUT's last chunk."""
    data = draw(st.binary(max_size=3000))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    bounds = [0, *cuts, len(data)]
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
    last = pieces.pop() if draw(st.booleans()) else b""
    restarts = draw(st.lists(st.booleans(), min_size=len(pieces) + 1, max_size=len(pieces) + 1))
    return data, pieces, restarts, last


@PROPERTY
@given(plan=chunked(), algorithm=st.sampled_from(["sha256", "sha512"]))
def test_any_chunking_with_restarts_yields_the_digest_of_the_whole(
    registry: Registry,
    plan: tuple[bytes, list[bytes], list[bool], bytes],
    algorithm: str,
) -> None:
    data, pieces, restarts, last = plan
    digest = digest_bytes(data, algorithm)
    hashes = HashStates()
    service = registry.process(hashes)
    upload = registry.start(service)
    for piece, restart in zip(pieces, restarts, strict=False):
        if restart:  # the next request lands on a process without this upload's hash
            hashes = HashStates()
            service = registry.process(hashes)
            upload = registry.get(service, upload.id)
        upload = registry.patch(service, upload, piece)
    if restarts[-1]:
        service = registry.process()
        upload = registry.get(service, upload.id)
    registry.put(service, upload, last, digest)
    assert registry.driver.stat(digest) == len(data)
    assert b"".join(registry.driver.read(digest)) == data
    assert registry.blob_in_repository(digest) == len(data)
    assert registry.upload_row(upload.id) is None


@PROPERTY
@given(plan=chunked())
def test_a_wrong_digest_is_refused_whatever_the_chunking(
    registry: Registry, plan: tuple[bytes, list[bytes], list[bool], bytes]
) -> None:
    data, pieces, restarts, last = plan
    wrong = digest_bytes(data + b"!")
    service = registry.process()
    upload = registry.start(service)
    for piece, restart in zip(pieces, restarts, strict=False):
        if restart:
            service = registry.process()
        upload = registry.patch(service, upload, piece)
    with oci_error(ErrorCode.DIGEST_INVALID):
        registry.put(service, upload, last, wrong)
    assert registry.driver.stat(wrong) is None
