"""The image BOM: layers squashed in order, with the layer that brought each component."""

from __future__ import annotations

import json
import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.scanning.layerkit import OCI_TAR, file, layer_ref, scan_bytes, tar_bytes
from trustyard.scanning.bom import (
    OWNED_BY_OS_PACKAGE,
    BomComponent,
    ImageBom,
    LayerBom,
    assemble,
    distro_purl,
    image_purl,
)
from trustyard.scanning.detectors import default_detectors
from trustyard.scanning.model import Component, Distro, LayerScan
from trustyard.scanning.sources import ImageRef, LayerRef

GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
STATUS = "var/lib/dpkg/status"
SITE = "usr/local/lib/python3.11/site-packages"
DEBIAN = Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)")


def digest(n: int, letter: str = "a") -> str:
    return f"sha256:{letter * 63}{n:x}"


def deb(name: str, version: str, evidence: str = STATUS) -> Component:
    return Component(
        "deb", name, version, f"pkg:deb/{name}@{version}?arch=amd64", (evidence,), "dpkg", "MIT"
    )


def pypi(name: str, version: str) -> Component:
    evidence = f"{SITE}/{name}-{version}.dist-info/METADATA"
    return Component(
        "pypi",
        name,
        version,
        f"pkg:pypi/{name.lower()}@{version}",
        (evidence, f"{SITE}/{name.lower()}/__init__.py"),
        "python",
    )


def npm(name: str, version: str, root: str = "app/node_modules") -> Component:
    return Component(
        "npm", name, version, f"pkg:npm/{name}@{version}", (f"{root}/{name}/package.json",), "npm"
    )


def fingerprint(name: str, version: str, path: str) -> Component:
    return Component("binary", name, version, f"pkg:generic/{name}@{version}", (path,), "fp")


def layer(n: int, *components: Component, **fields: object) -> LayerScan:
    evidence = sorted({c.evidence for c in components})
    scan = LayerScan(digest(n), GZIP, components=list(components), evidence_paths=evidence)
    for key, value in fields.items():
        setattr(scan, key, value)
    return scan


def image(*scans: LayerScan, platform: str = "linux/amd64") -> ImageRef:
    layers = tuple(
        LayerRef(
            digest=scan.digest,
            media_type=GZIP,
            size=1000 + i,
            diff_id=digest(i, "d"),
            foreign=False,
        )
        for i, scan in enumerate(scans)
    )
    return ImageRef(
        manifest_digest=digest(0, "f"),
        platform=platform,
        os=platform.partition("/")[0],
        layers=layers,
        config={},
    )


def build(*scans: LayerScan) -> ImageBom:
    return assemble(image(*scans), scans)


def where(bom: ImageBom) -> dict[tuple[str, str], str]:
    """name, version -> introducing layer digest"""
    return {(c.component.name, c.component.version): c.layer for c in bom.components}


def test_each_component_comes_from_its_layer_with_the_layer_diff_id() -> None:
    bom = build(layer(1, deb("bash", "5.2")), layer(2, pypi("Django", "2.2")))
    assert where(bom) == {("bash", "5.2"): digest(1), ("Django", "2.2"): digest(2)}
    assert [c.diff_id for c in bom.components] == [digest(0, "d"), digest(1, "d")]
    assert [lb.digest for lb in bom.layers] == [digest(1), digest(2)]
    assert [lb.diff_id for lb in bom.layers] == [digest(0, "d"), digest(1, "d")]
    assert bom.manifest_digest == digest(0, "f")
    assert bom.platform == "linux/amd64"


def test_a_rewritten_status_file_keeps_the_licence_read_in_the_lower_layer() -> None:
    # apt-get install in a later layer rewrites dpkg's status file; the copyright files of the
    # packages already installed stay in the lower layer, so the upper layer knows no licence.
    unlicensed = replace(deb("bash", "5.2"), licenses=None)
    bom = build(layer(1, deb("bash", "5.2")), layer(2, unlicensed, deb("curl", "7.88")))
    licences = {c.component.name: c.component.licenses for c in bom.components}
    assert licences == {"bash": "MIT", "curl": "MIT"}
    assert where(bom)[("bash", "5.2")] == digest(1)


