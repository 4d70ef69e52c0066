"""Binaries for the binary detectors' tests: real ones built once with real tools (the Go
toolchain, gcc, objcopy) and cached under the scan fixtures folder, and synthetic ELF,
Mach-O and PE files written byte by byte (both byte orders, both word sizes) for what no
toolchain here produces."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import re
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.unit.scanning.layerkit import FIXTURES
from trustyard.scanning.binaries.gobuild import MAGIC

# --- cached fixtures ------------------------------------------------------------------------


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers wait for one build
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def cached(kind: str, recipe: str, build: Callable[[Path], None]) -> Path:
    """FIXTURES/<kind>/<hash of recipe>/, built by `build(folder)` the first time."""
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    target = FIXTURES / kind / key
    if (target / ".done").exists():
        return target
    with _locked(FIXTURES / kind):
        if not (target / ".done").exists():
            partial = target.with_name(key + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            build(partial)
            (partial / ".done").write_text(recipe)
            shutil.rmtree(target, ignore_errors=True)
            partial.rename(target)
    return target


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return result.stdout


@functools.cache
def debian_version(package: str) -> str:
    return run("dpkg-query", "-W", "-f", "${Version}", package).strip()


def upstream_version(package: str) -> str:
    """A Debian package's upstream version: no epoch, revision or repack suffix
    (1:1.2.13.dfsg-1 -> 1.2.13, 1:9.2p1-2+deb12u6 -> 9.2p1)."""
    match = re.match(r"(?:\d+:)?(\d+(?:\.\d+)*(?:[a-z]\d*)?)", debian_version(package))
    assert match, package
    return match.group(1)


@functools.cache
def package_file(package: str, pattern: str) -> Path:
    """The first file of an installed Debian package whose path matches `pattern`."""
    for line in run("dpkg", "-L", package).splitlines():
        path = Path(line)
        if re.search(pattern, line) and path.is_file() and not path.is_symlink():
            return path
    raise AssertionError(f"{package} has no file matching {pattern}")


# --- the Go fixtures --------------------------------------------------------------------------

GO_MODULE = "example.com/trustyard/fixture"
GO_FILES = {
    "go.mod": (
        "module example.com/trustyard/fixture\n\ngo 1.19\n\nrequire (\n"
        "\texample.com/lib/greet v1.2.3\n\texample.com/lib/local v0.1.0\n"
        "\texample.com/lib/orig v1.0.0\n)\n\n"
        "replace example.com/lib/orig => example.com/fork/orig v1.0.1-fork\n\n"
        "replace example.com/lib/local => ./local\n"
    ),
    "vendor/modules.txt": (
        "# example.com/lib/greet v1.2.3\n## explicit; go 1.19\nexample.com/lib/greet\n"
        "# example.com/lib/local v0.1.0 => ./local\n## explicit; go 1.19\nexample.com/lib/local\n"
        "# example.com/lib/orig v1.0.0 => example.com/fork/orig v1.0.1-fork\n"
        "## explicit; go 1.19\nexample.com/lib/orig\n"
        "# example.com/lib/local => ./local\n"
        "# example.com/lib/orig => example.com/fork/orig v1.0.1-fork\n"
    ),
    "vendor/example.com/lib/greet/greet.go": 'package greet\n\nfunc Name() string { return "g" }\n',
    "vendor/example.com/lib/orig/orig.go": 'package orig\n\nfunc Name() string { return "fork" }\n',
    "vendor/example.com/lib/local/local.go": 'package local\n\nfunc Name() string { return "l" }\n',
    "local/go.mod": "module example.com/lib/local\n\ngo 1.19\n",
    "local/local.go": 'package local\n\nfunc Name() string { return "l" }\n',
    "main.go": (
        'package main\n\nimport (\n\t"example.com/lib/greet"\n\t"example.com/lib/local"\n'
        '\t"example.com/lib/orig"\n)\n\nfunc main() { println(greet.Name(), orig.Name(), '
        "local.Name()) }\n"
    ),
}
CGO_MAIN = (
    'package main\n\n// int twice(int x) { return 2 * x; }\nimport "C"\n\nimport (\n'
    '\t"example.com/lib/greet"\n\t"example.com/lib/local"\n\t"example.com/lib/orig"\n)\n\n'
    "func main() { println(greet.Name(), orig.Name(), local.Name(), int(C.twice(2))) }\n"
)


@dataclass(frozen=True)
class GoBuild:
    name: str
    goos: str
    goarch: str
    ldflags: str = "-buildid="
    extra: tuple[str, ...] = ()
    cgo: bool = False


GO_BUILDS = (
    GoBuild("linux-amd64", "linux", "amd64"),
    GoBuild("linux-arm64", "linux", "arm64"),
    GoBuild("linux-s390x", "linux", "s390x"),  # 64-bit big-endian
    GoBuild("linux-ppc64", "linux", "ppc64"),  # 64-bit big-endian
    GoBuild("linux-mips", "linux", "mips"),  # 32-bit big-endian
    GoBuild("linux-386", "linux", "386"),  # 32-bit little-endian
    GoBuild("linux-arm", "linux", "arm"),
    GoBuild("windows-amd64.exe", "windows", "amd64"),  # PE32+
    GoBuild("windows-386.exe", "windows", "386"),  # PE32
    GoBuild("darwin-amd64", "darwin", "amd64"),  # Mach-O
    GoBuild("darwin-arm64", "darwin", "arm64"),
    GoBuild("linux-amd64-stripped", "linux", "amd64", "-s -w -buildid="),
    GoBuild("linux-amd64-pie", "linux", "amd64", extra=("-buildmode=pie",)),
    GoBuild("linux-amd64-cgo", "linux", "amd64", "-buildid= -linkmode=external", cgo=True),
)


def go_version() -> str:
    return run("go", "env", "GOVERSION").strip()


def go_fixtures() -> Path:
    """The Go binaries of GO_BUILDS (and `go version -m` of each, NAME.txt), built by the
    Go toolchain installed here, offline (a vendored module with a module replacement and a
    directory replacement), cached by toolchain version and recipe."""
    recipe = repr((go_version(), sorted(GO_FILES.items()), CGO_MAIN, GO_BUILDS))
    return cached("go", recipe, _build_go)


def _build_go(out: Path) -> None:
    for source, main in (("src", GO_FILES["main.go"]), ("src-cgo", CGO_MAIN)):
        for name, text in GO_FILES.items():
            path = out / source / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(main if name == "main.go" else text)
    base = {
        **os.environ,
        "GOFLAGS": "-mod=vendor -trimpath -buildvcs=false",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "GOWORK": "off",
        "GOCACHE": str(FIXTURES / "go" / "gocache"),
    }
    for build in GO_BUILDS:
        env = {
            **base,
            "GOOS": build.goos,
            "GOARCH": build.goarch,
            "CGO_ENABLED": "1" if build.cgo else "0",
        }
        binary = out / build.name
        folder = out / ("src-cgo" if build.cgo else "src")
        run(
            "go",
            "build",
            *build.extra,
            f"-ldflags={build.ldflags}",
            "-o",
            binary,
            ".",
            cwd=folder,
            env=env,
        )
        (out / f"{build.name}.txt").write_text(run("go", "version", "-m", binary))
    # A program built outside any module (GOPATH mode): no module information at all.
    gopath = out / "src-gopath"
    gopath.mkdir()
    (gopath / "main.go").write_text('package main\n\nfunc main() { println("x") }\n')
    env = {**base, "GO111MODULE": "off", "GOFLAGS": "", "CGO_ENABLED": "0"}
    run("go", "build", "-o", out / "gopath", "main.go", cwd=gopath, env=env)
    shutil.rmtree(out / "src")
    shutil.rmtree(out / "src-cgo")
    shutil.rmtree(gopath)


# --- statically linked C programs -------------------------------------------------------------

ZLIB_PROGRAM = r"""
#include <stdio.h>
#include <zlib.h>
int main(void) {
    unsigned char in[] = "trustyard", out[64], back[64];
    uLongf outlen = sizeof out, backlen = sizeof back;
    if (compress(out, &outlen, in, sizeof in) != Z_OK) return 1;
    if (uncompress(back, &backlen, out, outlen) != Z_OK) return 1;
    puts((char *)back);
    return 0;
}
"""
SQLITE_PROGRAM = r"""
#include <stdio.h>
#include <sqlite3.h>
int main(void) {
    sqlite3 *db;
    if (sqlite3_open(":memory:", &db)) return 1;
    puts(sqlite3_libversion());
    return sqlite3_close(db);
}
"""


def static_fixtures() -> Path:
    """zlib-static and sqlite-static: C programs statically linked (gcc -static) against
    Debian's libz.a and libsqlite3.a, plus stripped copies; cached by the versions of the
    compiler and of both libraries."""
    recipe = repr(
        (
            ZLIB_PROGRAM,
            SQLITE_PROGRAM,
            debian_version("gcc"),
            debian_version("zlib1g-dev"),
            debian_version("libsqlite3-dev"),
        )
    )
    return cached("static", recipe, _build_static)


def _build_static(out: Path) -> None:
    for name, program, libs in (
        ("zlib-static", ZLIB_PROGRAM, ("-lz",)),
        ("sqlite-static", SQLITE_PROGRAM, ("-lsqlite3", "-lm")),
    ):
        source = out / f"{name}.c"
        source.write_text(program)
        run("gcc", "-O2", "-static", "-o", out / name, source, *libs)
        run("strip", "-o", out / f"{name}-stripped", out / name)
        source.unlink()


def add_section(binary: Path, name: str, data: bytes, out: Path, bfd: str | None = None) -> Path:
    """A copy of `binary` with a section added by binutils' objcopy."""
    payload = out.with_name(out.name + ".section")
    payload.write_bytes(data)
    formats = ("-I", bfd, "-O", bfd) if bfd else ()
    run(
        "objcopy",
        *formats,
        "--add-section",
        f"{name}={payload}",
        "--set-section-flags",
        f"{name}=noload,readonly",
        binary,
        out,
    )
    return out


