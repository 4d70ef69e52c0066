"""CycloneDX 1.6 JSON for one image or every platform of an index, written as plain JSON.

Shape of the document:
- `metadata.component` is what was scanned (type `container`): the image itself, with its
  manifest digest as version, or, for several platforms, the index (`name`, the index digest
  when known) whose platform images are top-level `container` components.
- Every component of every platform is a top-level component (a flat list, which is what SBOM
  consumers read; nested components are often ignored). Its properties say where it comes
  from: `trustyard:platform`, `trustyard:image` (manifest digest), `trustyard:layer` (the
  introducing layer's digest), `trustyard:diff_id`, `trustyard:evidence` (the file the
  detector read), one `trustyard:location` per file (at most `EXPORTED_LOCATIONS`;
  `trustyard:locations_not_listed` counts the rest: a wheel's RECORD names thousands),
  `trustyard:ecosystem`, `trustyard:detector`, and the detector's own properties.
- The distribution (`os-release`) is one `operating-system` component per platform image.
- `dependencies` tie them together: the root depends on its platform images (or directly
  on the components for a single image), each platform image on its components.
A package present on two platforms appears twice (a bom-ref is unique per platform).

`iter_cyclonedx` yields the document in chunks of about `CHUNK` bytes as it writes it, one
component at a time: the memory it needs is the bom-refs (to keep them unique and list the
dependencies), not the document. Going through cyclonedx-python-lib's object model cost about
32 KB and 2.5 ms per component (50,000 components: two minutes and 1.6 GB); the tests check
that this writer's documents validate against the 1.6 schema and say what the library said.

`sections` adds top-level arrays after `dependencies` (the vulnerabilities of
`vulnerabilities/exports.py`): it is called once every component is written, with the
`BomRefs` the document gave them, so what it writes can point at them (`affects[].ref`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from trustyard.scanning.bom import BomComponent, ImageBom, exported_locations, image_purl
from trustyard.scanning.model import BINARY

SCHEMA = "http://cyclonedx.org/schema/bom-1.6.schema.json"
CHUNK = 64 * 1024  # bytes gathered before a chunk is yielded
_COMPONENT_INDENT = "\n    "  # a component's lines inside the `components` array

# What identifies a component of an image BOM to the code that reads the BOM's JSON:
# (platform, ecosystem, name, version, purl, introducing layer).
ComponentKey = tuple[str, str, str, str, str, str]


class BomRefs:
    """The bom-refs a document gave: its root, and each component's by `ComponentKey` (a
    component found at several places of the same layer has several)."""

    def __init__(self) -> None:
        self.root = ""
        self.images: dict[str, str] = {}  # platform -> the platform image's (or the root's)
        self.components: dict[ComponentKey, list[str]] = {}

    def of(self, key: ComponentKey) -> list[str]:
        return self.components.get(key, [])


# (top-level key, its items): arrays written after `dependencies`.
Sections = Callable[[BomRefs], Iterable[tuple[str, Iterable[dict[str, Any]]]]]


def to_cyclonedx(boms: Sequence[ImageBom], name: str, *, index_digest: str | None = None) -> str:
    """The CycloneDX 1.6 JSON document of `boms` (the images of `name`), as one text."""
    return b"".join(iter_cyclonedx(boms, name, index_digest=index_digest)).decode()


def iter_cyclonedx(
    boms: Sequence[ImageBom],
    name: str,
    *,
    index_digest: str | None = None,
    created: datetime | None = None,
    sections: Sections | None = None,
) -> Iterator[bytes]:
    """The CycloneDX 1.6 JSON document of `boms` (the images of `name`), in chunks; with
    `sections`, its arrays after `dependencies`."""
    refs = _Refs()
    given = BomRefs()  # component refs noted only for `sections`
    # (component, its dependencies' bom-refs): the root first, then each platform image.
    graph: list[tuple[str, list[str]]] = []
    if len(boms) == 1:
        root = _image_component(boms[0], name, refs, platform_in_name=False)
    else:
        root = _index_component(name, index_digest, refs)
    out = _Chunks()
    out.add(_dumps(_head(root, created))[:-2])  # without the closing "\n}": the arrays follow
    graph.append((root["bom-ref"], []))
    given.root = root["bom-ref"]
    count = sum(len(b.components) + (b.distro is not None) for b in boms)
    if count or len(boms) > 1:
        out.add(',\n  "components": [')
        first = True
        for image in boms:
            if len(boms) > 1:
                container = _image_component(image, name, refs, platform_in_name=True)
                graph[0][1].append(container["bom-ref"])
                graph.append((container["bom-ref"], []))
                out.add(_item(container, first))
                first = False
            mine = graph[-1][1]
            given.images[image.platform] = graph[-1][0]
            noted = given if sections is not None else None
            for component in _image_components(image, refs, noted):
                mine.append(component["bom-ref"])
                out.add(_item(component, first))
                first = False
                if out.full():
                    yield out.take()
        out.add("\n  ]")
    out.add(',\n  "dependencies": [')
    first = True
    for ref, depends_on in graph:  # written a ref at a time: the root may list thousands
        out.add(_item({"ref": ref}, first)[:-2])
        first = False
        if depends_on:
            out.add(',\n      "dependsOn": [')
            for n, on in enumerate(depends_on):
                out.add(("\n        " if n == 0 else ",\n        ") + json.dumps(on))
                if out.full():
                    yield out.take()
            out.add("\n      ]")
        out.add("\n    }")
    for _, depends_on in graph[1:] if len(boms) > 1 else graph:
        for ref in depends_on:  # the leaves: the components, which depend on nothing
            out.add(_item({"ref": ref}, first=False))
            if out.full():
                yield out.take()
    out.add("\n  ]")
    if sections is not None:
        yield from _sections(out, sections(given))
    out.add("\n}")
    yield out.take()


def _head(root: dict[str, Any], created: datetime | None) -> dict[str, Any]:
    """The document's fields before its arrays."""
    from trustyard import __version__

    moment = (created or datetime.now(UTC)).astimezone(UTC)
    return {
        "$schema": SCHEMA,
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": moment.isoformat(),
            "tools": {
                "components": [{"type": "application", "name": "trustyard", "version": __version__}]
            },
            "component": root,
        },
    }


