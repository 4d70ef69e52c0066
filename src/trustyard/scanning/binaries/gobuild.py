"""Go build information, read from a Go binary's own bytes (what `go version -m` prints).

The Go linker writes a 32-byte header, aligned to 16 bytes, at the start of the
`.go.buildinfo` section (ELF), `__go_buildinfo` (Mach-O) or near the start of the first data
section (PE):

    0   "\\xff Go buildinf:"   14-byte magic
    14  pointer size (4 or 8)
    15  flags: bit 0 big-endian pointers, bit 1 inline strings (Go >= 1.18)
    16  Go >= 1.18: nothing; the two strings follow the header, each a uvarint length then the
        bytes. Go < 1.18: two pointers (in the pointer size and byte order above) to Go string
        headers {data pointer, length}: the toolchain version and the module information.

The module information is framed by two 16-byte sentinels and lists `path`, `mod` (the main
module), `dep` lines each optionally followed by a `=>` replacement line, and `build`
settings, tab-separated. Nothing here needs symbols, so stripped binaries work; a pointer that
resolves outside the file's segments, or any other inconsistency, means "no build info".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from trustyard.scanning.binaries.executable import ELF, MACHO, Executable, parse

MAGIC = b"\xff Go buildinf:"
HEADER_SIZE = 32
ALIGN = 16
DATA_WINDOW = 64 * 1024  # where the linker puts the header, from the data start
MAX_STRING = 4 << 20  # the module information of the biggest real binaries is < 100 KiB
_FLAG_BIG_ENDIAN = 0x1
_FLAG_INLINE = 0x2


@dataclass(frozen=True, slots=True)
class Module:
    path: str
    version: str
    sum: str = ""
    replace: Module | None = None


@dataclass(slots=True)
class BuildInfo:
    go_version: str  # "go1.19.8"
    path: str = ""  # the main package's import path
    main: Module | None = None
    deps: list[Module] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)  # GOOS, GOARCH, CGO_ENABLED...


def read_build_info(data: bytes | memoryview) -> BuildInfo | None:
    """The build information of a Go binary (ELF, PE or Mach-O, either byte order), or None
    for anything else. A universal Mach-O yields its first architecture's."""
    for executable in parse(data):
        found = _from_executable(executable)
        if found is not None:
            return found
    return None


def _from_executable(executable: Executable) -> BuildInfo | None:
    raw = executable.data.obj
    if not isinstance(raw, bytes) or len(raw) != len(executable.data):
        raw = bytes(executable.data)
    # Where the Go toolchain's own reader looks first: the header sits at the data start.
    start = _data_start(executable)
    if start is not None:
        offset = executable.offset_of(start)
        if offset is not None:
            found = _search(executable, raw, offset, offset + DATA_WINDOW)
            if found is not None or _conclusive(executable):
                return found
    elif _conclusive(executable):
        return None
    # No section to trust (section headers stripped, an external linker's layout): every
    # aligned occurrence of the magic in the file, the first that decodes.
    return _search(executable, raw, 0, len(raw))


def _conclusive(executable: Executable) -> bool:
    """Whether an ELF file without `.go.buildinfo` is certainly not a Go binary: Go >= 1.13
    always writes that section, so only a file with no section table needs a full search."""
    return executable.format == ELF and bool(executable.sections)


def _data_start(executable: Executable) -> int | None:
    if executable.format == ELF:
        section = executable.section(".go.buildinfo")
        if section is not None:
            return section.addr
        if executable.sections:
            return None
        for segment in executable.segments:
            if segment.writable and not segment.executable:
                return segment.addr
        return None
    if executable.format == MACHO:
        section = executable.section("__go_buildinfo")
        if section is not None:
            return section.addr
    for segment in executable.segments:  # PE, Mach-O: the first writable data
        if segment.addr and segment.size and segment.writable and not segment.executable:
            return segment.addr
    return None


