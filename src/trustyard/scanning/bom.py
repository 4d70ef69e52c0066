"""The bill of materials of an image: its layers' scans squashed in order.

Each layer was scanned on its own (`LayerScan`, cached by digest). `assemble` replays them as
a container runtime stacks them: before layer i is applied, every component whose evidence
file layer i deletes (a whiteout of the file or of a parent directory), hides (an opaque
directory above it) or rewrites (layer i's detectors read the same path) leaves the running
view; then layer i's components enter it. A component that was there just before, unchanged
(same `Component.identity`), keeps the layer that first brought it: dpkg's `status` file is
rewritten by every layer that installs a package, and the packages it already listed must
stay attributed to the layer that installed them.

Per layer the BOM says what the layer adds, changes (same ecosystem, name and evidence file,
another version) and removes; the three lists are disjoint (an upgrade is a change, not an
addition plus a removal).

A language package whose evidence file an OS package owns (a dist-info that a deb lists, a jar
that an rpm installed; any layer's package, merged /usr seen through) carries the property
`owned-by-os-package: "true"`, in the image's view and in every layer's lists: the OS package
manager installed it, and its vulnerabilities are the OS package's (distributions backport
fixes without changing the upstream version).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from trustyard.scanning.model import (
    BINARY,
    CARGO,
    COMPOSER,
    GEM,
    GOLANG,
    MAVEN,
    NPM,
    NUGET,
    OS_ECOSYSTEMS,
    PYPI,
    Component,
    Distro,
    LayerScan,
)
from trustyard.scanning.purls import purl_text

if TYPE_CHECKING:
    from trustyard.scanning.sources import ImageRef

# The property of a language package that an OS package installed, and the ecosystems it is
# looked for in (the ones with their own advisories; scanning/model.py).
OWNED_BY_OS_PACKAGE = "owned-by-os-package"
LANGUAGE_ECOSYSTEMS = frozenset({PYPI, NPM, GEM, MAVEN, GOLANG, CARGO, NUGET, COMPOSER})


@dataclass(slots=True)
class BomComponent:
    """A component of the squashed image, with the layer that introduced it."""

    component: Component
    layer: str  # the introducing layer's digest
    diff_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {**self.component.to_json(), "layer": self.layer, "diff_id": self.diff_id}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BomComponent:
        return cls(Component.from_json(data), data["layer"], data.get("diff_id"))


@dataclass(slots=True)
class LayerBom:
    """One layer in its image: what it holds, and what it adds, changes and removes in the
    view of the layers below it."""

    digest: str
    diff_id: str | None
    media_type: str
    components: list[Component] = field(default_factory=list)
    added: list[Component] = field(default_factory=list)
    changed: list[tuple[Component, Component]] = field(default_factory=list)  # (old, new)
    removed: list[Component] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "diff_id": self.diff_id,
            "media_type": self.media_type,
            "components": [c.to_json() for c in self.components],
            "added": [c.to_json() for c in self.added],
            "changed": [{"old": old.to_json(), "new": new.to_json()} for old, new in self.changed],
            "removed": [c.to_json() for c in self.removed],
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LayerBom:
        return cls(
            digest=data["digest"],
            diff_id=data.get("diff_id"),
            media_type=data.get("media_type", ""),
            components=[Component.from_json(c) for c in data.get("components", [])],
            added=[Component.from_json(c) for c in data.get("added", [])],
            changed=[
                (Component.from_json(pair["old"]), Component.from_json(pair["new"]))
                for pair in data.get("changed", [])
            ],
            removed=[Component.from_json(c) for c in data.get("removed", [])],
            notes=list(data.get("notes", [])),
        )


@dataclass(slots=True)
class ImageBom:
    """The BOM of one image (one platform of an index)."""

    manifest_digest: str
    platform: str
    distro: Distro | None
    layers: list[LayerBom] = field(default_factory=list)
    components: list[BomComponent] = field(default_factory=list)  # the squashed view

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest_digest": self.manifest_digest,
            "platform": self.platform,
            "distro": self.distro.to_json() if self.distro else None,
            "layers": [layer.to_json() for layer in self.layers],
            "components": [c.to_json() for c in self.components],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageBom:
        distro = data.get("distro")
        return cls(
            manifest_digest=data["manifest_digest"],
            platform=data.get("platform", ""),
            distro=Distro.from_json(distro) if distro else None,
            layers=[LayerBom.from_json(layer) for layer in data.get("layers", [])],
            components=[BomComponent.from_json(c) for c in data.get("components", [])],
        )


# The most file locations an export lists per component (the evidence first); a Python
# package's RECORD can name thousands of files. The JSON BOM keeps them all.
EXPORTED_LOCATIONS = 16


def exported_locations(component: Component) -> tuple[tuple[str, ...], int]:
    """The locations an export lists, and how many it leaves out."""
    shown = component.locations[:EXPORTED_LOCATIONS]
    return shown, len(component.locations) - len(shown)


def sort_key(component: Component) -> tuple[str, str, str, str, str, tuple[str, ...]]:
    """The order of components everywhere in a BOM: ecosystem, name, version, location."""
    return (
        component.ecosystem,
        component.name,
        component.version,
        component.evidence,
        component.purl,
        component.locations,
    )


def _full_key(component: Component) -> tuple[Any, ...]:
    """`sort_key` and every other field: duplicates resolve the same way whatever the order."""
    return (
        *sort_key(component),
        component.detector,
        component.licenses or "",
        component.properties,
    )


def assemble(image: ImageRef, scans: Sequence[LayerScan]) -> ImageBom:
    """Squash `scans` (one per layer of `image`, bottom first) into the image's BOM."""
    if len(scans) != len(image.layers):
        msg = f"{len(scans)} layer scans for an image of {len(image.layers)} layers"
        raise ValueError(msg)
    distro = next((scan.distro for scan in reversed(scans) if scan.distro), None)
    # identity -> (component, index of the introducing layer)
    view: dict[tuple[str, str, str, str], tuple[Component, int]] = {}
    owned: set[str] = set()
    layers: list[LayerBom] = []
    for index, (ref, scan) in enumerate(zip(image.layers, scans, strict=True)):
        owned.update(_norm(path) for path in scan.owned_paths)
        mine = _dedup(
            sorted((c for c in scan.components if not _owned_fingerprint(c, owned)), key=_full_key)
        )
        before = view
        cover = _Cover(scan)
        view = {key: entry for key, entry in before.items() if not cover.hides(entry[0])}
        for found in mine:
            key = found.identity
            previous = before.get(key)
            if previous is not None and found.licenses is None and previous[0].licenses:
                # dpkg's status file, rewritten by a later layer, lists the lower layers'
                # packages again; their copyright files (the licences) stay below.
                found = replace(found, licenses=previous[0].licenses)  # noqa: PLW2901
            view[key] = (found, previous[1] if previous else index)
        added = [c for c in mine if c.identity not in before]
        removed = [entry[0] for key, entry in before.items() if key not in view]
        changed = _pair_changes(removed, added)
        if changed:
            olds = {id(old) for old, _ in changed}
            news = {id(new) for _, new in changed}
            added = [c for c in added if id(c) not in news]
            removed = [c for c in removed if id(c) not in olds]
        layers.append(
            LayerBom(
                digest=scan.digest,
                diff_id=ref.diff_id,
                media_type=scan.media_type or ref.media_type,
                components=_sorted(mine, distro),
                added=_sorted(added, distro),
                changed=sorted(
                    ((_with_distro(o, distro), _with_distro(n, distro)) for o, n in changed),
                    key=lambda pair: sort_key(pair[1]),
                ),
                removed=_sorted(removed, distro),
                notes=list(scan.notes),
            )
        )
    mark = _OsOwned(owned)  # every layer's packages: the image-wide ownership
    for layer_bom in layers:
        mark.layer(layer_bom)
    squashed = [
        BomComponent(mark(_with_distro(component, distro)), layers[i].digest, layers[i].diff_id)
        for component, i in _without_locked_duplicates(list(view.values()))
    ]
    squashed.sort(key=lambda c: sort_key(c.component))
    return ImageBom(
        manifest_digest=image.manifest_digest,
        platform=image.platform,
        distro=distro,
        layers=layers,
        components=squashed,
    )