def _sections(
    out: _Chunks, sections: Iterable[tuple[str, Iterable[dict[str, Any]]]]
) -> Iterator[bytes]:
    """Top-level arrays after `dependencies`, an item at a time."""
    for key, items in sections:
        out.add(f",\n  {json.dumps(key)}: [")
        first = True
        for entry in items:
            out.add(_item(entry, first))
            first = False
            if out.full():
                yield out.take()
        out.add("]" if first else "\n  ]")


class _Chunks:
    """Text gathered into chunks of about `CHUNK` bytes (UTF-8; the JSON is ASCII)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)

    def full(self) -> bool:
        return self.size >= CHUNK

    def take(self) -> bytes:
        chunk = "".join(self.parts).encode()
        self.parts.clear()
        self.size = 0
        return chunk


def _dumps(value: Any) -> str:
    # ASCII only (the default): a name decoded with surrogate escapes still makes valid JSON.
    return json.dumps(value, indent=2)


def _item(value: dict[str, Any], first: bool) -> str:
    """One element of a top-level array, indented like the rest of the document."""
    return ("\n    " if first else ",\n    ") + _dumps(value).replace("\n", _COMPONENT_INDENT)


class _Refs:
    """Unique, readable bom-refs."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def make(self, base: str) -> str:
        ref, n = base, 1
        while ref in self.seen:
            n += 1
            ref = f"{base}#{n}"
        self.seen.add(ref)
        return ref