# --- synthetic executables --------------------------------------------------------------------


@dataclass(frozen=True)
class Sec:
    """A section of a synthetic executable: its bytes, loaded at `addr` (0: not loaded)."""

    name: str
    data: bytes
    addr: int = 0
    writable: bool = False
    executable: bool = False


def _align(value: int, to: int) -> int:
    return -(-value // to) * to


def elf(
    sections: Sequence[Sec],
    *,
    big: bool = False,
    bits: int = 64,
    section_table: bool = True,
    machine: int = 62,
) -> bytes:
    """An ELF executable: one PT_LOAD per loaded section (file bytes mapped at its address)
    and, unless `section_table` is False (as `sstrip` leaves files), a section table."""
    order = ">" if big else "<"
    wide = bits == 64
    ehsize, phentsize, shentsize = (64, 56, 64) if wide else (52, 32, 40)
    loaded = [s for s in sections if s.addr]
    phoff = ehsize
    at = _align(phoff + phentsize * len(loaded), 16)
    offsets: list[int] = []
    body = bytearray()
    for section in sections:
        offsets.append(at + len(body))
        body += section.data
        body += bytes(_align(len(body), 16) - len(body))
    names = bytearray(b"\0")
    name_at: list[int] = []
    for section in (*sections, Sec(".shstrtab", b"")):
        name_at.append(len(names))
        names += section.name.encode() + b"\0"
    shstrtab_at = at + len(body)
    body += names
    body += bytes(_align(len(body), 16) - len(body))
    shoff = at + len(body) if section_table else 0
    shnum = len(sections) + 2 if section_table else 0
    ident = b"\x7fELF" + bytes([2 if wide else 1, 2 if big else 1, 1]) + bytes(9)
    if wide:
        header = ident + struct.pack(
            order + "HHIQQQIHHHHHH", 2, machine, 1, 0, phoff, shoff, 0,
            ehsize, phentsize, len(loaded), shentsize, shnum, shnum - 1 if shnum else 0,
        )  # fmt: skip
    else:
        header = ident + struct.pack(
            order + "HHIIIIIHHHHHH", 2, machine, 1, 0, phoff, shoff, 0,
            ehsize, phentsize, len(loaded), shentsize, shnum, shnum - 1 if shnum else 0,
        )  # fmt: skip
    programs = bytearray()
    for section, offset in zip(sections, offsets, strict=True):
        if not section.addr:
            continue
        flags = 4 | (2 if section.writable else 0) | (1 if section.executable else 0)
        size = len(section.data)
        if wide:
            programs += struct.pack(
                order + "IIQQQQQQ", 1, flags, offset, section.addr, section.addr, size, size, 16
            )
        else:
            programs += struct.pack(
                order + "IIIIIIII", 1, offset, section.addr, section.addr, size, size, flags, 16
            )
    image = bytearray(header + programs)
    image += bytes(at - len(image))
    image += body
    if section_table:
        table = bytearray(bytes(shentsize))
        rows = [(name_at[i], s, offsets[i], len(s.data)) for i, s in enumerate(sections)]
        for name, section, offset, size in rows:
            flags = 2 | (1 if section.writable else 0) | (4 if section.executable else 0)
            table += _elf_section(order, wide, name, 1, flags, section.addr, offset, size)
        table += _elf_section(order, wide, name_at[-1], 3, 0, 0, shstrtab_at, len(names))
        image += table
    return bytes(image)


def _elf_section(
    order: str, wide: bool, name: int, kind: int, flags: int, addr: int, offset: int, size: int
) -> bytes:
    if wide:
        return struct.pack(order + "IIQQQQIIQQ", name, kind, flags, addr, offset, size, 0, 0, 1, 0)
    return struct.pack(order + "IIIIIIIIII", name, kind, flags, addr, offset, size, 0, 0, 1, 0)


def macho(
    sections: Sequence[tuple[str, str, bytes, int]], *, big: bool = False, bits: int = 64
) -> bytes:
    """A Mach-O file: one segment per distinct segment name, holding (segment, section,
    bytes, address) sections in order."""
    order = ">" if big else "<"
    wide = bits == 64
    magic = 0xFEEDFACF if wide else 0xFEEDFACE
    header_size = 32 if wide else 28
    seg_size, sect_size = (72, 80) if wide else (56, 68)
    segments: dict[str, list[tuple[str, bytes, int]]] = {}
    for segment, section, data, addr in sections:
        segments.setdefault(segment, []).append((section, data, addr))
    commands_size = sum(seg_size + sect_size * len(s) for s in segments.values())
    at = _align(header_size + commands_size, 16)
    commands = bytearray()
    body = bytearray()
    for segment, members in segments.items():
        seg_offset = at + len(body)
        seg_addr = members[0][2]
        rows = bytearray()
        for section, data, addr in members:
            offset = at + len(body)
            body += data
            body += bytes(_align(len(body), 16) - len(body))
            if wide:
                rows += struct.pack(
                    order + "16s16sQQIIIIIIII", section.encode(), segment.encode(), addr,
                    len(data), offset, 4, 0, 0, 0, 0, 0, 0,
                )  # fmt: skip
            else:
                rows += struct.pack(
                    order + "16s16sIIIIIIIII", section.encode(), segment.encode(), addr,
                    len(data), offset, 4, 0, 0, 0, 0, 0,
                )  # fmt: skip
        filesize = at + len(body) - seg_offset
        prot = 3 if segment == "__DATA" else 5
        if wide:
            commands += struct.pack(
                order + "II16sQQQQiiII", 0x19, seg_size + len(rows), segment.encode(), seg_addr,
                filesize, seg_offset, filesize, prot, prot, len(members), 0,
            )  # fmt: skip
        else:
            commands += struct.pack(
                order + "II16sIIIIiiII", 0x1, seg_size + len(rows), segment.encode(), seg_addr,
                filesize, seg_offset, filesize, prot, prot, len(members), 0,
            )  # fmt: skip
        commands += rows
    header = struct.pack(order + "IiiIIII", magic, 7, 3, 2, len(segments), len(commands), 0)
    if wide:
        header += bytes(4)
    image = bytearray(header + commands)
    image += bytes(at - len(image))
    image += body
    return bytes(image)


def fat(slices: Sequence[bytes], align: int = 14) -> bytes:
    """A universal Mach-O holding `slices` (cputype 7 = x86 for all: only offsets matter)."""
    header = bytearray(struct.pack(">II", 0xCAFEBABE, len(slices)))
    offset = _align(8 + 20 * len(slices), 1 << align)
    body = bytearray()
    for data in slices:
        header += struct.pack(">iiIII", 7, 3, offset + len(body), len(data), align)
        body += data
        body += bytes(_align(len(body), 1 << align) - len(body))
    return bytes(header + bytes(offset - len(header)) + body)


def pe(sections: Sequence[Sec], *, bits: int = 64, image_base: int = 0x400000) -> bytes:
    """A PE image (PE32+ or PE32): a DOS header, the COFF header, an optional header without
    data directories and one section table row per section (address: image base + addr)."""
    optional_size = 112 if bits == 64 else 96
    table_at = 64 + 4 + 20 + optional_size
    at = _align(table_at + 40 * len(sections), 512)
    dos = bytearray(b"MZ" + bytes(58) + struct.pack("<I", 64))
    coff = struct.pack(
        "<HHIIIHH", 0x8664 if bits == 64 else 0x14C, len(sections), 0, 0, 0, optional_size, 0x22
    )
    optional = bytearray(optional_size)
    if bits == 64:
        struct.pack_into("<HQ", optional, 0, 0x20B, 0)
        struct.pack_into("<Q", optional, 24, image_base)
    else:
        struct.pack_into("<H", optional, 0, 0x10B)
        struct.pack_into("<I", optional, 28, image_base)
    table = bytearray()
    body = bytearray()
    for section in sections:
        offset = at + len(body)
        body += section.data
        body += bytes(_align(len(body), 512) - len(body))
        flags = 0x40000000 | 0x40
        if section.writable:
            flags |= 0x80000000
        if section.executable:
            flags |= 0x20000000 | 0x20
        table += struct.pack(
            "<8sIIIIIIHHI", section.name.encode()[:8], len(section.data), section.addr,
            _align(len(section.data), 512), offset, 0, 0, 0, 0, flags,
        )  # fmt: skip
    image = dos + b"PE\0\0" + coff + optional + table
    image += bytes(at - len(image))
    return bytes(image + body)


# --- Go's pre-1.18 build information (pointer format), which no toolchain here writes ----------

OLD_MODINFO = (
    "path\texample.com/old\n"
    "mod\texample.com/old\t(devel)\t\n"
    "dep\tgolang.org/x/text\tv0.3.7\th1:abc=\n"
    "dep\tgithub.com/pkg/errors\tv0.9.1\th1:def=\n"
    "=>\tgithub.com/fork/errors\tv0.9.2\th1:ghi=\n"
)
START = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6"
END = b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2"


def pointer_format_elf(
    *, big: bool, bits: int, section_table: bool = True, version: bytes = b"go1.16.15"
) -> bytes:
    """A Go < 1.18 binary's build info: the header points to two Go string headers in
    .data, which point to the bytes in .rodata, three segments apart."""
    order = ">" if big else "<"
    word = "Q" if bits == 64 else "I"
    size = bits // 8
    modinfo = START + OLD_MODINFO.encode() + END
    rodata_addr, data_addr, info_addr = 0x401000, 0x601000, 0x701000
    rodata = version + b"\0" * 7 + modinfo
    data = struct.pack(order + word * 4, rodata_addr, len(version), rodata_addr + 16, len(modinfo))
    header = MAGIC + bytes([size, 1 if big else 0])
    header += struct.pack(order + word * 2, data_addr, data_addr + 2 * size)
    header += bytes(32 - len(header))
    return elf(
        [
            Sec(".text", b"\xc3" * 64, 0x400000, executable=True),
            Sec(".rodata", rodata, rodata_addr),
            Sec(".go.buildinfo", header, info_addr, writable=True),
            Sec(".data", data, data_addr, writable=True),
        ],
        big=big,
        bits=bits,
        section_table=section_table,
    )
