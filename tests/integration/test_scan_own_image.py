"""`trustyard scan` on an image built here for what the shared images do not cover.

The image is made with the real tools (umoci for layers and a whiteout, skopeo for a zstd
copy, gcc for a statically linked binary) from this machine's real files:

- layer 1, distroless: dpkg's `status.d/` layout (libssl3 and zlib1g, their paragraphs and
  md5sums as this machine's dpkg has them) with the libraries themselves, and `os-release`;
- layer 2, the application: the shared go-binary's Go program renamed to `opt/tools/helper.bin`
  (mode 0644), a program linked statically with zlib, an egg-info FILE and an egg-info
  directory, and a war holding a jar;
- layer 3: deletes the egg-info directory (a whiteout) and adds busybox renamed to
  `usr/local/bin/tool`.

The truth comes from this machine (dpkg-query, the files copied), never from the scanner.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.images import image_info, test_images_dir

pytestmark = pytest.mark.xdist_group("scan-own-image")

LIBDIR = "usr/lib/x86_64-linux-gnu"
DIST = "usr/lib/python3/dist-packages"
ZLIB_PROGRAM = b"""#include <zlib.h>
#include <stdio.h>
int main(void) {
    unsigned char out[64];
    uLongf size = sizeof out;
    compress(out, &size, (const Bytef *)"hello", 5);
    printf("%s %lu\\n", zlibVersion(), size);
    return 0;
}
"""


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


def _dpkg_version(package: str) -> str:
    return _run("dpkg-query", "-W", "-f", "${Version}", package)


def _upstream(version: str) -> str:
    """1:1.2.13.dfsg-1 -> 1.2.13; 1:1.35.0-4+deb12u1+b1 -> 1.35.0"""
    without_epoch = version.partition(":")[2] or version
    upstream = without_epoch.rsplit("-", 1)[0]
    return upstream.removesuffix(".dfsg")


def _host_file(path: str) -> bytes:
    return Path("/", path).resolve().read_bytes()


def _go_program() -> bytes:
    """The Go program of the shared go-binary image, read from its layer."""
    info = image_info("go-binary")
    layer = info["images"][0]["layers"][0]["digest"].split(":")[1]
    blob = test_images_dir() / "go-binary" / "blobs" / "sha256" / layer
    with tarfile.open(blob, "r:gz") as tar:
        member = tar.extractfile("usr/local/bin/testapp")
        assert member is not None
        return member.read()


def _war() -> bytes:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        jar.writestr(
            "META-INF/maven/org.example/inner/pom.properties",
            "groupId=org.example\nartifactId=inner\nversion=1.4.2\n",
        )
        jar.writestr("org/example/inner/Inner.class", b"\xca\xfe\xba\xbe\x00\x00\x00\x34")
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as war:
        war.writestr(
            "META-INF/maven/org.example/app/pom.properties",
            "groupId=org.example\nartifactId=app\nversion=3.0.0\n",
        )
        war.writestr("WEB-INF/lib/inner-1.4.2.jar", inner.getvalue())
    return outer.getvalue()


def _write(root: Path, path: str, data: bytes, mode: int = 0o644) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    target.chmod(mode)


def _distroless_base(root: Path) -> None:
    _write(root, "etc/os-release", _host_file("etc/os-release"))
    for package, libraries in (
        ("libssl3", ("libcrypto.so.3", "libssl.so.3")),
        ("zlib1g", ("libz.so.1",)),
    ):
        paragraph = _run("dpkg-query", "-s", package)
        _write(root, f"var/lib/dpkg/status.d/{package}", paragraph.encode())
        md5sums = Path(f"/var/lib/dpkg/info/{package}:amd64.md5sums")
        _write(root, f"var/lib/dpkg/status.d/{package}.md5sums", md5sums.read_bytes())
        for library in libraries:  # the file under its real name, and the link to it
            real = Path("/", LIBDIR, library).resolve()
            _write(root, f"{LIBDIR}/{real.name}", real.read_bytes())
            if real.name != library:
                (root / LIBDIR / library).symlink_to(real.name)


def _application(root: Path, work: Path) -> None:
    _write(root, "opt/tools/helper.bin", _go_program(), 0o644)
    source = work / "zstatic.c"
    source.write_bytes(ZLIB_PROGRAM)
    _run("gcc", "-static", "-O1", "-o", work / "zstatic", source, "-lz")
    _write(root, "usr/local/bin/zstatic", (work / "zstatic").read_bytes(), 0o755)
    _write(
        root,
        f"{DIST}/legacy_lib-0.9.egg-info",
        b"Metadata-Version: 1.1\nName: legacy-lib\nVersion: 0.9\nLicense: MIT\n",
    )
    _write(
        root,
        f"{DIST}/gone-2.0.egg-info/PKG-INFO",
        b"Metadata-Version: 1.1\nName: gone\nVersion: 2.0\n",
    )
    _write(root, "srv/app.war", _war())


@pytest.fixture(scope="module")
def own_image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    for tool in ("umoci", "skopeo", "gcc"):
        assert shutil.which(tool), f"{tool} is missing: scripts/install-system-deps.sh installs it"
    work = tmp_path_factory.mktemp("own-image")
    layout = work / "gzip"
    _run("umoci", "init", "--layout", layout)
    _run("umoci", "new", "--image", f"{layout}:own")
    bundle = work / "bundle"
    _run("umoci", "unpack", "--rootless", "--image", f"{layout}:own", bundle)
    rootfs = bundle / "rootfs"
    for step in (_distroless_base, lambda root: _application(root, work)):
        step(rootfs)
        _run("umoci", "repack", "--refresh-bundle", "--image", f"{layout}:own", bundle)
    shutil.rmtree(rootfs / DIST / "gone-2.0.egg-info")
    _write(rootfs, "usr/local/bin/tool", Path("/bin/busybox").read_bytes(), 0o755)
    _run("umoci", "repack", "--refresh-bundle", "--image", f"{layout}:own", bundle)
    zstd = work / "zstd"
    _run(
        "skopeo",
        "copy",
        "-q",
        "--dest-compress-format",
        "zstd",
        f"oci:{layout}:own",
        f"oci:{zstd}:own",
    )
    return {"gzip": layout, "zstd": zstd}


def _scan(layout: Path) -> dict[str, Any]:
    out = _run(sys.executable, "-m", "trustyard", "scan", layout, "--format", "json", "--quiet")
    document = json.loads(out)
    assert len(document["images"]) == 1
    bom: dict[str, Any] = document["images"][0]
    return bom


def _expected() -> dict[tuple[str, str, str, str], int]:
    """(ecosystem, name, version, evidence) -> index of the layer that brings it."""
    busybox = _upstream(_dpkg_version("busybox-static"))
    zlib = _upstream(_dpkg_version("zlib1g"))
    return {
        ("deb", "libssl3", _dpkg_version("libssl3"), "var/lib/dpkg/status.d/libssl3"): 0,
        ("deb", "zlib1g", _dpkg_version("zlib1g"), "var/lib/dpkg/status.d/zlib1g"): 0,
        ("golang", "github.com/google/uuid", "v1.3.0", "opt/tools/helper.bin"): 1,
        ("golang", "stdlib", "go1.19.8", "opt/tools/helper.bin"): 1,
        ("binary", "zlib", zlib, "usr/local/bin/zstatic"): 1,
        ("pypi", "legacy-lib", "0.9", f"{DIST}/legacy_lib-0.9.egg-info"): 1,
        ("maven", "org.example:app", "3.0.0", "srv/app.war"): 1,
        ("maven", "org.example:inner", "1.4.2", "srv/app.war!/WEB-INF/lib/inner-1.4.2.jar"): 1,
        ("binary", "busybox", busybox, "usr/local/bin/tool"): 2,
    }


def _found(bom: dict[str, Any]) -> dict[tuple[str, str, str, str], int]:
    layers = [layer["digest"] for layer in bom["layers"]]
    found: dict[tuple[str, str, str, str], int] = {}
    for c in bom["components"]:
        if c["ecosystem"] == "binary" and c["name"] == "glibc":
            continue  # a static program carries glibc too: checked on its own below
        key = (c["ecosystem"], c["name"], c["version"], c["locations"][0])
        found[key] = layers.index(c["layer"])
    return found


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_every_component_is_found_in_the_layer_that_brings_it(
    own_image: dict[str, Path], compression: str
) -> None:
    bom = _scan(own_image[compression])
    media_types = {layer["media_type"] for layer in bom["layers"]}
    assert media_types == {f"application/vnd.oci.image.layer.v1.tar+{compression}"}
    found, expected = _found(bom), _expected()
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    assert found == expected, f"missing: {missing}\nextra: {extra}"
    glibc = [c for c in bom["components"] if c["name"] == "glibc"]
    assert {(c["version"], c["locations"][0]) for c in glibc} <= {
        (_upstream(_dpkg_version("libc6")), "usr/local/bin/zstatic")
    }
    assert bom["distro"]["id"] == "debian"
    purls = {c["name"]: c["purl"] for c in bom["components"] if c["ecosystem"] == "deb"}
    assert purls["libssl3"].startswith("pkg:deb/debian/libssl3@")


def test_the_libraries_a_package_owns_are_not_counted_twice(own_image: dict[str, Path]) -> None:
    # libcrypto.so.3 and libz.so.1 are in the image, but their packages' md5sums own them.
    bom = _scan(own_image["gzip"])
    at = {c["locations"][0] for c in bom["components"]}
    assert not any(path.startswith(f"{LIBDIR}/lib") for path in at)
    names = {(c["ecosystem"], c["name"]) for c in bom["components"]}
    assert ("binary", "openssl") not in names


def test_a_deleted_package_is_in_its_layer_and_removed_by_the_whiteout(
    own_image: dict[str, Path],
) -> None:
    bom = _scan(own_image["gzip"])
    app_layer, top_layer = bom["layers"][1], bom["layers"][2]
    assert ("gone", "2.0") in {(c["name"], c["version"]) for c in app_layer["added"]}
    assert [(c["name"], c["version"]) for c in top_layer["removed"]] == [("gone", "2.0")]
    assert [c["name"] for c in top_layer["added"]] == ["busybox"]
    assert "gone" not in {c["name"] for c in bom["components"]}
