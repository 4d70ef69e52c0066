"""The executable reader (binaries/executable.py): ELF, PE and Mach-O of both byte orders and
word sizes, as the Go toolchain builds them for every platform, and what it finds in them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.scanning import binkit
from tests.unit.scanning.binkit import Sec
from trustyard.scanning.binaries import is_executable
from trustyard.scanning.binaries.executable import parse
from trustyard.scanning.binaries.gobuild import MAGIC


@pytest.fixture(scope="module")
def go_dir() -> Path:
    return binkit.go_fixtures()


def test_the_executable_reader_sees_the_real_formats(go_dir: Path) -> None:
    def shape(name: str) -> tuple[str, bool, int]:
        [executable] = parse((go_dir / name).read_bytes())
        return executable.format, executable.big_endian, executable.bits

    assert shape("linux-amd64") == ("elf", False, 64)
    assert shape("linux-s390x") == ("elf", True, 64)
    assert shape("linux-ppc64") == ("elf", True, 64)
    assert shape("linux-mips") == ("elf", True, 32)
    assert shape("linux-386") == ("elf", False, 32)
    assert shape("windows-amd64.exe") == ("pe", False, 64)
    assert shape("windows-386.exe") == ("pe", False, 32)
    assert shape("darwin-arm64") == ("macho", False, 64)
    [s390x] = parse((go_dir / "linux-s390x").read_bytes())
    section = s390x.section(".go.buildinfo")
    assert section is not None
    assert bytes(s390x.contents(section)[:14]) == MAGIC
    assert s390x.read(section.addr, 14) == MAGIC


# --- synthetic executables: what the reader finds in them --------------------------------------

TEXT = Sec(".text", b"\x90" * 64, 0x1000, executable=True)
DATA = Sec(".data", b"hello, reader\0", 0x3000, writable=True)


@pytest.mark.parametrize("big", [False, True], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize("bits", [64, 32])
@pytest.mark.parametrize("section_table", [True, False], ids=["sections", "no-sections"])
def test_an_elf_file_maps_its_addresses_to_file_bytes(
    big: bool, bits: int, section_table: bool
) -> None:
    data = binkit.elf([TEXT, DATA], big=big, bits=bits, section_table=section_table)
    assert is_executable(data[:64], len(data))
    [executable] = parse(data)
    assert (executable.format, executable.big_endian, executable.bits) == ("elf", big, bits)
    assert executable.read(0x3000, 5) == b"hello"
    assert executable.read(0x3000 + 7, 6) == b"reader"
    assert executable.read(0x9000, 4) is None  # no segment maps it
    assert executable.read(0x3000, 1 << 20) is None  # runs past the segment
    if section_table:
        section = executable.section(".data")
        assert section is not None
        assert (section.writable, section.executable) == (True, False)
        assert bytes(executable.contents(section)).startswith(b"hello, reader")
    else:
        assert executable.sections == ()
        assert executable.section(".data") is None


@pytest.mark.parametrize("bits", [64, 32])
def test_a_pe_file_names_its_sections_at_the_image_base(bits: int) -> None:
    data = binkit.pe([TEXT, DATA], bits=bits)
    [executable] = parse(data)
    assert (executable.format, executable.big_endian, executable.bits) == ("pe", False, bits)
    section = executable.section(".data")
    assert section is not None
    assert section.addr == 0x400000 + 0x3000
    assert executable.read(section.addr, 5) == b"hello"


@pytest.mark.parametrize(("big", "bits"), [(False, 64), (True, 32)])
def test_a_macho_file_and_a_universal_one(big: bool, bits: int) -> None:
    thin = binkit.macho(
        [("__TEXT", "__text", b"\x90" * 64, 0x1000), ("__DATA", "__data", b"mach data", 0x2000)],
        big=big,
        bits=bits,
    )
    [executable] = parse(thin)
    assert (executable.format, executable.big_endian, executable.bits) == ("macho", big, bits)
    assert executable.read(0x2000, 4) == b"mach"
    assert [e.format for e in parse(binkit.fat([thin, thin]))] == ["macho", "macho"]


@pytest.mark.parametrize(
    "data",
    [b"", b"\x7fELF", b"\x7fELF" + bytes(60), b"MZ" + bytes(200), b"not a binary at all" * 9],
    ids=["empty", "elf-magic-only", "elf-zero-header", "mz-zero-header", "text"],
)
def test_anything_malformed_has_no_executables(data: bytes) -> None:
    assert parse(data) == []


def test_a_java_class_file_is_not_a_universal_binary() -> None:
    java_class = b"\xca\xfe\xba\xbe\x00\x00\x00\x41" + bytes(100)  # class file version 65
    assert not is_executable(java_class[:64], len(java_class))
    universal = b"\xca\xfe\xba\xbe\x00\x00\x00\x02" + bytes(100)
    assert is_executable(universal[:64], len(universal))