def test_a_package_locked_in_one_layer_and_installed_in_the_next_is_one_component() -> None:
    # COPY package*.json (layer 1), then RUN npm ci (layer 2): the lock and node_modules
    # name the same packages; a locked package that was never installed stays.
    locked = npm("lodash", "4.17.15")
    locked = replace(locked, locations=("app/package-lock.json",))
    only_locked = replace(npm("left-pad", "1.3.0"), locations=("app/package-lock.json",))
    bom = build(layer(1, locked, only_locked), layer(2, npm("lodash", "4.17.15")))
    found = {(c.component.name, c.component.evidence): c.layer for c in bom.components}
    assert found == {
        ("lodash", "app/node_modules/lodash/package.json"): digest(2),
        ("left-pad", "app/package-lock.json"): digest(1),
    }


def test_a_rewritten_status_file_keeps_unchanged_packages_in_their_first_layer() -> None:
    first = layer(1, deb("bash", "5.2"), deb("zlib1g", "1.2"), deb("gone", "1"))
    second = layer(2, deb("bash", "5.2"), deb("zlib1g", "1.3"), deb("curl", "7.88"))
    bom = build(first, second)
    assert where(bom) == {
        ("bash", "5.2"): digest(1),
        ("curl", "7.88"): digest(2),
        ("zlib1g", "1.3"): digest(2),
    }
    top = bom.layers[1]
    assert [c.name for c in top.components] == ["bash", "curl", "zlib1g"]
    assert [c.name for c in top.added] == ["curl"]
    assert [(old.version, new.version) for old, new in top.changed] == [("1.2", "1.3")]
    assert [c.name for c in top.removed] == ["gone"]
    assert [c.name for c in bom.layers[0].added] == ["bash", "gone", "zlib1g"]
    assert bom.layers[0].changed == []
    assert bom.layers[0].removed == []


def test_a_package_reinstalled_after_a_removal_belongs_to_the_layer_that_brought_it_back() -> None:
    bom = build(
        layer(1, deb("bash", "5.2")), layer(2, deb("dash", "1")), layer(3, deb("bash", "5.2"))
    )
    assert where(bom) == {("bash", "5.2"): digest(3)}
    assert [c.name for c in bom.layers[1].removed] == ["bash"]
    assert [c.name for c in bom.layers[2].added] == ["bash"]


def test_a_whiteout_of_the_evidence_file_or_a_parent_directory_removes_the_component() -> None:
    django, yaml, idna = pypi("Django", "2.2"), pypi("PyYAML", "5.3"), pypi("idna", "2.7")
    bottom = layer(1, django, yaml, idna)
    top = layer(
        2,
        whiteouts=[
            f"{SITE}/Django-2.2.dist-info",  # the directory
            f"{SITE}/PyYAML-5.3.dist-info/METADATA",  # the file itself
            f"{SITE}/idna-2",  # a name that only starts like idna's folder
        ],
    )
    bom = build(bottom, top)
    assert where(bom) == {("idna", "2.7"): digest(1)}
    assert [c.name for c in bom.layers[1].removed] == ["Django", "PyYAML"]
    assert bom.layers[1].components == []


def test_an_opaque_directory_hides_what_lies_below_it_and_nothing_beside_it() -> None:
    bottom = layer(1, npm("lodash", "4.17.15"), npm("axios", "0.21.0", "app/node_modules2"))
    top = layer(2, npm("minimist", "1.2.0"), opaque_dirs=["app/node_modules"])
    bom = build(bottom, top)
    assert where(bom) == {("axios", "0.21.0"): digest(1), ("minimist", "1.2.0"): digest(2)}
    assert [c.name for c in bom.layers[1].removed] == ["lodash"]


