"""The Rust detector: `cargo auditable` data, the zlib-compressed JSON of the `.dep-v0`
section.

Real executables get a real `.dep-v0` section from binutils' objcopy (as `cargo auditable`'s
linker step leaves it): a copy of /bin/true (ELF, little-endian), Go binaries cross-compiled
for s390x (64-bit big-endian) and mips (32-bit big-endian) and for Windows (PE). Mach-O,
which objcopy here cannot write, and more big-endian ELF come from binkit's writers.
"""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.scanning import binkit
from tests.unit.scanning.binkit import Sec
from tests.unit.scanning.detectors.langkit import detect
from tests.unit.scanning.layerkit import file, gzip_bytes, scan_bytes, tar_bytes
from trustyard.scanning.detectors.rust import DETECTOR, MAX_JSON_BYTES, read_audit_packages
from trustyard.scanning.model import Component

AUDIT: dict[str, Any] = {
    "packages": [
        {"name": "adler", "version": "1.0.2", "source": "crates.io"},
        {"name": "cc", "version": "1.0.83", "source": "crates.io", "kind": "build"},
        {"name": "forked", "version": "0.2.0", "source": "git", "dependencies": [0]},
        {
            "name": "myapp",
            "version": "0.1.0",
            "source": "local",
            "dependencies": [0, 1, 2, 4],
            "root": True,
        },
        {"name": "serde", "version": "1.0.193", "source": "crates.io", "kind": "runtime"},
    ]
}
EXPECTED = {
    ("adler", "1.0.2"),
    ("forked", "0.2.0"),
    ("myapp", "0.1.0"),  # the root crate: the binary's own
    ("serde", "1.0.193"),
}  # cc is a build dependency: its code is not in the binary


def payload(document: Any = AUDIT) -> bytes:
    return zlib.compress(json.dumps(document).encode())


def found(components: list[Component]) -> set[tuple[str, str]]:
    assert all(c.ecosystem == "cargo" and c.detector == "rust" for c in components)
    return {(c.name, c.version) for c in components}