def _search(executable: Executable, raw: bytes, start: int, end: int) -> BuildInfo | None:
    """Decode the first header in raw[start:end], 16-byte aligned from `start`, that makes
    sense. The magic also occurs in binaries that embed Go's own reader (the `go` command
    itself), unaligned or followed by garbage: such occurrences are skipped."""
    at = raw.find(MAGIC, start, end)
    while at >= 0:
        if (at - start) % ALIGN == 0:
            found = _decode(executable, executable.data[at:])
            if found is not None:
                return found
        at = raw.find(MAGIC, at + 1, end)
    return None


def _decode(executable: Executable, blob: memoryview) -> BuildInfo | None:
    if len(blob) < HEADER_SIZE:
        return None
    pointer_size, flags = blob[14], blob[15]
    if flags & _FLAG_INLINE:
        version, rest = _uvarint_string(blob[HEADER_SIZE:])
        if version is None or rest is None:
            return None
        modinfo, _ = _uvarint_string(rest)
    else:
        if pointer_size not in (4, 8):
            return None
        order: Literal["little", "big"] = "big" if flags & _FLAG_BIG_ENDIAN else "little"
        version_at = int.from_bytes(blob[16 : 16 + pointer_size], order)
        modinfo_at = int.from_bytes(blob[16 + pointer_size : 16 + 2 * pointer_size], order)
        version = _pointer_string(executable, version_at, pointer_size, order)
        modinfo = _pointer_string(executable, modinfo_at, pointer_size, order)
    if not version or not _plausible_version(version):
        return None
    return parse_modinfo(version, _unframe(modinfo or b""))


def _plausible_version(version: bytes) -> bool:
    return (version.startswith((b"go", b"devel"))) and len(version) < 256


def _uvarint_string(data: memoryview) -> tuple[bytes | None, memoryview | None]:
    length = shift = 0
    for index in range(min(len(data), 10)):
        byte = data[index]
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            start = index + 1
            if length > MAX_STRING or start + length > len(data):
                return None, None
            return bytes(data[start : start + length]), data[start + length :]
    return None, None


def _pointer_string(
    executable: Executable, addr: int, size: int, order: Literal["little", "big"]
) -> bytes | None:
    header = executable.read(addr, 2 * size)
    if header is None:
        return None
    data_at = int.from_bytes(header[:size], order)
    length = int.from_bytes(header[size:], order)
    if length == 0:
        return b""
    if length > MAX_STRING:
        return None
    return executable.read(data_at, length)


def _unframe(modinfo: bytes) -> bytes:
    """The module information without its 16-byte sentinels (empty when they are absent)."""
    if len(modinfo) >= 33 and modinfo[-17] == 0x0A:
        return modinfo[16:-16]
    return b""


def parse_modinfo(version: bytes, modinfo: bytes) -> BuildInfo:
    """Turn the toolchain version and the module-information text into a BuildInfo; malformed
    lines are ignored."""
    info = BuildInfo(go_version=version.decode("utf-8", errors="replace").strip())
    last: Module | None = None
    for line in modinfo.decode("utf-8", errors="replace").split("\n"):
        fields = line.split("\t")
        kind = fields[0]
        if kind == "path" and len(fields) >= 2:
            info.path = fields[1]
        elif kind in ("mod", "dep") and len(fields) >= 3 and fields[1]:
            last = Module(fields[1], fields[2], fields[3] if len(fields) > 3 else "")
            if kind == "mod":
                info.main = last
            else:
                info.deps.append(last)
        elif kind == "=>" and len(fields) >= 3 and last is not None and fields[1]:
            replaced = Module(
                last.path,
                last.version,
                last.sum,
                Module(fields[1], fields[2], fields[3] if len(fields) > 3 else ""),
            )
            if info.main is last:
                info.main = replaced
            elif info.deps and info.deps[-1] is last:
                info.deps[-1] = replaced
            last = None
        elif kind == "build" and len(fields) >= 2 and "=" in fields[1]:
            key, _, value = fields[1].partition("=")
            if key:
                info.settings[key] = value
    return info