_NPM_LOCKS = ("package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml")


def _without_locked_duplicates(
    entries: list[tuple[Component, int]],
) -> list[tuple[Component, int]]:
    """`COPY package*.json` then `RUN npm ci` puts the lock and the installed packages in two
    layers: each layer reports the package from its own file. In the image, a package that is
    installed is that one component; its lock entry is dropped."""
    installed = {
        (c.name, c.version)
        for c, _ in entries
        if c.ecosystem == NPM
        and "node_modules/" in c.evidence
        and c.evidence.endswith("/package.json")
    }
    if not installed:
        return entries
    return [
        (c, i)
        for c, i in entries
        if not (
            c.ecosystem == NPM
            and c.evidence.endswith(_NPM_LOCKS)
            and (c.name, c.version) in installed
        )
    ]


def _norm(path: str) -> str:
    return path.strip("/")


def _ancestors(path: str) -> Iterable[str]:
    """ "a/b/c" -> "a", "a/b" (the directories above a file)."""
    start = 0
    while True:
        cut = path.find("/", start)
        if cut < 0:
            return
        yield path[:cut]
        start = cut + 1


class _Cover:
    """What one layer does to the files below it."""

    def __init__(self, scan: LayerScan) -> None:
        self.rewritten = {_norm(p) for p in scan.evidence_paths}
        self.whiteouts = {_norm(p) for p in scan.whiteouts}
        self.opaque = {_norm(p) for p in scan.opaque_dirs}

    def hides(self, component: Component) -> bool:
        """Does the layer delete, hide or rewrite the file `component` was found in?"""
        path = _norm(component.evidence)
        if not path:
            return False
        if path in self.rewritten or path in self.whiteouts:
            return True
        if not self.whiteouts and not self.opaque:
            return False
        if "" in self.opaque:  # the root made opaque hides everything below it
            return True
        return any(p in self.whiteouts or p in self.opaque for p in _ancestors(path))


