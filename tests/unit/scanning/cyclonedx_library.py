"""The CycloneDX export as it was written through cyclonedx-python-lib's object model (until
issue 9, item 13): the reference `test_cyclonedx_matches_library` compares the plain JSON
writer with. Kept here, in the tests only: it costs about 32 KB and 2.5 ms per component.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from trustyard.scanning.bom import ImageBom, exported_locations, image_purl
from trustyard.scanning.model import BINARY

if TYPE_CHECKING:
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.bom_ref import BomRef
    from cyclonedx.model.component import Component as CdxComponent
    from packageurl import PackageURL

    from trustyard.scanning.bom import BomComponent


def library_cyclonedx(
    boms: Sequence[ImageBom], name: str, *, index_digest: str | None = None
) -> str:
    """The CycloneDX 1.6 JSON document of `boms`, made by cyclonedx-python-lib."""
    from cyclonedx.model.bom import Bom
    from cyclonedx.output.json import JsonV1Dot6

    bom = Bom()
    _tool(bom)
    refs = _Refs()
    graph = _Graph()
    if len(boms) == 1:
        image = boms[0]
        root = _image_component(image, name, refs, platform_in_name=False)
        bom.metadata.component = root
        graph.depend(root, _add_image(bom, image, refs))
    else:
        root = _index_component(name, index_digest, refs)
        bom.metadata.component = root
        images = []
        for image in boms:
            container = _image_component(image, name, refs, platform_in_name=True)
            bom.components.add(container)
            graph.depend(container, _add_image(bom, image, refs))
            images.append(container)
        graph.depend(root, images)
    graph.into(bom)
    return str(JsonV1Dot6(bom).output_as_string(indent=2))


class _Graph:
    """The dependency graph, built here and handed to the Bom once: the library's own
    `register_dependency` searches every registered dependency for each one it adds
    (quadratic: most of a 2,000-component export's 3.8 s went there)."""

    def __init__(self) -> None:
        self.edges: dict[int, tuple[BomRef, list[BomRef]]] = {}

    def depend(self, target: CdxComponent, on: Sequence[CdxComponent]) -> None:
        self._node(target.bom_ref).extend(c.bom_ref for c in on)
        for component in on:
            self._node(component.bom_ref)

    def _node(self, ref: BomRef) -> list[BomRef]:
        return self.edges.setdefault(id(ref), (ref, []))[1]

    def into(self, bom: Bom) -> None:
        from cyclonedx.model.bom import Bom
        from cyclonedx.model.dependency import Dependency

        nodes = {
            ref.value: Dependency(ref=ref, dependencies=[Dependency(ref=on) for on in dependents])
            for ref, dependents in self.edges.values()
        }
        bom.dependencies.update(nodes.values())

        # The output calls Bom.validate(), which registers every component again through the
        # same linear search; every component is registered already, so an indexed lookup
        # gives the same graph (an instance attribute: this Bom only).
        def register(target: Any, depends_on: Any = None) -> None:
            known = nodes.get(target.bom_ref.value)
            if known is None or depends_on:
                Bom.register_dependency(bom, target, depends_on)

        bom.register_dependency = register  # type: ignore[method-assign]


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


def _tool(bom: Bom) -> None:
    from cyclonedx.model.component import Component, ComponentType

    from trustyard import __version__

    bom.metadata.tools.components.add(
        Component(type=ComponentType.APPLICATION, name="trustyard", version=__version__)
    )


def _add_image(bom: Bom, image: ImageBom, refs: _Refs) -> list[CdxComponent]:
    """Add `image`'s components (and its distribution) to `bom`; return them."""
    added: list[CdxComponent] = []
    distro = _distro_component(image, refs)
    if distro is not None:
        added.append(distro)
    added.extend(_component(item, image, refs) for item in image.components)
    for component in added:
        bom.components.add(component)
    return added


def _image_component(
    image: ImageBom, name: str, refs: _Refs, *, platform_in_name: bool
) -> CdxComponent:
    from cyclonedx.model.component import Component, ComponentType

    props = [("trustyard:platform", image.platform), ("trustyard:image", image.manifest_digest)]
    return Component(
        type=ComponentType.CONTAINER,
        name=f"{name} ({image.platform})" if platform_in_name else name,
        version=image.manifest_digest,
        bom_ref=refs.make(f"image:{image.platform or 'unknown'}:{image.manifest_digest}"),
        purl=_purl(image_purl(name, image.manifest_digest, image.platform) or ""),
        properties=_properties(props),
    )


def _index_component(name: str, digest: str | None, refs: _Refs) -> CdxComponent:
    from cyclonedx.model.component import Component, ComponentType

    return Component(
        type=ComponentType.CONTAINER,
        name=name,
        version=digest,
        bom_ref=refs.make(f"index:{digest or name}"),
        purl=_purl(image_purl(name, digest, "") or ""),
    )


def _distro_component(image: ImageBom, refs: _Refs) -> CdxComponent | None:
    from cyclonedx.model.component import Component, ComponentType

    if image.distro is None:
        return None
    distro = image.distro
    props = [("trustyard:platform", image.platform), ("trustyard:image", image.manifest_digest)]
    if distro.pretty_name:
        props.append(("trustyard:pretty_name", distro.pretty_name))
    return Component(
        type=ComponentType.OPERATING_SYSTEM,
        name=distro.id,
        version=distro.version_id or None,
        bom_ref=refs.make(f"os:{image.platform}:{distro.id}-{distro.version_id}"),
        description=distro.pretty_name or None,
        properties=_properties(props),
    )


def _component(item: BomComponent, image: ImageBom, refs: _Refs) -> CdxComponent:
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.license import LicenseExpression

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
    kind = ComponentType.APPLICATION if component.ecosystem == BINARY else ComponentType.LIBRARY
    return Component(
        type=kind,
        name=component.name,
        version=component.version or None,
        bom_ref=refs.make(f"{component.purl or component.name}:{image.platform}"),
        purl=purl,
        licenses=[LicenseExpression(component.licenses)] if component.licenses else None,
        properties=_properties(props),
    )


def _properties(pairs: list[tuple[str, str]]) -> list[Property]:
    from cyclonedx.model import Property

    return [Property(name=key, value=value) for key, value in pairs if value]


def _purl(text: str) -> PackageURL | None:
    from packageurl import PackageURL

    if not text:
        return None
    try:
        return PackageURL.from_string(text)
    except ValueError:
        return None
