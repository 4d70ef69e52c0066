"""Done-when of issue 5: on every shared test image, the BOM equals the ground truth.

For each image (each platform of an index) the real scanner (every default detector) reads
the OCI layout, `assemble` squashes the layers, and per ecosystem of the ground truth the set
of (name, version) found must equal the truth exactly (100 % recall and precision), each
component attributed to the layer that holds it. Components of other ecosystems (library
fingerprints...) are allowed only at paths no OS package owns.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pytest

from tests.support.images import IMAGE_NAMES, image_info, image_layout, load_truth
from trustyard.scanning.bom import ImageBom, assemble
from trustyard.scanning.scanner import MemoryLayerCache, Scanner
from trustyard.scanning.sources import ImageRef, open_path

pytestmark = [pytest.mark.integration]

# The ecosystems the ground truth speaks for: in these, what is found must be the truth.
TRUTH_ECOSYSTEMS = ("deb", "pypi", "npm", "golang")

# Which layer (index in the manifest) brings each ecosystem, from how make-test-images builds
# the images (`created_by` in IMAGE.info.json).
EXPECTED_LAYER: dict[str, dict[str, int]] = {
    "debian-minbase": {"deb": 0},  # debootstrap --variant=minbase
    "python-app": {"deb": 0, "pypi": 1},  # tiny base, then pip install
    "node-app": {"deb": 0, "npm": 1},  # tiny base, then npm install
    "go-binary": {"golang": 0},
    "multi-arch": {"golang": 0},
    "big-layer": {},
}
# Images where nothing outside the truth's ecosystems may be reported at all.
NO_EXTRAS = ("python-app",)


@dataclass
class Scanned:
    image: ImageRef
    bom: ImageBom
    owned: set[str]


def scan_all(name: str) -> list[Scanned]:
    source = open_path(image_layout(name))
    scanner = Scanner(cache=MemoryLayerCache())
    results = []
    for image in source.images():
        scans = scanner.scan_image(source, image)
        owned = {usr_path(path) for scan in scans for path in scan.owned_paths}
        results.append(Scanned(image, assemble(image, scans), owned))
    return results


def usr_path(path: str) -> str:
    """A path as merged /usr spells it (/lib/x -> usr/lib/x): dpkg lists /lib/..., the layer
    holds usr/lib/... on Debian 12."""
    path = path.strip("/")
    top = path.partition("/")[0]
    return f"usr/{path}" if top in {"bin", "sbin", "lib", "lib32", "lib64", "libx32"} else path


def os_arch(platform: str) -> str:
    return "/".join(platform.split("/")[:2])


def truth_of(name: str, platform: str) -> dict[str, set[tuple[str, str]]]:
    rows = load_truth(name, os_arch(platform) if name == "multi-arch" else None)
    truth: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for ecosystem, package, version in rows:
        truth[ecosystem].add((package, version))
    return truth


def layer_digests(name: str, platform: str) -> list[str]:
    for image in image_info(name)["images"]:
        p = image["platform"]
        if f"{p['os']}/{p['architecture']}" == os_arch(platform):
            return [layer["digest"] for layer in image["layers"]]
    raise AssertionError(f"{name} has no {platform} image in its info.json")


def differences(found: set[tuple[str, str]], truth: set[tuple[str, str]]) -> str:
    missing = sorted(truth - found)
    extra = sorted(found - truth)
    return f"missing (recall): {missing}\nnot in the truth (precision): {extra}"


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_the_bom_equals_the_ground_truth_with_the_right_layers(name: str) -> None:
    scanned = scan_all(name)
    platforms = sorted(os_arch(s.image.platform) for s in scanned)
    expected_platforms = sorted(
        f"{i['platform']['os']}/{i['platform']['architecture']}" for i in image_info(name)["images"]
    )
    assert platforms == expected_platforms
    problems: list[str] = []
    for result in scanned:
        platform = result.image.platform
        truth = truth_of(name, platform)
        assert set(truth) <= set(TRUTH_ECOSYSTEMS), f"truth ecosystems {sorted(truth)}"
        digests = layer_digests(name, platform)
        for ecosystem in TRUTH_ECOSYSTEMS:
            items = [c for c in result.bom.components if c.component.ecosystem == ecosystem]
            found = {(c.component.name, c.component.version) for c in items}
            if found != truth.get(ecosystem, set()):
                problems.append(
                    f"{name} {platform} {ecosystem}: "
                    + differences(found, truth.get(ecosystem, set()))
                )
            if ecosystem in EXPECTED_LAYER[name]:
                want = digests[EXPECTED_LAYER[name][ecosystem]]
                wrong = sorted((c.component.name, c.layer) for c in items if c.layer != want)
                if wrong:
                    problems.append(f"{name} {platform} {ecosystem}: not in layer {want}: {wrong}")
        extras = [
            c.component
            for c in result.bom.components
            if c.component.ecosystem not in TRUTH_ECOSYSTEMS
        ]
        owned_extras = [
            (c.ecosystem, c.name, c.evidence)
            for c in extras
            if usr_path(c.evidence) in result.owned
        ]
        if owned_extras:
            problems.append(f"{name} {platform}: extras at OS-package paths: {owned_extras}")
        if name in NO_EXTRAS and extras:
            listed = [(c.ecosystem, c.name, c.version, c.evidence) for c in extras]
            problems.append(f"{name} {platform}: components beyond the truth: {listed}")
    assert not problems, "\n".join(problems)
