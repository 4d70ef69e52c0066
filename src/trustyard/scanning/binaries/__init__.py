"""Executables read from their bytes: which files are ELF, PE or Mach-O binaries, and a small
reader of their sections and segments (enough to find a named section and to turn a virtual
address into file bytes, for either byte order and word size).

The Go, Rust and fingerprint detectors want exactly the same files (`is_executable`), so the
layer walker reads each binary once and hands the same bytes to all three.
"""

from __future__ import annotations

from trustyard.scanning.interfaces import FileEntry, Limits

ELF_MAGIC = b"\x7fELF"
PE_MAGIC = b"MZ"
# Mach-O thin binaries, both byte orders and word sizes.
MACHO_MAGICS = frozenset(
    {b"\xfe\xed\xfa\xce", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe"}
)
# Universal ("fat") Mach-O; Java class files share 0xcafebabe, told apart by the count that
# follows (a handful of architectures against a class file version of 45 or more).
FAT_MAGICS = frozenset({b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"})
MAX_FAT_ARCHS = 20
MIN_EXECUTABLE_BYTES = 64  # below this no header fits


def is_executable(head: bytes, size: int) -> bool:
    """Whether a file of `size` bytes starting with `head` looks like an ELF, PE or Mach-O
    binary."""
    magic = head[:4]
    if magic == ELF_MAGIC or magic in MACHO_MAGICS:
        return True
    if head[:2] == PE_MAGIC and len(head) >= 64:
        # The PE header's offset (e_lfanew) must point inside the file, past the DOS header.
        offset = int.from_bytes(head[60:64], "little")
        return 64 <= offset <= size - 24
    if magic in FAT_MAGICS and len(head) >= 8:
        count = int.from_bytes(head[4:8], "big")
        return 0 < count < MAX_FAT_ARCHS
    return False


def wanted_bytes(entry: FileEntry, limits: Limits) -> int:
    """What the binary detectors answer to `wants`: the whole file (up to the size limit) for
    an executable of any name, 0 for anything else."""
    if entry.size < MIN_EXECUTABLE_BYTES or not is_executable(entry.head, entry.size):
        return 0
    return limits.max_file_bytes