def _image_components(
    image: ImageBom, refs: _Refs, given: BomRefs | None = None
) -> Iterator[dict[str, Any]]:
    """`image`'s distribution (when known), then its components (their refs noted in
    `given`)."""
    if image.distro is not None:
        yield _distro_component(image, refs)
    for item in image.components:
        written = _component(item, image, refs)
        if given is not None:
            c = item.component
            key = (image.platform, c.ecosystem, c.name, c.version, c.purl, item.layer)
            given.components.setdefault(key, []).append(written["bom-ref"])
        yield written


def _image_component(
    image: ImageBom, name: str, refs: _Refs, *, platform_in_name: bool
) -> dict[str, Any]:
    props = [("trustyard:platform", image.platform), ("trustyard:image", image.manifest_digest)]
    return _object(
        "container",
        f"{name} ({image.platform})" if platform_in_name else name,
        image.manifest_digest,
        refs.make(f"image:{image.platform or 'unknown'}:{image.manifest_digest}"),
        purl=_purl(image_purl(name, image.manifest_digest, image.platform) or ""),
        properties=props,
    )


def _index_component(name: str, digest: str | None, refs: _Refs) -> dict[str, Any]:
    return _object(
        "container",
        name,
        digest,
        refs.make(f"index:{digest or name}"),
        purl=_purl(image_purl(name, digest, "") or ""),
    )


def _distro_component(image: ImageBom, refs: _Refs) -> dict[str, Any]:
    assert image.distro is not None
    distro = image.distro
    props = [("trustyard:platform", image.platform), ("trustyard:image", image.manifest_digest)]
    if distro.pretty_name:
        props.append(("trustyard:pretty_name", distro.pretty_name))
    return _object(
        "operating-system",
        distro.id,
        distro.version_id,
        refs.make(f"os:{image.platform}:{distro.id}-{distro.version_id}"),
        description=distro.pretty_name,
        properties=props,
    )


def _component(item: BomComponent, image: ImageBom, refs: _Refs) -> dict[str, Any]:
    component = item.component
    props = [
        ("trustyard:ecosystem", component.ecosystem),
        ("trustyard:detector", component.detector),
        ("trustyard:platform", image.platform),
        ("trustyard:image", image.manifest_digest),
        ("trustyard:layer", item.layer),
    ]
    if item.diff_id:
        props.append(("trustyard:diff_id", item.diff_id))
    shown, hidden = exported_locations(component)
    props.append(("trustyard:evidence", component.evidence))
    props.extend(("trustyard:location", location) for location in shown)
    if hidden:
        props.append(("trustyard:locations_not_listed", str(hidden)))
    props.extend((f"trustyard:{key}", value) for key, value in component.properties)
    purl = _purl(component.purl)
    if purl is None and component.purl:
        props.append(("trustyard:purl", component.purl))
    return _object(
        "application" if component.ecosystem == BINARY else "library",
        component.name,
        component.version,
        refs.make(f"{component.purl or component.name}:{image.platform}"),
        purl=purl,
        licenses=component.licenses,
        properties=props,
    )


def _object(
    kind: str,
    name: str,
    version: str | None,
    ref: str,
    *,
    purl: str | None = None,
    description: str | None = None,
    licenses: str | None = None,
    properties: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """A component: empty fields left out; its properties sorted by name and value, each
    once, empty values left out."""
    out: dict[str, Any] = {"type": kind, "bom-ref": ref, "name": name}
    if version:
        out["version"] = version
    if description:
        out["description"] = description
    if licenses:
        out["licenses"] = [{"expression": licenses}]
    if purl:
        out["purl"] = purl
    pairs = sorted({pair for pair in properties if pair[1]})
    if pairs:
        out["properties"] = [{"name": key, "value": value} for key, value in pairs]
    return out


def _purl(text: str) -> str | None:
    """`text` as a package URL in its canonical form, or None when it is not one."""
    from packageurl import PackageURL

    if not text:
        return None
    try:
        return str(PackageURL.from_string(text).to_string())
    except ValueError:
        return None
