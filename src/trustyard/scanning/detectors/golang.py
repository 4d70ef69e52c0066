"""Go modules compiled into binaries: the build information the Go linker embeds (read by
`binaries.gobuild`), from any ELF, PE or Mach-O file whatever its name or path, stripped or
not.

Each binary yields:
- `stdlib` at the toolchain's version (`go1.19.8`): the standard library is compiled in;
- every `dep` module at its version. A dependency replaced by another module (`=> path
  version`) is reported as the replacement, the code actually linked (as Syft and Trivy do),
  with a `replaces` property naming the required module; one replaced by a local directory
  (`=> ./dir`, version `(devel)`) keeps the required module's path and version, with a
  `replaced-by` property naming the directory;
- the main module only when it has a real version (never `(devel)`, the usual case).
GOOS and GOARCH from the build settings are properties of every component.
"""

from __future__ import annotations

from collections.abc import Iterable

from trustyard.scanning.binaries import wanted_bytes
from trustyard.scanning.binaries.gobuild import BuildInfo, Module, read_build_info
from trustyard.scanning.detectors.per_file import FileDetector
from trustyard.scanning.interfaces import FileEntry
from trustyard.scanning.model import GOLANG, Component
from trustyard.scanning.purls import purl_text

DETECTOR_NAME = "golang"
STDLIB = "stdlib"
DEVEL = "(devel)"
_PLATFORM_SETTINGS = ("GOARCH", "GOOS")


def golang_purl(module_path: str, version: str) -> str | None:
    """pkg:golang/<module path>@<version> (the last path element is the purl's name)."""
    namespace, _, name = module_path.rpartition("/")
    return purl_text(type="golang", namespace=namespace or None, name=name, version=version or None)


def components_of(info: BuildInfo, path: str) -> list[Component]:
    """The components one binary's build information names (`path`: the binary)."""
    builder = _Builder(info, path)
    toolchain = info.go_version.split()[0] if info.go_version.startswith("go") else ""
    builder.add(STDLIB, toolchain)
    if info.main is not None:
        builder.module(info.main)
    for dep in info.deps:
        builder.module(dep)
    return list(builder.found.values())


class _Builder:
    def __init__(self, info: BuildInfo, path: str) -> None:
        self.path = path
        self.platform = tuple(
            (key, info.settings[key]) for key in _PLATFORM_SETTINGS if key in info.settings
        )
        self.found: dict[tuple[str, str], Component] = {}

    def module(self, module: Module) -> None:
        replacement = module.replace
        if replacement is None:
            self.add(module.path, module.version)
        elif replacement.version and replacement.version != DEVEL:
            required = f"{module.path}@{module.version}" if module.version else module.path
            self.add(replacement.path, replacement.version, (("replaces", required),))
        else:  # a local directory: the required module is the best name for its code
            self.add(module.path, module.version, (("replaced-by", replacement.path),))

    def add(self, name: str, version: str, extra: tuple[tuple[str, str], ...] = ()) -> None:
        if not name or not version or version == DEVEL or (name, version) in self.found:
            return
        if any(c.isspace() for c in name + version):
            return
        purl = golang_purl(name, version)
        if purl is None:
            return
        self.found[(name, version)] = Component(
            ecosystem=GOLANG,
            name=name,
            version=version,
            purl=purl,
            locations=(self.path,),
            detector=DETECTOR_NAME,
            properties=tuple(sorted(self.platform + extra)),
        )


def read(entry: FileEntry, data: bytes) -> Iterable[Component]:
    try:
        info = read_build_info(data)
    except Exception:  # a corrupt binary is not a scan failure
        return ()
    return components_of(info, entry.path) if info is not None else ()


DETECTOR = FileDetector(DETECTOR_NAME, wanted_bytes, read)
