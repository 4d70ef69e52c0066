"""Image BOMs built by hand for the export tests (CycloneDX, SPDX)."""

from __future__ import annotations

from trustyard.scanning.bom import BomComponent, ImageBom, LayerBom
from trustyard.scanning.model import Component, Distro

GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
BASE = "sha256:" + "1" * 64
APP = "sha256:" + "2" * 64
BASE_DIFF = "sha256:" + "3" * 64
APP_DIFF = "sha256:" + "4" * 64
AMD64 = "sha256:" + "a" * 64
ARM64 = "sha256:" + "b" * 64
SITE = "usr/local/lib/python3.11/site-packages"


def components() -> list[BomComponent]:
    busybox = Component(
        "deb",
        "busybox-static",
        "1:1.35.0-4+deb12u1+b1",
        "pkg:deb/debian/busybox-static@1:1.35.0-4+deb12u1+b1?arch=amd64&distro=debian-12",
        ("var/lib/dpkg/status", "bin/busybox"),
        "dpkg",
        "GPL-2.0-only",
        (("arch", "amd64"), ("source", "busybox")),
    )
    django = Component(
        "pypi",
        "Django",
        "2.2",
        "pkg:pypi/django@2.2",
        (f"{SITE}/Django-2.2.dist-info/METADATA", f"{SITE}/Django-2.2.dist-info/RECORD"),
        "python",
        "BSD-3-Clause AND LicenseRef-Django-extra",
    )
    scoped = Component(
        "npm",
        "@types/node",
        "20.1.0",
        "pkg:npm/%40types/node@20.1.0",
        ("app/node_modules/@types/node/package.json",),
        "npm",
        "MIT OR Apache-2.0",
    )
    uuid = Component(
        "golang",
        "github.com/google/uuid",
        "v1.3.0",
        "pkg:golang/github.com/google/uuid@v1.3.0",
        ("usr/local/bin/testapp",),
        "golang",
    )
    broken = Component(
        "binary",
        "openssl",
        "3.0.11",
        "not a purl",
        ("opt/lib/libcrypto.so.3",),
        "fingerprints",
        "this is not (an expression",
    )
    return [
        BomComponent(busybox, BASE, BASE_DIFF),
        BomComponent(django, APP, APP_DIFF),
        BomComponent(scoped, APP, APP_DIFF),
        BomComponent(uuid, APP, APP_DIFF),
        BomComponent(broken, APP, APP_DIFF),
    ]


def image_bom(platform: str = "linux/amd64", digest: str = AMD64) -> ImageBom:
    items = components()
    return ImageBom(
        manifest_digest=digest,
        platform=platform,
        distro=Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)"),
        layers=[
            LayerBom(BASE, BASE_DIFF, GZIP, [items[0].component], [items[0].component]),
            LayerBom(APP, APP_DIFF, GZIP, [c.component for c in items[1:]]),
        ],
        components=items,
    )


def empty_bom() -> ImageBom:
    return ImageBom(manifest_digest=AMD64, platform="linux/amd64", distro=None)
