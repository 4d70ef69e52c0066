"""The HotReads contract (trustyard.content.hotreads): one suite every implementation passes,
on every database it runs on. The same answers as the content store, after pushes, tag moves,
deletes and unlinked blobs, and never a stale one after a write (made here or through another
engine, as another worker process would).

To run the suite against a new implementation, add a factory to IMPLEMENTATIONS: it gets the
migrated engine of its database and returns the HotReads to test.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine

from tests.support.databases import LazyEngines
from trustyard.content.hotreads import HotReads, SqliteHotReads, StoreHotReads
from trustyard.content.interfaces import ManifestRecord, Page
from trustyard.content.stores import ContentStore
from trustyard.db.engine import make_engine, write_tx
from trustyard.oci.digest import digest_bytes

Factory = Callable[[Engine], HotReads]


def _store(engine: Engine) -> HotReads:
    return StoreHotReads(engine, ContentStore())


def _sqlite_cache(engine: Engine) -> HotReads:
    assert engine.url.database is not None
    return SqliteHotReads(engine.url.database)


# name: (database, factory)
IMPLEMENTATIONS: dict[str, tuple[str, Factory]] = {
    "store-sqlite": ("sqlite", _store),
    "store-postgres": ("postgres", _store),
    "sqlite-cache": ("sqlite", _sqlite_cache),
}

MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class Subject:
    engine: Engine
    hot: HotReads
    store: ContentStore

    def repository(self) -> str:
        name = f"contract/{uuid.uuid4().hex[:12]}"
        with write_tx(self.engine) as conn:
            self.store.ensure_repository(conn, name)
        return name

    def push(
        self, repository: str, label: str, tag: str | None = None, subject: str | None = None
    ) -> ManifestRecord:
        payload = f'{{"label": "{label}"}}'.encode()
        record = ManifestRecord(str(digest_bytes(payload)), MEDIA_TYPE, payload, subject)
        with write_tx(self.engine) as conn:
            repository_id = self.store.ensure_repository(conn, repository)
            manifest_id = self.store.manifest_id(conn, repository_id, record.digest)
            if manifest_id is None:
                manifest_id = self.store.insert_manifest(
                    conn, repository_id, record, None, None, []
                )
            if tag is not None:
                self.store.set_tag(conn, repository_id, tag, manifest_id)
        return record

    def blob(self, repository: str, data: bytes) -> str:
        digest = str(digest_bytes(data))
        with write_tx(self.engine) as conn:
            repository_id = self.store.ensure_repository(conn, repository)
            self.store.record_blob(conn, digest, len(data))
            self.store.link_blob(conn, repository_id, digest)
        return digest

    def delete_tag(self, repository: str, tag: str) -> None:
        with write_tx(self.engine) as conn:
            assert self.store.delete_tag(conn, repository, tag)

    def delete_manifest(self, repository: str, digest: str) -> None:
        with write_tx(self.engine) as conn:
            assert self.store.delete_manifest(conn, repository, digest)

    def unlink(self, repository: str, digest: str) -> None:
        with write_tx(self.engine) as conn:
            assert self.store.unlink_blob(conn, repository, digest)

    def by_tag(self, repository: str, tag: str) -> ManifestRecord | None:
        return self.hot.manifest(repository, tag, by_digest=False)

    def by_digest(self, repository: str, digest: str) -> ManifestRecord | None:
        return self.hot.manifest(repository, digest, by_digest=True)


@pytest.fixture(scope="module")
def engines(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LazyEngines]:
    with ExitStack() as stack:
        yield LazyEngines(request, tmp_path_factory, stack)


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def subject(request: pytest.FixtureRequest, engines: LazyEngines) -> Subject:
    backend, factory = IMPLEMENTATIONS[request.param]
    engine = engines[backend]
    return Subject(engine, factory(engine), ContentStore())


# --- what is not there -------------------------------------------------------------------------


def test_a_missing_repository_has_no_manifest_blob_or_tag_page(subject: Subject) -> None:
    missing = f"contract/missing-{uuid.uuid4().hex[:8]}"
    digest = str(digest_bytes(b"x"))
    assert subject.by_tag(missing, "latest") is None
    assert subject.by_digest(missing, digest) is None
    assert subject.hot.blob_size(missing, digest) is None
    assert subject.hot.tag_page(missing, None, None) is None
    assert subject.hot.tag_page(missing, 0, None) is None


def test_a_repository_without_tags_has_an_empty_page(subject: Subject) -> None:
    repository = subject.repository()
    assert subject.hot.tag_page(repository, None, None) == Page([], False)
    assert subject.hot.tag_page(repository, 0, None) == Page([], False)
    assert subject.by_tag(repository, "latest") is None


# --- pushes ------------------------------------------------------------------------------------


def test_a_pushed_manifest_is_found_by_tag_and_by_digest(subject: Subject) -> None:
    repository = subject.repository()
    subject_digest = str(digest_bytes(b"the subject"))
    record = subject.push(repository, "one", tag="v1", subject=subject_digest)
    assert subject.by_tag(repository, "v1") == record
    assert subject.by_digest(repository, record.digest) == record
    assert record.subject_digest == subject_digest
    # Only in its own repository.
    other = subject.repository()
    assert subject.by_digest(other, record.digest) is None
    assert subject.by_tag(other, "v1") is None


def test_a_linked_blob_has_its_size_in_its_repository_only(subject: Subject) -> None:
    repository, other = subject.repository(), subject.repository()
    digest = subject.blob(repository, b"twelve bytes")
    assert subject.hot.blob_size(repository, digest) == 12
    assert subject.hot.blob_size(other, digest) is None
    subject.unlink(repository, digest)
    assert subject.hot.blob_size(repository, digest) is None


def test_tags_are_paged_in_bytewise_order(subject: Subject) -> None:
    repository = subject.repository()
    names = ["v10", "v2", "Latest", "latest", "a-b", "a_b", "a.b", "Z"]
    for name in names:
        subject.push(repository, name, tag=name)
    ordered = sorted(names, key=str.encode)
    assert subject.hot.tag_page(repository, None, None) == Page(ordered, False)
    assert subject.hot.tag_page(repository, 3, None) == Page(ordered[:3], True)
    assert subject.hot.tag_page(repository, 3, ordered[2]) == Page(ordered[3:6], True)
    assert subject.hot.tag_page(repository, 10, ordered[5]) == Page(ordered[6:], False)
    assert subject.hot.tag_page(repository, 2, ordered[-1]) == Page([], False)
    assert subject.hot.tag_page(repository, 0, None) == Page([], True)
    # `last` need not be a tag: the page starts after where it would be.
    assert subject.hot.tag_page(repository, None, "m") == Page(
        [n for n in ordered if n.encode() > b"m"], False
    )


# --- never stale after a write -----------------------------------------------------------------


def test_a_moved_tag_is_seen_at_once(subject: Subject) -> None:
    repository = subject.repository()
    old = subject.push(repository, "old", tag="latest")
    assert subject.by_tag(repository, "latest") == old  # read (and perhaps cached)
    new = subject.push(repository, "new", tag="latest")
    assert subject.by_tag(repository, "latest") == new
    assert subject.by_digest(repository, old.digest) == old


def test_deletes_are_seen_at_once(subject: Subject) -> None:
    repository = subject.repository()
    record = subject.push(repository, "doomed", tag="a")
    subject.push(repository, "doomed", tag="b")
    assert subject.hot.tag_page(repository, None, None) == Page(["a", "b"], False)
    subject.delete_tag(repository, "a")
    assert subject.by_tag(repository, "a") is None
    assert subject.by_tag(repository, "b") == record
    assert subject.hot.tag_page(repository, None, None) == Page(["b"], False)
    subject.delete_manifest(repository, record.digest)
    assert subject.by_digest(repository, record.digest) is None
    assert subject.by_tag(repository, "b") is None
    assert subject.hot.tag_page(repository, None, None) == Page([], False)


def test_a_write_through_another_engine_is_seen_at_once(subject: Subject) -> None:
    """Another worker or process writes through its own connections."""
    repository = subject.repository()
    first = subject.push(repository, "first", tag="latest")
    assert subject.by_tag(repository, "latest") == first
    other = make_engine(subject.engine.url.render_as_string(hide_password=False), pool_size=1)
    try:
        elsewhere = Subject(other, subject.hot, subject.store)
        second = elsewhere.push(repository, "second", tag="latest")
        assert subject.by_tag(repository, "latest") == second
        elsewhere.delete_tag(repository, "latest")
        assert subject.by_tag(repository, "latest") is None
    finally:
        other.dispose()


def test_random_writes_and_reads_agree_with_a_model(subject: Subject) -> None:
    rng = random.Random(10)
    repository = subject.repository()
    tags: dict[str, ManifestRecord] = {}
    manifests: dict[str, ManifestRecord] = {}
    for step in range(80):
        action = rng.random()
        tag = f"t{rng.randrange(6)}"
        if action < 0.5:
            record = subject.push(repository, f"m{rng.randrange(5)}", tag=tag)
            tags[tag] = manifests[record.digest] = record
        elif action < 0.7 and tag in tags:
            subject.delete_tag(repository, tag)
            del tags[tag]
        elif action < 0.8 and manifests:
            digest = rng.choice(sorted(manifests))
            subject.delete_manifest(repository, digest)
            del manifests[digest]
            tags = {t: r for t, r in tags.items() if r.digest != digest}
        for name in (f"t{i}" for i in range(6)):
            assert subject.by_tag(repository, name) == tags.get(name), (step, name)
        for digest, record in manifests.items():
            assert subject.by_digest(repository, digest) == record, step
        assert subject.hot.tag_page(repository, None, None) == Page(sorted(tags), False), step