def _owned_fingerprint(component: Component, owned: set[str]) -> bool:
    """A library fingerprint at a path an OS package owns is that package, not an extra."""
    return component.ecosystem == BINARY and _is_owned(_norm(component.evidence), owned)


def _is_owned(path: str, owned: set[str]) -> bool:
    """Does an OS package own `path` (normalised)? With a merged /usr (Debian 12, Fedora) a
    package may list /lib/x for the file that the layer holds at usr/lib/x (lib -> usr/lib is
    a symlink), and the other way round."""
    if path in owned:
        return True
    if path.startswith("usr/") and path[4:].startswith(_MERGED_USR):
        return path[4:] in owned
    return path.startswith(_MERGED_USR) and "usr/" + path in owned


_MERGED_USR = ("bin/", "sbin/", "lib/", "lib32/", "lib64/", "libx32/")


class _OsOwned:
    """Marks language packages whose evidence file an OS package owns (`OWNED_BY_OS_PACKAGE`).
    A jar inside a jar (`a.jar!/lib/b.jar`) is the outer file's."""

    def __init__(self, owned: set[str]) -> None:
        self._owned = owned
        self._answers: dict[str, bool] = {}

    def __call__(self, component: Component) -> Component:
        if component.ecosystem not in LANGUAGE_ECOSYSTEMS or not self._owned:
            return component
        path = _norm(component.evidence.partition("!/")[0])
        answer = self._answers.get(path)
        if answer is None:
            answer = self._answers[path] = bool(path) and _is_owned(path, self._owned)
        if not answer or (OWNED_BY_OS_PACKAGE, "true") in component.properties:
            return component
        properties = {**dict(component.properties), OWNED_BY_OS_PACKAGE: "true"}
        return replace(component, properties=tuple(sorted(properties.items())))

    def layer(self, layer: LayerBom) -> None:
        """The same marks in one layer's lists."""
        layer.components = [self(c) for c in layer.components]
        layer.added = [self(c) for c in layer.added]
        layer.changed = [(self(old), self(new)) for old, new in layer.changed]
        layer.removed = [self(c) for c in layer.removed]


def _dedup(components: Iterable[Component]) -> list[Component]:
    unique: dict[tuple[str, str, str, str], Component] = {}
    for component in components:
        unique.setdefault(component.identity, component)
    return list(unique.values())


def _pair_changes(
    removed: list[Component], added: list[Component]
) -> list[tuple[Component, Component]]:
    """Removed and added components with the same ecosystem, name and evidence: upgrades."""
    gone: dict[tuple[str, str, str], Component] = {}
    for old in removed:
        gone.setdefault((old.ecosystem, old.name, old.evidence), old)
    pairs: list[tuple[Component, Component]] = []
    for new in added:
        before = gone.pop((new.ecosystem, new.name, new.evidence), None)
        if before is not None and before.version != new.version:
            pairs.append((before, new))
    return pairs


def _sorted(components: Iterable[Component], distro: Distro | None) -> list[Component]:
    return sorted((_with_distro(c, distro) for c in components), key=sort_key)


def _with_distro(component: Component, distro: Distro | None) -> Component:
    """OS packages' purls name the distribution: namespace = its id, `distro=<id>-<version>`."""
    if distro is None or component.ecosystem not in OS_ECOSYSTEMS or not component.purl:
        return component
    purl = distro_purl(component.purl, distro)
    return component if purl == component.purl else replace(component, purl=purl)


@lru_cache(maxsize=8192)
def distro_purl(purl: str, distro: Distro) -> str:
    """`purl` with the distribution as namespace and a `distro=<id>-<version_id>` qualifier
    (other qualifiers kept); unchanged when it does not parse."""
    from packageurl import PackageURL

    try:
        parsed = PackageURL.from_string(purl)
    except ValueError:
        return purl
    qualifiers = dict(parsed.qualifiers) if isinstance(parsed.qualifiers, dict) else {}
    label = f"{distro.id}-{distro.version_id}" if distro.version_id else distro.id
    qualifiers["distro"] = label
    return str(
        PackageURL(
            type=parsed.type,
            namespace=distro.id,
            name=parsed.name,
            version=parsed.version,
            qualifiers=qualifiers,
            subpath=parsed.subpath,
        ).to_string()
    )


def image_purl(name: str, digest: str | None, platform: str) -> str | None:
    """`pkg:oci/NAME@DIGEST?arch=ARCH` for an image (NAME: the last path segment of `name`,
    lower case); None without a digest."""

    if not digest:
        return None
    base = name.rstrip("/").rpartition("/")[2].lower() or "image"
    parts = platform.split("/")
    qualifiers = {"arch": parts[1]} if len(parts) > 1 and parts[1] else None
    return purl_text(type="oci", name=base, version=digest, qualifiers=qualifiers)
