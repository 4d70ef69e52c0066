"""One layer, one pass: the tar stream is walked once, every regular file is offered to the
detectors' collectors, and what they take is read once and shared.

The walk also records what the layer deletes (whiteouts, opaque directories) and refuses a
hostile layer with `ScanRefused`: a path that escapes the layer, too many entries, too long
or too deep a path, a symlink loop, the byte and ratio limits of the stream itself, a metadata
file past its size limit (raised by the collector that wants it) or too many components.
Links are never followed for content.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, BinaryIO, Final

from trustyard.scanning.interfaces import (
    HEAD_BYTES,
    Collector,
    Detector,
    FileEntry,
    Limits,
    ScanContext,
    check_components,
)
from trustyard.scanning.model import Component, Distro, LayerScan, ScanRefused
from trustyard.scanning.tarstream import REGULAR, SYMLINK, TarStream

if TYPE_CHECKING:
    from trustyard.scanning.sources import LayerRef

WHITEOUT: Final = ".wh."
OPAQUE: Final = ".wh..wh..opq"
WINDOWS_FILES: Final = "Files/"
MAX_NOTES: Final = 200
# Names kept for the whole layer (symlinks for the loop check, whiteouts): far beyond any
# real layer, and a bound on what a hostile one can make us hold.
MAX_RETAINED_NAME_BYTES: Final = 64 << 20


def escapes(name: str) -> ScanRefused:
    return ScanRefused(f"path {name[:200]!r} escapes the layer")


def normalise(name: str, limits: Limits) -> str:
    """A tar member's name as a path inside the layer: no leading "./", no "." or empty
    components, no trailing "/". Absolute names and ".." components escape the layer."""
    path = name
    if path.startswith("./"):
        path = path[2:]
    elif path == ".":
        return ""
    if path.startswith("/"):
        raise escapes(name)
    if ".." in path or "/." in path or "//" in path or path.startswith("."):
        parts = []
        for part in path.split("/"):
            if part == "..":
                raise escapes(name)
            if part and part != ".":
                parts.append(part)
        path = "/".join(parts)
    elif path.endswith("/"):
        path = path.rstrip("/")
    if path.count("/") > limits.max_path_depth:
        raise ScanRefused(
            f"path {name[:200]!r} is more than {limits.max_path_depth} directories deep "
            f"(the max_path_depth limit)"
        )
    return path


def check_symlinks(links: dict[str, str], max_hops: int) -> None:
    """Refuse a layer whose symlinks form a loop or a chain longer than `max_hops`.

    Each link is resolved the way the kernel would, inside the layer: a relative target
    from the link's directory, an absolute one from the layer's root, ".." stopping at the
    root (so a link pointing outside is clamped, never followed out). Only the layer's own
    links are known; a path through a directory this layer does not hold is left as is.
    """
    resolved_links: dict[str, tuple[str, int]] = {}
    for link in links:
        resolved_links[link] = _resolve(link, links, resolved_links, max_hops)


def _resolve(
    link: str,
    links: dict[str, str],
    done: dict[str, tuple[str, int]],
    max_hops: int,
) -> tuple[str, int]:
    chain = [link]
    in_chain = {link}
    hops = 1
    target = links[link]
    current = "" if target.startswith("/") else link.rpartition("/")[0]
    pending = [p for p in reversed(target.split("/")) if p and p != "."]
    while pending:
        part = pending.pop()
        if part == "..":
            current = current.rpartition("/")[0]
            continue
        key = f"{current}/{part}" if current else part
        if key not in links:
            current = key
            continue
        if key in in_chain:
            raise ScanRefused("symlink loop: " + _chain_text([*chain, key]))
        known = done.get(key)
        if known is not None:
            current, more = known
            hops += more
        else:
            hops += 1
            chain.append(key)
            in_chain.add(key)
            target = links[key]
            current = "" if target.startswith("/") else key.rpartition("/")[0]
            pending.extend(p for p in reversed(target.split("/")) if p and p != ".")
        if hops > max_hops:
            raise ScanRefused(
                f"symlink chain longer than {max_hops} hops (the max_symlink_hops limit): "
                + _chain_text(chain)
            )
    return current, hops


def _chain_text(chain: list[str]) -> str:
    if len(chain) > 8:
        chain = [*chain[:4], "...", *chain[-3:]]
    return " -> ".join(chain)


class _Taker:
    __slots__ = ("collector", "name", "wants")

    def __init__(self, name: str, collector: Collector) -> None:
        self.name = name
        self.collector = collector
        self.wants = collector.wants


def scan_layer(
    stream: BinaryIO,
    layer: LayerRef,
    detectors: Sequence[Detector],
    limits: Limits,
    *,
    distro: Distro | None = None,
    windows: bool = False,
    progress: Callable[[int], None] | None = None,
) -> LayerScan:
    """Walk one layer (gzip, zstd or plain tar, told apart by their magic numbers) and
    return what it holds; ScanRefused when it is hostile or not a layer at all."""
    context = ScanContext(limits=limits, distro=distro)
    takers = [_Taker(d.name, d.collector(context)) for d in detectors]
    scan = LayerScan(digest=layer.digest, media_type=layer.media_type)
    with TarStream(stream, limits, media_type=layer.media_type, progress=progress) as tar:
        if tar.declared is not None and tar.declared != tar.compression:
            scan.notes.append(
                f"media type {layer.media_type} says {tar.declared}, "
                f"the content is {tar.compression}"
            )
        _Walk(tar, takers, limits, scan, windows).run()
        tar.drain()
    scan.uncompressed_bytes = tar.uncompressed
    for taker in takers:
        _finish(taker, scan, limits)
    if progress is not None:
        progress(tar.compressed)
    return scan


class _Walk:
    """The state of one layer's walk."""

    def __init__(
        self, tar: TarStream, takers: list[_Taker], limits: Limits, scan: LayerScan, windows: bool
    ) -> None:
        self.tar = tar
        self.takers = takers
        self.limits = limits
        self.scan = scan
        self.windows = windows
        self.retained = 0
        self.links: dict[str, str] = {}

    def run(self) -> None:
        tar = self.tar
        scan = self.scan
        limits = self.limits
        links = self.links
        entries = 0
        files = 0
        max_entries = limits.max_entries
        max_path = limits.max_path_bytes
        while (member := tar.next()) is not None:
            entries += 1
            if entries > max_entries:
                raise ScanRefused(
                    f"layer has more than {max_entries} entries (the max_entries limit)"
                )
            if member.raw_name_bytes > max_path:
                raise ScanRefused(
                    f"layer has a path of {member.raw_name_bytes} bytes, longer than "
                    f"{max_path} (the max_path_bytes limit): {member.name[:200]!r}..."
                )
            name = member.name
            if self.windows:
                name = self._windows_name(name)
                if not name:
                    continue
            path = normalise(name, limits)
            if not path:
                continue
            slash = path.rfind("/")
            if path.startswith(WHITEOUT, slash + 1):
                self._whiteout(path, slash)
            elif member.kind == SYMLINK:
                self._retain(len(path) + len(member.linkname))
                links[path] = member.linkname
            elif member.kind == REGULAR:
                files += 1
                self._offer(path, member.size, member.mode)
            # Directories, hard links, devices: no content of their own.
        scan.files = files
        if links and not self.windows:  # Windows links are reparse points, not layer paths
            check_symlinks(links, limits.max_symlink_hops)

    @staticmethod
    def _windows_name(name: str) -> str:
        if "\\" in name:
            raise ScanRefused(f"Windows layer path {name[:200]!r} contains a backslash")
        if not name.startswith(WINDOWS_FILES):
            return ""  # Hives/, UtilityVM/ and the Files directory itself
        return name[len(WINDOWS_FILES) :]

    def _retain(self, size: int) -> None:
        self.retained += size
        if self.retained > MAX_RETAINED_NAME_BYTES:
            raise ScanRefused(
                f"layer holds more than {MAX_RETAINED_NAME_BYTES} bytes of symlink and "
                f"whiteout names"
            )

    def _whiteout(self, path: str, slash: int) -> None:
        self._retain(len(path))
        base = path[slash + 1 :]
        if base == OPAQUE:
            self.scan.opaque_dirs.append(path[: max(slash, 0)])
        elif not base.startswith(".wh..wh."):  # other .wh..wh. names are aufs metadata
            self.scan.whiteouts.append(path[: slash + 1] + base[len(WHITEOUT) :])

    def _offer(self, path: str, size: int, mode: int) -> None:
        tar = self.tar
        entry = FileEntry(path, size, mode, tar.peek(HEAD_BYTES) if size else b"")
        wanted: list[_Taker] | None = None
        for taker in self.takers:
            want = taker.wants(entry)
            if want <= 0:
                continue
            want = min(want, self.limits.max_file_bytes)
            if size > want:
                _note(
                    self.scan, f"{path}: {size} bytes, over the {want}-byte limit of {taker.name}"
                )
            elif wanted is None:
                wanted = [taker]
            else:
                wanted.append(taker)
        if wanted is None:
            return
        data = tar.read(size)
        self.scan.evidence_paths.append(path)
        for taker in wanted:
            try:
                taker.collector.take(entry, data)
            except ScanRefused:
                raise
            except Exception as exc:  # a detector's bug must not cost the whole layer
                _note(self.scan, f"{path}: {taker.name} failed: {type(exc).__name__}: {exc}")


def _note(scan: LayerScan, text: str) -> None:
    if len(scan.notes) < MAX_NOTES:
        scan.notes.append(text)
    elif len(scan.notes) == MAX_NOTES:
        scan.notes.append(f"more notes left out (at most {MAX_NOTES} per layer)")


def _finish(taker: _Taker, scan: LayerScan, limits: Limits) -> None:
    collector = taker.collector
    try:
        found: list[Component] = list(collector.finish())
        owned = getattr(collector, "owned_paths", None)
        if owned is not None:
            scan.owned_paths.extend(owned())
        distro_of = getattr(collector, "distro", None)
        if distro_of is not None and scan.distro is None:
            scan.distro = distro_of()
        notes_of = getattr(collector, "notes", None)  # what a collector left unread, and why
        if notes_of is not None:
            for text in notes_of():
                _note(scan, text)
    except ScanRefused:
        raise
    except Exception as exc:  # a detector's bug must not cost the whole layer
        _note(scan, f"{taker.name} failed: {type(exc).__name__}: {exc}")
        return
    scan.components.extend(found)
    check_components(
        len(scan.components), limits.max_layer_components, "the layer", "max_layer_components"
    )