@pytest.fixture(scope="module")
def true_with_audit(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("rust")
    copy = folder / "true"
    shutil.copyfile("/bin/true", copy)
    return binkit.add_section(copy, ".dep-v0", payload(), folder / "true-audited").read_bytes()


def test_reads_a_real_elf_section_made_by_objcopy(true_with_audit: bytes) -> None:
    components = detect(DETECTOR, {"usr/local/bin/myapp": true_with_audit})
    assert found(components) == EXPECTED
    by_name = {c.name: c for c in components}
    assert by_name["serde"].purl == "pkg:cargo/serde@1.0.193"
    assert dict(by_name["serde"].properties) == {"source": "crates.io"}
    assert dict(by_name["myapp"].properties) == {"root": "true", "source": "local"}
    assert dict(by_name["forked"].properties) == {"source": "git"}
    assert {c.locations for c in components} == {("usr/local/bin/myapp",)}


@pytest.mark.parametrize(
    ("name", "bfd"),
    [("linux-s390x", "elf64-big"), ("linux-mips", "elf32-big"), ("windows-amd64.exe", None)],
)
def test_big_endian_elf_and_pe_made_by_objcopy(tmp_path: Path, name: str, bfd: str | None) -> None:
    binary = binkit.go_fixtures() / name
    audited = binkit.add_section(binary, ".dep-v0", payload(), tmp_path / name, bfd)
    assert found(detect(DETECTOR, {"bin/x": audited.read_bytes()})) == EXPECTED


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("bits", [64, 32])
def test_synthetic_elf_of_each_byte_order_and_word_size(big: bool, bits: int) -> None:
    data = binkit.elf(
        [Sec(".text", b"\x90" * 32, 0x1000, executable=True), Sec(".dep-v0", payload())],
        big=big,
        bits=bits,
    )
    assert found(detect(DETECTOR, {"x": data})) == EXPECTED


@pytest.mark.parametrize(("big", "bits"), [(False, 64), (True, 32)])
def test_macho_data_segment(big: bool, bits: int) -> None:
    base = 0x100000000 if bits == 64 else 0x1000
    data = binkit.macho(
        [
            ("__TEXT", "__text", b"\x90" * 32, base),
            ("__DATA", "__data", b"\0" * 16, base + 0x4000),
            ("__DATA", ".dep-v0", payload(), base + 0x4010),
        ],
        big=big,
        bits=bits,
    )
    assert found(detect(DETECTOR, {"Contents/MacOS/app": data})) == EXPECTED
    assert found(detect(DETECTOR, {"universal": binkit.fat([data])})) == EXPECTED


def test_synthetic_pe() -> None:
    data = binkit.pe(
        [Sec(".text", b"\x90" * 32, 0x1000, executable=True), Sec(".dep-v0", payload(), 0x2000)]
    )
    assert found(detect(DETECTOR, {"app.exe": data})) == EXPECTED


def test_a_renamed_audited_binary_in_a_layer(true_with_audit: bytes) -> None:
    layer = gzip_bytes(
        tar_bytes(
            [
                file("opt/thing/data.bin", true_with_audit, mode=0o600),
                file("usr/bin/true", Path("/bin/true").read_bytes(), mode=0o755),
            ]
        )
    )
    scan = scan_bytes(layer, [DETECTOR])
    assert found(scan.components) == EXPECTED
    assert {c.evidence for c in scan.components} == {"opt/thing/data.bin"}


def test_duplicates_and_unusable_entries_are_skipped() -> None:
    document = {
        "packages": [
            {"name": "a", "version": "1.0.0"},
            {"name": "a", "version": "1.0.0", "source": "crates.io"},
            {"name": "a", "version": "2.0.0"},
            {"name": "", "version": "1.0.0"},
            {"name": "b"},
            {"name": "c", "version": 3},
            {"name": "has space", "version": "1.0.0"},
            "not an object",
            {"name": "d", "version": "0.1.0", "kind": "build"},
        ]
    }
    data = binkit.elf([Sec(".dep-v0", payload(document))])
    assert found(detect(DETECTOR, {"x": data})) == {("a", "1.0.0"), ("a", "2.0.0")}


@pytest.mark.parametrize(
    "section",
    [
        b"",
        b"not zlib at all",
        zlib.compress(b"{not json"),
        zlib.compress(b"[1, 2, 3]"),
        zlib.compress(b'{"packages": {"name": "x"}}'),
        zlib.compress(b'{"packages": []}'),
        zlib.compress(b'{"nothing": 1}'),
        zlib.compress(json.dumps(AUDIT).encode())[:40],  # truncated
        zlib.compress(b"[" * 100_000 + b"]" * 100_000),  # nested too deep for json
        zlib.compress(b" " * (MAX_JSON_BYTES + 1) + b'{"packages": []}'),  # over the limit
    ],
    ids=[
        "empty",
        "not-zlib",
        "not-json",
        "a-list",
        "packages-not-a-list",
        "no-packages",
        "no-packages-key",
        "truncated",
        "deep",
        "too-big",
    ],
)
def test_corrupt_sections_find_nothing_and_never_raise(section: bytes) -> None:
    data = binkit.elf([Sec(".dep-v0", section)])
    assert detect(DETECTOR, {"x": data}) == []


def test_a_section_past_the_end_of_a_truncated_file(true_with_audit: bytes) -> None:
    cut = true_with_audit[: true_with_audit.find(payload()[:16]) + 20]
    assert read_audit_packages(cut) is None
    assert detect(DETECTOR, {"x": cut}) == []


@given(st.binary(max_size=300), st.integers(min_value=0, max_value=400))
def test_random_bytes_never_raise(noise: bytes, cut: int) -> None:
    data = binkit.elf([Sec(".dep-v0", noise)])
    for sample in (data, data[:cut], b"\x7fELF" + noise):
        packages = read_audit_packages(sample)
        assert packages is None or isinstance(packages, list)
