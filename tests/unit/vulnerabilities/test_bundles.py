"""Reading offline OSV bundles (zip, tar.gz, folder) within limits: the same entries from
each kind, and a clear refusal (rule, entry) for what no real bundle holds: truncation, bad
CRCs, zip bombs, paths out of the bundle, links, too many or too large entries."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from trustyard.vulnerabilities.bundles import (
    BundleLimits,
    Entry,
    Tally,
    expected_sha256,
    file_sha256,
    kind_of,
    read_bundle,
)
from trustyard.vulnerabilities.interfaces import BundleInvalid

RECORDS = {f"GHSA-{i}.json": json.dumps({"id": f"GHSA-{i}"}).encode() for i in range(3)}


def make_zip(path: Path, entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def make_tar(path: Path, entries: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def make_folder(path: Path, entries: dict[str, bytes]) -> Path:
    path.mkdir()
    for name, data in entries.items():
        (path / name).write_bytes(data)
    return path


def read(path: Path, limits: BundleLimits | None = None) -> list[Entry]:
    return list(read_bundle(path, limits or BundleLimits()))


def refusal(path: Path, limits: BundleLimits | None = None) -> BundleInvalid:
    with pytest.raises(BundleInvalid) as caught:
        read(path, limits)
    return caught.value


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "tar", "folder"])
def test_every_kind_gives_the_same_json_entries(tmp_path: Path, kind: str) -> None:
    entries = {**RECORDS, "README.md": b"not a record"}
    if kind == "zip":
        path = make_zip(tmp_path / "all.zip", entries)
    elif kind == "folder":
        path = make_folder(tmp_path / "npm", entries)
    else:
        path = make_tar(tmp_path / f"b.{kind}", entries, "w:gz" if kind == "tar.gz" else "w")
    tally = Tally()
    got = list(read_bundle(path, BundleLimits(), tally))
    assert sorted((e.name, e.data) for e in got) == sorted(RECORDS.items())
    assert (tally.entries, tally.skipped) == (4, 1)
    assert kind_of(path) == {"tar.gz": "tar"}.get(kind, kind)


def test_zip_folders_are_walked_and_named_without_dots(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "b.zip", {"./PyPI/GHSA-1.json": b"{}", "PyPI/": b""})
    assert [e.name for e in read(path)] == ["PyPI/GHSA-1.json"]


def test_something_else_is_not_a_bundle(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(b'{"id": "GHSA-1"}')
    with pytest.raises(BundleInvalid) as caught:
        kind_of(path)
    assert caught.value.rule == "format"
    with pytest.raises(BundleInvalid):
        kind_of(tmp_path / "missing.zip")


def test_a_truncated_zip_is_refused_before_any_entry(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "all.zip", RECORDS)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    error = refusal(path)
    assert error.rule == "corrupt"
    assert "truncated" in error.message


def test_a_zip_entry_with_a_bad_crc_is_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "all.zip", {"GHSA-1.json": b"x" * 100}, zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    at = data.index(b"x" * 100)
    data[at] = ord("y")  # stored bytes changed, CRC not
    path.write_bytes(bytes(data))
    error = refusal(path)
    assert (error.rule, error.entry) == ("corrupt", "GHSA-1.json")


def test_a_truncated_tar_gz_is_refused(tmp_path: Path) -> None:
    big = {f"GHSA-{i}.json": bytes(range(256)) * 40 for i in range(20)}
    path = make_tar(tmp_path / "b.tar.gz", big)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert refusal(path).rule == "corrupt"


def test_a_zip_bomb_is_refused_by_its_ratio(tmp_path: Path) -> None:
    bomb = {f"GHSA-{i}.json": b" " * (1024 * 1024) for i in range(8)}
    path = make_zip(tmp_path / "bomb.zip", bomb)
    limits = BundleLimits(ratio_floor=2 * 1024 * 1024)
    tally = Tally()
    with pytest.raises(BundleInvalid) as caught:
        list(read_bundle(path, limits, tally))
    assert caught.value.rule == "ratio"
    assert tally.total_bytes <= 3 * 1024 * 1024  # stopped as soon as the floor was passed


def test_a_tar_gz_bomb_is_refused_by_its_ratio(tmp_path: Path) -> None:
    bomb = {f"GHSA-{i}.json": b" " * (1024 * 1024) for i in range(8)}
    path = make_tar(tmp_path / "bomb.tar.gz", bomb)
    assert refusal(path, BundleLimits(ratio_floor=2 * 1024 * 1024)).rule == "ratio"


def test_total_bytes_are_bounded(tmp_path: Path) -> None:
    path = make_folder(tmp_path / "f", {f"GHSA-{i}.json": b"{}" * 600 for i in range(3)})
    assert refusal(path, BundleLimits(total_bytes=2000)).rule == "total_bytes"


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "folder"])
def test_an_entry_over_its_limit_is_refused_before_it_is_read(tmp_path: Path, kind: str) -> None:
    entries = {"GHSA-1.json": b"{}", "GHSA-2.json": b" " * 5000}
    if kind == "zip":
        path = make_zip(tmp_path / "b.zip", entries)
    elif kind == "folder":
        path = make_folder(tmp_path / "f", entries)
    else:
        path = make_tar(tmp_path / "b.tar.gz", entries)
    error = refusal(path, BundleLimits(entry_bytes=4096))
    assert (error.rule, error.entry) == ("entry_bytes", "GHSA-2.json")


def test_the_entry_count_a_zip_declares_is_refused_before_its_directory_is_read(
    tmp_path: Path,
) -> None:
    path = make_zip(tmp_path / "b.zip", {f"GHSA-{i}.json": b"{}" for i in range(5)})
    error = refusal(path, BundleLimits(entries=4))
    assert error.rule == "entries"
    assert "5 entries" in error.message


@pytest.mark.parametrize("kind", ["tar.gz", "folder"])
def test_entries_are_counted(tmp_path: Path, kind: str) -> None:
    entries = {f"GHSA-{i}.json": b"{}" for i in range(5)}
    if kind == "folder":
        path = make_folder(tmp_path / "f", entries)
    else:
        path = make_tar(tmp_path / "b.tar.gz", entries)
    assert refusal(path, BundleLimits(entries=4)).rule == "entries"


@pytest.mark.parametrize(
    "name", ["../evil.json", "a/../../evil.json", "/etc/evil.json", "C:/evil.json", "a\\b.json"]
)
@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_names_that_leave_the_bundle_are_refused(tmp_path: Path, name: str, kind: str) -> None:
    entries = {"GHSA-1.json": b"{}", name: b"{}"}
    if kind == "zip":
        path = make_zip(tmp_path / "b.zip", entries)
    else:
        path = make_tar(tmp_path / "b.tar.gz", entries)
    error = refusal(path)
    assert error.rule == "name"
    assert error.entry == name


def test_deep_and_long_names_are_refused(tmp_path: Path) -> None:
    deep = make_zip(tmp_path / "deep.zip", {"a/" * 20 + "x.json": b"{}"})
    assert refusal(deep).rule == "name"
    long = make_zip(tmp_path / "long.zip", {"a" * 2000 + ".json": b"{}"})
    assert refusal(long).rule == "name"


def test_links_are_refused_in_a_tar_and_in_a_folder(tmp_path: Path) -> None:
    path = tmp_path / "links.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        link = tarfile.TarInfo("GHSA-1.json")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
    assert refusal(path).rule == "name"
    folder = make_folder(tmp_path / "f", RECORDS)
    (folder / "GHSA-9.json").symlink_to("/etc/passwd")
    error = refusal(folder)
    assert (error.rule, error.entry) == ("name", "GHSA-9.json")


def test_a_folder_is_read_at_its_top_level_only(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "f", RECORDS)
    (folder / "expected").mkdir()
    (folder / "expected" / "matches.json").write_text("{}")
    tally = Tally()
    assert len(list(read_bundle(folder, BundleLimits(), tally))) == 3
    assert tally.skipped == 1


def test_sha256_files(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "all.zip", RECORDS)
    digest = file_sha256(path)
    assert expected_sha256(digest, path) == digest
    assert expected_sha256(f"{'0' * 64}  other.zip\n{digest.upper()} *all.zip\n", path) == digest
    with pytest.raises(BundleInvalid):
        expected_sha256(f"{'0' * 64}  other.zip\n{'1' * 64}  third.zip\n", path)
    with pytest.raises(BundleInvalid):
        expected_sha256("not a digest", path)
