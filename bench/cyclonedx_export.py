"""Time and peak memory of one in-process CycloneDX export of N components (issue 9, item 13).

Builds an image BOM of N Debian-like components (purl, licence, two locations, two detector
properties, a distribution), then exports it once and prints the seconds, the peak resident
memory of the process (ru_maxrss) before and after the export, and the document's size.
With the streaming writer (`iter_cyclonedx`), the chunks are counted and dropped as an HTTP
response would send them; `--joined` builds the whole text instead (what `to_cyclonedx` and
the CLI use); `--attach` stores them as a repository's attached SBOM (`SbomAttacher.prepare`
into a temporary filesystem blob store, as the scan worker does). The code measured is the one
on the import path:

  .venv/bin/python bench/cyclonedx_export.py 10000
  .venv/bin/python bench/cyclonedx_export.py 50000 --attach
  PYTHONPATH=../before/src .venv/bin/python bench/cyclonedx_export.py 50000

Run one size per process: the peak memory is the process's.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from trustyard.scanning import cyclonedx
from trustyard.scanning.bom import BomComponent, ImageBom
from trustyard.scanning.model import Component, Distro

LAYER = "sha256:" + "1" * 64
DIFF = "sha256:" + "3" * 64
IMAGE = "sha256:" + "a" * 64


def image(count: int) -> ImageBom:
    items = []
    for n in range(count):
        name = f"package-{n:06}"
        version = f"1.{n % 97}.{n % 13}-{n % 5}+deb12u1"
        items.append(
            BomComponent(
                Component(
                    "deb",
                    name,
                    version,
                    f"pkg:deb/debian/{name}@{version}?arch=amd64&distro=debian-12",
                    ("var/lib/dpkg/status", f"usr/lib/x86_64-linux-gnu/lib{name}.so.1"),
                    "dpkg",
                    "GPL-2.0-only OR LicenseRef-Debian-extra" if n % 3 else "MIT",
                    (("arch", "amd64"), ("source", f"src-{n // 4:06}")),
                ),
                LAYER,
                DIFF,
            )
        )
    distro = Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)")
    return ImageBom(IMAGE, "linux/amd64", distro, components=items)


def attach(boms: list[ImageBom]) -> int:
    from sqlalchemy import create_engine

    from trustyard.oci import mediatypes as mt
    from trustyard.scanning.attach import SbomAttacher
    from trustyard.storage.filesystem import FilesystemDriver

    with tempfile.TemporaryDirectory() as folder:
        driver = FilesystemDriver(Path(folder), fsync=False)
        attacher = SbomAttacher(create_engine("sqlite://"), driver)  # prepare() never queries
        document = cyclonedx.iter_cyclonedx(boms, "bench/app")
        attachment = attacher.prepare(document, IMAGE, mt.OCI_MANIFEST, 1000, 1)
        return attachment.blobs[1][1]


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("--joined", action="store_true", help="build the whole text")
    parser.add_argument("--attach", action="store_true", help="store it as an attached SBOM")
    args = parser.parse_args()
    boms = [image(args.count)]
    before = peak_mib()
    start = time.perf_counter()
    streaming = hasattr(cyclonedx, "iter_cyclonedx") and not args.joined
    if args.attach:
        size, how = attach(boms), "stored as an attached SBOM"
    elif streaming:
        size = chunks = 0
        for chunk in cyclonedx.iter_cyclonedx(boms, "bench/app"):
            size += len(chunk)
            chunks += 1
        how = f"streamed in {chunks} chunks"
    else:
        size = len(cyclonedx.to_cyclonedx(boms, "bench/app").encode())
        how = "one text"
    seconds = time.perf_counter() - start
    after = peak_mib()
    print(
        f"{args.count} components: {seconds:.2f} s, peak RSS {before:.0f} MiB with the BOM, "
        f"{after:.0f} MiB after the export (+{after - before:.0f} MiB), "
        f"{size / 2**20:.1f} MiB of JSON {how}"
    )


if __name__ == "__main__":
    main()
