"""The tar reader (tarstream.TarStream): what Python's tarfile writes, read back the same in
every format; extended headers; a stream that ends early or lies is refused by name."""

from __future__ import annotations

import io
import random
import tarfile
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.scanning.layerkit import (
    LAYER,
    Member,
    file,
    gzip_bytes,
    symlink,
    tar_bytes,
    zstd_bytes,
)
from trustyard.scanning.interfaces import HEAD_BYTES, Limits
from trustyard.scanning.model import ScanRefused
from trustyard.scanning.tarstream import (
    DIRECTORY,
    HARDLINK,
    REGULAR,
    SYMLINK,
    TarStream,
    parse_pax,
)

_name_part = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\", min_codepoint=32
    ),
    min_size=1,
    max_size=40,
).filter(lambda part: part not in {".", ".."})
_names = st.lists(_name_part, min_size=1, max_size=8).map("/".join)
_member = st.one_of(
    st.builds(
        lambda name, data, mode: Member(name, data, tarfile.REGTYPE, "", mode),
        _names,
        st.binary(max_size=1500),
        st.integers(0, 0o7777),
    ),
    st.builds(
        lambda name, target: Member(name, b"", tarfile.SYMTYPE, target, 0o777), _names, _names
    ),
    st.builds(
        lambda name, target: Member(name, b"", tarfile.LNKTYPE, target, 0o644), _names, _names
    ),
    st.builds(lambda name: Member(name, b"", tarfile.DIRTYPE, "", 0o755), _names),
)
_KINDS = {tarfile.REGTYPE: REGULAR, tarfile.SYMTYPE: SYMLINK, tarfile.LNKTYPE: HARDLINK}


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    members=st.lists(_member, max_size=6),
    fmt=st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
)
def test_the_tar_parser_reads_what_tarfile_writes_in_every_format(
    members: list[Member], fmt: int
) -> None:
    try:
        raw = tar_bytes(members, fmt)
    except ValueError:  # USTAR cannot hold a name this long: nothing to compare
        return
    expected = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as reader:
        for info in reader:
            if info.isreg():
                kind = REGULAR
                extracted = reader.extractfile(info)
                assert extracted is not None
                content = extracted.read()
            else:
                kind = DIRECTORY if info.isdir() else _KINDS[info.type]
                content = b""
            expected.append((info.name, kind, info.mode, info.linkname, content))
    stream = TarStream(io.BytesIO(raw), Limits())
    found = []
    while (entry := stream.next()) is not None:
        content = stream.read(entry.size) if entry.kind == REGULAR else b""
        name = entry.name.rstrip("/") if entry.kind == DIRECTORY else entry.name
        found.append((name, entry.kind, entry.mode, entry.linkname, content))
    assert found == expected


@given(size=st.integers(0, 1 << 40))
def test_sizes_beyond_the_octal_field_are_read_from_gnu_base_256_and_pax(size: int) -> None:
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        info = tarfile.TarInfo("huge")
        info.size = size
        header = info.tobuf(format=fmt)
        entry = TarStream(io.BytesIO(header), Limits()).next()
        assert entry is not None
        assert (entry.name, entry.size) == ("huge", size)


def test_a_global_pax_header_applies_to_the_entries_after_it() -> None:
    raw = tar_bytes([file("a", b"1")])
    global_header = tarfile.TarInfo.create_pax_global_header({"comment": "x", "uname": "y"})
    stream = TarStream(io.BytesIO(global_header + raw), Limits())
    entry = stream.next()
    assert entry is not None
    assert (entry.name, stream.read(10)) == ("a", b"1")
    assert stream.next() is None


def test_ustar_prefix_and_long_names_are_joined() -> None:
    path = "d" * 120 + "/name.txt"  # over 100 bytes: the ustar prefix field holds "ddd..."
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        members = [file(path, b"x")]
        if fmt != tarfile.USTAR_FORMAT:
            members.append(symlink("l" * 300, "t" * 200))
        stream = TarStream(io.BytesIO(tar_bytes(members, fmt)), Limits())
        entry = stream.next()
        assert entry is not None
        assert (entry.name, stream.read(5)) == (path, b"x")
        if fmt != tarfile.USTAR_FORMAT:
            link = stream.next()
            assert link is not None
            assert (link.name, link.linkname) == ("l" * 300, "t" * 200)
        assert stream.next() is None


@pytest.mark.parametrize("compress", [gzip_bytes, zstd_bytes], ids=["gzip", "zstd"])
def test_decompressing_on_the_walkers_thread_or_ahead_of_it_reads_the_same(
    compress: Callable[[bytes], bytes],
) -> None:
    raw = tar_bytes([*LAYER, file("big.bin", random.Random(1).randbytes(9 << 20))])
    blob = compress(raw)
    seen = []
    for threaded in (False, True):
        entries = []
        with TarStream(io.BytesIO(blob), Limits(), threaded=threaded) as stream:
            while (entry := stream.next()) is not None:
                entries.append((entry.name, entry.kind, entry.size, stream.peek(HEAD_BYTES)))
            stream.drain()
            seen.append((entries, stream.uncompressed, stream.compressed))
    assert seen[0] == seen[1]
    assert seen[0][1:] == (len(raw), len(blob))


# --- a stream that ends early or lies ---------------------------------------------------------


def entries_of(raw: bytes) -> list[tuple[str, bytes]]:
    stream = TarStream(io.BytesIO(raw), Limits(), threaded=False)
    found = []
    while (entry := stream.next()) is not None:
        found.append((entry.name, stream.read(entry.size)))
    return found


def test_a_header_cut_short_is_refused() -> None:
    raw = tar_bytes([file("a", b"1"), file("b", b"2")])
    with pytest.raises(ScanRefused, match="end of stream inside a tar header"):
        entries_of(raw[: 2 * 512 + 100])


def test_content_cut_short_is_refused() -> None:
    raw = tar_bytes([file("a", b"x" * 2000), file("b", b"2")])
    stream = TarStream(io.BytesIO(raw[: 512 + 1000]), Limits(), threaded=False)
    assert stream.next() is not None
    with pytest.raises(ScanRefused, match="end of stream inside a file's content"):
        stream.next()


def test_a_header_with_a_wrong_checksum_is_refused() -> None:
    raw = bytearray(tar_bytes([file("a", b"1")]))
    raw[0:1] = b"b"  # the name changes, the stored checksum does not
    with pytest.raises(ScanRefused, match="bad tar header checksum"):
        entries_of(bytes(raw))


def test_pax_records_are_parsed_and_malformed_ones_refused() -> None:
    assert parse_pax(b"17 path=a/b/c.tx\n11 uname=x\n\x00\x00") == {
        "path": b"a/b/c.tx",
        "uname": b"x",
    }
    for bad in (b"nonsense", b"99 path=a\n", b"x7 path=a\n", b"10 path_a\n"):
        with pytest.raises(ScanRefused, match="pax record"):
            parse_pax(bad)


def test_an_end_marker_alone_is_an_empty_layer_and_no_bytes_at_all_is_refused() -> None:
    assert entries_of(bytes(1024)) == []
    with pytest.raises(ScanRefused, match="end of stream inside a tar header"):
        entries_of(b"")