def test_an_opaque_directory_rewritten_with_the_same_package_keeps_its_first_layer() -> None:
    bottom = layer(1, npm("lodash", "4.17.15"))
    top = layer(2, npm("lodash", "4.17.15"), opaque_dirs=["app/node_modules"])
    bom = build(bottom, top)
    assert where(bom) == {("lodash", "4.17.15"): digest(1)}
    assert bom.layers[1].added == bom.layers[1].removed == []


def test_a_component_whose_evidence_a_layer_does_not_touch_stays() -> None:
    bom = build(layer(1, pypi("idna", "2.7")), layer(2, deb("bash", "5.2"), whiteouts=["etc/x"]))
    assert where(bom) == {("idna", "2.7"): digest(1), ("bash", "5.2"): digest(2)}


def test_os_package_purls_name_the_distribution_of_the_last_os_release() -> None:
    bottom = layer(1, deb("bash", "5.2"), distro=Distro("debian", "11"))
    top = layer(2, pypi("idna", "2.7"), distro=DEBIAN)
    bom = build(bottom, top)
    assert bom.distro == DEBIAN
    purls = {c.component.name: c.component.purl for c in bom.components}
    assert purls == {
        "bash": "pkg:deb/debian/bash@5.2?arch=amd64&distro=debian-12",
        "idna": "pkg:pypi/idna@2.7",
    }
    assert bom.layers[0].components[0].purl == purls["bash"]


def test_without_os_release_purls_are_left_as_the_detectors_made_them() -> None:
    bom = build(layer(1, deb("bash", "5.2")))
    assert bom.distro is None
    assert bom.components[0].component.purl == "pkg:deb/bash@5.2?arch=amd64"


def test_distro_purl_replaces_the_namespace_and_keeps_other_qualifiers() -> None:
    purl = "pkg:apk/alpine/musl@1.2.4-r2?arch=aarch64"
    assert distro_purl(purl, Distro("alpine", "3.19.1")) == (
        "pkg:apk/alpine/musl@1.2.4-r2?arch=aarch64&distro=alpine-3.19.1"
    )
    assert distro_purl("pkg:rpm/bash@5", Distro("rocky", "")) == "pkg:rpm/rocky/bash@5?distro=rocky"
    assert distro_purl("not a purl", DEBIAN) == "not a purl"


def test_a_fingerprint_of_a_file_an_os_package_owns_is_not_an_extra_component() -> None:
    busybox = fingerprint("busybox", "1.35.0", "bin/busybox")
    openssl = fingerprint("openssl", "3.0.11", "opt/app/libcrypto.so.3")
    static = deb("busybox-static", "1:1.35.0-4")
    base = layer(1, static, busybox, owned_paths=["/bin/busybox"])
    app = layer(2, openssl, fingerprint("zlib", "1.2.13", "usr/lib/libz.so.1"))
    top = layer(3, static, deb("zlib1g", "1"), owned_paths=["usr/lib/libz.so.1"])
    bom = build(base, app, top)
    assert where(bom)[("busybox-static", "1:1.35.0-4")] == digest(1)
    assert sorted(where(bom)) == [
        ("busybox-static", "1:1.35.0-4"),
        ("openssl", "3.0.11"),
        ("zlib", "1.2.13"),  # owned only by a package of a later layer
        ("zlib1g", "1"),
    ]
    assert [c.name for c in bom.layers[0].components] == ["busybox-static"]


def test_a_fingerprint_is_dropped_when_a_lower_layer_package_owns_its_path() -> None:
    base = layer(1, deb("busybox-static", "1"), owned_paths=["bin/busybox"])
    bom = build(base, layer(2, fingerprint("busybox", "1.35.0", "bin/busybox")))
    assert sorted(where(bom)) == [("busybox-static", "1")]


