"""The Go detector: build information read from Go binaries themselves.

Real binaries come from the shared test images (ground truth from `go version -m` at build
time) and from the Go toolchain installed here, cross-compiled for big-endian (s390x, ppc64,
mips), 32-bit, Windows (PE) and macOS (Mach-O), stripped, PIE and externally linked (cgo)
(binkit.go_fixtures). The pre-1.18 pointer format, which no toolchain here writes, is built
byte by byte in synthetic ELF files of both byte orders and word sizes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.images import image_layout, load_truth
from tests.unit.scanning import binkit
from tests.unit.scanning.binkit import Sec
from tests.unit.scanning.detectors.langkit import detect, entry
from tests.unit.scanning.layerkit import file, gzip_bytes, scan_bytes, tar_bytes
from trustyard.scanning.binaries import is_executable
from trustyard.scanning.binaries.executable import parse
from trustyard.scanning.binaries.gobuild import MAGIC, parse_modinfo, read_build_info
from trustyard.scanning.detectors import fingerprints, golang, rust
from trustyard.scanning.detectors.golang import DETECTOR, components_of
from trustyard.scanning.interfaces import FileEntry, Limits, ScanContext
from trustyard.scanning.layers import scan_layer
from trustyard.scanning.model import Component
from trustyard.scanning.sources import open_path

DEPS = {
    ("example.com/lib/greet", "v1.2.3"),
    ("example.com/fork/orig", "v1.0.1-fork"),  # replaces example.com/lib/orig v1.0.0
    ("example.com/lib/local", "v0.1.0"),  # replaced by the directory ./local
}


@pytest.fixture(scope="module")
def go_dir() -> Path:
    return binkit.go_fixtures()


def found(components: list[Component]) -> set[tuple[str, str]]:
    assert all(c.ecosystem == "golang" and c.detector == "golang" for c in components)
    return {(c.name, c.version) for c in components}


def by_name(components: list[Component]) -> dict[str, Component]:
    return {c.name: c for c in components}


# --- the shared test images -------------------------------------------------------------------


def test_go_binary_image_matches_its_ground_truth() -> None:
    layout = image_layout("go-binary")
    source = open_path(layout)
    [image] = source.images()
    [layer] = image.layers
    with source.open_blob(layer.digest) as blob:
        scan = scan_layer(blob, layer, [DETECTOR], Limits())
    truth = set(load_truth("go-binary"))
    assert {(c.ecosystem, c.name, c.version) for c in scan.components} == truth
    assert {c.locations for c in scan.components} == {("usr/local/bin/testapp",)}
    uuid = by_name(scan.components)["github.com/google/uuid"]
    assert uuid.purl == "pkg:golang/github.com/google/uuid@v1.3.0"
    assert dict(uuid.properties) == {"GOARCH": "amd64", "GOOS": "linux"}
    # The main module, example.com/trustyard/testapp (devel), is not a component.
    assert not any("testapp" in c.name for c in scan.components)


def test_each_platform_of_the_multi_arch_index_matches_its_ground_truth() -> None:
    source = open_path(image_layout("multi-arch"))
    images = source.images()
    assert sorted(i.platform for i in images) == ["linux/amd64", "linux/arm64/v8"]
    for image in images:
        scans = []
        for layer in image.layers:
            with source.open_blob(layer.digest) as blob:
                scans.append(scan_layer(blob, layer, [DETECTOR], Limits()))
        components = [c for s in scans for c in s.components]
        platform = "/".join(image.platform.split("/")[:2])
        assert {(c.ecosystem, c.name, c.version) for c in components} == set(
            load_truth("multi-arch", platform)
        )
        [stdlib] = components
        assert stdlib.purl == "pkg:golang/stdlib@go1.19.8"
        assert stdlib.locations == ("usr/local/bin/hello",)
        assert dict(stdlib.properties)["GOARCH"] == platform.split("/")[1]


# --- binaries built here for every format -----------------------------------------------------


@pytest.mark.parametrize("build", binkit.GO_BUILDS, ids=lambda b: b.name)
def test_reads_every_format_byte_order_and_word_size(go_dir: Path, build: binkit.GoBuild) -> None:
    data = (go_dir / build.name).read_bytes()
    version = binkit.go_version()
    # What the toolchain itself reads from this binary.
    assert (go_dir / f"{build.name}.txt").read_text().split("\n", 1)[0].endswith(": " + version)
    components = detect(DETECTOR, {f"opt/{build.name}": data})
    assert found(components) == {("stdlib", version), *DEPS}
    for component in components:
        assert component.locations == (f"opt/{build.name}",)
        assert dict(component.properties)["GOOS"] == build.goos
        assert dict(component.properties)["GOARCH"] == build.goarch


def test_purls_and_replacements(go_dir: Path) -> None:
    components = by_name(detect(DETECTOR, {"app": (go_dir / "linux-amd64").read_bytes()}))
    assert components["stdlib"].purl == f"pkg:golang/stdlib@{binkit.go_version()}"
    assert components["example.com/lib/greet"].purl == "pkg:golang/example.com/lib/greet@v1.2.3"
    # A module replaced by another module: the replacement is the code that was linked.
    fork = components["example.com/fork/orig"]
    assert fork.purl == "pkg:golang/example.com/fork/orig@v1.0.1-fork"
    assert dict(fork.properties)["replaces"] == "example.com/lib/orig@v1.0.0"
    assert "example.com/lib/orig" not in components
    # A module replaced by a local directory keeps the required module's name and version.
    local = components["example.com/lib/local"]
    assert local.version == "v0.1.0"
    assert dict(local.properties)["replaced-by"] == "./local"


def test_a_binary_built_outside_modules_has_only_the_standard_library(go_dir: Path) -> None:
    components = detect(DETECTOR, {"usr/bin/tool": (go_dir / "gopath").read_bytes()})
    assert found(components) == {("stdlib", binkit.go_version())}


def test_the_go_command_itself_embeds_the_magic_and_still_reads_right() -> None:
    go = Path(binkit.run("go", "env", "GOROOT").strip()) / "bin" / "go"
    data = go.read_bytes()
    assert data.count(MAGIC) >= 2  # its own build info and the constant its reader searches for
    info = read_build_info(data)
    assert info is not None
    assert info.path == "cmd/go"
    assert found(detect(DETECTOR, {"usr/bin/go": data})) == {("stdlib", binkit.go_version())}


def test_a_universal_macho_reports_its_first_architecture(go_dir: Path) -> None:
    universal = binkit.fat(
        [(go_dir / "darwin-amd64").read_bytes(), (go_dir / "darwin-arm64").read_bytes()]
    )
    assert [e.format for e in parse(universal)] == ["macho", "macho"]
    components = detect(DETECTOR, {"Applications/tool": universal})
    assert found(components) == {("stdlib", binkit.go_version()), *DEPS}
    assert {dict(c.properties)["GOARCH"] for c in components} == {"amd64"}


def test_without_a_section_table_the_segments_are_searched(go_dir: Path) -> None:
    # What `sstrip` leaves: program headers only.
    for name in ("linux-amd64", "linux-s390x", "linux-mips"):
        data = bytearray((go_dir / name).read_bytes())
        [executable] = parse(bytes(data))
        order = ">" if executable.big_endian else "<"
        if executable.bits == 64:
            struct.pack_into(order + "Q", data, 40, 0)  # e_shoff
            struct.pack_into(order + "HHH", data, 58, 0, 0, 0)  # e_shentsize, e_shnum, e_shstrndx
        else:
            struct.pack_into(order + "I", data, 32, 0)
            struct.pack_into(order + "HHH", data, 46, 0, 0, 0)
        assert parse(bytes(data))[0].sections == ()
        assert found(detect(DETECTOR, {name: bytes(data)})) == {
            ("stdlib", binkit.go_version()),
            *DEPS,
        }


# --- layers: any name, any path, Windows ------------------------------------------------------


def test_a_renamed_binary_anywhere_in_a_layer_is_found(go_dir: Path) -> None:
    stripped = (go_dir / "linux-amd64-stripped").read_bytes()
    layer = gzip_bytes(
        tar_bytes(
            [
                file("srv/data/blob.dat", stripped, mode=0o644),  # not executable, odd name
                file("usr/lib/libfoo.so.1", (go_dir / "linux-arm64").read_bytes(), mode=0o755),
                file("etc/motd", b"\x7fELF is not enough to be a binary"),
                file("README", b"MZ and nothing else"),
            ]
        )
    )
    scan = scan_bytes(layer, [DETECTOR])
    assert {(c.evidence, c.name, c.version) for c in scan.components} == {
        (path, name, version)
        for path in ("srv/data/blob.dat", "usr/lib/libfoo.so.1")
        for name, version in {("stdlib", binkit.go_version()), *DEPS}
    }
    assert scan.notes == []


def test_a_windows_layer_reads_pe_binaries_under_files(go_dir: Path) -> None:
    exe = (go_dir / "windows-amd64.exe").read_bytes()
    layer = gzip_bytes(
        tar_bytes([file("Files/Program Files/tool/tool.exe", exe), file("Hives/SOFTWARE", b"x")])
    )
    scan = scan_bytes(layer, [DETECTOR], windows=True)
    assert {c.evidence for c in scan.components} == {"Program Files/tool/tool.exe"}
    assert found(scan.components) == {("stdlib", binkit.go_version()), *DEPS}
    assert {dict(c.properties)["GOOS"] for c in scan.components} == {"windows"}


def test_the_three_binary_detectors_want_the_same_files(go_dir: Path) -> None:
    limits = Limits(max_file_bytes=64 << 20)
    context = ScanContext(limits)
    collectors = [d.DETECTOR.collector(context) for d in (golang, rust, fingerprints)]
    samples = {
        "any/name": (go_dir / "linux-amd64").read_bytes(),
        "x.exe": (go_dir / "windows-386.exe").read_bytes(),
        "y": (go_dir / "darwin-arm64").read_bytes(),
        "fat": binkit.fat([(go_dir / "darwin-amd64").read_bytes()]),
        "text.txt": b"hello world, this is text long enough to be a file of some size" * 2,
        "Foo.class": b"\xca\xfe\xba\xbe\x00\x00\x00\x3d" + bytes(100),  # a Java class, not fat
        "dos.com": b"MZ" + bytes(200),  # MZ without a PE header inside the file
        "tiny": b"\x7fELF",
    }
    for path, data in samples.items():
        answers = {c.wants(entry(path, data)) for c in collectors}
        expected = limits.max_file_bytes if path in ("any/name", "x.exe", "y", "fat") else 0
        assert answers == {expected}, path


@given(st.binary(min_size=0, max_size=64), st.integers(min_value=0, max_value=1 << 40))
def test_wants_agrees_with_the_magic_check(head: bytes, size: int) -> None:
    context = ScanContext(Limits())
    collectors = [d.DETECTOR.collector(context) for d in (golang, rust, fingerprints)]
    file_entry = FileEntry("f", size, 0o644, head)
    answers = {c.wants(file_entry) for c in collectors}
    assert len(answers) == 1
    assert (answers.pop() > 0) == (size >= 64 and is_executable(head, size))


# --- the pre-1.18 pointer format, synthetic ---------------------------------------------------


@pytest.mark.parametrize("big", [False, True], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize("bits", [64, 32])
@pytest.mark.parametrize("section_table", [True, False], ids=["sections", "no-sections"])
def test_the_pointer_format_resolves_through_segments(
    big: bool, bits: int, section_table: bool
) -> None:
    data = binkit.pointer_format_elf(big=big, bits=bits, section_table=section_table)
    components = detect(DETECTOR, {"usr/bin/old": data})
    assert found(components) == {
        ("stdlib", "go1.16.15"),
        ("golang.org/x/text", "v0.3.7"),
        ("github.com/fork/errors", "v0.9.2"),
    }
    assert by_name(components)["golang.org/x/text"].purl == "pkg:golang/golang.org/x/text@v0.3.7"


def test_garbage_after_an_unaligned_or_false_magic_is_skipped() -> None:
    # No section table and no writable segment: the whole file is searched, and the first
    # three occurrences of the magic (unaligned; aligned with garbage; aligned with an
    # inline "version" that is not one) are not build info.
    inline = MAGIC + bytes([8, 2]) + bytes(16) + bytes([8]) + b"go1.21.5" + bytes([0])
    rodata = b"\0" * 3 + MAGIC + b"\0" * 15 + MAGIC + b"xy and then some text\0"
    rodata += bytes(-len(rodata) % 16) + MAGIC + bytes([8, 2]) + bytes(16) + b"\x05hello\0"
    data = binkit.elf(
        [Sec(".rodata", rodata, 0x400000), Sec(".other", inline, 0x500000)],
        section_table=False,
    )
    assert data.count(MAGIC) == 4
    assert found(detect(DETECTOR, {"x": data})) == {("stdlib", "go1.21.5")}


# --- module information -----------------------------------------------------------------------


def test_a_main_module_with_a_real_version_is_reported() -> None:
    # What `go install example.com/cmd@v1.4.0` writes.
    modinfo = (
        b"path\texample.com/cmd/tool\nmod\texample.com/cmd\tv1.4.0\th1:x=\n"
        b"dep\tgolang.org/x/sys\tv0.15.0\th1:y=\nbuild\tGOARCH=arm64\nbuild\tGOOS=darwin\n"
    )
    components = components_of(parse_modinfo(b"go1.21.5", modinfo), "bin/tool")
    assert found(components) == {
        ("stdlib", "go1.21.5"),
        ("example.com/cmd", "v1.4.0"),
        ("golang.org/x/sys", "v0.15.0"),
    }
    assert all(dict(c.properties) == {"GOARCH": "arm64", "GOOS": "darwin"} for c in components)


def test_devel_and_experiment_toolchains() -> None:
    info = parse_modinfo(b"go1.21.0 X:boringcrypto", b"")
    assert found(components_of(info, "x")) == {("stdlib", "go1.21.0")}
    assert components_of(parse_modinfo(b"devel go1.22-abc Tue", b""), "x") == []


def test_malformed_module_lines_are_ignored() -> None:
    modinfo = (
        b"dep\n=>\tnowhere\tv1\t\ndep\t\tv1.0.0\ndep\tok.example/a\tv1.0.0\n"
        b"dep\tbad name\tv1\ndep\tno.version/x\t\nbuild\tNOEQUALS\n\xff\xfe\n"
    )
    components = components_of(parse_modinfo(b"go1.20.1", modinfo), "x")
    assert found(components) == {("stdlib", "go1.20.1"), ("ok.example/a", "v1.0.0")}


# --- malformed binaries never raise -----------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_truncated_and_corrupted_binaries_never_raise(go_dir: Path, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from([b.name for b in binkit.GO_BUILDS]))
    original = (go_dir / name).read_bytes()
    [executable] = parse(original)
    info = executable.section(".go.buildinfo") or executable.section("__go_buildinfo")
    hot = [0, 64, len(original) - 4096]
    if info is not None:
        hot.append(info.offset)
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        base = data.draw(st.sampled_from(hot))
        at = max(0, min(len(mutated) - 1, base + data.draw(st.integers(0, 200))))
        mutated[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    sample = bytes(mutated[:cut]) if data.draw(st.booleans()) else bytes(mutated)
    read_build_info(sample)  # must not raise
    for component in detect(DETECTOR, {"f": sample}):
        assert component.name
        assert component.purl.startswith("pkg:golang/")
