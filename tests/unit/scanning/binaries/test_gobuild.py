"""Go build information read from a binary (binaries/gobuild.py), whatever the detector
makes of it: the pre-1.18 pointer format resolved through segments, pointers and strings that
lead outside the file skipped, and random bytes that never raise."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.scanning import binkit
from tests.unit.scanning.binkit import Sec, pointer_format_elf
from tests.unit.scanning.detectors.langkit import detect
from trustyard.scanning.binaries.executable import parse
from trustyard.scanning.binaries.gobuild import MAGIC, read_build_info
from trustyard.scanning.detectors.golang import DETECTOR


@pytest.mark.parametrize("big", [False, True])
def test_pointers_outside_the_segments_are_skipped(big: bool) -> None:
    order = ">" if big else "<"
    header = MAGIC + bytes([8, 1 if big else 0]) + struct.pack(order + "QQ", 0xDEAD0000, 1 << 60)
    header += bytes(32 - len(header))
    data = binkit.elf([Sec(".go.buildinfo", header, 0x500000, writable=True)], big=big)
    assert read_build_info(data) is None
    assert detect(DETECTOR, {"x": data}) == []


def test_a_string_running_past_the_end_of_the_file_is_skipped() -> None:
    data = bytearray(pointer_format_elf(big=False, bits=64))
    data_at = data.find(struct.pack("<QQ", 0x401000, 9))  # the version's string header
    assert data_at > 0
    struct.pack_into("<Q", data, data_at + 8, 1 << 20)  # claims to be 1 MiB long
    assert read_build_info(bytes(data)) is None


@given(st.binary(max_size=512), st.sampled_from([b"\x7fELF", b"MZ", b"\xcf\xfa\xed\xfe", b""]))
def test_random_bytes_never_raise(tail: bytes, magic: bytes) -> None:
    for sample in (magic + tail, magic + bytes(62) + MAGIC + tail):
        info = read_build_info(sample)
        assert info is None or info.go_version.startswith(("go", "devel"))
        assert all(e.format in ("elf", "pe", "macho") for e in parse(sample))
