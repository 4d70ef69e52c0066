"""SqliteHotReads' own logic (what every HotReads does is tests/contract/test_hotreads.py): the
memory it keeps stays under its entry and byte caps while answers stay right, a cached answer
is served until another connection commits, and its connection never writes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from trustyard.content.hotreads import SqliteHotReads
from trustyard.content.interfaces import ManifestRecord, Page
from trustyard.content.stores import ContentStore
from trustyard.db.engine import make_engine, write_tx
from trustyard.db.migrate import upgrade
from trustyard.oci.digest import digest_bytes

REPOSITORY = "unit/hot"
MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Path]]:
    path = tmp_path_factory.mktemp("hot") / "meta.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    store = ContentStore()
    with write_tx(engine) as conn:
        repository_id = store.ensure_repository(conn, REPOSITORY)
        for i in range(20):
            payload = b'{"n": %d}' % i + b" " * 1000
            record = ManifestRecord(str(digest_bytes(payload)), MEDIA_TYPE, payload)
            manifest_id = store.insert_manifest(conn, repository_id, record, None, None, [])
            store.set_tag(conn, repository_id, f"t{i:02}", manifest_id)
    try:
        yield engine, path
    finally:
        engine.dispose()


def payload_of(hot: SqliteHotReads, i: int) -> bytes:
    record = hot.manifest(REPOSITORY, f"t{i:02}", by_digest=False)
    assert record is not None
    return record.payload


@pytest.mark.parametrize(
    ("max_entries", "max_bytes"), [(3, 64 << 20), (50_000, 2500)], ids=["entries", "bytes"]
)
def test_the_cache_stays_under_its_caps_and_answers_stay_right(
    database: tuple[Engine, Path], max_entries: int, max_bytes: int
) -> None:
    _, path = database
    hot = SqliteHotReads(str(path), max_entries=max_entries, max_bytes=max_bytes)
    for _ in range(3):
        for i in range(20):
            assert payload_of(hot, i).startswith(b'{"n": %d}' % i)
            assert len(hot._cache) <= max_entries
            assert hot._bytes <= max_bytes + 1100  # the last answer may cross the cap once
    page = hot.tag_page(REPOSITORY, 5, "t03")
    assert page == Page([f"t{i:02}" for i in range(4, 9)], True)


def test_an_answer_is_kept_until_another_connection_commits(
    database: tuple[Engine, Path],
) -> None:
    engine, path = database
    hot = SqliteHotReads(str(path))
    first = hot.manifest(REPOSITORY, "t00", by_digest=False)
    assert first is not None
    cached = hot.manifest(REPOSITORY, "t00", by_digest=False)
    assert cached is not None
    assert cached.payload is first.payload  # the same row, from memory
    store = ContentStore()
    with write_tx(engine) as conn:
        repository_id = store.repository_id(conn, REPOSITORY)
        assert repository_id is not None
        store.ensure_repository(conn, "unit/unrelated")  # any commit anywhere
    again = hot.manifest(REPOSITORY, "t00", by_digest=False)
    assert again == first
    assert again is not None
    assert again.payload is not first.payload  # asked again after the commit


def test_its_connection_never_writes(database: tuple[Engine, Path]) -> None:
    _, path = database
    hot = SqliteHotReads(str(path))
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        hot._db.execute("DELETE FROM tags")
    assert hot.tag_page(REPOSITORY, 1, None) == Page(["t00"], True)