def test_ownership_sees_through_merged_usr() -> None:
    # dpkg lists /lib/...; on a merged-/usr image the walker finds the file under usr/lib/
    libc = deb("libc6", "2.36-9")
    owner = layer(1, libc, owned_paths=["/lib/x86_64-linux-gnu/libc.so.6", "/usr/bin/true"])
    found = layer(
        2,
        fingerprint("glibc", "2.36", "usr/lib/x86_64-linux-gnu/libc.so.6"),
        fingerprint("coreutils", "9.1", "bin/true"),
        fingerprint("zlib", "1.2.13", "usr/local/lib/libz.so.1"),  # nobody's
    )
    assert sorted(where(build(owner, found))) == [("libc6", "2.36-9"), ("zlib", "1.2.13")]


def test_foreign_layer_notes_are_kept() -> None:
    foreign = LayerScan(digest(2), GZIP, notes=["foreign layer: not scanned"])
    bom = build(layer(1, deb("bash", "5.2")), foreign)
    assert bom.layers[1].notes == ["foreign layer: not scanned"]


def test_scans_must_match_the_image_layers() -> None:
    import pytest

    scans = [layer(1), layer(2)]
    with pytest.raises(ValueError, match="2 layer scans for an image of 1 layers"):
        assemble(image(scans[0]), scans)


def test_image_purl_names_the_image_by_its_last_path_segment() -> None:
    assert image_purl("/srv/Images/python-app", digest(1), "linux/arm64/v8") == (
        f"pkg:oci/python-app@{digest(1)}?arch=arm64"
    )
    assert image_purl("x", None, "linux/amd64") is None


names = st.sampled_from(["bash", "zlib1g", "curl", "Django", "idna", "lodash"])
versions = st.sampled_from(["1", "1.2", "2.0.1", "1:3-4"])
paths = st.sampled_from([STATUS, "a/b/METADATA", "a/c/package.json", "bin/busybox"])
components = st.builds(
    Component,
    ecosystem=st.sampled_from(["deb", "pypi", "npm", "binary"]),
    name=names,
    version=versions,
    purl=st.just("pkg:generic/x@1"),
    locations=st.lists(paths, min_size=1, max_size=3).map(tuple),
    detector=st.sampled_from(["dpkg", "python"]),
    licenses=st.one_of(st.none(), st.sampled_from(["MIT", "GPL-2.0-only OR MIT"])),
    properties=st.dictionaries(st.sampled_from(["arch", "source"]), names).map(
        lambda d: tuple(sorted(d.items()))
    ),
)
# (components, whiteouts, opaque dirs, owned paths) of one layer
layer_scans = st.tuples(
    st.lists(components, max_size=6),
    st.lists(st.sampled_from(["a", "a/b", "bin/busybox", "var"]), max_size=2),
    st.lists(st.sampled_from(["a", "a/c", "var/lib"]), max_size=1),
    st.lists(st.sampled_from(["bin/busybox", "/a/b/METADATA"]), max_size=2),
)


def make_layers(
    specs: list[tuple[list[Component], list[str], list[str], list[str]]],
) -> list[LayerScan]:
    return [
        layer(i + 1, *comps, whiteouts=wh, opaque_dirs=op, owned_paths=ow)
        for i, (comps, wh, op, ow) in enumerate(specs)
    ]


@settings(max_examples=150)
@given(st.lists(layer_scans, min_size=1, max_size=4), st.one_of(st.none(), st.just(DEBIAN)))
def test_bom_json_round_trips(
    specs: list[tuple[list[Component], list[str], list[str], list[str]]], distro: Distro | None
) -> None:
    scans = make_layers(specs)
    scans[-1].distro = distro
    bom = build(*scans)
    text = json.dumps(bom.to_json())
    assert ImageBom.from_json(json.loads(text)) == bom


@settings(max_examples=150)
@given(st.lists(layer_scans, min_size=1, max_size=4), st.randoms())
def test_the_order_of_components_in_a_layer_scan_does_not_matter(
    specs: list[tuple[list[Component], list[str], list[str], list[str]]], rnd: random.Random
) -> None:
    scans = make_layers(specs)
    shuffled = make_layers([(rnd.sample(c, len(c)), w, o, ow) for c, w, o, ow in specs])
    first, second = build(*scans), build(*shuffled)
    assert first == second
    keys = [
        (c.component.ecosystem, c.component.name, c.component.version, c.component.evidence)
        for c in first.components
    ]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


def test_layer_bom_and_component_json_shapes() -> None:
    item = BomComponent(deb("bash", "5.2"), digest(1), None)
    assert item.to_json()["layer"] == digest(1)
    assert item.to_json()["diff_id"] is None
    assert BomComponent.from_json(item.to_json()) == item
    lb = LayerBom(digest(1), None, GZIP, changed=[(deb("a", "1"), deb("a", "2"))])
    assert lb.to_json()["changed"][0]["new"]["version"] == "2"
    assert LayerBom.from_json(lb.to_json()) == lb


# A model of the image's file system: which layer last wrote each evidence file that is still
# there. The squashed BOM must hold exactly the components those layers found in those files,
# each attributed to the first layer of its latest unbroken presence.
FILES = ("a/x", "a/b/y", "c/z", "ab/w")
file_layers = st.lists(
    st.tuples(
        st.dictionaries(
            st.sampled_from(FILES),
            st.lists(
                st.tuples(st.sampled_from(["p", "q"]), st.sampled_from(["1", "2"])), max_size=2
            ),
            max_size=3,
        ),
        st.lists(st.sampled_from(["a", "a/b", "a/x", "c/z", "ab"]), max_size=2),
        st.lists(st.sampled_from(["a", "c", "a/b"]), max_size=1),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=300)
@given(file_layers)
def test_the_squashed_view_matches_a_file_system_model(
    specs: list[tuple[dict[str, list[tuple[str, str]]], list[str], list[str]]],
) -> None:
    scans = []
    for i, (files, whiteouts, opaque) in enumerate(specs):
        found = [
            Component("pypi", name, version, f"pkg:pypi/{name}@{version}", (path,), "python")
            for path, packages in files.items()
            for name, version in packages
        ]
        scan = LayerScan(digest(i + 1), GZIP, components=found, evidence_paths=sorted(files))
        scan.whiteouts, scan.opaque_dirs = list(whiteouts), list(opaque)
        scans.append(scan)
    written: dict[str, int] = {}  # path -> index of the layer whose copy is visible
    start: dict[tuple[str, str, str, str], int] = {}
    for i, (files, whiteouts, opaque) in enumerate(specs):
        for path in list(written):
            gone = any(path == w or path.startswith(w + "/") for w in whiteouts)
            if gone or any(path.startswith(d + "/") for d in opaque):
                del written[path]
        written.update(dict.fromkeys(files, i))
        visible = {
            c.identity: i
            for path, j in written.items()
            for c in scans[j].components
            if c.evidence == path
        }
        start = {key: start.get(key, i) for key in visible}
    bom = build(*scans)
    assert {c.component.identity: c.layer for c in bom.components} == {
        key: digest(i + 1) for key, i in start.items()
    }


# --- language packages that an OS package installed ---------------------------------------

DIST_PACKAGES = "usr/lib/python3/dist-packages"


def owned_marks(components: list[Component]) -> dict[str, str | None]:
    return {c.name: dict(c.properties).get(OWNED_BY_OS_PACKAGE) for c in components}


def test_a_dist_info_that_a_deb_lists_is_marked_owned_by_the_os_package() -> None:
    # Real layers through the detectors: python3-yaml's dist-info in dist-packages (dpkg's
    # .list names it), then idna installed by pip in a layer above.
    metadata = f"{DIST_PACKAGES}/PyYAML-6.0.dist-info/METADATA"
    status = (
        b"Package: python3-yaml\nStatus: install ok installed\nArchitecture: amd64\n"
        b"Source: pyyaml (6.0-3)\nVersion: 6.0-3+b2\n\n"
    )
    listed = f"/.\n/usr\n/{DIST_PACKAGES}\n/{metadata}\n/{DIST_PACKAGES}/yaml/__init__.py\n"
    base = tar_bytes(
        [
            file("etc/os-release", b"ID=debian\nVERSION_ID=12\n"),
            file(STATUS, status),
            file("var/lib/dpkg/info/python3-yaml:amd64.list", listed.encode()),
            file(metadata, b"Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0\n"),
            file(f"{DIST_PACKAGES}/yaml/__init__.py", b""),
        ]
    )
    app = tar_bytes([file(f"{SITE}/idna-3.4.dist-info/METADATA", b"Name: idna\nVersion: 3.4\n")])
    scans = [scan_bytes(blob, default_detectors(), media_type=OCI_TAR) for blob in (base, app)]
    refs = [layer_ref(blob, OCI_TAR) for blob in (base, app)]
    ref = ImageRef(digest(0, "f"), "linux/amd64", "linux", tuple(refs), {})
    bom = assemble(ref, scans)
    squashed = [c.component for c in bom.components]
    assert owned_marks(squashed) == {"python3-yaml": None, "PyYAML": "true", "idna": None}
    assert owned_marks(bom.layers[0].components) == {"python3-yaml": None, "PyYAML": "true"}
    assert owned_marks(bom.layers[0].added) == {"python3-yaml": None, "PyYAML": "true"}
    assert owned_marks(bom.layers[1].components) == {"idna": None}
    yaml = next(c for c in bom.components if c.component.name == "PyYAML")
    assert yaml.layer == scans[0].digest  # identity and attribution unchanged
    assert yaml.to_json()["properties"] == {OWNED_BY_OS_PACKAGE: "true"}
    assert ImageBom.from_json(json.loads(json.dumps(bom.to_json()))) == bom


def test_ownership_of_language_packages_is_image_wide_and_sees_through_merged_usr() -> None:
    jar = Component(
        "maven", "org.x:lib", "1.0", "pkg:maven/org.x/lib@1.0", ("usr/share/java/lib.jar",), "java"
    )
    nested = replace(jar, name="org.y:inner", locations=("usr/share/java/lib.jar!/lib/inner.jar",))
    go_module = Component(
        "golang",
        "github.com/a/b",
        "v1.2.0",
        "pkg:golang/github.com/a/b@v1.2.0",
        ("usr/bin/tool",),
        "golang",
    )
    npm_app = npm("lodash", "4.17.15")  # app/node_modules: nobody's
    built = layer(1, jar, nested, go_module, npm_app)
    owner = layer(  # a later layer's rpm owns the jar; dpkg lists /bin/tool for usr/bin/tool
        2,
        deb("golang-tool", "1.2.0-1"),
        owned_paths=["/usr/share/java/lib.jar", "/bin/tool", "/app/node_modules"],
    )
    bom = build(built, owner)
    assert owned_marks([c.component for c in bom.components]) == {
        "golang-tool": None,
        "github.com/a/b": "true",
        "lodash": None,  # a directory above its package.json is not the file
        "org.x:lib": "true",
        "org.y:inner": "true",  # inside the owned jar
    }
    assert owned_marks(bom.layers[0].components) == owned_marks(
        [c.component for c in bom.components if c.layer == digest(1)]
    )
    assert where(bom) == {
        ("golang-tool", "1.2.0-1"): digest(2),
        ("github.com/a/b", "v1.2.0"): digest(1),
        ("lodash", "4.17.15"): digest(1),
        ("org.x:lib", "1.0"): digest(1),
        ("org.y:inner", "1.0"): digest(1),
    }


def test_os_packages_and_fingerprints_are_never_marked_owned() -> None:
    # busybox-static owns its binary; a fingerprint there is dropped, never marked
    static = replace(deb("busybox-static", "1"), locations=(STATUS, "bin/busybox"))
    busybox = fingerprint("busybox", "1.35.0", "bin/busybox")
    bom = build(layer(1, static, busybox, owned_paths=[STATUS, "bin/busybox"]))
    assert [(c.component.name, dict(c.component.properties)) for c in bom.components] == [
        ("busybox-static", {})
    ]
